// A small line plot rasterised into an RGB `Image` (write it with `PNG.write`).
//
// Layout: white background, a plot box with a left axis (series with `rightAxis` false),
// an optional right axis, and an x axis; 5 "nice" ticks per axis (steps 1, 2 or 5 times a
// power of ten) labelled with a built-in 5x7 bitmap font (digits, '.', '-', a few upper-
// case letters; other characters are drawn as blanks); a legend line at the top. Lines are
// drawn with Bresenham's algorithm, 1 px (or 2 px with `thick`), no anti-aliasing;
// points outside the ranges are clipped to the box. Vertical dashed markers (e.g. stage
// changes) can be added. Nothing else: no smoothing is done here, callers plot what they
// mean to show.

import FCN
import Foundation

/// One curve of a `LinePlot`.
public struct PlotSeries: Sendable {
    /// Legend text (upper-case letters, digits, spaces).
    public var name: String
    /// Data points in data coordinates, drawn in order.
    public var points: [(x: Double, y: Double)]
    /// Line colour as 8-bit RGB.
    public var color: (r: UInt8, g: UInt8, b: UInt8)
    /// Plot against the right axis.
    public var rightAxis: Bool
    /// Draw a small square at each point.
    public var markers: Bool
    /// 2 px wide line.
    public var thick: Bool

    /// A series; by default on the left axis, thin and without markers.
    public init(name: String, points: [(x: Double, y: Double)], color: (r: UInt8, g: UInt8, b: UInt8),
                rightAxis: Bool = false, markers: Bool = false, thick: Bool = false) {
        self.name = name; self.points = points; self.color = color
        self.rightAxis = rightAxis; self.markers = markers; self.thick = thick
    }
}

/// A line plot with up to two y axes.
public struct LinePlot: Sendable {
    /// Image width in pixels.
    public var width: Int
    /// Image height in pixels.
    public var height: Int
    /// The curves, drawn in order (later ones on top).
    public var series: [PlotSeries] = []
    /// Axis ranges; nil = from the data (nice-rounded, starting at 0 when all values are >= 0).
    public var xRange: ClosedRange<Double>?
    /// Left y axis range (nil: from the data).
    public var leftRange: ClosedRange<Double>?
    /// Right y axis range (nil: from the data of the right-axis series).
    public var rightRange: ClosedRange<Double>?
    /// Axis titles (drawn with the bitmap font).
    public var xLabel = "", leftLabel = "", rightLabel = ""
    /// x positions of vertical dashed markers.
    public var verticalMarkers: [Double] = []

    /// Defaults 640 x 400: readable, and a PNG of a few kilobytes.
    public init(width: Int = 640, height: Int = 400) {
        fcnCheck(width >= 120 && height >= 80, "LinePlot", "size must be at least 120 x 80, got \(width) x \(height)")
        self.width = width; self.height = height
    }

    // Plot box.
    private var left: Int { 52 }
    private var right: Int { width - (series.contains(where: \.rightAxis) ? 52 : 16) }
    private var top: Int { 26 }
    private var bottom: Int { height - 34 }

    /// Rasterises the plot.
    public func render() -> Image {
        var c = Canvas(width: width, height: height)
        let lefts = series.filter { !$0.rightAxis }.flatMap(\.points)
        let rights = series.filter(\.rightAxis).flatMap(\.points)
        let all = series.flatMap(\.points)
        let xr = xRange ?? LinePlot.niceRange(all.map(\.x))
        let lr = leftRange ?? LinePlot.niceRange(lefts.map(\.y))
        let rr = rightRange ?? LinePlot.niceRange(rights.map(\.y))
        let (x0, x1, y0, y1) = (left, right, top, bottom)
        func px(_ x: Double) -> Double { Double(x0) + (x - xr.lowerBound) / max(xr.upperBound - xr.lowerBound, 1e-300) * Double(x1 - x0) }
        func py(_ y: Double, _ r: ClosedRange<Double>) -> Double {
            Double(y1) - (y - r.lowerBound) / max(r.upperBound - r.lowerBound, 1e-300) * Double(y1 - y0)
        }
        let black: (UInt8, UInt8, UInt8) = (0, 0, 0), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)

