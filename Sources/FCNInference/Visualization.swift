// Showing label maps: colour overlays on the input image and a legend of the classes
// present with their pixel shares.
//
// Overlay: each pixel of a labelled class becomes `round((1 - alpha) * image + alpha *
// colour(label))` per RGB channel (alpha 0.5 by default, an even mix), colours from the
// palette (PASCAL VOC's by default; labels past the palette's end are drawn black, as in
// `IndexedImage.rgb()`). Pixels of the `background` class (0 by default: VOC's and the
// synthetic set's background) keep the image as it is, so unlabelled regions are not
// darkened; and with `boundaries` (default) the pixels where the label changes from their
// right or lower neighbour are drawn in their class colour at full strength (background
// boundaries in white), so that regions can be told apart where their colours are close.
// Legend: for each class id present, its pixel count and share of the image, sorted by
// class id, with an optional class name.

import FCNCore
import FCNIO
import FCNModels
import Foundation

/// Blends label colours into `image` in place (RGB; gray/alpha images are converted to
/// RGB first). `labels` holds `width * height` class ids. See the file comment.
///
/// - Parameters:
///   - image: the image to colour, modified in place.
///   - labels: `width * height` class ids, row-major.
///   - palette: colour per class id (default `vocPalette()`).
///   - alpha: weight of the label colour, 0...1 (0.5 default: image and labels equally visible).
///   - background: the class left uncoloured (nil colours every class).
///   - boundaries: draw the class boundaries at full strength.
public func blendLabelColors(into image: inout Image, labels: [UInt8], palette: [PaletteColor] = vocPalette(),
                             alpha: Float = 0.5, background: Int? = 0, boundaries: Bool = true) {
    fcnCheck(labels.count == image.width * image.height, "blendLabelColors",
             "labels has \(labels.count) entries, the image is \(image.width)x\(image.height)")
    fcnCheck(alpha >= 0 && alpha <= 1, "blendLabelColors", "alpha must be in 0...1, got \(alpha)")
    if image.channels != 3 { image = image.rgb() }
    var lut = [Float](repeating: 0, count: 256 * 3), full = [UInt8](repeating: 0, count: 256 * 3)
    for (i, c) in palette.prefix(256).enumerated() {
        lut[3 * i] = alpha * Float(c.r); lut[3 * i + 1] = alpha * Float(c.g); lut[3 * i + 2] = alpha * Float(c.b)
        full[3 * i] = c.r; full[3 * i + 1] = c.g; full[3 * i + 2] = c.b
    }
    if let bg = background, (0..<256).contains(bg) { full[3 * bg] = 255; full[3 * bg + 1] = 255; full[3 * bg + 2] = 255 }
    let keep = 1 - alpha, w = image.width, h = image.height, skip = background ?? -1
    image.samples16 = nil
    labels.withUnsafeBufferPointer { lb in
        image.pixels.withUnsafeMutableBufferPointer { px in
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x, v = lb[i], l = Int(v) * 3, p = 3 * i
                    if boundaries && ((x + 1 < w && lb[i + 1] != v) || (y + 1 < h && lb[i + w] != v)) {
                        px[p] = full[l]; px[p + 1] = full[l + 1]; px[p + 2] = full[l + 2]
                        continue
                    }
                    if Int(v) == skip { continue }
                    for c in 0..<3 { px[p + c] = UInt8(min(255, (keep * Float(px[p + c]) + lut[l + c]).rounded())) }
                }
            }
        }
    }
}

/// The input image with label colours blended in (see `blendLabelColors(into:labels:palette:alpha:background:boundaries:)`).
public func overlayImage(_ image: Image, labels: [UInt8], palette: [PaletteColor] = vocPalette(), alpha: Float = 0.5,
                         background: Int? = 0, boundaries: Bool = true) -> Image {
    var out = image
    blendLabelColors(into: &out, labels: labels, palette: palette, alpha: alpha, background: background, boundaries: boundaries)
    return out
}

/// Images placed side by side in one RGB image, left to right, 4 white pixels apart, top
/// aligned (shorter ones padded with white): e.g. photo, labels and overlay.
public func sideBySidePanel(_ images: [Image], gap: Int = 4) -> Image {
    fcnCheck(!images.isEmpty && gap >= 0, "sideBySidePanel", "need at least one image and gap >= 0")
    let rgb = images.map { $0.rgb() }
    let height = rgb.map(\.height).max()!, width = rgb.map(\.width).reduce(0, +) + gap * (rgb.count - 1)
    var out = Image(width: width, height: height, channels: 3, pixels: [UInt8](repeating: 255, count: width * height * 3))
    var x0 = 0
    for img in rgb {
        for y in 0..<img.height {
            let src = y * img.width * 3, dst = (y * width + x0) * 3
            out.pixels.replaceSubrange(dst ..< dst + img.width * 3, with: img.pixels[src ..< src + img.width * 3])
        }
        x0 += img.width + gap
    }
    return out
}

/// One line of a legend: a class present in a label map.
public struct LegendEntry: Sendable, Equatable {
    /// The class id (index into the palette).
    public var classID: Int
    /// The class name when names were given (else nil).
    public var name: String?
    /// Number of pixels with this label.
    public var pixels: Int
    /// `pixels / total`, 0...1.
    public var share: Double
    /// Its palette colour.
    public var color: PaletteColor
}

/// The classes present in `labels` with their pixel counts and shares, by class id.
/// `classNames[i]` names class i when given (missing names stay nil).
public func segmentationLegend(labels: [UInt8], classNames: [String]? = nil,
                               palette: [PaletteColor] = vocPalette()) -> [LegendEntry] {
    var counts = [Int](repeating: 0, count: 256)
    labels.withUnsafeBufferPointer { for v in $0 { counts[Int(v)] += 1 } }
    let total = max(1, labels.count)
    return (0..<256).filter { counts[$0] > 0 }.map { id in
        LegendEntry(classID: id, name: classNames.flatMap { id < $0.count ? $0[id] : nil }, pixels: counts[id],
                    share: Double(counts[id]) / Double(total),
                    color: id < palette.count ? palette[id] : PaletteColor(0, 0, 0))
    }
}

/// A fixed-width text table of a legend:
///
///     class  name        pixels   share  colour
///         0  background   12000  75.00%  (0,0,0)
///         1  disc          4000  25.00%  (128,0,0)
public func formatLegend(_ entries: [LegendEntry]) -> String {
    let nameWidth = max(4, entries.map { ($0.name ?? "-").count }.max() ?? 4)
    let pixelWidth = max(6, entries.map { String($0.pixels).count }.max() ?? 6)
    func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, n - s.count))
        return left ? s + fill : fill + s
    }
    var lines = ["class  " + pad("name", nameWidth, left: true) + "  " + pad("pixels", pixelWidth) + "    share  colour"]
    for e in entries {
        let pct = String(format: "%.2f%%", e.share * 100)
        lines.append(pad(String(e.classID), 5) + "  " + pad(e.name ?? "-", nameWidth, left: true) + "  "
                     + pad(String(e.pixels), pixelWidth) + "  " + pad(pct, 7) + "  " + e.color.description)
    }
    return lines.joined(separator: "\n") + "\n"
}
