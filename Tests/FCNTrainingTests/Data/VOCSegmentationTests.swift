// VOC reader on a tiny generated folder with fake decoders (the real PNG/JPEG codecs live
// in IO/): list parsing, path pairing, missing files and shape checks.
import Foundation
import Testing
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNTraining
import FCNTestSupport

@Suite struct VOCSegmentationTests {
    func makeVOC(ids: [String], list: String? = nil, skipLabel: String? = nil) -> String {
        let root = NSTemporaryDirectory() + "fcn-voc-\(UInt64.random(in: 0...UInt64.max))"
        let fm = FileManager.default
        for d in ["JPEGImages", "SegmentationClass", "ImageSets/Segmentation"] {
            try! fm.createDirectory(atPath: root + "/" + d, withIntermediateDirectories: true)
        }
        for id in ids {
            _ = fm.createFile(atPath: root + "/JPEGImages/\(id).jpg", contents: Data("3x\(id.count)".utf8))
            if id != skipLabel { _ = fm.createFile(atPath: root + "/SegmentationClass/\(id).png", contents: Data("lab".utf8)) }
        }
        try! (list ?? ids.joined(separator: "\n") + "\n").write(toFile: root + "/ImageSets/Segmentation/train.txt", atomically: true, encoding: .utf8)
        return root
    }

    // Fake decoders: the image is [3, 2, id-length], the label [2, id-length] of ones.
    let imageDecoder: VOCSegmentation.ImageDecoder = { path in
        let id = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return Tensor.full([3, 2, id.count], 100)
    }
    let labelDecoder: VOCSegmentation.LabelDecoder = { path in
        let id = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return Tensor.ones([2, id.count])
    }

    @Test func readsListAndPairsFiles() throws {
        let root = makeVOC(ids: ["2007_000032", "2007_000039", "x"], list: "2007_000032\n\n  2007_000039 \r\nx")
        defer { try? FileManager.default.removeItem(atPath: root) }
        let voc = try VOCSegmentation(root: root, split: "train", imageDecoder: imageDecoder, labelDecoder: labelDecoder)
        #expect(voc.ids == ["2007_000032", "2007_000039", "x"] && voc.count == 3)
        #expect(voc.imagePath("x") == root + "/JPEGImages/x.jpg" && voc.labelPath("x") == root + "/SegmentationClass/x.png")
        let (img, lab) = try voc.sample(1)
        #expect(img.shape == [3, 2, 11] && lab.shape == [2, 11])
    }

    @Test func missingListAndFilesThrowClearly() throws {
        let root = makeVOC(ids: ["a", "b"], skipLabel: "b")
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(throws: FCNError.io("VOC split list '\(root)/ImageSets/Segmentation/val.txt' is missing or unreadable (expected one image id per line)")) {
            _ = try VOCSegmentation(root: root, split: "val", imageDecoder: imageDecoder, labelDecoder: labelDecoder)
        }
        #expect(throws: FCNError.io("VOC split 'train': 1 listed file(s) missing, e.g. '\(root)/SegmentationClass/b.png'")) {
            _ = try VOCSegmentation(root: root, imageDecoder: imageDecoder, labelDecoder: labelDecoder)
        }
        #expect(throws: FCNError.io("VOC root '\(root)/nope' is not a directory")) {
            _ = try VOCSegmentation(root: root + "/nope", imageDecoder: imageDecoder, labelDecoder: labelDecoder)
        }
        let empty = makeVOC(ids: [], list: "\n")
        defer { try? FileManager.default.removeItem(atPath: empty) }
        #expect(throws: FCNError.invalidFormat("VOC split list '\(empty)/ImageSets/Segmentation/train.txt' lists no images")) {
            _ = try VOCSegmentation(root: empty, imageDecoder: imageDecoder, labelDecoder: labelDecoder)
        }
    }

    @Test func decodedShapesAreChecked() throws {
        let root = makeVOC(ids: ["abc"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        let voc = try VOCSegmentation(root: root, imageDecoder: imageDecoder, labelDecoder: { _ in Tensor.ones([2, 4]) })
        #expect(throws: FCNError.mismatch("VOC sample 'abc': image is 2x3 but label is 2x4")) { _ = try voc.sample(0) }
        let gray = try VOCSegmentation(root: root, imageDecoder: { _ in Tensor.ones([1, 2, 3]) }, labelDecoder: labelDecoder)
        #expect(throws: FCNError.mismatch("VOC image '\(root)/JPEGImages/abc.jpg' decoded to shape [1, 2, 3], expected [3, H, W]")) { _ = try gray.sample(0) }
    }

    @Test func sampleSourceChecksLabelsAgainstItsClasses() throws {
        let root = makeVOC(ids: ["abc"])
        defer { try? FileManager.default.removeItem(atPath: root) }
        // Labels 0, 4 and 255 (ignore): valid for 5 classes, a clear error for 4.
        let labels: VOCSegmentation.LabelDecoder = { _ in Tensor(shape: [2, 3], scalars: [0, 4, 255, 0, 4, 0]) }
        let voc = try VOCSegmentation(root: root, imageDecoder: imageDecoder, labelDecoder: labels)
        let names = ["background", "ellipse", "star", "cross", "ring"]
        let five = VOCSampleSource(voc, classNames: names)
        #expect(five.classes == 5 && five.classNames == names)
        #expect(try five.sample(0).label.scalars == [0, 4, 255, 0, 4, 0])
        let four = VOCSampleSource(voc, classNames: Array(names.prefix(4)))
        #expect(throws: FCNError.invalidFormat("label '\(root)/SegmentationClass/abc.png' holds class id 4, but the data has 4 classes "
            + "(ids 0..<4, 255 = ignore); for a dataset of your own classes give their names (--class-names)")) { _ = try four.sample(0) }
        // Without names: PASCAL VOC's 21 classes.
        let pascal = VOCSampleSource(voc)
        #expect(pascal.classes == 21 && pascal.classNames == vocClassNames)
    }
}
