// The autograd engine itself: accumulation, zeroing, no-grad scope, graph release,
// fan-out (a tensor used twice), a given output gradient, and detaching.
// Ops used here (crop, interpolation, pooling) have their own gradient tests; this file
// checks the bookkeeping around them.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct AutogradEngineTests {
    let x0 = Tensor.randn([1, 2, 5, 6], seed: 11)

    /// Sum of all elements through an interpolation (a linear map whose gradient is
    /// the column sums of its matrix, so easy to recompute).
    func loss(_ x: Tensor) -> Tensor {
        let y = interpolateBilinear(x, size: [7, 4])
        return y
    }

    @Test func gradientsAccumulateUntilZeroed() {
        let x = x0.requiringGrad()
        let g = Tensor.randn([1, 2, 7, 4], seed: 3)
        loss(x).backward(gradient: g)
        let first = x.grad!
        loss(x).backward(gradient: g)
        let twice = x.grad!
        expectClose(twice, Tensor(shape: first.shape, scalars: first.scalars.map { 2 * $0 }), tolerance: 1e-6, "accumulated")
        x.zeroGrad()
        #expect(x.grad == nil)
        loss(x).backward(gradient: g)
        expectClose(x.grad!, first, tolerance: 0, "after zeroGrad")
    }

    @Test func copiesShareTheLeaf() {
        let x = x0.requiringGrad()
        let alias = x            // value copy: same leaf
        loss(alias).backward(gradient: Tensor.ones([1, 2, 7, 4]))
        #expect(x.grad != nil)
        #expect(x.isLeaf && x.requiresGrad)
    }

    @Test func fanOutSumsGradients() {
        // y = crop(x) used twice: the gradient is the sum of both paths.
        let x = x0.requiringGrad()
        let a = crop(x, height: 3, width: 4, offset: [1, 1])
        let b = crop(x, height: 3, width: 4, offset: [1, 1])
        let both = crop(maxPool2d(x, kernel: 1), height: 3, width: 4, offset: [1, 1])
        _ = both
        let g = Tensor.ones([1, 2, 3, 4])
        a.backward(gradient: g)
        b.backward(gradient: g)
        // each crop routes ones into the window: twice -> 2 inside, 0 outside
        let grad = x.grad!
        for c in 0..<2 { for i in 0..<5 { for j in 0..<6 {
            let inside = (1...3).contains(i) && (1...4).contains(j)
            #expect(grad[0, c, i, j] == (inside ? 2 : 0))
        } } }
    }

    @Test func sharedSubgraphIsVisitedOnce() {
        // z = pool(x); out = concat-free fan-out: crop(z) twice from one graph, one backward.
        let x = x0.requiringGrad()
        let z = maxPool2d(x, kernel: 1)      // identity-like op, recorded
        let p = crop(z, height: 5, width: 6)
        let q = crop(p, height: 5, width: 6)
        q.backward(gradient: Tensor.ones([1, 2, 5, 6]))
        #expect(x.grad!.scalars.allSatisfy { $0 == 1 })
    }

    @Test func noGradScopeRecordsNothing() {
        let x = x0.requiringGrad()
        let y = withoutGrad { loss(x) }
        #expect(!y.requiresGrad)
        #expect(!GradModeProbe.enabledInside())
        #expect(GradMode.isEnabled)
        let z = withoutGrad { withGrad { loss(x) } }
        #expect(z.requiresGrad)
    }

    @Test func constantsRecordNothing() {
        let y = loss(x0)
        #expect(!y.requiresGrad)
        #expect(y.node == nil)
    }

    @Test func detachedStopsGradients() {
        let x = x0.requiringGrad()
        let y = loss(x).detached()
        #expect(!y.requiresGrad)
        #expect(y.sharesStorage(with: loss(x0)) == false)
    }

    @Test func graphIsReleasedAfterBackward() {
        let x = x0.requiringGrad()
        let y = loss(x)
        weak var saved: GradNode?
        saved = y.node
        #expect(y.node?.backward != nil)
        y.backward(gradient: Tensor.ones(y.shape))
        #expect(saved?.backward == nil)
        #expect(saved?.released == true)
    }

    @Test func secondBackwardThroughReleasedGraphFails() async {
        await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor.randn([1, 1, 4, 4], seed: 1).requiringGrad()
            let y = interpolateBilinear(x, size: [2, 2])
            y.backward(gradient: Tensor.ones([1, 1, 2, 2]))
            y.backward(gradient: Tensor.ones([1, 1, 2, 2]))
        }
    }

    @Test func backwardNeedsScalarOrGradient() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            let x = Tensor.randn([1, 1, 4, 4], seed: 1).requiringGrad()
            interpolateBilinear(x, size: [2, 2]).backward()
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("backward: tensor of shape [1, 1, 2, 2] is not a scalar"))
    }

    @Test func deepChainDoesNotOverflowTheStack() {
        // 20,000 recorded ops in a chain: the topological sort is iterative.
        var y = Tensor.randn([1, 1, 2, 2], seed: 5).requiringGrad()
        let x = y
        for _ in 0..<20_000 { y = crop(y, height: 2, width: 2) }
        y.backward(gradient: Tensor.ones([1, 1, 2, 2]))
        #expect(x.grad!.scalars == [1, 1, 1, 1])
    }
}

enum GradModeProbe {
    static func enabledInside() -> Bool { withoutGrad { GradMode.isEnabled } }
}