        // Grid and ticks.
        for t in LinePlot.ticks(xr) {
            let x = Int(px(t).rounded())
            c.line(x, y0, x, y1, grid)
            c.line(x, y1, x, y1 + 4, black)
            let s = LinePlot.label(t, step: LinePlot.tickStep(xr))
            c.text(s, x: x - Canvas.textWidth(s) / 2, y: y1 + 7, black)
        }
        let hasLeft = series.contains { !$0.rightAxis }, hasRight = series.contains(where: \.rightAxis)
        if hasLeft {
            for t in LinePlot.ticks(lr) {
                let y = Int(py(t, lr).rounded())
                c.line(x0, y, x1, y, grid)
                c.line(x0 - 4, y, x0, y, black)
                let s = LinePlot.label(t, step: LinePlot.tickStep(lr))
                c.text(s, x: x0 - 6 - Canvas.textWidth(s), y: y - 3, black)
            }
        }
        if hasRight {
            for t in LinePlot.ticks(rr) {
                let y = Int(py(t, rr).rounded())
                c.line(x1, y, x1 + 4, y, black)
                c.text(LinePlot.label(t, step: LinePlot.tickStep(rr)), x: x1 + 7, y: y - 3, black)
            }
        }
        for m in verticalMarkers where xr.contains(m) {
            let x = Int(px(m).rounded())
            var y = y0
            while y < y1 { c.line(x, y, x, min(y + 3, y1), (150, 150, 150)); y += 7 }
        }
        // Box.
        c.line(x0, y0, x0, y1, black); c.line(x0, y1, x1, y1, black)
        c.line(x1, y0, x1, y1, hasRight ? black : grid); c.line(x0, y0, x1, y0, grid)
        // Axis titles.
        c.text(xLabel, x: (x0 + x1) / 2 - Canvas.textWidth(xLabel) / 2, y: height - 12, black)
        if hasLeft { c.text(leftLabel, x: 4, y: 8, black) }
        if hasRight { c.text(rightLabel, x: width - 4 - Canvas.textWidth(rightLabel), y: 8, black) }

        // Curves, clipped to the box.
        c.clip = (x0, y0, x1, y1)
        for s in series {
            let r = s.rightAxis ? rr : lr
            var prev: (Int, Int)?
            for p in s.points where p.x.isFinite && p.y.isFinite {
                let q = (Int(px(p.x).rounded()), Int(py(p.y, r).rounded()))
                if let a = prev { c.line(a.0, a.1, q.0, q.1, s.color, thick: s.thick) } else { c.dot(q.0, q.1, s.color) }
                if s.markers { c.fill(q.0 - 2, q.1 - 2, q.0 + 2, q.1 + 2, s.color) }
                prev = q
            }
        }
        c.clip = nil

        // Legend.
        var lx = x0 + 8
        for s in series where !s.name.isEmpty {
            c.fill(lx, 11, lx + 14, 12, s.color)
            c.text(s.name, x: lx + 18, y: 8, black)
            lx += 18 + Canvas.textWidth(s.name) + 14
        }
        return c.image
    }

    /// A range covering `values` with nice bounds (0 as lower bound when all are >= 0).
    public static func niceRange(_ values: [Double]) -> ClosedRange<Double> {
        let v = values.filter(\.isFinite)
        guard var lo = v.min(), var hi = v.max() else { return 0...1 }
        if lo >= 0 { lo = 0 }
        if hi <= lo { hi = lo + 1 }
        let step = niceStep((hi - lo) / 5)
        return (lo / step).rounded(.down) * step ... (hi / step).rounded(.up) * step
    }

    /// 1, 2 or 5 times a power of ten, at least `raw`.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0 && raw.isFinite else { return 1 }
        var p = 1.0
        while p > raw { p /= 10 }
        while p * 10 <= raw { p *= 10 }
        for m in [1.0, 2, 5, 10] where p * m >= raw { return p * m }
        return p * 10
    }

    static func tickStep(_ r: ClosedRange<Double>) -> Double { niceStep((r.upperBound - r.lowerBound) / 5) }

    /// Multiples of the tick step inside `r`.
    static func ticks(_ r: ClosedRange<Double>) -> [Double] {
        let s = tickStep(r)
        var out: [Double] = []
        var k = (r.lowerBound / s).rounded(.up)
        while k * s <= r.upperBound + s * 1e-9 && out.count < 50 { out.append(k * s); k += 1 }
        return out
    }

    /// A tick label with as many decimals as the step needs ("0.25", "1000", "1.5").
    static func label(_ v: Double, step: Double) -> String {
        var decimals = 0
        while decimals < 6 {
            let m = step * Double(pow10(decimals))
            if abs(m - m.rounded()) <= 1e-6 * m { break }
            decimals += 1
        }
        let scaled = (v * Double(pow10(decimals))).rounded()
        let neg = scaled < 0
        let digits = String(Int(abs(scaled)))
        if decimals == 0 { return (neg ? "-" : "") + digits }
        let padded = String(repeating: "0", count: max(0, decimals + 1 - digits.count)) + digits
        let cut = padded.index(padded.endIndex, offsetBy: -decimals)
        return (neg ? "-" : "") + padded[..<cut] + "." + padded[cut...]
    }

    private static func pow10(_ n: Int) -> Int { (0..<n).reduce(1) { a, _ in a * 10 } }
}

