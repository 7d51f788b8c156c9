// The convolution examples of the documents the project started from (the seeds), rewritten
// in NCHW with this library: a dense layer is a 1x1 convolution, TensorFlow's VALID/SAME
// convolution and conv2d_transpose on a 4x4 image of ones, the 2x upsampling of a 4x4x3
// map, the 1-D transpose convolution with kernel [1, 2, 3, 4], and the
// convolutionalization of a VGG fc6-like dense layer.
import Testing
@testable import FCNCore
import FCNTestSupport

@Suite struct SeedExamplesTests {
    /// Seed 000: `tf.layers.dense` on a [1, 2, 2, C] input equals a 1x1 convolution with the
    /// same weights ("Same output? = True"): per pixel, out[o] = sum_c x[c] * K[c, o] + b[o].
    @Test func denseLayerEqualsOneByOneConvolution() {
        let (cin, cout) = (3, 2)
        let x = Tensor.randn([1, cin, 2, 2], seed: 100)
        let k = Tensor.randn([cin, cout], seed: 101)       // dense kernel [in, out], as TensorFlow
        let b = Tensor.randn([cout], seed: 102)
        // The 1x1 conv weight [Cout, Cin, 1, 1] is the dense kernel transposed.
        let wScalars = (0..<cout).flatMap { o in (0..<cin).map { c in k[c, o] } }
        let y = conv2d(x, weight: Tensor(shape: [cout, cin, 1, 1], scalars: wScalars), bias: b)
        var dense = [Float](repeating: 0, count: cout * 4)
        for o in 0..<cout {
            for p in 0..<4 {
                var acc = b[o]
                for c in 0..<cin { acc += x[0, c, p / 2, p % 2] * k[c, o] }
                dense[o * 4 + p] = acc
            }
        }
        expectClose(y, Tensor(shape: [1, cout, 2, 2], scalars: dense), tolerance: 1e-6, "dense vs 1x1 conv")
        // The library's dense layer over the channel axis of every pixel gives the same map.
        let viaLinear = linear(x, weight: Tensor(shape: [cout, cin], scalars: wScalars), bias: b, axis: 1)
        expectClose(viaLinear, y, tolerance: 1e-6, "linear(axis: 1) vs 1x1 conv")
        // And in NHWC, as TensorFlow's dense sees it: [1, 2, 2, Cin] -> [1, 2, 2, Cout].
        let nhwc = linear(x.permuted([0, 2, 3, 1]), weight: Tensor(shape: [cout, cin], scalars: wScalars), bias: b)
        expectClose(nhwc.permuted([0, 3, 1, 2]), y, tolerance: 1e-6, "dense over the last axis of NHWC vs 1x1 conv")

        // The seed's printed numbers (one input channel, two outputs, no bias): every pixel's
        // outputs are x*k0 and x*k1, so output 1 = output 0 * (k1/k0). Feeding the printed
        // output 0 through a 1x1 conv with weights [1, k1/k0] gives the printed output 1.
        let out0: [Float] = [-0.07399321, -0.21965009, 0.29445606, -0.7433553]
        let out1: [Float] = [0.3901071, 1.1580395, -1.5524316, 3.9191186]
        let ratio = out1[0] / out0[0]
        let y2 = conv2d(Tensor(shape: [1, 1, 2, 2], scalars: out0), weight: Tensor(shape: [2, 1, 1, 1], scalars: [1, ratio]))
        expectClose(y2, Tensor(shape: [1, 2, 2, 2], scalars: out0 + out1), tolerance: 1e-5, "seed 000 printed outputs")
    }

    /// Seed 003: a [1, 4, 4, 1] image of ones, filter [[1, 0], [-1, -2]], stride 2. VALID and
    /// SAME both give 2x2 of -2 (with in 4, k 2, s 2 SAME pads 0), and conv2d_transpose back
    /// to 4x4 tiles -2 * filter = [[-2, 0], [2, 4]].
    @Test func tensorFlowValidSameAndTransposeOnOnes() {
        let img = Tensor.ones([1, 1, 4, 4])
        let filter = Tensor(shape: [1, 1, 2, 2], scalars: [1, 0, -1, -2])
        let valid = conv2d(img, weight: filter, stride: 2, padding: .valid)
        let same = conv2d(img, weight: filter, stride: 2, padding: .same)
        #expect(valid.shape == [1, 1, 2, 2] && valid.scalars == [-2, -2, -2, -2])
        #expect(same.shape == [1, 1, 2, 2] && same.scalars == [-2, -2, -2, -2])
        let tile: [[Float]] = [[-2, 0], [2, 4]]
        let expected = (0..<16).map { i in tile[(i / 4) % 2][(i % 4) % 2] }
        let contv = convTranspose2d(valid, weight: filter, outputSize: [4, 4], stride: 2, padding: .valid)
        let conts = convTranspose2d(same, weight: filter, outputSize: [4, 4], stride: 2, padding: .same)
        #expect(contv.shape == [1, 1, 4, 4] && contv.scalars == expected)
        #expect(conts.shape == [1, 1, 4, 4] && conts.scalars == expected)
    }

