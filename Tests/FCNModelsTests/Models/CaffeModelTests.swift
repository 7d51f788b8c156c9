// The .caffemodel reader on the files of gen_readers.py (written by its own protobuf
// encoder and parsed back by the protobuf package there) and on hand-made NetParameters:
// both layer formats, shapes from BlobShape and from the legacy 4-D fields, packed,
// unpacked and split data, double_data, convolution and power parameters, unknown fields
// of every wire type, and the errors for corrupt or foreign files.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
import FCNTestSupport


@Suite struct CaffeModelTests {
    @Test func readsTheCurrentFormat() throws {
        let m = try CaffeModel.read(path: readersDirectory + "/vgg32s_v2.caffemodel")
        #expect(m.format == .current && m.name == "FCN-32s")
        #expect(m.layers.first?.name == "data" && m.layers.first?.type == "Python")
        let conv = try #require(m.layer(named: "conv1_1"))
        #expect(conv.type == "Convolution" && conv.info.bottoms == ["data"] && conv.info.tops == ["conv1_1"])
        #expect(conv.info.blobShapes == [CaffeBlobShape(dims: [1, 3, 3, 3], isLegacy: false), CaffeBlobShape(dims: [1], isLegacy: false)])
        #expect(conv.blobs.map(\.shape) == [[1, 3, 3, 3], [1]])
        #expect(conv.info.convolution == CaffeConvolutionParameters(numOutput: 1, biasTerm: true, kernel: [3, 3], stride: [1, 1], pad: [100, 100]))
        let up = try #require(m.layer(named: "upscore"))
        #expect(up.type == "Deconvolution" && up.blobs.count == 1 && up.blobs[0].shape == [2, 2, 64, 64])
        #expect(up.info.convolution?.biasTerm == false && up.info.convolution?.stride == [32, 32])
        #expect(m.layers.filter { !$0.blobs.isEmpty }.map(\.name) == VGG16Config.convolutionNames + ["fc6", "fc7", "score_fr", "upscore"])
        #expect(m.layer(named: "relu1_1")?.blobs.isEmpty == true && m.layer(named: "loss")?.type == "SoftmaxWithLoss")
    }

    @Test func readsTheV1FormatWithLegacyShapesAndUnpackedData() throws {
        let file = try CaffeModelFile(path: readersDirectory + "/vgg16s_v1.caffemodel")
        #expect(file.format == .v1)
        #expect(file.layers.map(\.type).prefix(4) == ["Data", "Convolution", "ReLU", "Convolution"])
        let (i, fc6) = try #require(file.layer(named: "fc6"))
        #expect(fc6.blobShapes == [CaffeBlobShape(dims: [32, 4, 7, 7], isLegacy: true), CaffeBlobShape(dims: [1, 1, 1, 32], isLegacy: true)])
        #expect(fc6.blobShapes[1].fits([32]) && fc6.blobShapes[1].fits([1, 32]))
        #expect(!fc6.blobShapes[1].fits([32, 1]) && !fc6.blobShapes[1].fits([16, 2]))
        #expect(!CaffeBlobShape(dims: [1, 32], isLegacy: false).fits([32]))
        let bias = try file.tensor(layer: i, blob: 1)
        #expect(bias.shape == [1, 1, 1, 32] && bias.scalars.allSatisfy(\.isFinite))
        #expect(file.layer(named: "upscore16")?.info.type == "Deconvolution")
        #expect(file.layer(named: "fuse_pool4")?.info.type == "Eltwise")
    }

    @Test func readsSplitUnpackedDoubleDataAndSkipsUnknownFields() throws {
        let m = try CaffeModel.read(path: readersDirectory + "/vgg8s_mixed.caffemodel")
        #expect(m.layers.count == 46)
        // conv3_2 and fc7 hold double_data; their values are finite floats of the right count.
        for name in ["conv3_2", "fc7", "conv1_1"] {
            let l = try #require(m.layer(named: name))
            #expect(l.blobs[0].count == l.info.blobShapes[0].count && l.blobs[0].scalars.allSatisfy(\.isFinite))
        }
        #expect(m.layer(named: "conv1_1")?.info.convolution?.pad == [100, 100])   // packed repeated pad
    }

    @Test func valuesAreExactInEveryEncoding() throws {
        let values: [Float] = [1.5, -0.25, 3.140625, 0.0009765625, -7, 0, 3, 4]
        let doubles = values.map(Double.init)
        let shape = PB.bytes(7, PB.bytes(1, PB.varint(2) + PB.varint(4)))
        let encodings: [[UInt8]] = [
            shape + PB.packedFloats(5, values),
            shape + values.flatMap { PB.float(5, $0) },
            PB.packedFloats(5, Array(values[0..<3])) + shape + values[3...].flatMap { PB.float(5, $0) },
            shape + PB.bytes(8, doubles.flatMap { PB.le($0.bitPattern) }),
            shape + doubles.flatMap { PB.double(8, $0) } + PB.packedFloats(5, [9, 9]),   // double_data wins
            PB.int(1, 1) + PB.int(2, 1) + PB.int(3, 2) + PB.int(4, 4) + PB.packedFloats(5, values),
        ]
        for (k, blob) in encodings.enumerated() {
            let m = try CaffeModel.read(data: CaffeProto.net([CaffeProto.layer("x", "Convolution", blobs: [blob])]))
            let t = m.layers[0].blobs[0]
            #expect(t.shape == (k == 5 ? [1, 1, 2, 4] : [2, 4]), "encoding \(k)")
            #expect(t.scalars == doubles.map { Float($0) }, "encoding \(k)")
        }
        // No shape fields: a scalar holding one value (Caffe's 0-axis blob).
        let scalar = try CaffeModel.read(data: CaffeProto.net([CaffeProto.layer("s", "Scale", blobs: [PB.packedFloats(5, [0.5])])]))
        #expect(scalar.layers[0].blobs[0].shape == [] && scalar.layers[0].blobs[0].item == 0.5)
    }

