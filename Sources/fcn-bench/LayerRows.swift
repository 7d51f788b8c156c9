// Layer and network rows of fcn-bench: every distinct convolution and upsampling layer of
// VGG16-FCN at a 500 x 500 input, whole FCN forwards and an FCN-8s training step.
//
// GFLOP counts are 2 * multiply-adds of the convolution layers (transpose convolutions
// included: 2 * Cin * Cout * kH * kW * inH * inW); pools, ReLUs, crops and sums are not
// counted. A whole FCN-8s forward at 500 x 500 is 363.0 GFLOP this way (361.9 in the
// convolutions, 1.1 in the upsampling layers). The training step counts forward, input
// gradient and weight gradient of every convolution (3x the forward, minus conv1_1's input
// gradient, which nobody needs, and the weight gradients of the frozen upsampling layers).
import FCNCore
import FCNTools
import FCN

/// One convolution of VGG16-FCN: input `[1, cin, h, h]`, weight `[cout, cin, k, k]`.
struct ConvSpec {
    var name: String
    var cin: Int, cout: Int, k: Int, pad: Int, h: Int
    var relu: Bool
    var dilation = 1
    var outH: Int { h + 2 * pad - dilation * (k - 1) }
    var flops: Double { 2 * Double(cin * cout * k * k) * Double(outH * outH) }
}

/// One upsampling layer: input `[1, c, h, h]`, weight `[c, c, k, k]`, stride s.
struct DeconvSpec {
    var name: String
    var c: Int, k: Int, s: Int, h: Int
    var outH: Int { (h - 1) * s + k }
    var flops: Double { 2 * Double(c * c * k * k) * Double(h * h) }
}

/// The layers of VGG16-FCN (all variants) for a `size` x `size` input, `width`-scaled
/// channels (1 = the published net), duplicates of the same shape dropped
/// (conv3_3 == conv3_2, conv4_3 == conv4_2, conv5_2 == conv5_3 == conv5_1).
func vggFCNLayers(size: Int, width: Double = 1, classes: Int = 21) -> (convs: [ConvSpec], deconvs: [DeconvSpec]) {
    func ch(_ n: Int) -> Int { VGG16Config.channels(n, width: width) }
    var convs: [ConvSpec] = [], seen = Set<String>()
    var h = size, cin = 3
    var pool3 = 0, pool4 = 0
    func conv(_ name: String, _ cout: Int, k: Int, pad: Int, relu: Bool = true) {
        let s = ConvSpec(name: name, cin: cin, cout: cout, k: k, pad: pad, h: h, relu: relu)
        let key = "\(s.cin) \(s.cout) \(s.k) \(s.pad) \(s.h)"
        if !seen.contains(key) { convs.append(s); seen.insert(key) }
        h = s.outH; cin = cout
    }
    func pool() { h = (h - 1) / 2 + 1 } // 2x2 stride 2, ceil mode
    for (s, stage) in VGG16Config.stages.enumerated() {
        for (i, c) in stage.enumerated() {
            conv("conv\(s + 1)_\(i + 1)", ch(c), k: 3, pad: s == 0 && i == 0 ? 100 : 1)
        }
        pool()
        if s == 2 { pool3 = h } else if s == 3 { pool4 = h }
    }
    conv("fc6", ch(4096), k: 7, pad: 0)
    conv("fc7", ch(4096), k: 1, pad: 0)
    conv("score_fr", classes, k: 1, pad: 0, relu: false)
    convs.append(ConvSpec(name: "score_pool4", cin: ch(512), cout: classes, k: 1, pad: 0, h: pool4, relu: false))
    convs.append(ConvSpec(name: "score_pool3", cin: ch(256), cout: classes, k: 1, pad: 0, h: pool3, relu: false))
    let up2 = DeconvSpec(name: "upscore2", c: classes, k: 4, s: 2, h: h)
    let upP4 = DeconvSpec(name: "upscore_pool4", c: classes, k: 4, s: 2, h: up2.outH)
    let up8 = DeconvSpec(name: "upscore8", c: classes, k: 16, s: 8, h: upP4.outH)
    let up32 = DeconvSpec(name: "upscore", c: classes, k: 64, s: 32, h: h)
    let up16 = DeconvSpec(name: "upscore16", c: classes, k: 32, s: 16, h: up2.outH)
    return (convs, [up2, upP4, up8, up32, up16])
}

