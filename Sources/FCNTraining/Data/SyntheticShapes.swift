// SyntheticShapes: a deterministic, procedurally drawn segmentation dataset for tests,
// demos and smoke training without downloads.
//
// Image i is a pure function of (seed, i, size): a textured, noisy background (colour
// gradient + two sine gratings + Gaussian noise) with 4 to 7 shapes drawn in random order,
// later shapes occluding earlier ones. Every image draws at least one shape of each class
// (1 disc, 2 rotated rectangle, 3 triangle, 4 thin bar of 1-3 px at any angle), so thin
// parts and fine, anti-axis boundaries are always present. Pixel membership is decided at
// pixel centres; labels are exact (no ignore label is produced).
//
// Layout: image `[3, size, size]` RGB in 0...255 (Float), label `[size, size]` with
// Float class ids 0..<5.

import FCNCore
import FCNIO
import FCNModels

/// A deterministic synthetic segmentation dataset with 5 classes.
public struct SyntheticShapes: Sendable {
    /// Class names by id.
    public static let classNames = ["background", "disc", "rectangle", "triangle", "bar"]
    /// Number of classes (background included).
    public static let classes = 5
    /// Side of the square images.
    public let size: Int
    /// Number of images (indices `0..<count`).
    public let count: Int
    /// Seed of the whole dataset.
    public let seed: UInt64
    /// Side of the scenes whose shape sizes the images use (`size` unless given): a larger
    /// `size` draws a wider view of shapes at the scale of `shapeScale`-pixel images, about
    /// as many per area (to show a network trained on small images a large scene).
    public let shapeScale: Int

    /// A dataset of `count` images of `size` x `size`. Defaults: 128 px (divisible by 32,
    /// as FCN strides need) and 1000 images; shapes at the scale of the image (`shapeScale`
    /// nil), or of `shapeScale`-pixel images, `(size / shapeScale)^2` times as many.
    public init(size: Int = 128, count: Int = 1000, seed: UInt64 = 0, shapeScale: Int? = nil) {
        fcnCheck(size >= 8, "SyntheticShapes", "size must be >= 8, got \(size)")
        fcnCheck(count >= 0, "SyntheticShapes", "count must be >= 0, got \(count)")
        fcnCheck(shapeScale.map { $0 >= 8 && $0 <= size } ?? true, "SyntheticShapes",
                 "shapeScale must lie in 8...size (\(size)), got \(shapeScale ?? 0)")
        self.size = size; self.count = count; self.seed = seed; self.shapeScale = shapeScale ?? size
    }

    /// Image `[3, size, size]` (RGB 0...255) and label `[size, size]` number `index`.
    public subscript(index: Int) -> (image: Tensor, label: Tensor) { sample(index) }

    private struct Shape {
        var cls: Int
        var cx: Float, cy: Float, a: Float, b: Float, cosT: Float, sinT: Float
        var tri: [(Float, Float)]
        var color: (Float, Float, Float)
        var shade: Float        // per-shape brightness gradient along u

        func contains(_ x: Float, _ y: Float) -> Bool {
            let dx = x - cx, dy = y - cy
            switch cls {
            case 1: return dx * dx + dy * dy <= a * a
            case 3:
                func edge(_ p: (Float, Float), _ q: (Float, Float)) -> Float { (q.0 - p.0) * (y - p.1) - (q.1 - p.1) * (x - p.0) }
                let e0 = edge(tri[0], tri[1]), e1 = edge(tri[1], tri[2]), e2 = edge(tri[2], tri[0])
                return (e0 >= 0 && e1 >= 0 && e2 >= 0) || (e0 <= 0 && e1 <= 0 && e2 <= 0)
            default:   // rectangle and bar: rotated box with half-sizes a (along) and b (across)
                let u = dx * cosT + dy * sinT, v = -dx * sinT + dy * cosT
                return abs(u) <= a && abs(v) <= b
            }
        }
    }