    @Test func v1TypesAndParameters() throws {
        let layer = PB.string(4, "p") + PB.int(5, 26) + PB.bytes(21, PB.float(2, 0.01) + PB.float(3, 1))
        let other = PB.string(4, "q") + PB.int(5, 99)
        let m = try CaffeModel.read(data: Data(PB.bytes(2, layer) + PB.bytes(2, other)))
        #expect(m.format == .v1 && m.layers.map(\.type) == ["Power", "V1 type 99"])
        #expect(m.layers[0].info.power == CaffePowerParameters(power: 1, scale: 0.01, shift: 1))
        #expect(v1LayerTypeName(39) == "Deconvolution" && v1LayerTypeName(21) == "SoftmaxWithLoss")
        // kernel_h/w, stride_h/w and pad_h/w instead of the repeated fields.
        let conv = PB.int(11, 3) + PB.int(12, 5) + PB.int(13, 2) + PB.int(14, 1) + PB.int(10, 4) + PB.int(18, 2)
        let c = try CaffeModel.read(data: CaffeProto.net([CaffeProto.layer("c", "Convolution", conv: conv)]))
        #expect(c.layers[0].info.convolution == CaffeConvolutionParameters(kernel: [3, 5], stride: [2, 1], pad: [0, 4], dilation: [2, 2]))
    }

    @Test func rejectsCorruptAndForeignFiles() {
        func read(_ d: Data) -> String? { errorText { _ = try CaffeModel.read(data: d) } }
        let good = CaffeProto.net([CaffeProto.layer("conv", "Convolution", blobs: [CaffeProto.blob([2, 3])])])
        #expect(read(Data())?.contains("no layers") == true)
        #expect(read(Data("name: \"FCN\"\nlayer {\n".utf8)) != nil)                     // a text prototxt
        #expect(read(good + Data(PB.bytes(2, PB.string(4, "old"))))?.contains("both 'layer' (1) and legacy 'layers' (1)") == true)
        #expect(read(Data(PB.bytes(2, PB.string(4, "v0") + PB.bytes(1, PB.string(1, "conv1")))))?.contains("V0 layer format") == true)
        // The blob's data cut short: the declared length runs past the end.
        #expect(read(good.prefix(good.count - 3))?.contains("declares") == true)
        // Shape and value count disagree.
        let mismatch = CaffeProto.net([CaffeProto.layer("c", "Convolution", blobs: [PB.bytes(7, PB.int(1, 5)) + PB.packedFloats(5, [1, 2])])])
        #expect(read(mismatch)?.contains("layer 0: 'c' blob 0: shape [5] needs 5 values but the blob holds 2 float values") == true)
        let legacyNoData = CaffeProto.net([CaffeProto.layer("c", "Convolution", blobs: [PB.int(1, 2) + PB.int(2, 3)])])
        #expect(read(legacyNoData) == nil)   // [2, 3, 0, 0] (absent legacy fields are 0) holds no values: valid
        // Wrong wire types for known fields, packed floats not a multiple of 4, negative dims.
        #expect(read(Data(PB.int(100, 1)))?.contains("NetParameter.layer (field 100) has wire type varint") == true)
        #expect(read(CaffeProto.net([PB.int(1, 5)]))?.contains("name (field 1) has wire type varint, expected length-delimited") == true)
        #expect(read(CaffeProto.net([CaffeProto.layer("c", "C", blobs: [PB.bytes(5, [1, 2, 3])])]))?.contains("packed float data of 3 bytes") == true)
        #expect(read(CaffeProto.net([CaffeProto.layer("c", "C", blobs: [PB.bytes(7, PB.int(1, -2))])]))?.contains("dimension -2 is out of range") == true)
        #expect(read(CaffeProto.net([CaffeProto.layer("c", "C", blobs: [PB.bytes(7, PB.int(1, 1 << 40))])]))?.contains("out of range") == true)
        // Overflowing shape products never allocate.
        let huge = PB.bytes(7, PB.int(1, Int(Int32.max)) + PB.int(1, Int(Int32.max)) + PB.int(1, Int(Int32.max)))
        #expect(read(CaffeProto.net([CaffeProto.layer("c", "C", blobs: [huge])]))?.contains("needs too many values") == true)
        #expect(errorText { _ = try CaffeModel.read(path: "/nonexistent/x.caffemodel") }?.contains("cannot open") == true)
    }

    @Test func decodesIntoCallerStorageAndReleasesPages() throws {
        let file = try CaffeModelFile(path: readersDirectory + "/vgg8s_atonce_scale.caffemodel")
        let (i, info) = try #require(file.layer(named: "scale_pool4"))
        #expect(info.type == "Scale" && info.blobShapes[0].dims == [4])
        var buffer = [Float](repeating: -1, count: 4)
        try buffer.withUnsafeMutableBufferPointer { try file.decode(layer: i, blob: 0, into: $0) }
        #expect(buffer == [Float](repeating: 0.01, count: 4))
        // Decoding twice gives the same values (pages dropped after the first read come back).
        #expect(try file.tensor(layer: i, blob: 0).scalars == buffer)
    }
}