    /// Seed 000 / REFERENCE: `conv2d_transpose(x, 3, [2, 2], (2, 2), padding='SAME')` on a
    /// 1x4x4x3 input gives 1x8x8x3; with k == s the 2x2 blocks do not overlap, so
    /// out[co, 2i+a, 2j+b] = sum_ci x[ci, i, j] * w[ci, co, a, b].
    @Test func twoTimesUpsamplingShapeAndValues() {
        let x = Tensor.randn([1, 3, 4, 4], seed: 200), w = Tensor.randn([3, 3, 2, 2], seed: 201)
        let y = convTranspose2d(x, weight: w, outputSize: [8, 8], stride: 2, padding: .same)
        #expect(y.shape == [1, 3, 8, 8])
        var expected = [Float](repeating: 0, count: 3 * 64)
        for co in 0..<3 {
            for oh in 0..<8 {
                for ow in 0..<8 {
                    var acc: Float = 0
                    for ci in 0..<3 { acc += x[0, ci, oh / 2, ow / 2] * w[ci, co, oh % 2, ow % 2] }
                    expected[(co * 8 + oh) * 8 + ow] = acc
                }
            }
        }
        expectClose(y, Tensor(shape: [1, 3, 8, 8], scalars: expected), tolerance: 1e-6, "2x upsampling")
    }

    /// Seed 001: 1-D convolution with kernel [1, 2, 3, 4], stride 2 and two zeros of padding
    /// in front: y1 = 3x1 + 4x2, y2 = x1 + 2x2 + 3x3 + 4x4, y3 = x3 + 2x4 + 3x5 + 4x6. Its
    /// transpose maps 3 values back to 6: odd outputs x(2i-1) use taps [3, 1] on
    /// (y_i, y_i+1), even outputs x(2i) use taps [4, 2].
    @Test func oneDimensionalTransposeConvolution() {
        let kernel = Tensor(shape: [1, 1, 1, 4], scalars: [1, 2, 3, 4])
        let pad = Padding.explicit(top: 0, bottom: 0, left: 2, right: 0)
        let xs: [Float] = [1, -2, 3, 5, -1, 2]
        let y = conv2d(Tensor(shape: [1, 1, 1, 6], scalars: xs), weight: kernel, stride: [1, 2], padding: pad)
        #expect(y.scalars == [3 * xs[0] + 4 * xs[1],
                              xs[0] + 2 * xs[1] + 3 * xs[2] + 4 * xs[3],
                              xs[2] + 2 * xs[3] + 3 * xs[4] + 4 * xs[5]])
        let ys: [Float] = [1, 2, 3]
        let xt = convTranspose2d(Tensor(shape: [1, 1, 1, 3], scalars: ys), weight: kernel, stride: [1, 2], padding: pad)
        #expect(xt.shape == [1, 1, 1, 6])
        var expected = [Float]()
        for i in 0..<3 {
            let next: Float = i + 1 < 3 ? ys[i + 1] : 0
            expected.append(3 * ys[i] + 1 * next)   // x(2i-1), 1-based: taps [3, 1]
            expected.append(4 * ys[i] + 2 * next)   // x(2i): taps [4, 2]
        }
        #expect(xt.scalars == expected)   // [5, 8, 9, 14, 9, 12]
    }

    /// Dense layer on a flattened [C, 7, 7] map, computed by a plain loop.
    func dense(_ x: [Float], _ w: Tensor, _ b: Tensor) -> [Float] {
        let (o, k) = (w.shape[0], w.shape[1])
        let ws = w.scalars
        return (0..<o).map { r in
            var acc = Double(b[r])
            for i in 0..<k { acc += Double(ws[r * k + i]) * Double(x[i]) }
            return Float(acc)
        }
    }

    /// Convolutionalization (FCN / REFERENCE): fc6's dense weight [out, C*7*7] reshaped to
    /// [out, C, 7, 7] is a 7x7 convolution. On a 7x7 map both agree; on a 9x10 map the
    /// convolution gives a 3x4 map whose every cell is the dense layer on that 7x7 window.
    @Test func denseLayerBecomesSevenBySevenConvolution() {
        for (c, o) in [(16, 32), (512, 64)] {
            let wDense = Tensor.randn([o, c * 49], seed: 300), b = Tensor.randn([o], seed: 301)
            let wConv = Tensor(shape: [o, c, 7, 7], scalars: wDense.scalars)
            let x = Tensor.randn([1, c, 7, 7], seed: 302)
            let y = conv2d(x, weight: wConv, bias: b)
            #expect(y.shape == [1, o, 1, 1])
            expectClose(y, Tensor(shape: [1, o, 1, 1], scalars: dense(x.scalars, wDense, b)), tolerance: 1e-5, "fc6 \(c)x7x7 -> \(o)")
        }
        let (c, o) = (16, 32)
        let wDense = Tensor.randn([o, c * 49], seed: 310), b = Tensor.randn([o], seed: 311)
        let big = Tensor.randn([1, c, 9, 10], seed: 312)
        let y = conv2d(big, weight: Tensor(shape: [o, c, 7, 7], scalars: wDense.scalars), bias: b)
        #expect(y.shape == [1, o, 3, 4])
        let bs = big.scalars
        for i in 0..<3 {
            for j in 0..<4 {
                var window = [Float]()
                for ch in 0..<c { for r in 0..<7 { for s in 0..<7 { window.append(bs[(ch * 9 + i + r) * 10 + j + s]) } } }
                let cell = Tensor(shape: [o], scalars: (0..<o).map { y[0, $0, i, j] })
                expectClose(cell, Tensor(shape: [o], scalars: dense(window, wDense, b)), tolerance: 1e-5, "cell (\(i), \(j))")
            }
        }
    }
}
