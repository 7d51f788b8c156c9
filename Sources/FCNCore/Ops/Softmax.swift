// softmax and logSoftmax over one axis (forward + backward).
//
// Contract: any shape, `axis` may be negative (default 1, the channel axis of NCHW).
// The tensor is viewed as [outer, n, inner] with n the size of `axis`; each (outer, inner)
// position is one distribution of n values at stride `inner`. Kernels work on blocks of
// consecutive inner positions (pixels for axis 1 of NCHW) so the innermost loops run over
// contiguous memory: a running max, then exp(x - max) and the sum, then the scaling.
// Numerically stable (the max is subtracted first), so logits of any magnitude give
// finite outputs; an all -inf row gives NaN as in PyTorch.
// Backward: softmax  gx = y * (g - sum_axis(g * y));
//           logSoftmax gx = g - exp(y) * sum_axis(g).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Inner positions handled together by one task of the softmax kernels.
let softmaxBlock = 512

/// `(outer, n, inner)` of `shape` around axis `a` (already normalised).
func splitAroundAxis(_ shape: [Int], _ a: Int) -> (outer: Int, n: Int, inner: Int) {
    (shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
}

/// Runs `body(base, width, inner)` for every block of consecutive inner positions;
/// `base` is the flat offset of the block's first element at index 0 of the axis.
@inline(__always)
func forEachSoftmaxBlock(outer: Int, n: Int, inner: Int, _ body: (_ base: Int, _ width: Int) -> Void) {
    let blocksPerOuter = (inner + softmaxBlock - 1) / softmaxBlock
    let tasks = outer * blocksPerOuter
    let work = tasks * n * min(inner, softmaxBlock)
    if work < 32_768 {
        for t in 0..<tasks {
            let o = t / blocksPerOuter, i0 = (t % blocksPerOuter) * softmaxBlock
            body(o * n * inner + i0, min(softmaxBlock, inner - i0))
        }
    } else {
        parallelFor(tasks) { t in
            let o = t / blocksPerOuter, i0 = (t % blocksPerOuter) * softmaxBlock
            body(o * n * inner + i0, min(softmaxBlock, inner - i0))
        }
    }
}

/// Softmax kernel on raw pointers: `out = exp(x - max) / sum` (or `x - max - log(sum)`
/// when `log`), over [outer, n, inner].
func softmaxKernel(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>,
                   outer: Int, n: Int, inner: Int, log: Bool) {
    let xs = UncheckedSendable(x), ys = UncheckedSendable(y)
    forEachSoftmaxBlock(outer: outer, n: n, inner: inner) { base, w in
        let x = xs.value + base, y = ys.value + base
        let mx = UnsafeMutablePointer<Float>.allocate(capacity: 2 * w)
        defer { mx.deallocate() }
        let sm = mx + w
        for i in 0..<w { mx[i] = -.infinity; sm[i] = 0 }
        for c in 0..<n {
            let row = x + c * inner
            for i in 0..<w { mx[i] = max(mx[i], row[i]) }
        }
        if log {
            for c in 0..<n {
                let row = x + c * inner
                for i in 0..<w { sm[i] += expf(row[i] - mx[i]) }
            }
            for i in 0..<w { sm[i] = mx[i] + logf(sm[i]) }     // logsumexp
            for c in 0..<n {
                let row = x + c * inner, out = y + c * inner
                for i in 0..<w { out[i] = row[i] - sm[i] }
            }
        } else {
            for c in 0..<n {
                let row = x + c * inner, out = y + c * inner
                for i in 0..<w { let e = expf(row[i] - mx[i]); out[i] = e; sm[i] += e }
            }
            for i in 0..<w { sm[i] = 1 / sm[i] }
            for c in 0..<n {
                let out = y + c * inner
                for i in 0..<w { out[i] *= sm[i] }
            }
        }
    }
}

/// Naive reference softmax (one distribution at a time, Double sums). Kept for tests.
func softmaxReference(_ x: Tensor, axis: Int, log: Bool) -> Tensor {
    let a = x.normalizeAxis(axis, op: "softmaxReference")
    let (outer, n, inner) = splitAroundAxis(x.shape, a)
    let xs = x.scalars
    var out = [Float](repeating: 0, count: xs.count)
    for o in 0..<outer {
        for i in 0..<inner {
            var m = -Float.infinity
            for c in 0..<n { m = max(m, xs[(o * n + c) * inner + i]) }
            var s = 0.0
            for c in 0..<n { s += dExp(Double(xs[(o * n + c) * inner + i] - m)) }
            for c in 0..<n {
                let k = (o * n + c) * inner + i
                let z = Double(xs[k] - m)
                out[k] = log ? Float(z - dLog(s)) : Float(dExp(z) / s)
            }
        }
    }
    return Tensor(shape: x.shape, scalars: out)
}
@inline(__always) private func dExp(_ v: Double) -> Double { exp(v) }
@inline(__always) private func dLog(_ v: Double) -> Double { log(v) }

func softmaxImpl(_ x: Tensor, axis: Int, log: Bool) -> Tensor {
    let op = log ? "logSoftmax" : "softmax"
    fcnCheck(x.rank >= 1, op, "input of shape \(x.shape) is a scalar; softmax needs at least one axis")
    let a = x.normalizeAxis(axis, op: op)
    let (outer, n, inner) = splitAroundAxis(x.shape, a)
    let y = Tensor.make(shape: x.shape) { out in
        if out.count > 0 {
            softmaxKernel(x.storage.pointer, out.baseAddress!, outer: outer, n: n, inner: inner, log: log)
        }
    }
    let saved = y.detached()
    return Tensor.record(op, y, inputs: [x]) { g, _ in
        let gx = Tensor.make(shape: saved.shape) { out in
            guard out.count > 0 else { return }
            let gs = UncheckedSendable(UnsafePointer(g.storage.pointer))
            let ys = UncheckedSendable(UnsafePointer(saved.storage.pointer))
            let os = UncheckedSendable(out.baseAddress!)
            forEachSoftmaxBlock(outer: outer, n: n, inner: inner) { base, w in
                let g = gs.value + base, y = ys.value + base, d = os.value + base
                let acc = UnsafeMutablePointer<Float>.allocate(capacity: w)
                defer { acc.deallocate() }
                for i in 0..<w { acc[i] = 0 }
                if log {
                    for c in 0..<n { let gr = g + c * inner; for i in 0..<w { acc[i] += gr[i] } }
                    for c in 0..<n {
                        let o = c * inner
                        for i in 0..<w { d[o + i] = g[o + i] - expf(y[o + i]) * acc[i] }
                    }
                } else {
                    for c in 0..<n {
                        let o = c * inner
                        for i in 0..<w { acc[i] += g[o + i] * y[o + i] }
                    }
                    for c in 0..<n {
                        let o = c * inner
                        for i in 0..<w { d[o + i] = y[o + i] * (g[o + i] - acc[i]) }
                    }
                }
            }
        }
        return [gx]
    }
}

/// Softmax over `axis`: `exp(x - max) / sum(exp(x - max))`, any shape.
///
/// The default axis 1 is the class axis of NCHW scores `[N, C, H, W]` (one distribution per
/// pixel); use `-1` for `[N, C]` logits or any last-axis distribution. Numerically stable:
/// the max along the axis is subtracted first, so logits of magnitude 1e4 are fine.
public func softmax(_ x: Tensor, axis: Int = 1) -> Tensor { softmaxImpl(x, axis: axis, log: false) }

/// Log-softmax over `axis`: `x - max - log(sum(exp(x - max)))`, any shape.
///
/// Default axis 1 (the class axis of NCHW), as `softmax`. Stable and finite for large
/// logits, unlike `log(softmax(x))` which underflows to -inf.
public func logSoftmax(_ x: Tensor, axis: Int = 1) -> Tensor { softmaxImpl(x, axis: axis, log: true) }
