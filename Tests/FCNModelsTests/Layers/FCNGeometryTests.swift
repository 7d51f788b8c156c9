// Crop offsets of the reference VGG16 FCNs derived from the layer geometry (Caffe's
// coord_map rules): 32s final 19, 16s score_pool4 5 and final 27, 8s score_pool3 9 and
// final 31 (the values in the reference prototxts).
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport

@Suite struct FCNGeometryTests {
    @Test func vgg16OffsetsComeOutOfTheGeometry() {
        let o = FCNGeometry.vgg16CropOffsets()
        #expect(o.fcn32Final == 19)
        #expect(o.fcn16Pool4 == 5)
        #expect(o.fcn16Final == 27)
        #expect(o.fcn8Pool3 == 9)
        #expect(o.fcn8Final == 31)
        // FCN-4s: composed by hand with Caffe's coord_map rules in gen_models.py.
        #expect(o.fcn4Pool2 == 17)
        #expect(o.fcn4Final == 33)
    }

    @Test func layerMaps() {
        // conv k3 p100: x_out = x_in + 99; pool k2 s2: x/2 - 1/4; deconv k64 s32: 32x + 31.5
        #expect(CoordinateMap(.conv(kernel: 3, padding: 100)) == CoordinateMap(scale: 1, shift: 99))
        #expect(CoordinateMap(.pool(kernel: 2, stride: 2)) == CoordinateMap(scale: Rational(1, 2), shift: Rational(-1, 4)))
        #expect(CoordinateMap(.deconv(kernel: 64, stride: 32)) == CoordinateMap(scale: 32, shift: Rational(63, 2)))
        #expect(CoordinateMap(.conv(kernel: 3, padding: 2, dilation: 2)) == .identity)
        let m = CoordinateMap(composing: FCNGeometry.vgg16Steps(through: "score_fr"))
        #expect(m.scale == Rational(1, 32))
        #expect(m.followed(by: m.inverse) == .identity)
        #expect(m(m.inverse(Rational(7, 3))) == Rational(7, 3))
        #expect(FCNGeometry.vgg16.count == 21 && FCNGeometry.vgg16[0].name == "conv1_1")
        // pool k2 s2 (x/2 - 1/4) then deconv k4 s2 (2x + 3/2): x + 1, crop offset 1.
        #expect(FCNGeometry.cropOffset(from: [.pool(kernel: 2, stride: 2), .deconv(kernel: 4, stride: 2)], to: []) == 1)
        #expect(FCNGeometry.cropOffset(from: [.conv(kernel: 3, padding: 3)], to: [.conv(kernel: 1)]) == 2)
        #expect(Rational(6, -4) == Rational(-3, 2) && Rational(6, -4).description == "-3/2")
    }

    @Test func scaleMismatchIsAProgrammingError() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = FCNGeometry.cropOffset(from: [.pool(kernel: 2, stride: 2)], to: [])
        }
        let text = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(text.contains("cropOffset: the blobs have different scales (1/2 vs 1); cannot crop one to the other"))
    }
}
