// Module API: registration order and dotted names, state dicts (round trip, strict and
// non-strict loading with exact error messages), train/eval propagation, freezing,
// parameter counts, gradients bookkeeping and concurrent eval-mode use.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

/// The user-defined module of the Module.swift documentation.
final class DocHead: Layer, @unchecked Sendable {
    let conv = Conv2d(inChannels: 4, outChannels: 3, kernelSize: 3, padding: 1, bias: false, seed: 1)
    let bn = BatchNorm2d(3)
    let score = Conv2d(inChannels: 3, outChannels: 2, kernelSize: 1, seed: 2)
    let temperature = Parameter(Tensor(1))
    var isTraining = true

    var children: [(String, any Module)] { [("conv", conv), ("bn", bn), ("score", score)] }
    var localParameters: [(String, Parameter)] { [("temperature", temperature)] }

    func callAsFunction(_ x: Tensor) -> Tensor { score(relu(bn(conv(x)))) }
}

/// Two children sharing one layer: the shared parameters are listed once.
final class Shared: Module, @unchecked Sendable {
    let a: Linear, b: Linear
    var isTraining = true
    init() { a = Linear(inFeatures: 2, outFeatures: 2, seed: 3); b = a }
    var children: [(String, any Module)] { [("a", a), ("b", b)] }
}

@Suite struct ModuleTests {
    @Test func namesFollowRegistrationOrder() {
        let m = DocHead()
        #expect(m.namedParameters().map(\.0) == ["temperature", "conv.weight", "bn.weight", "bn.bias", "score.weight", "score.bias"])
        #expect(m.namedBuffers().map(\.0) == ["bn.running_mean", "bn.running_var", "bn.num_batches_tracked"])
        #expect(m.namedModules().map(\.0) == ["", "conv", "bn", "score"])
        #expect(m.namedState().map(\.0) == ["temperature", "conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                             "bn.running_var", "bn.num_batches_tracked", "score.weight", "score.bias"])
        let seq = Sequential(Conv2d(inChannels: 1, outChannels: 2, kernelSize: 3), ReLU(),
                             Sequential(BatchNorm2d(2), Dropout(p: 0.5)), Linear(inFeatures: 3, outFeatures: 1))
        #expect(seq.namedParameters().map(\.0) == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "3.weight", "3.bias"])
        #expect(seq.namedBuffers().map(\.0) == ["2.0.running_mean", "2.0.running_var", "2.0.num_batches_tracked"])
        let named = Sequential(named: ["conv1_1": Conv2d(inChannels: 3, outChannels: 4, kernelSize: 3), "relu1_1": ReLU()])
        #expect(named.namedParameters().map(\.0) == ["conv1_1.weight", "conv1_1.bias"])
    }

    @Test func sharedParametersAreListedOnce() {
        let s = Shared()
        #expect(s.namedParameters().map(\.0) == ["a.weight", "a.bias"])
        #expect(s.parameterCount == 6)
    }