/// The plot of a training history: batch loss (light) and its running mean over 1% of
/// the steps (dark) on the left axis, validation mean IU (red, markers) on the right axis
/// from 0 to 1, dashed lines where a stage starts.
public enum TrainingPlot {
    /// The plot's file name in a run's folder.
    public static let fileName = "curves.png"
    /// The CSV of the curves (`TrainingHistory.csv()`) in a run's folder.
    public static let csvFileName = "curves.csv"

    /// Writes the curves of `history` to `folder`: `curves.csv` and the `curves.png` plot,
    /// atomically. Returns both paths.
    @discardableResult
    public static func writeCurves(_ history: TrainingHistory, to folder: String) throws -> [String] {
        let csv = folder + "/" + csvFileName
        try writeFileAtomically(Data(history.csv().utf8), to: csv)
        return [csv, try write(history, to: folder)]
    }

    /// Writes `render(history)` to `<folder>/curves.png` (atomically). Returns the path.
    @discardableResult
    public static func write(_ history: TrainingHistory, to folder: String) throws -> String {
        let path = folder + "/" + fileName
        try PNG.write(render(history), to: path)
        return path
    }

    /// Renders `history` as a `width` x `height` RGB image (default 640 x 400, readable on
    /// screen and small as PNG).
    public static func render(_ history: TrainingHistory, width: Int = 640, height: Int = 400) -> Image {
        var plot = LinePlot(width: width, height: height)
        let steps = history.records.filter { !$0.loss.isNaN }
        let raw = steps.map { (x: Double($0.step), y: Double($0.loss)) }
        let w = max(1, raw.count / 100)
        var smooth: [(x: Double, y: Double)] = []
        var acc = 0.0
        for (i, p) in raw.enumerated() {
            acc += p.y
            if i >= w { acc -= raw[i - w].y }
            if i >= w - 1 { smooth.append((p.x, acc / Double(w))) }
        }
        let ius = history.validations.map { (x: Double($0.step), y: $0.validation!.meanIU) }
        plot.series = [
            PlotSeries(name: "", points: raw, color: (170, 200, 240)),
            PlotSeries(name: "LOSS", points: smooth, color: (20, 70, 190), thick: true),
            PlotSeries(name: "MEAN IU", points: ius, color: (210, 30, 30), rightAxis: true, markers: true, thick: true),
        ]
        let maxStep = Double(max(1, history.records.map(\.step).max() ?? 1))
        plot.xRange = 0...maxStep
        plot.rightRange = 0...1
        plot.xLabel = "STEP"; plot.leftLabel = "LOSS"; plot.rightLabel = "MEAN IU"
        var marks: [Double] = []
        for (a, b) in zip(history.records, history.records.dropFirst()) where b.stage != a.stage { marks.append(Double(a.step)) }
        plot.verticalMarkers = marks
        return plot.render()
    }
}

/// An RGB raster with clipped drawing primitives and the 5x7 font.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]
    var clip: (Int, Int, Int, Int)?

    init(width: Int, height: Int) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    var image: Image { Image(width: width, height: height, channels: 3, pixels: pixels) }

    mutating func dot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0 && y >= 0 && x < width && y < height else { return }
        if let (a, b, cc, d) = clip, x < a || x > cc || y < b || y > d { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func fill(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8)) {
        for y in y0...y1 { for x in x0...x1 { dot(x, y, c) } }
    }

    /// Bresenham from (x0, y0) to (x1, y1), inclusive.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thick: Bool = false) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            dot(x, y, c)
            if thick { dot(x + 1, y, c); dot(x, y + 1, c) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    static func textWidth(_ s: String) -> Int { s.isEmpty ? 0 : s.count * 6 - 1 }

    /// Draws `s` with its top-left corner at (x, y), 6 px per character.
    mutating func text(_ s: String, x: Int, y: Int, _ c: (UInt8, UInt8, UInt8)) {
        for (k, ch) in s.uppercased().enumerated() {
            guard let rows = Canvas.font[ch] else { continue }
            for (r, bits) in rows.enumerated() {
                for col in 0..<5 where bits & (0b10000 >> col) != 0 { dot(x + k * 6 + col, y + r, c) }
            }
        }
    }

    /// 5x7 glyphs, one row per byte, bit 4 = leftmost column.
    static let font: [Character: [UInt8]] = [
        "0": [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110],
        "1": [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "2": [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111],
        "3": [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110],
        "4": [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010],
        "5": [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110],
        "6": [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110],
        "7": [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000],
        "8": [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110],
        "9": [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100],
        ".": [0, 0, 0, 0, 0, 0b01100, 0b01100],
        "-": [0, 0, 0, 0b11111, 0, 0, 0],
        "A": [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001],
        "C": [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110],
        "E": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111],
        "F": [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000],
        "I": [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110],
        "K": [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001],
        "L": [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111],
        "M": [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001],
        "N": [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001],
        "O": [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "P": [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000],
        "R": [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001],
        "S": [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110],
        "T": [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100],
        "U": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110],
        "V": [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100],
    ]
}
