// GEMM rows of fcn-bench: square SGEMMs and the im2col GEMMs of VGG16-FCN at 500 x 500.
import FCNTools
import FCN

/// A GEMM problem C[M, N] = A[M, K] * B[K, N] (row-major, no transposes).
struct GEMMProblem {
    var name: String
    var m: Int, n: Int, k: Int
    var flops: Double { 2 * Double(m) * Double(n) * Double(k) }
}

/// The im2col GEMM shapes of VGG16-FCN (FCN-32s trunk) for a `size` x `size` input.
func fcnLayerGEMMs(size: Int) -> [GEMMProblem] {
    var rows: [GEMMProblem] = []
    var h = size, cin = 3, seen = Set<String>()
    func conv(_ name: String, _ cout: Int, kernel: Int, pad: Int) {
        h = h + 2 * pad - kernel + 1
        let p = GEMMProblem(name: "gemm \(name) \(size)", m: cout, n: h * h, k: cin * kernel * kernel)
        let key = "\(p.m)x\(p.n)x\(p.k)"
        if !seen.contains(key) { rows.append(p); seen.insert(key) } // conv3_3 == conv3_2, ...
        cin = cout
    }
    func pool() { h = (h + 1) / 2 } // 2x2 stride 2, ceil mode
    conv("conv1_1", 64, kernel: 3, pad: 100); conv("conv1_2", 64, kernel: 3, pad: 1); pool()
    conv("conv2_1", 128, kernel: 3, pad: 1); conv("conv2_2", 128, kernel: 3, pad: 1); pool()
    for i in 1...3 { conv("conv3_\(i)", 256, kernel: 3, pad: 1) }; pool()
    for i in 1...3 { conv("conv4_\(i)", 512, kernel: 3, pad: 1) }; pool()
    for i in 1...3 { conv("conv5_\(i)", 512, kernel: 3, pad: 1) }; pool()
    conv("fc6", 4096, kernel: 7, pad: 0)
    conv("fc7", 4096, kernel: 1, pad: 0)
    conv("score_fr", 21, kernel: 1, pad: 0)
    return rows
}

/// Deterministic values in [-1, 1) (fast LCG; contents do not affect timing).
func fillRandom(_ p: UnsafeMutablePointer<Float>, _ count: Int, seed: UInt64) {
    var s = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
    for i in 0..<count {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        p[i] = Float(Int32(truncatingIfNeeded: s >> 32)) * (1.0 / 2147483648.0)
    }
}

func runGEMM(_ bench: Bench, _ p: GEMMProblem, check: Bool) {
    guard bench.wants(p.name) else { return }
    let a = UnsafeMutablePointer<Float>.allocate(capacity: p.m * p.k)
    let b = UnsafeMutablePointer<Float>.allocate(capacity: p.k * p.n)
    let c = UnsafeMutablePointer<Float>.allocate(capacity: p.m * p.n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    fillRandom(a, p.m * p.k, seed: 1)
    fillRandom(b, p.k * p.n, seed: 2)
    bench.run(p.name, flops: p.flops) {
        sgemm(transA: false, transB: false, m: p.m, n: p.n, k: p.k, alpha: 1, a: a, lda: p.k, b: b, ldb: p.n,
              beta: 0, c: c, ldc: p.n)
    }
    guard check else { return }
    // Compare with the naive reference: error relative to the sum of |terms| (see GEMMTests).
    let r = UnsafeMutablePointer<Float>.allocate(capacity: p.m * p.n)
    defer { r.deallocate() }
    sgemmReference(transA: false, transB: false, m: p.m, n: p.n, k: p.k, alpha: 1, a: a, lda: p.k, b: b, ldb: p.n,
                   beta: 0, c: r, ldc: p.n)
    var worst: Float = 0
    for i in 0..<p.m {
        for j in 0..<p.n {
            var s: Float = 0
            for q in 0..<p.k { s += abs(a[i * p.k + q] * b[q * p.n + j]) }
            let d = abs(c[i * p.n + j] - r[i * p.n + j])
            worst = max(worst, d.isNaN ? .infinity : d / (1e-6 * Float(p.k).squareRoot() * s + 1e-30))
        }
    }
    if !(worst <= 1) { bench.fail("\(p.name): error \(worst) x tolerance") }
}

func gemmRows(_ bench: Bench) {
    if bench.options.quick {
        for s in [64, 127, 256] { runGEMM(bench, GEMMProblem(name: "sgemm \(s)", m: s, n: s, k: s), check: true) }
        // FCN layer shapes (M as in VGG16-FCN) with K and N cut so the reference check is quick.
        for var p in fcnLayerGEMMs(size: 500) {
            p.name = p.name.replacingOccurrences500("quick")
            p.k = min(p.k, 1152); p.n = min(p.n, 300)
            runGEMM(bench, p, check: true)
        }
        return
    }
    for s in [256, 512, 1024, 2048] { runGEMM(bench, GEMMProblem(name: "sgemm \(s)", m: s, n: s, k: s), check: false) }
    for p in fcnLayerGEMMs(size: 500) { runGEMM(bench, p, check: false) }
}

extension String {
    /// "gemm conv1_2 500" -> "gemm conv1_2 <tag>".
    func replacingOccurrences500(_ tag: String) -> String {
        hasSuffix(" 500") ? String(dropLast(3)) + tag : self
    }
}
