// Lovász-softmax loss (Berman, Rannen Triki & Blaschko, CVPR 2018): a convex surrogate of
// the Jaccard loss 1 - IU, so that training optimises the segmentation metric itself.
//
// Contract: logits [N, C, H, W] (or any [N, C, ...]), labels [N, H, W] (or [N, ...]) holding
// class ids as Float or ignoreIndex, checked as in softmaxCrossEntropy. p = softmax over C.
// For a group G of kept pixels (the whole batch; one image with perImage) and a class c:
//   fg_i = [y_i == c], e_i = |fg_i - p_ic|, pi = the order of e descending (stable),
//   g = sum fg,  F_k = fg of the first k pixels of pi,
//   J_k = 1 - (g - F_k) / (g + k - F_k)   (the Jaccard loss of predicting the first k),
//   loss_c(G) = sum_k e_pi(k) (J_k - J_{k-1}),  J_0 = 0.
// loss(G) = mean of loss_c over the classes present in G (.present) or all C (.all; an
// absent class then gives max_i p_ic). Batch mode: loss(batch); perImage: the mean of
// loss(image) over the N images. A group with no kept pixel or no class counted is 0.
// This is the reference implementation's lovasz_softmax(softmax(logits), labels, classes,
// per_image, ignore), with the softmax fused and ties kept in pixel order.
// Backward: d loss / d p_ic = (J_k - J_{k-1}) * (fg_i ? -1 : 1) / counted classes
// (/ N per image), k the rank of pixel i; then the softmax Jacobian:
//   d loss / d logit_j = p_j (g_j - sum_c g_c p_c).
// Cost: one stable LSD radix sort (3 passes of 11 bits over (error bits, pixel) pairs) per
// class and group, O(pixels) each, classes spread over the compute threads.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Which classes the Lovász-softmax loss averages over.
public enum LovaszClasses: String, Sendable, Equatable, CaseIterable {
    /// Only the classes with at least one labelled pixel in the group (the reference's
    /// default: an absent class has no IU to improve).
    case present
    /// Every class; an absent class contributes its largest probability.
    case all
}