    @Test func stateDictRoundTripThroughSafeTensorsIsBitExact() throws {
        let a = DocHead(), b = DocHead()
        // Make every tensor of `a` distinct from `b`'s, including the buffers.
        for (i, (_, p)) in a.namedParameters().enumerated() { p.assign(Tensor.randn(p.shape, seed: UInt64(100 + i))) }
        a.bn.runningMean!.value = Tensor.randn([3], seed: 9)
        a.bn.runningVar!.value = Tensor.uniform([3], low: 0.5, high: 2, seed: 10)
        a.bn.numBatchesTracked!.value = Tensor(12)
        let path = tempPath("head.safetensors")
        defer { removeTempDir(path) }
        try a.save(to: path, metadata: ["epoch": "3"])
        let report = try b.load(from: path)
        #expect(report.isComplete)
        let sa = a.stateDict(), sb = b.stateDict()
        #expect(Set(sa.keys) == Set(sb.keys))
        for (k, v) in sa { #expect(sb[k]!.scalars.map(\.bitPattern) == v.scalars.map(\.bitPattern), "\(k)") }
        #expect(try SafeTensorsFile(path: path).metadata == ["epoch": "3"])
        let x = Tensor.randn([1, 4, 5, 5], seed: 4)
        a.eval(); b.eval()
        #expect(a(x).scalars == b(x).scalars)
    }

    @Test func strictLoadingListsEveryProblem() throws {
        let m = DocHead()
        var state = m.stateDict()
        state["score.bias"] = nil
        state["bn.running_var"] = nil
        state["fc.weight"] = Tensor.zeros([2])
        state["aux.bias"] = Tensor.zeros([1])
        state["conv.weight"] = Tensor.zeros([8, 4, 3, 3])
        let before = m.conv.weight.value.scalars
        #expect(throws: FCNError.mismatch("loadStateDict: missing bn.running_var, score.bias; unexpected aux.bias, fc.weight; shape mismatch for conv.weight: got [8, 4, 3, 3], expected [3, 4, 3, 3]")) {
            try m.loadStateDict(state)
        }
        // Shape mismatches are errors in non-strict mode too; nothing was changed.
        #expect(throws: FCNError.mismatch("loadStateDict: shape mismatch for conv.weight: got [8, 4, 3, 3], expected [3, 4, 3, 3]")) {
            try m.loadStateDict(state, strict: false)
        }
        #expect(m.conv.weight.value.scalars == before)
    }

    @Test func nonStrictLoadingReportsAndLoadsTheRest() throws {
        let m = DocHead()
        var state = m.stateDict()
        state["score.bias"] = nil
        state["fc.weight"] = Tensor.zeros([2])
        state["conv.weight"] = Tensor.full([3, 4, 3, 3], 0.25)
        let oldBias = m.score.bias!.value.scalars
        let report = try m.loadStateDict(state, strict: false)
        #expect(report == StateDictLoadReport(missing: ["score.bias"], unexpected: ["fc.weight"]))
        #expect(!report.isComplete)
        #expect(m.conv.weight.value.scalars.allSatisfy { $0 == 0.25 })
        #expect(m.conv.weight.value.requiresGrad)
        #expect(m.score.bias!.value.scalars == oldBias)
    }

    @Test func loadingFromAFileChecksBeforeReading() throws {
        let path = tempPath("partial.safetensors")
        defer { removeTempDir(path) }
        try saveSafeTensors(["conv.weight": Tensor.zeros([3, 4, 3, 3]), "extra": Tensor.ones([2])], to: path)
        let m = DocHead()
        #expect(throws: FCNError.mismatch("loadStateDict: missing temperature, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked, score.weight, score.bias; unexpected extra")) {
            try m.load(from: path)
        }
        let r = try m.load(from: path, strict: false)
        #expect(r.unexpected == ["extra"] && r.missing.count == 8)
        #expect(m.conv.weight.value.scalars.allSatisfy { $0 == 0 })
    }

    @Test func trainEvalPropagates() {
        let seq = Sequential(DocHead(), Sequential(Dropout(p: 0.3), BatchNorm2d(2)))
        #expect(seq.namedModules().allSatisfy { $0.1.isTraining })
        seq.eval()
        #expect(seq.namedModules().allSatisfy { !$0.1.isTraining })
        #expect(seq.namedModules().count == 8)
        (seq[1] as! Sequential).train()
        #expect(!seq.isTraining && !(seq[0] as! DocHead).bn.isTraining)
        #expect((seq[1] as! Sequential)[0].isTraining && (seq[1] as! Sequential)[1].isTraining)
    }

    @Test func dropoutIsIdentityInEvalAndSeededInTraining() {
        let x = Tensor.randn([2, 3, 4, 4], seed: 5)
        let d = Dropout(p: 0.5, seed: 42), d2 = Dropout(p: 0.5, seed: 42)
        let y = d(x)
        #expect(y.scalars == d2(x).scalars)                         // same seed, same mask
        let kept = zip(y.scalars, x.scalars).filter { $0.0 != 0 }
        #expect(kept.allSatisfy { abs($0.0 - 2 * $0.1) < 1e-6 })      // scaled by 1/(1-p)
        #expect(kept.count > 20 && kept.count < 76)
        #expect(d(x).scalars != y.scalars)                          // the generator advanced
        d.eval()
        #expect(d(x).scalars == x.scalars)
        let c = Dropout2d(p: 0.5, seed: 1)
        let z = c(x)
        for plane in 0..<6 {
            let vals = Array(z.scalars[(plane * 16)..<((plane + 1) * 16)])
            let src = Array(x.scalars[(plane * 16)..<((plane + 1) * 16)])
            #expect(vals.allSatisfy { $0 == 0 } || zip(vals, src).allSatisfy { abs($0 - 2 * $1) < 1e-6 })
        }
        c.eval()
        #expect(c(x).scalars == x.scalars)
    }

    @Test func freezeReducesTrainableCount() {
        let m = DocHead()
        #expect(m.parameterCount == 1 + 4 * 3 * 9 + 3 + 3 + 3 * 2 + 2)
        #expect(m.trainableParameterCount == m.parameterCount)
        m.conv.freeze()
        #expect(m.trainableParameterCount == m.parameterCount - 108)
        #expect(m.conv.weight.isFrozen && !m.conv.weight.value.requiresGrad)
        #expect(m.trainableParameters().count == 5)
        m.freeze()
        #expect(m.trainableParameterCount == 0 && m.parameterCount == 123)
        m.unfreeze()
        #expect(m.trainableParameterCount == 123)
    }

    @Test func parameterGradAndUpdateHook() {
        let p = Parameter(Tensor(shape: [3], scalars: [1, 2, 3]))
        #expect(p.requiresGrad && p.grad == nil)
        p.value.node!.accumulate(Tensor(shape: [3], scalars: [1, 1, 2]))  // as backward would
        #expect(p.grad!.scalars == [1, 1, 2])
        let leaf = p.value
        p.update { w, g in for i in 0..<w.count { w[i] -= 0.5 * g![i] } }
        #expect(p.value.scalars == [0.5, 1.5, 2])
        #expect(p.value.node === leaf.node)                 // still the same leaf
        #expect(leaf.scalars == [1, 2, 3])                  // a held copy is not changed (COW)
        let m = Sequential(Linear(inFeatures: 1, outFeatures: 1))
        (m[0] as! Linear).weight.value.node!.accumulate(Tensor.ones([1, 1]))
        m.zeroGrad()
        #expect((m[0] as! Linear).weight.grad == nil)
        p.zeroGrad()
        #expect(p.grad == nil)
        p.requiresGrad = false
        #expect(p.isFrozen && p.grad == nil)
        p.update { w, g in #expect(g == nil); w[0] = 7 }
        #expect(p.value.scalars == [7, 1.5, 2])
    }

    @Test func defaultInitFollowsTorchBounds() {
        ParameterInit.seed(11)
        let c = Conv2d(inChannels: 6, outChannels: 8, kernelSize: [3, 2], groups: 2)
        let bound = 1 / Float(3 * 3 * 2).squareRoot()
        #expect(c.weight.shape == [8, 3, 3, 2] && c.bias!.shape == [8])
        #expect(c.weight.value.scalars.allSatisfy { abs($0) <= bound })
        #expect(c.weight.value.scalars.map(abs).max()! > 0.8 * bound)
        #expect(c.bias!.value.scalars.allSatisfy { abs($0) <= bound })
        ParameterInit.seed(11)
        #expect(Conv2d(inChannels: 6, outChannels: 8, kernelSize: [3, 2], groups: 2).weight.value.scalars == c.weight.value.scalars)
        #expect(Conv2d(inChannels: 6, outChannels: 8, kernelSize: 3, seed: 5).weight.value.scalars
                == Conv2d(inChannels: 6, outChannels: 8, kernelSize: 3, seed: 5).weight.value.scalars)
        let t = ConvTranspose2d(inChannels: 4, outChannels: 6, kernelSize: 4, stride: 2, groups: 2, seed: 1)
        #expect(t.weight.shape == [4, 3, 4, 4])
        let tb = 1 / Float(3 * 16).squareRoot()
        #expect(t.weight.value.scalars.allSatisfy { abs($0) <= tb } && t.weight.value.scalars.map(abs).max()! > 0.8 * tb)
        let l = Linear(inFeatures: 25, outFeatures: 40, seed: 2)
        #expect(l.weight.value.scalars.allSatisfy { abs($0) <= 0.2 } && l.weight.value.scalars.map(abs).max()! > 0.18)
    }

    @Test func evalModelServesSeveralThreads() {
        let m = DocHead()
        for (_, p) in m.namedParameters() { p.assign(Tensor.randn(p.shape, seed: 3)) }
        m.eval()
        let x = Tensor.randn([1, 4, 6, 6], seed: 8)
        let expected = m(x).scalars
        let results = UncheckedSendable(LockedArray())
        DispatchQueue.concurrentPerform(iterations: 8) { _ in results.value.append(m(x).scalars) }
        #expect(results.value.items.count == 8 && results.value.items.allSatisfy { $0 == expected })
        #expect(m.bn.numBatchesTracked!.value.item == 0)   // eval forward mutated nothing
    }

    @Test func batchNormTracksBatches() {
        let bn = BatchNorm2d(2)
        _ = bn(Tensor.randn([2, 2, 3, 3], seed: 1))
        _ = bn(Tensor.randn([2, 2, 3, 3], seed: 2))
        #expect(bn.numBatchesTracked!.value.item == 2)
        #expect(bn.runningMean!.value.scalars != [0, 0])
        let plain = BatchNorm2d(2, affine: false, trackRunningStats: false)
        #expect(plain.namedState().isEmpty)
        let y = plain(Tensor.randn([4, 2, 2, 2], seed: 3))
        let mean = y.scalars.reduce(0, +) / Float(y.count)
        #expect(abs(mean) < 1e-5)
    }
}

final class LockedArray: @unchecked Sendable {
    private let lock = NSLock()
    private var _items: [[Float]] = []
    func append(_ v: [Float]) { lock.lock(); _items.append(v); lock.unlock() }
    var items: [[Float]] { lock.lock(); defer { lock.unlock() }; return _items }
}