/// Forward GFLOP (as counted above) of a whole VGG FCN.
func vggFCNFlops(_ variant: VGGFCNVariant, size: Int, classes: Int = 21) -> (forward: Double, train: Double) {
    var convs: [ConvSpec] = []
    var h = size, cin = 3, pool2 = 0, pool3 = 0, pool4 = 0
    func conv(_ cout: Int, k: Int, pad: Int) {
        let s = ConvSpec(name: "", cin: cin, cout: cout, k: k, pad: pad, h: h, relu: true)
        convs.append(s); h = s.outH; cin = cout
    }
    for (s, stage) in VGG16Config.stages.enumerated() {
        for c in stage { conv(c, k: 3, pad: s == 0 && convs.isEmpty ? 100 : 1) }
        h = (h - 1) / 2 + 1
        if s == 1 { pool2 = h } else if s == 2 { pool3 = h } else if s == 3 { pool4 = h }
    }
    conv(4096, k: 7, pad: 0); conv(4096, k: 1, pad: 0); conv(classes, k: 1, pad: 0)
    var deconvs: [DeconvSpec] = []
    switch variant {
    case .fcn32s:
        deconvs.append(DeconvSpec(name: "", c: classes, k: 64, s: 32, h: h))
    case .fcn16s:
        let up2 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: h)
        convs.append(ConvSpec(name: "", cin: 512, cout: classes, k: 1, pad: 0, h: up2.outH, relu: false))
        deconvs += [up2, DeconvSpec(name: "", c: classes, k: 32, s: 16, h: up2.outH)]
    case .fcn8s, .fcn8sAtOnce:
        let up2 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: h)
        let up4 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: up2.outH)
        // score_pool4 / score_pool3 run on the whole pooled maps, then get cropped.
        convs.append(ConvSpec(name: "", cin: 512, cout: classes, k: 1, pad: 0, h: pool4, relu: false))
        convs.append(ConvSpec(name: "", cin: 256, cout: classes, k: 1, pad: 0, h: pool3, relu: false))
        deconvs += [up2, up4, DeconvSpec(name: "", c: classes, k: 16, s: 8, h: up4.outH)]
    case .fcn4s:
        let up2 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: h)
        let up4 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: up2.outH)
        let up8 = DeconvSpec(name: "", c: classes, k: 4, s: 2, h: up4.outH)
        convs.append(ConvSpec(name: "", cin: 512, cout: classes, k: 1, pad: 0, h: pool4, relu: false))
        convs.append(ConvSpec(name: "", cin: 256, cout: classes, k: 1, pad: 0, h: pool3, relu: false))
        convs.append(ConvSpec(name: "", cin: 128, cout: classes, k: 1, pad: 0, h: pool2, relu: false))
        deconvs += [up2, up4, up8, DeconvSpec(name: "", c: classes, k: 8, s: 4, h: up8.outH)]
    }
    let cf = convs.reduce(0) { $0 + $1.flops }, df = deconvs.reduce(0) { $0 + $1.flops }
    return (cf + df, 3 * cf - convs[0].flops + 2 * df)
}

/// Deterministic tensor with values in [-1, 1).
func benchTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var t = Tensor.zeros(shape)
    t.withUnsafeMutableBufferPointer { fillRandom($0.baseAddress!, $0.count, seed: seed) }
    return t
}

/// max |a - b| / max(1, max |b|).
func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    guard a.shape == b.shape else { return .infinity }
    var worst: Float = 0, scale: Float = 1
    a.withUnsafeBufferPointer { pa in
        b.withUnsafeBufferPointer { pb in
            for i in 0..<pb.count { scale = max(scale, abs(pb[i])) }
            for i in 0..<pa.count {
                let d = abs(pa[i] - pb[i])
                worst = max(worst, d.isNaN ? .infinity : d)
            }
        }
    }
    return worst / scale
}

// MARK: Rows

func convRow(_ bench: Bench, _ s: ConvSpec, tag: String, check: Bool) {
    let name = "conv \(s.name) \(tag)"
    guard bench.wants(name) else { return }
    let x = benchTensor([1, s.cin, s.h, s.h], seed: 1)
    let bound = 1 / Float(s.cin * s.k * s.k).squareRoot()
    let w = benchTensor([s.cout, s.cin, s.k, s.k], seed: 2) * bound
    let b = benchTensor([s.cout], seed: 3) * bound
    var y = Tensor.zeros([1])
    bench.run(name, flops: s.flops) {
        y = withoutGrad {
            conv2d(x, weight: w, bias: b, padding: .symmetric(s.pad), dilation: Size2(s.dilation), fusedReLU: s.relu)
        }
    }
    guard check else { return }
    var r = FCNReference.conv2d(x, weight: w, bias: b, padding: .symmetric(s.pad), dilation: Size2(s.dilation))
    if s.relu { r = relu(r) }
    let e = relativeError(y, r)
    if !(e <= 1e-5) { bench.fail("\(name): relative error \(e) vs FCNReference.conv2d") }
}

