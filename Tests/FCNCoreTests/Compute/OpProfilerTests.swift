// OpProfiler: each kind of op is counted once per call under its name (kernel, stride,
// dilation), an op that calls another public op counts once, nothing is recorded outside
// `measure`, and the kinds' seconds fit inside the body's wall time.
@testable import FCNCore
import FCNTestSupport
import Testing

@Suite struct OpProfilerTests {
    @Test func countsEachKindOncePerCall() throws {
        var rng = FCNRandom(seed: 3)
        let x = Tensor.randn([1, 4, 12, 12], using: &rng)
        let w3 = Tensor.randn([4, 4, 3, 3], using: &rng), w1 = Tensor.randn([4, 4, 1, 1], using: &rng)
        _ = conv2d(x, weight: w1)        // outside measure: not recorded
        let (y, profile) = OpProfiler.measure {
            withoutGrad {
                let a = conv2d(x, weight: w3, padding: 2, dilation: 2)
                let b = conv2d(x, weight: w1)
                let c = conv2d(x, weight: w1)
                let p = maxPool2d(relu(a + b + c), kernel: 2, stride: 2)
                // scaleFactor: calls the (height, width) form, itself a timed op: one call.
                return interpolateBilinear(p, scaleFactor: 2)
            }
        }
        #expect(y.shape == [1, 4, 12, 12])
        let calls = profile.entries.mapValues(\.calls)
        #expect(calls == ["conv2d 3x3 dilation 2": 1, "conv2d 1x1": 2, "add": 2, "relu": 1, "maxPool2d 2x2 stride 2": 1,
                          "interpolateBilinear": 1], "\(calls)")
        let opSeconds = profile.entries.values.reduce(0) { $0 + $1.seconds }
        #expect(opSeconds > 0 && opSeconds <= profile.totalSeconds)
        #expect(profile.sorted.first.map { profile.entries[$0.kind]!.seconds == profile.entries.values.map(\.seconds).max() } == true)
        let table = profile.table()
        #expect(table.contains("conv2d 1x1") && table.contains("(other)"), "\(table)")
        // A second measurement starts from nothing.
        let (_, again) = OpProfiler.measure { withoutGrad { relu(x) } }
        #expect(again.entries.mapValues(\.calls) == ["relu": 1])
    }

    @Test func kindNames() {
        #expect(convKind("conv2d", kernel: (3, 3), stride: 1, dilation: 1) == "conv2d 3x3")
        #expect(convKind("conv2d", kernel: (7, 7), stride: 2, dilation: 1) == "conv2d 7x7 stride 2")
        #expect(convKind("conv2d", kernel: (3, 3), stride: 1, dilation: 4, groups: 2) == "conv2d 3x3 dilation 4 groups 2")
        let s12: Size2 = [1, 2]
        #expect(convKind("conv2d", kernel: (1, 7), stride: s12, dilation: 1) == "conv2d 1x7 stride \(s12)")
    }
}
