// PASCAL VOC segmentation reader.
//
// Layout under `root` (e.g. VOCdevkit/VOC2012):
//   ImageSets/Segmentation/<split>.txt   one image id per line
//   JPEGImages/<id>.jpg                  RGB photo
//   SegmentationClass/<id>.png           8-bit palette PNG: class id per pixel, 255 = boundary
// The file formats are decoded by closures given by the caller (the PNG/JPEG codecs live
// in IO/), so this reader only knows the folder layout: `imageDecoder` must return
// `[3, H, W]` RGB 0...255 and `labelDecoder` `[H, W]` class ids (palette indices, not
// colours).

import FCNCore
import FCNIO
import FCNModels

/// A PASCAL VOC segmentation split: paired image and label paths, decoded on access.
public struct VOCSegmentation: Sendable {
    /// Decodes an image file into `[3, H, W]` RGB 0...255.
    public typealias ImageDecoder = @Sendable (String) throws -> Tensor
    /// Decodes a label PNG into `[H, W]` class ids.
    public typealias LabelDecoder = @Sendable (String) throws -> Tensor

    /// The dataset root (the folder holding JPEGImages, SegmentationClass, ImageSets).
    public let root: String
    /// The split name ("train", "val", "trainval", or any list in ImageSets/Segmentation).
    public let split: String
    /// Image ids in list order.
    public let ids: [String]
    private let imageDecoder: ImageDecoder
    private let labelDecoder: LabelDecoder

    /// Reads `ImageSets/Segmentation/<split>.txt` and checks that every listed image and
    /// label file exists. Throws `FCNError.io` for a missing or unreadable list or missing
    /// files (naming up to five of them and the total), `FCNError.invalidFormat` for an
    /// empty list.
    public init(root: String, split: String = "train", imageDecoder: @escaping ImageDecoder, labelDecoder: @escaping LabelDecoder) throws {
        self.root = root; self.split = split
        self.imageDecoder = imageDecoder; self.labelDecoder = labelDecoder
        let listPath = root + "/ImageSets/Segmentation/" + split + ".txt"
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw FCNError.io("VOC root '\(root)' is not a directory")
        }
        guard let text = try? String(contentsOfFile: listPath, encoding: .utf8) else {
            throw FCNError.io("VOC split list '\(listPath)' is missing or unreadable (expected one image id per line)")
        }
        let ids = text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .map { String($0.split(separator: " ").first!) }
        guard !ids.isEmpty else { throw FCNError.invalidFormat("VOC split list '\(listPath)' lists no images") }
        var missing: [String] = []
        for id in ids {
            for p in [root + "/JPEGImages/" + id + ".jpg", root + "/SegmentationClass/" + id + ".png"]
                where !FileManager.default.fileExists(atPath: p) { missing.append(p) }
        }
        guard missing.isEmpty else {
            throw FCNError.io("VOC split '\(split)': \(missing.count) listed file(s) missing, e.g. \(missing.prefix(5).map { "'\($0)'" }.joined(separator: ", "))")
        }
        self.ids = ids
    }

    /// Number of images in the split.
    public var count: Int { ids.count }

    /// Path of the image of `id`.
    public func imagePath(_ id: String) -> String { root + "/JPEGImages/" + id + ".jpg" }
    /// Path of the label of `id`.
    public func labelPath(_ id: String) -> String { root + "/SegmentationClass/" + id + ".png" }

    /// Decodes sample `index`: image `[3, H, W]` and label `[H, W]`. Throws what the
    /// decoders throw, and `FCNError.mismatch` if the shapes are not as documented or the
    /// image and label sizes differ.
    public func sample(_ index: Int) throws -> (image: Tensor, label: Tensor) {
        fcnCheck(index >= 0 && index < ids.count, "VOCSegmentation.sample", "index \(index) is out of range 0..<\(ids.count)")
        let id = ids[index]
        let image = try imageDecoder(imagePath(id))
        let label = try labelDecoder(labelPath(id))
        guard image.rank == 3 && image.shape[0] == 3 else {
            throw FCNError.mismatch("VOC image '\(imagePath(id))' decoded to shape \(image.shape), expected [3, H, W]")
        }
        guard label.rank == 2 else {
            throw FCNError.mismatch("VOC label '\(labelPath(id))' decoded to shape \(label.shape), expected [H, W]")
        }
        guard Array(image.shape[1...]) == label.shape else {
            throw FCNError.mismatch("VOC sample '\(id)': image is \(image.shape[1])x\(image.shape[2]) but label is \(label.shape[0])x\(label.shape[1])")
        }
        return (image, label)
    }
}

import Foundation