    /// Image and label number `index` (any Int >= 0; `count` only bounds iteration).
    public func sample(_ index: Int) -> (image: Tensor, label: Tensor) {
        fcnCheck(index >= 0, "SyntheticShapes", "index must be >= 0, got \(index)")
        var rng = FCNRandom(seed: seed ^ (UInt64(index) &* 0xD1B5_4A32_D192_ED03) ^ 0x5EED_5A9E)
        _ = rng.next()
        let s = Float(size)
        func uni(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * rng.nextUniform() }
        func int(_ n: Int) -> Int { min(Int(rng.nextUniform() * Float(n)), n - 1) }

        // Background: base colour, linear gradient, two gratings.
        let base = (uni(40, 215), uni(40, 215), uni(40, 215))
        let gAngle = uni(0, 2 * .pi), gAmp = uni(0, 40) / s
        let gx = gAmp * Float(_cosD(Double(gAngle))), gy = gAmp * Float(_cosD(Double(gAngle) - .pi / 2))
        var gratings: [(fx: Float, fy: Float, phase: Float, amp: Float)] = []
        for _ in 0..<2 {
            let period = uni(3, 24), ang = uni(0, 2 * .pi)
            gratings.append((2 * .pi / period * Float(_cosD(Double(ang))), 2 * .pi / period * Float(_cosD(Double(ang) - .pi / 2)),
                             uni(0, 2 * .pi), uni(4, 18)))
        }

        // Shapes: one of each class, plus 0-3 extra, in shuffled order; as many such groups
        // as `shapeScale`-pixel scenes fit in the image.
        let k = Float(shapeScale)
        let groups = max(1, Int((s / k * s / k).rounded()))
        var classes: [Int] = []
        for _ in 0..<groups {
            var group = [1, 2, 3, 4]
            for _ in 0..<int(4) { group.append(1 + int(4)) }
            for i in stride(from: group.count - 1, to: 0, by: -1) { group.swapAt(i, int(i + 1)) }
            classes += group
        }
        var shapes: [Shape] = []
        for cls in classes {
            var color = (uni(0, 255), uni(0, 255), uni(0, 255))
            // Keep contrast with the background (colour distance >= 80).
            var tries = 0
            while abs(color.0 - base.0) + abs(color.1 - base.1) + abs(color.2 - base.2) < 80 && tries < 16 {
                color = (uni(0, 255), uni(0, 255), uni(0, 255)); tries += 1
            }
            let theta = uni(0, .pi)
            var sh = Shape(cls: cls, cx: uni(0.1, 0.9) * s, cy: uni(0.1, 0.9) * s, a: 0, b: 0,
                           cosT: Float(_cosD(Double(theta))), sinT: Float(_cosD(Double(theta) - .pi / 2)),
                           tri: [], color: color, shade: uni(-0.6, 0.6))
            switch cls {
            case 1: sh.a = uni(0.06, 0.16) * k
            case 2: sh.a = uni(0.06, 0.2) * k; sh.b = uni(0.04, 0.14) * k
            case 3:
                let r = uni(0.1, 0.22) * k, start = uni(0, 2 * .pi)
                for k in 0..<3 {
                    let ang = Double(start) + Double(k) * 2.0 * .pi / 3 + Double(uni(-0.5, 0.5))
                    sh.tri.append((sh.cx + r * Float(_cosD(ang)), sh.cy + r * Float(_cosD(ang - .pi / 2))))
                }
            default: sh.a = uni(0.15, 0.35) * k; sh.b = uni(0.5, 1.5)
            }
            shapes.append(sh)
        }

        let n = size, hw = n * n
        // The gratings are separable: cos(fx x + fy y + phase) = cos(a) cos(b) - sin(a) sin(b)
        // with a = fx x + phase per column and b = fy y per row, tabulated once.
        var colCos = [Float](repeating: 0, count: 2 * n), colSin = colCos, rowCos = colCos, rowSin = colCos
        for (g, gr) in gratings.enumerated() {
            for k in 0..<n {
                let p = Float(k) + 0.5
                let a = Double(gr.fx * p + gr.phase), b = Double(gr.fy * p)
                colCos[g * n + k] = gr.amp * Float(_cosD(a)); colSin[g * n + k] = gr.amp * Float(_cosD(a - .pi / 2))
                rowCos[g * n + k] = Float(_cosD(b)); rowSin[g * n + k] = Float(_cosD(b - .pi / 2))
            }
        }
        var label = [Float](repeating: 0, count: hw)
        let image = Tensor.make(shape: [3, n, n]) { out in
            for y in 0..<n {
                for x in 0..<n {
                    let px = Float(x) + 0.5, py = Float(y) + 0.5
                    var hit = -1
                    for (k, sh) in shapes.enumerated() where sh.contains(px, py) { hit = k }
                    var rgb: (Float, Float, Float)
                    if hit >= 0 {
                        let sh = shapes[hit]
                        let u = ((px - sh.cx) * sh.cosT + (py - sh.cy) * sh.sinT)
                        let t = sh.shade * u
                        rgb = (sh.color.0 + t, sh.color.1 + t, sh.color.2 + t)
                        label[y * n + x] = Float(sh.cls)
                    } else {
                        var t = gx * (px - s / 2) + gy * (py - s / 2)
                        for g in 0..<gratings.count {
                            t += colCos[g * n + x] * rowCos[g * n + y] - colSin[g * n + x] * rowSin[g * n + y]
                        }
                        rgb = (base.0 + t, base.1 + t * 0.8, base.2 + t * 1.2)
                    }
                    let i = y * n + x
                    out[i] = rgb.0; out[hw + i] = rgb.1; out[2 * hw + i] = rgb.2
                }
            }
            // Pixel noise (std 6), two normals per Box-Muller draw, then clamping to 0...255.
            var i = 0
            while i < 3 * hw {
                let (z0, z1) = rng.nextNormalPair()
                out[i] = min(max(out[i] + 6 * z0, 0), 255)
                if i + 1 < 3 * hw { out[i + 1] = min(max(out[i + 1] + 6 * z1, 0), 255) }
                i += 2
            }
        }
        return (image, Tensor(shape: [n, n], scalars: label))
    }
}
