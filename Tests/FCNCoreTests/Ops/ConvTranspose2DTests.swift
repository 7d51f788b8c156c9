// convTranspose2d (PyTorch form and TensorFlow output-size form) against PyTorch, finite
// differences and the adjoint identity <conv2d(x, w), y> == <x, convTranspose2d(y, w)>.
//
// Fixtures (Fixtures/gen_conv.py):
//   conv_transpose2d: out = F.conv_transpose2d(x, w, b, stride, padding, output_padding,
//     groups, dilation); asymmetric padding = the padding-free result cropped.
//   conv_transpose2d_tf: out = vjp of z -> F.conv2d(F.pad(z, tf_pads(out_size)), w, stride)
//     at x, plus b (TensorFlow's definition of conv2d_transpose).
//   grads = torch.autograd.grad(out, [x, w, b], grad_outputs=grad_out)
// Tolerance 1e-5 relative to max(1, max|expected|) (float32 sums, different order).
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct ConvTranspose2DTests {
    static let tolerance: Float = 1e-5

    @Test(arguments: loadFixture("conv_transpose2d"))
    func matchesPyTorch(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad(), w = c.tensor("w").requiringGrad()
        let b = c.bool("bias") ? c.tensor("b").requiringGrad() : nil
        let p = c.ints("padding")
        let y = convTranspose2d(x, weight: w, bias: b, stride: size2(c.ints("stride")),
                                padding: .explicit(top: p[0], bottom: p[1], left: p[2], right: p[3]),
                                outputPadding: size2(c.ints("output_padding")), dilation: size2(c.ints("dilation")),
                                groups: c.int("groups"))
        expectClose(y, c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: Self.tolerance, "\(c) grad_x")
        expectClose(w.grad!, c.tensor("grad_w"), tolerance: Self.tolerance, "\(c) grad_w")
        if let b { expectClose(b.grad!, c.tensor("grad_b"), tolerance: Self.tolerance, "\(c) grad_b") }
    }

    @Test(arguments: loadFixture("conv_transpose2d_tf"))
    func tensorFlowFormMatches(_ c: FixtureCase) {
        let x = c.tensor("x").requiringGrad(), w = c.tensor("w").requiringGrad(), b = c.tensor("b").requiringGrad()
        let y = convTranspose2d(x, weight: w, bias: b, outputSize: size2(c.ints("output_size")),
                                stride: size2(c.ints("stride")), padding: c.string("mode") == "same" ? .same : .valid)
        expectClose(y, c.tensor("out"), tolerance: Self.tolerance, "\(c) out")
        y.backward(gradient: c.tensor("grad_out"))
        expectClose(x.grad!, c.tensor("grad_x"), tolerance: Self.tolerance, "\(c) grad_x")
        expectClose(w.grad!, c.tensor("grad_w"), tolerance: Self.tolerance, "\(c) grad_w")
        expectClose(b.grad!, c.tensor("grad_b"), tolerance: Self.tolerance, "\(c) grad_b")
    }

    struct Case: Sendable, CustomStringConvertible {
        var x: [Int], w: [Int], stride: Size2, padding: Padding, outputPadding: Size2, dilation: Size2, groups: Int
        var description: String {
            "x \(x) w \(w) stride \(stride) padding \(padding) outputPadding \(outputPadding) dilation \(dilation) groups \(groups)"
        }
    }
    static let cases: [Case] = [
        Case(x: [2, 3, 3, 4], w: [3, 2, 3, 3], stride: 2, padding: 1, outputPadding: 1, dilation: 1, groups: 1),
        Case(x: [1, 4, 3, 3], w: [4, 1, 4, 4], stride: 2, padding: 1, outputPadding: 0, dilation: 1, groups: 2),
        Case(x: [1, 2, 4, 3], w: [2, 3, 3, 2], stride: [1, 2], padding: .explicit(top: 1, bottom: 0, left: 0, right: 1),
             outputPadding: [1, 1], dilation: [2, 1], groups: 1),
        Case(x: [2, 3, 3, 3], w: [3, 1, 3, 3], stride: 3, padding: 0, outputPadding: 2, dilation: 1, groups: 3),
        Case(x: [1, 3, 4, 4], w: [3, 2, 1, 1], stride: 1, padding: 0, outputPadding: 0, dilation: 1, groups: 1),
    ]

    /// Central finite differences (eps 1e-2) for input, weight and bias; the op is linear in
    /// each, so only float32 rounding remains: tolerance 5e-3.
    @Test(arguments: cases)
    func finiteDifferences(_ f: Case) {
        let cout = f.w[1] * f.groups
        gradientCheck([Tensor.randn(f.x, seed: 21), Tensor.randn(f.w, seed: 22), Tensor.randn([cout], seed: 23)],
                      eps: 1e-2, tolerance: 5e-3, "\(f)") { xs in
            convTranspose2d(xs[0], weight: xs[1], bias: xs[2], stride: f.stride, padding: f.padding,
                            outputPadding: f.outputPadding, dilation: f.dilation, groups: f.groups)
        }
    }

    /// TensorFlow form gradients by finite differences (SAME with cropping, VALID with extra rows).
    @Test func tensorFlowFormFiniteDifferences() {
        for (size, pad) in [(Size2(5, 6), TFPadding.same), (Size2(8, 7), TFPadding.valid)] {
            gradientCheck([Tensor.randn([1, 2, 3, 3], seed: 31), Tensor.randn([2, 2, 3, 3], seed: 32), Tensor.randn([2], seed: 33)],
                          eps: 1e-2, tolerance: 5e-3, "\(size) \(pad)") { xs in
                convTranspose2d(xs[0], weight: xs[1], bias: xs[2], outputSize: size, stride: 2, padding: pad)
            }
        }
    }

    /// <conv2d(x, w), y> == <x, convTranspose2d(y, w)>, with the outputPadding that brings the
    /// transpose back to x's size.
    @Test(arguments: [
        Case(x: [2, 3, 7, 6], w: [4, 3, 3, 3], stride: 2, padding: 1, outputPadding: 0, dilation: 1, groups: 1),
        Case(x: [1, 4, 9, 8], w: [6, 2, 3, 2], stride: [3, 2], padding: [2, 0], outputPadding: 0, dilation: [2, 1], groups: 2),
        Case(x: [2, 3, 8, 8], w: [3, 1, 3, 3], stride: 1, padding: .explicit(top: 0, bottom: 2, left: 1, right: 0), outputPadding: 0, dilation: 2, groups: 3),
        Case(x: [1, 5, 6, 7], w: [2, 5, 1, 1], stride: 1, padding: 0, outputPadding: 0, dilation: 1, groups: 1),
        Case(x: [1, 2, 11, 10], w: [3, 2, 5, 4], stride: 3, padding: [1, 2], outputPadding: 0, dilation: 1, groups: 1),
    ])
    func adjointIdentity(_ f: Case) {
        let x = Tensor.randn(f.x, seed: 41), w = Tensor.randn(f.w, seed: 42)
        let y0 = conv2d(x, weight: w, stride: f.stride, padding: f.padding, dilation: f.dilation, groups: f.groups)
        let y = Tensor.randn(y0.shape, seed: 43)
        let p = f.padding.resolve(inH: f.x[2], inW: f.x[3], kernel: Size2(f.w[2], f.w[3]), stride: f.stride, dilation: f.dilation)
        let opH = (f.x[2] + p.top + p.bottom - f.dilation.h * (f.w[2] - 1) - 1) % f.stride.h
        let opW = (f.x[3] + p.left + p.right - f.dilation.w * (f.w[3] - 1) - 1) % f.stride.w
        let xt = convTranspose2d(y, weight: w, stride: f.stride, padding: f.padding, outputPadding: Size2(opH, opW),
                                 dilation: f.dilation, groups: f.groups)
        #expect(xt.shape == x.shape)
        let lhs = dot(y0, y), rhs = dot(x, xt)
        #expect(abs(lhs - rhs) <= 1e-5 * max(1, abs(lhs)), "\(f): \(lhs) vs \(rhs)")
    }

    // MARK: Misuse

    @Test func outputPaddingTooLarge() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = convTranspose2d(Tensor.zeros([1, 2, 3, 3]), weight: Tensor.zeros([2, 2, 3, 3]), stride: 2, outputPadding: 2)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("convTranspose2d: outputPadding 2 must be smaller than max(stride, dilation) = 2 (input [1, 2, 3, 3]"))
    }

    @Test func channelMismatch() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = convTranspose2d(Tensor.zeros([1, 3, 4, 4]), weight: Tensor.zeros([2, 2, 3, 3]))
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("convTranspose2d: input [1, 3, 4, 4] has 3 channels but weight [2, 2, 3, 3] expects 2"))
    }

    @Test func samePaddingRejected() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = convTranspose2d(Tensor.zeros([1, 2, 4, 4]), weight: Tensor.zeros([2, 2, 3, 3]), stride: 2, padding: .same)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("convTranspose2d: padding .same is not defined for a transpose convolution"))
    }

    @Test func tensorFlowOutputSizeOutOfRange() async {
        let r = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = convTranspose2d(Tensor.zeros([1, 2, 4, 4]), weight: Tensor.zeros([2, 3, 2, 2]), outputSize: [9, 8], stride: 2, padding: .same)
        }
        let text = String(decoding: r?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("convTranspose2d: output height 9 is out of range [7, 8] for SAME with input [1, 2, 4, 4], weight [2, 3, 2, 2], stride 2"))
        let r2 = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = convTranspose2d(Tensor.zeros([1, 2, 4, 4]), weight: Tensor.zeros([2, 3, 3, 3]), outputSize: [9, 11], stride: 2, padding: .valid)
        }
        let text2 = String(decoding: r2?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text2.contains("convTranspose2d: output width 11 is out of range [9, 10] for VALID with input [1, 2, 4, 4], weight [2, 3, 3, 3], stride 2"))
    }
}
