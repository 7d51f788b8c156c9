// Overlay colours, legend counts and label PNGs on tiny hand-made label maps.
import Testing
import Foundation
@testable import FCNCore
@testable import FCNIO
@testable import FCNModels
@testable import FCNInference
import FCNTestSupport

@Suite struct VisualizationTests {
    @Test func overlayBlendsHalfAndHalf() {
        // 2x2 RGB image, labels 0 (black), 1 (128,0,0), 2 (0,128,0), 15 (192,128,128).
        let img = Image(width: 2, height: 2, channels: 3, pixels: [100, 0, 50, 255, 255, 255, 10, 20, 30, 0, 0, 0])
        let out = overlayImage(img, labels: [0, 1, 2, 15], background: nil, boundaries: false)
        #expect(out.channels == 3)
        // round(0.5 * p + 0.5 * c): (100,0,50)+(0,0,0) -> (50,0,25); (255,255,255)+(128,0,0) -> (192,128,128) (191.5 rounds up);
        // (10,20,30)+(0,128,0) -> (5,74,15); (0,0,0)+(192,128,128) -> (96,64,64).
        #expect(out.pixels == [50, 0, 25, 192, 128, 128, 5, 74, 15, 96, 64, 64])
        // alpha 0 keeps the image, alpha 1 gives the palette colours.
        #expect(overlayImage(img, labels: [0, 1, 2, 15], alpha: 0, background: nil, boundaries: false).pixels == img.pixels)
        #expect(overlayImage(img, labels: [0, 1, 2, 15], alpha: 1, background: nil, boundaries: false).pixels
                == [0, 0, 0, 128, 0, 0, 0, 128, 0, 192, 128, 128])
    }

    @Test func backgroundKeepsThePhotoAndBoundariesAreDrawn() {
        // 4x3 image, value 100 everywhere; a 2x2 block of class 1 in the middle columns of rows 1-2.
        let img = Image(width: 4, height: 3, channels: 3, pixels: [UInt8](repeating: 100, count: 36))
        let labels: [UInt8] = [0, 0, 0, 0,
                               0, 1, 1, 0,
                               0, 1, 1, 0]
        let out = overlayImage(img, labels: labels, boundaries: false)
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(out.pixels[3 * (y * 4 + x) ..< 3 * (y * 4 + x) + 3]) }
        #expect(px(0, 0) == [100, 100, 100] && px(3, 2) == [100, 100, 100], "background is the photo")
        #expect(px(1, 1) == [114, 50, 50], "class 1 blended: round(50 + 64) = 114, 50, 50")
        let b = overlayImage(img, labels: labels)
        func bx(_ x: Int, _ y: Int) -> [UInt8] { Array(b.pixels[3 * (y * 4 + x) ..< 3 * (y * 4 + x) + 3]) }
        // Boundaries: a pixel whose right or lower neighbour has another label, in its class colour
        // (white for the background).
        #expect(bx(0, 1) == [255, 255, 255] && bx(2, 1) == [128, 0, 0] && bx(1, 0) == [255, 255, 255])
        #expect(bx(1, 1) == [114, 50, 50] && bx(3, 0) == [100, 100, 100], "inside a region: blended or the photo")
    }

    @Test func grayImagesBecomeRGB() {
        let gray = Image(width: 2, height: 1, channels: 1, pixels: [200, 10])
        let out = overlayImage(gray, labels: [1, 0], background: nil, boundaries: false)
        #expect(out.channels == 3 && out.pixels == [164, 100, 100, 5, 5, 5])
    }

    @Test func legendCountsAndShares() {
        let labels: [UInt8] = [0, 0, 0, 1, 3, 3, 0, 0]
        let legend = segmentationLegend(labels: labels, classNames: ["bg", "disc"])
        #expect(legend.map(\.classID) == [0, 1, 3])
        #expect(legend.map(\.pixels) == [5, 1, 2])
        #expect(legend.map(\.share) == [0.625, 0.125, 0.25])
        #expect(legend.map(\.name) == ["bg", "disc", nil])
        #expect(legend[1].color == PaletteColor(128, 0, 0))
        let text = formatLegend(legend)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[1].contains("bg") && lines[1].contains("62.50%") && lines[1].hasSuffix("(0,0,0)"))
        #expect(lines[3].contains("-") && lines[3].contains("25.00%") && lines[3].contains("(128,128,0)"))
    }

    @Test func labelPNGRoundTripsThroughThePalette() throws {
        let r = SegmentationResult(width: 3, height: 2, numClasses: 21, labels: [0, 1, 2, 20, 1, 0], scores: nil, tiles: 1)
        let png = PNG.encode(r.labelImage())
        let back = try PNG.decodeIndexed(png)
        #expect(back.indices == r.labels)
        #expect(back.palette[1] == PaletteColor(128, 0, 0) && back.palette[20] == PaletteColor(0, 64, 128))
        #expect(r.labelTensor.scalars == [0, 1, 2, 20, 1, 0])
    }
}