/// Lovász-softmax loss between class scores and integer labels: a differentiable
/// surrogate of `1 - IU`, averaged over classes.
///
/// Training with `softmaxCrossEntropy + lovaszSoftmax` optimises the mean IU more directly
/// than cross-entropy alone, notably for thin or rare classes whose few pixels weigh little
/// in a pixel-averaged loss. With hard predictions (probabilities 0 or 1) the loss of a
/// class is exactly `1 - IU` of that class over the group.
///
/// - Parameters:
///   - logits: `[N, C, H, W]` unnormalised scores (or any `[N, C, ...]`).
///   - labels: `[N, H, W]` (or `[N, ...]`): class ids in `[0, C)` stored as Float, or
///     `ignoreIndex`.
///   - ignoreIndex: label of pixels that take no part (255: PASCAL VOC's boundary label).
///   - classes: `.present` (default, as the reference) or `.all`.
///   - perImage: average the loss of each image instead of one loss over the batch's
///     pixels. Default false: the batch loss is closer to a dataset-level IU.
/// - Returns: a scalar (shape `[]`); 0 with zero gradient when no pixel is kept.
public func lovaszSoftmax(logits: Tensor, labels: Tensor, ignoreIndex: Int = 255,
                          classes: LovaszClasses = .present, perImage: Bool = false) -> Tensor {
    let op = "lovaszSoftmax"
    let (N, C, S) = _checkLossInputs(op, logits, labels, ignoreIndex: ignoreIndex)
    fcnCheck(N * S < 1 << 31, op, "logits of shape \(logits.shape) have \(N * S) pixels; at most 2^31 - 1 are supported")
    guard N * S > 0 else { return Tensor.record(op, Tensor(0), inputs: [logits]) { _, _ in [Tensor.zeros(logits.shape)] } }

    // Softmax probabilities, laid out as the logits.
    let prob = softmax(logits.detached(), axis: 1)
    // The groups: pixel indices n * S + s of the kept pixels, in order.
    let ignore = Float(ignoreIndex)
    var label = [Int32](repeating: -1, count: N * S)
    labels.withUnsafeBufferPointer { lb in for i in 0..<lb.count where lb[i] != ignore { label[i] = Int32(lb[i]) } }
    let groups: [[Int32]] = perImage
        ? (0..<N).map { n in (n * S..<(n + 1) * S).filter { label[$0] >= 0 }.map { Int32($0) } }
        : [(0..<N * S).filter { label[$0] >= 0 }.map { Int32($0) }]

    // Per group: each kept pixel's label, the offset of its class-0 score in the [N, C, S]
    // layout, and the pixel count of every class.
    let groupLabels: [[Int32]] = groups.map { $0.map { label[Int($0)] } }
    let offsets: [[Int]] = groups.map { $0.map { i in let i = Int(i); return i / S * C * S + i % S } }
    let classCounts: [[Int]] = groupLabels.map { ls in
        var n = [Int](repeating: 0, count: C)
        for y in ls { n[Int(y)] += 1 }
        return n
    }
    // One task per (group, class): the class's loss and d loss_c / d p for the group's pixels.
    let G = groups.count
    var classLoss = [Double](repeating: 0, count: G * C)
    var counted = [Bool](repeating: false, count: G * C)
    var dProb = [Float](repeating: 0, count: N * C * S)      // d loss / d p, layout of the logits
    let pp = UncheckedSendable(UnsafePointer(prob.storage.pointer))
    classLoss.withUnsafeMutableBufferPointer { lossBuf in
        counted.withUnsafeMutableBufferPointer { countedBuf in
            dProb.withUnsafeMutableBufferPointer { dBuf in
                let lp = UncheckedSendable(lossBuf.baseAddress!), cp = UncheckedSendable(countedBuf.baseAddress!)
                let dp = UncheckedSendable(dBuf.baseAddress!)
                parallelFor(G * C) { task in
                    let gi = task / C, c = task % C
                    let K = groups[gi].count, g = classCounts[gi][c]
                    guard K > 0, g > 0 || classes == .all else { return }
                    cp.value[task] = true
                    let offset = offsets[gi], cls = groupLabels[gi]
                    // Pairs ~bits(error) << 32 | k << 1 | fg, sorted by error descending.
                    let pairs = UnsafeMutablePointer<UInt64>.allocate(capacity: 2 * K)
                    defer { pairs.deallocate() }
                    for k in 0..<K {
                        let p = pp.value[offset[k] + c * S]
                        let fg = cls[k] == Int32(c)
                        let e = fg ? 1 - p : p
                        pairs[k] = UInt64(~e.bitPattern) << 32 | UInt64(k) << 1 | (fg ? 1 : 0)
                    }
                    let sorted = _radixSortByHighWord(pairs, scratch: pairs + K, count: K)
                    // Walk the order: Jaccard steps J_k - J_{k-1} are the weights of the errors.
                    var grad = [Float](repeating: 0, count: K)
                    var fgSeen = 0.0, previous = 0.0, loss = 0.0
                    let total = Double(g)
                    for k in 0..<K {
                        let v = sorted[k]
                        let fg = v & 1 == 1, j = Int(UInt32(truncatingIfNeeded: v) >> 1)
                        if fg { fgSeen += 1 }
                        let jac = 1 - (total - fgSeen) / (total + Double(k + 1) - fgSeen)
                        let step = jac - previous
                        previous = jac
                        loss += Double(Float(bitPattern: ~UInt32(truncatingIfNeeded: v >> 32))) * step
                        grad[j] = Float(fg ? -step : step)
                    }
                    for k in 0..<K { dp.value[offset[k] + c * S] = grad[k] }
                    lp.value[task] = loss
                }
            }
        }
    }

    // Class means per group, then the mean over groups; scale of each d loss_c / d p.
    var total = 0.0
    var scale = [Float](repeating: 0, count: G)    // 1 / (counted classes * G)
    for gi in 0..<G {
        let m = (0..<C).filter { counted[gi * C + $0] }.count
        guard m > 0 else { continue }
        total += (0..<C).reduce(0.0) { $0 + classLoss[gi * C + $1] } / Double(m)
        scale[gi] = 1 / Float(m * G)
    }
    let out = Tensor(Float(total / Double(G)))
    let groupOf: (Int) -> Int = perImage ? { $0 } : { _ in 0 }

    let dSaved = dProb
    return Tensor.record(op, out, inputs: [logits]) { up, _ in
        let u = up.item
        let gx = Tensor.make(shape: prob.shape) { dst in
            let outp = UncheckedSendable(dst.baseAddress!), pp = UncheckedSendable(UnsafePointer(prob.storage.pointer))
            dSaved.withUnsafeBufferPointer { db in
                let d = UncheckedSendable(db.baseAddress!)
                parallelChunks(N * S, minChunk: 4096) { range in
                    for i in range {
                        let n = i / S, s = i % S, base = n * C * S + s
                        let k = u * scale[groupOf(n)]
                        var dot: Float = 0
                        for c in 0..<C { dot += d.value[base + c * S] * pp.value[base + c * S] }
                        for c in 0..<C {
                            outp.value[base + c * S] = k * pp.value[base + c * S] * (d.value[base + c * S] - dot)
                        }
                    }
                }
            }
        }
        return [gx]
    }
}

/// Sorts `count` 64-bit values by their high 32 bits, ascending and stable (ties keep
/// their input order), with an LSD radix sort (3 passes of 11 bits) that reads and writes
/// contiguous memory. Returns the buffer that holds the result: `values` or `scratch`.
/// Lovasz packs `~bits(error)` in the high word (errors >= 0: ascending ~bits is
/// descending error) and the pixel in the low word.
func _radixSortByHighWord(_ values: UnsafeMutablePointer<UInt64>, scratch: UnsafeMutablePointer<UInt64>,
                          count n: Int) -> UnsafeMutablePointer<UInt64> {
    var src = values, dst = scratch
    var count = [Int](repeating: 0, count: 2049)
    for pass in 0..<3 {
        let shift = UInt64(32 + 11 * pass)
        for c in 0..<2049 { count[c] = 0 }
        for i in 0..<n { count[Int((src[i] >> shift) & 2047) + 1] += 1 }
        for c in 0..<2048 { count[c + 1] += count[c] }
        for i in 0..<n {
            let v = src[i], c = Int((v >> shift) & 2047)
            dst[count[c]] = v
            count[c] += 1
        }
        swap(&src, &dst)
    }
    return src
}
