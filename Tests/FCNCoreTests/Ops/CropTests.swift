// Crops against PyTorch slicing (Caffe's crop) and torchvision's center_crop
// (Fixtures/gen_pool.py), plus finite differences and misuse.
//
// Fixture idea: out = x[:, :, oh:oh+h, ow:ow+w]  or  TF.center_crop(x, [h, w]);
// out.backward(grad_out); store x, out, grad_out, x.grad.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct CropTests {
    /// Crops copy values: exact, forward and backward.
    @Test(arguments: loadFixture("crop"))
    func cropMatchesPyTorch(_ c: FixtureCase) {
        let size = c.ints("size")
        let (out, gx) = forwardBackward(c.tensor("x"), c.tensor("grad_out")) { x in
            if c.string("kind") == "center" { return centerCrop(x, height: size[0], width: size[1]) }
            let o = c.ints("offset")
            return crop(x, height: size[0], width: size[1], offset: Size2(o[0], o[1]))
        }
        expectClose(out, c.tensor("out"), tolerance: 0, "\(c) out")
        expectClose(gx, c.tensor("grad_x"), tolerance: 0, "\(c) grad_x")
    }

    /// Caffe's crop takes the reference's spatial size, from the top-left offset.
    @Test func cropLikeReference() {
        let x = Tensor(shape: [1, 1, 4, 4], scalars: (0..<16).map(Float.init))
        let ref = Tensor.zeros([1, 7, 2, 3])      // channels of the reference are ignored
        let y = crop(x, like: ref, offset: [1, 0])
        #expect(y.shape == [1, 1, 2, 3])
        #expect(y.scalars == [4, 5, 6, 8, 9, 10])
        #expect(crop(x, like: x).scalars == x.scalars)
    }

    /// torchvision rounds half to even: (5-2)/2 = 1.5 -> 2, (4-1)/2 = 1.5 -> 2, 0.5 -> 0.
    @Test func centerCropRounding() {
        let x5 = Tensor(shape: [1, 1, 5, 5], scalars: (0..<25).map(Float.init))
        #expect(centerCrop(x5, height: 2, width: 2).scalars == [12, 13, 17, 18])
        let x3 = Tensor(shape: [1, 1, 3, 3], scalars: (0..<9).map(Float.init))
        #expect(centerCrop(x3, height: 2, width: 2).scalars == [0, 1, 3, 4])
    }

    @Test func finiteDifferences() {
        let x = Tensor.randn([2, 2, 5, 6], seed: 4)
        gradientCheck([x], tolerance: 1e-3, "crop") { crop($0[0], height: 3, width: 2, offset: [1, 3]) }
        gradientCheck([x], tolerance: 1e-3, "centerCrop pad") { centerCrop($0[0], height: 7, width: 3) }
    }

    // MARK: misuse

    @Test func cropThatDoesNotFitNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crop(Tensor.zeros([1, 1, 8, 8]), like: Tensor.zeros([1, 1, 5, 5]), offset: 4)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("crop: a 5x5 window at offset [4, 4] does not fit in input [1, 1, 8, 8]"))
    }

    @Test func negativeOffsetNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = crop(Tensor.zeros([1, 1, 8, 8]), height: 2, width: 2, offset: [-1, 0])
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("crop: offset [-1, 0] must be non-negative"))
    }

    @Test func centerCropBadSizeNamesTheOp() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = centerCrop(Tensor.zeros([1, 1, 8, 8]), height: 0, width: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("centerCrop: size must be positive, got 0x2"))
    }
}