func deconvRow(_ bench: Bench, _ s: DeconvSpec, tag: String, check: Bool) {
    let name = "deconv \(s.name) \(tag)"
    guard bench.wants(name) else { return }
    let x = benchTensor([1, s.c, s.h, s.h], seed: 4)
    let w = bilinearUpsamplingKernel(channels: s.c, kernelSize: s.k)
    var y = Tensor.zeros([1])
    bench.run(name, flops: s.flops) {
        y = withoutGrad { convTranspose2d(x, weight: w, stride: Size2(s.s)) }
    }
    guard check else { return }
    let e = relativeError(y, FCNReference.convTranspose2d(x, weight: w, stride: Size2(s.s)))
    if !(e <= 1e-5) { bench.fail("\(name): relative error \(e) vs FCNReference.convTranspose2d") }
}

func poolRow(_ bench: Bench, name: String, shape: [Int], check: Bool) {
    guard bench.wants(name) else { return }
    let x = benchTensor(shape, seed: 5)
    var y = Tensor.zeros([1])
    bench.run(name, flops: 0) { y = withoutGrad { maxPool2d(x, kernel: 2, stride: 2, ceilMode: true) } }
    guard check else { return }
    let e = relativeError(y, FCNReference.maxPool2d(x, kernel: 2, stride: 2, ceilMode: true))
    if !(e == 0) { bench.fail("\(name): max pool differs from FCNReference.maxPool2d (relative error \(e))") }
}

func forwardRow(_ bench: Bench, _ variant: VGGFCNVariant, size: Int, width: Double = 1, tag: String? = nil) {
    let name = "fcn\(variant.rawValue) forward \(tag ?? String(size))"
    guard bench.wants(name) else { return }
    let net = VGGFCN(variant: variant, classes: 21, width: width, seed: 1, zeroScoreLayers: false)
    net.eval()
    let x = benchTensor([1, 3, size, size], seed: 6) * 100
    var y = Tensor.zeros([1])
    bench.run(name, flops: width == 1 ? vggFCNFlops(variant, size: size).forward : 0) {
        y = withoutGrad { net(x) }
    }
    if y.shape != [1, 21, size, size] { bench.fail("\(name): output shape \(y.shape)") }
}

func trainRow(_ bench: Bench, size: Int, width: Double = 1, tag: String? = nil) {
    let name = "fcn8s train step \(tag ?? String(size))"
    guard bench.wants(name) else { return }
    let net = VGGFCN(variant: .fcn8s, classes: 21, width: width, seed: 1, zeroScoreLayers: false)
    net.train()
    let x = benchTensor([1, 3, size, size], seed: 7) * 100
    var labels = Tensor.zeros([1, size, size])
    labels.withUnsafeMutableBufferPointer { p in
        var s: UInt64 = 12345
        for i in 0..<p.count { s = s &* 6364136223846793005 &+ 1442695040888963407; p[i] = Float((s >> 33) % 21) }
    }
    var lossValue: Float = 0
    bench.run(name, flops: width == 1 ? vggFCNFlops(.fcn8s, size: size).train : 0) {
        net.zeroGrad()
        let loss = softmaxCrossEntropy(logits: net(x), labels: labels)
        loss.backward()
        lossValue = loss.item
    }
    if !lossValue.isFinite { bench.fail("\(name): loss \(lossValue)") }
}

/// The eval forward of a model family as `fcn-segment` runs it (batch norms folded, then the
/// raw scores resized to the input when the model's own output is smaller), 21 classes,
/// random weights, under withoutGrad; then once more under `OpProfiler` for the shares of
/// each kind of op.
func modelForwardRow(_ bench: Bench, _ architecture: ModelArchitecture, size: Int, tag: String? = nil) {
    let name = "\(architecture.rawValue) forward \(tag ?? String(size))"
    guard bench.wants(name) else { return }
    let model: any SegmentationModel
    do { model = try ModelDescription(architecture: architecture, classes: 21).makeModel(seed: 1) } catch {
        bench.fail("\(name): \(error)"); return
    }
    let net = model.rawScoreLayer()
    let x = benchTensor([1, 3, size, size], seed: 8)
    var y = Tensor.zeros([1])
    let forward = {
        y = withoutGrad {
            let s = net(x)
            return s.shape[2] == size && s.shape[3] == size ? s : interpolateBilinear(s, size: [size, size], alignCorners: false)
        }
    }
    bench.run(name, flops: 0, forward)
    bench.profile(name, forward)
    if y.shape != [1, 21, size, size] || !y.scalars.allSatisfy(\.isFinite) { bench.fail("\(name): output shape \(y.shape) or values not finite") }
}

/// A training step of a model family (train mode: batch statistics, dropout where the
/// model has it), random weights, 21 classes, batch 1: forward, softmax cross-entropy on the
/// scores resized to the input (torchvision's FCNs and the ResNet FCN-8s return full-size
/// scores already), backward; as `pytorch_bench.py` times torchvision's model.
func modelTrainRow(_ bench: Bench, _ architecture: ModelArchitecture, size: Int, tag: String? = nil) {
    let name = "\(architecture.rawValue) train step \(tag ?? String(size))"
    guard bench.wants(name) else { return }
    let model: any SegmentationModel
    do { model = try ModelDescription(architecture: architecture, classes: 21).makeModel(seed: 1) } catch {
        bench.fail("\(name): \(error)"); return
    }
    model.train()
    let x = benchTensor([1, 3, size, size], seed: 9)
    var labels = Tensor.zeros([1, size, size])
    labels.withUnsafeMutableBufferPointer { p in
        var s: UInt64 = 777
        for i in 0..<p.count { s = s &* 6364136223846793005 &+ 1442695040888963407; p[i] = Float((s >> 33) % 21) }
    }
    var lossValue: Float = 0
    bench.run(name, flops: 0) {
        model.zeroGrad()
        var loss: Tensor? = nil
        for (scores, weight) in model.trainingOutputs(x) {
            let term = softmaxCrossEntropy(logits: scores, labels: labels) * weight
            loss = loss.map { $0 + term } ?? term
        }
        loss!.backward()
        lossValue = loss!.item
    }
    if !lossValue.isFinite { bench.fail("\(name): loss \(lossValue)") }
}

func layerRows(_ bench: Bench) {
    if let p = bench.options.probe, p.count == 5 || p.count == 6 {
        convRow(bench, ConvSpec(name: "probe", cin: p[0], cout: p[1], k: p[2], pad: p[3], h: p[4], relu: true,
                                dilation: p.count == 6 ? p[5] : 1),
                tag: "\(p)", check: false)
        return
    }
    if bench.options.quick {
        // Small shapes (channels / 8, input 36): every layer kind checked against the naive
        // references; then tiny whole-network passes as a smoke test.
        // fc6 here (64 -> 512, 7x7) runs as Winograd F(2, 7) once the weight cache holds it;
        // the 1x1 1024 -> 1024 row runs the Strassen path (fc7's, which needs 1024 channels).
        let (convs, deconvs) = vggFCNLayers(size: 36, width: 0.125)
        for s in convs { convRow(bench, s, tag: "quick", check: true) }
        convRow(bench, ConvSpec(name: "1x1 1024", cin: 1024, cout: 1024, k: 1, pad: 0, h: 9, relu: true), tag: "quick",
                check: true)
        for s in deconvs { deconvRow(bench, s, tag: "quick", check: true) }
        for shape in [[1, 8, 37, 37], [2, 5, 16, 15], [1, 3, 1, 1]] {
            poolRow(bench, name: "pool \(shape.map(String.init).joined(separator: "x")) quick", shape: shape, check: true)
        }
        for v in [VGGFCNVariant.fcn32s, .fcn16s, .fcn8s] { forwardRow(bench, v, size: 48, width: 0.0625, tag: "quick") }
        trainRow(bench, size: 48, width: 0.0625, tag: "quick")
        for a in [ModelArchitecture.resnet18FCN8s, .fcnResNet50] { modelForwardRow(bench, a, size: 40, tag: "quick") }
        modelTrainRow(bench, .fcnResNet50, size: 40, tag: "quick")
        return
    }
    let (convs, deconvs) = vggFCNLayers(size: 500)
    for s in convs { convRow(bench, s, tag: "500", check: false) }
    for s in deconvs { deconvRow(bench, s, tag: "500", check: false) }
    poolRow(bench, name: "pool pool1 500", shape: [1, 64, 698, 698], check: false)
    for size in [224, 500] {
        for v in [VGGFCNVariant.fcn32s, .fcn16s, .fcn8s] { forwardRow(bench, v, size: size) }
    }
    trainRow(bench, size: 256)
    modelForwardRow(bench, .resnet34FCN8s, size: 500)
    modelForwardRow(bench, .fcnResNet50, size: 520)
    modelForwardRow(bench, .fcnResNet101, size: 520)
    modelTrainRow(bench, .fcnResNet50, size: 256)
}
