// The ONNX graph the exporter builds, and its protobuf encoding (onnx.proto, IR version 8).
//
// Messages and the fields written (field numbers of onnx.proto):
//   GraphProto        node 1, name 2, initializer 5, doc_string 10, input 11, output 12
//   NodeProto         input 1, output 2, name 3, op_type 4, attribute 5
//   AttributeProto    name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7)
//   TensorProto       dims 1, data_type 2 (FLOAT 1, INT64 7), int64_data 7, name 8,
//                     raw_data 9 (float32 little-endian)
//   ValueInfoProto    name 1, type 2
//   TypeProto         tensor_type 1 -> Tensor: elem_type 1, shape 2
//   TensorShapeProto  dim 1 -> Dimension: dim_value 1, dim_param 2
// The model-level fields (ModelProto, opset import, metadata) are in ONNXExport.swift.
//
// Values are NCHW float tensors (`ONNXValue`) whose channels are always known and whose
// height and width are known when the export has a fixed input size. Integer vectors
// (shapes, crop ends, pads) are `ONNXInts`: constants when the sizes are known, else
// computed in the graph from `Shape` (opset 15: `start`/`end` pick the spatial axes), so
// one file runs at any input size.
import FCNCore
import FCNIO

/// An NCHW float tensor of the graph: its name, channels and (fixed-size export) spatial size.
struct ONNXValue {
    let name: String
    let channels: Int
    /// Height and width when known at export time (fixed input size), else nil.
    let size: (h: Int, w: Int)?
}

/// A small int64 vector: known at export time, or the name of a graph value.
enum ONNXInts {
    case constant([Int])
    case value(String)
}

/// One node attribute.
struct ONNXAttribute {
    enum Value {
        case int(Int), ints([Int]), float(Float), string(String)
    }
    let name: String
    let value: Value

    init(_ name: String, _ value: Value) { self.name = name; self.value = value }
    static func int(_ name: String, _ v: Int) -> ONNXAttribute { ONNXAttribute(name, .int(v)) }
    static func ints(_ name: String, _ v: [Int]) -> ONNXAttribute { ONNXAttribute(name, .ints(v)) }
    static func float(_ name: String, _ v: Float) -> ONNXAttribute { ONNXAttribute(name, .float(v)) }
    static func string(_ name: String, _ v: String) -> ONNXAttribute { ONNXAttribute(name, .string(v)) }

    func encode(_ w: inout ProtobufWriter) {
        w.string(1, name)
        switch value {
        case .float(let f): w.float(2, f); w.int(20, 1)
        case .int(let i): w.int(3, i); w.int(20, 2)
        case .string(let s): w.string(4, s); w.int(20, 3)
        case .ints(let v): w.packedInt64(8, v.map(Int64.init)); w.int(20, 7)
        }
    }
}

/// One operator application with a single output.
struct ONNXNode {
    let opType: String
    let name: String
    let inputs: [String]
    let output: String
    let attributes: [ONNXAttribute]

    func encode(_ w: inout ProtobufWriter) {
        for i in inputs { w.string(1, i) }
        w.string(2, output)
        w.string(3, name)
        w.string(4, opType)
        for a in attributes { w.message(5) { a.encode(&$0) } }
    }
}

/// A constant of the graph: float32 weights (stored as raw little-endian bytes) or int64s.
struct ONNXInitializer {
    enum Data {
        case float(Tensor), int64([Int64])
    }
    let name: String
    let dims: [Int]
    let data: Data

    /// Number of elements.
    var count: Int { dims.reduce(1, *) }

    func encode(_ w: inout ProtobufWriter) {
        for d in dims { w.int(1, d) }
        switch data {
        case .float(let t):
            w.int(2, 1)
            w.string(8, name)
            t.withUnsafeBufferPointer { w.floatBytes(9, $0) }
        case .int64(let v):
            w.int(2, 7)
            w.packedInt64(7, v)
            w.string(8, name)
        }
    }
}

/// A dimension of a graph input or output: a number or a named symbol.
enum ONNXDimension: Equatable {
    case value(Int), param(String)
}

/// Builds the nodes and initializers of one graph, tracking the shapes it can know.
struct ONNXGraphBuilder {
    /// The graph input `[batch, channels, height, width]`.
    let input: ONNXValue
    private(set) var nodes: [ONNXNode] = []
    private(set) var initializers: [ONNXInitializer] = []
    private var names: Set<String> = []
    private var spatialShapes: [String: String] = [:]

    /// A builder whose input is named `inputName` with `channels` channels and, when given,
    /// a fixed spatial size.
    init(inputName: String, channels: Int, fixedSize: (h: Int, w: Int)?) {
        input = ONNXValue(name: inputName, channels: channels, size: fixedSize)
        names.insert(inputName)
    }

    /// `base`, or `base_2`, `base_3`, ... when taken: every value and initializer name of
    /// the graph is distinct.
    mutating func unique(_ base: String) -> String {
        var name = base, k = 1
        while names.contains(name) { k += 1; name = "\(base)_\(k)" }
        names.insert(name)
        return name
    }

    /// Adds float32 weights under `name` (made unique) and returns the name.
    mutating func weights(_ name: String, _ t: Tensor) -> String {
        let n = unique(name)
        initializers.append(ONNXInitializer(name: n, dims: t.shape, data: .float(t)))
        return n
    }

    /// Adds a float32 scalar constant (shape `[]`).
    mutating func scalar(_ name: String, _ v: Float) -> String {
        let n = unique(name)
        initializers.append(ONNXInitializer(name: n, dims: [], data: .float(Tensor(v))))
        return n
    }

    /// The name of `ints` in the graph: a new int64 initializer for a constant.
    mutating func materialize(_ ints: ONNXInts, _ hint: String) -> String {
        switch ints {
        case .value(let n): return n
        case .constant(let v):
            let n = unique(hint)
            initializers.append(ONNXInitializer(name: n, dims: [v.count], data: .int64(v.map(Int64.init))))
            return n
        }
    }

    /// Appends a node and returns its output's name (the node's name, made unique).
    mutating func node(_ opType: String, _ inputs: [String], name: String, _ attributes: [ONNXAttribute] = []) -> String {
        let out = unique(name)
        nodes.append(ONNXNode(opType: opType, name: out, inputs: inputs, output: out, attributes: attributes))
        return out
    }

    // MARK: Integer vectors

    /// `[height, width]` of `x`: constant for a fixed-size export, else `Shape(x)[2:4]`
    /// (one Shape node per value).
    mutating func spatialShape(of x: ONNXValue) -> ONNXInts {
        if let s = x.size { return .constant([s.h, s.w]) }
        if let n = spatialShapes[x.name] { return .value(n) }
        let n = node("Shape", [x.name], name: x.name + "/hw", [.int("start", 2), .int("end", 4)])
        spatialShapes[x.name] = n
        return .value(n)
    }

    /// Element-wise `a op b` (op Add, Sub, Mul or Div: integer division, the operands
    /// here are non-negative), folded at export time when both are constants.
    mutating func arithmetic(_ op: String, _ a: ONNXInts, _ b: ONNXInts, name: String) -> ONNXInts {
        if case .constant(let x) = a, case .constant(let y) = b {
            precondition(x.count == y.count, "ONNXGraphBuilder.arithmetic: lengths \(x.count) and \(y.count)")
            let f: (Int, Int) -> Int
            switch op {
            case "Add": f = (+)
            case "Sub": f = (-)
            case "Mul": f = (*)
            case "Div": f = (/)
            default: fcnFail("ONNXGraphBuilder.arithmetic", "unknown operator \(op)")
            }
            return .constant(zip(x, y).map(f))
        }
        return .value(node(op, [materialize(a, name + "/a"), materialize(b, name + "/b")], name: name))
    }

    // MARK: Float ops

    /// A convolution (`Conv`), followed by `Relu` when asked.
    mutating func conv(_ x: ONNXValue, name: String, weight: Tensor, bias: Tensor?, stride: Size2, padding: Padding,
                       dilation: Size2, groups: Int, relu: Bool) throws -> ONNXValue {
        guard weight.rank == 4, weight.shape[1] * groups == x.channels else {
            throw FCNError.mismatch("ONNX export: \(name) has weight \(weight.shape) (groups \(groups)) for \(x.channels) input channels")
        }
        let k = Size2(weight.shape[2], weight.shape[3])
        var attributes: [ONNXAttribute] = [.ints("kernel_shape", [k.h, k.w]), .ints("strides", [stride.h, stride.w]),
                                           .ints("dilations", [dilation.h, dilation.w]), .int("group", groups)]
        var size: (h: Int, w: Int)? = nil
        if case .same = padding {
            attributes.append(.string("auto_pad", "SAME_UPPER"))        // TensorFlow's SAME, as `Padding.same`
            if let s = x.size { size = ((s.h + stride.h - 1) / stride.h, (s.w + stride.w - 1) / stride.w) }
        } else {
            let p = padding.resolve(inH: 1, inW: 1, kernel: k, stride: stride, dilation: dilation)
            attributes.append(.ints("pads", [p.top, p.left, p.bottom, p.right]))
            if let s = x.size {
                func out(_ n: Int, _ a: Int, _ b: Int, _ k: Int, _ s: Int, _ d: Int) -> Int {
                    let span = n + a + b - d * (k - 1) - 1
                    return span < 0 ? 0 : span / s + 1
                }
                size = (out(s.h, p.top, p.bottom, k.h, stride.h, dilation.h), out(s.w, p.left, p.right, k.w, stride.w, dilation.w))
            }
        }
        try checkSize(size, name)
        var inputs = [x.name, weights(name + ".weight", weight)]
        if let bias { inputs.append(weights(name + ".bias", bias)) }
        var y = ONNXValue(name: node("Conv", inputs, name: name, attributes), channels: weight.shape[0], size: size)
        if relu { y = self.relu(y, name: name + "/relu") }
        return y
    }

    /// A transposed convolution (`ConvTranspose`) with explicit padding.
    mutating func convTranspose(_ x: ONNXValue, name: String, weight: Tensor, bias: Tensor?, stride: Size2,
                                padding: Padding, outputPadding: Size2, dilation: Size2, groups: Int) throws -> ONNXValue {
        guard weight.rank == 4, weight.shape[0] == x.channels else {
            throw FCNError.mismatch("ONNX export: \(name) has weight \(weight.shape) for \(x.channels) input channels")
        }
        if case .same = padding { throw FCNError.unsupported("ONNX export: \(name) is a transposed convolution with padding .same") }
        let k = Size2(weight.shape[2], weight.shape[3])
        let p = padding.resolve(inH: 1, inW: 1, kernel: k, stride: stride, dilation: dilation)
        var size: (h: Int, w: Int)? = nil
        if let s = x.size {
            func out(_ n: Int, _ a: Int, _ b: Int, _ k: Int, _ s: Int, _ d: Int, _ op: Int) -> Int {
                (n - 1) * s - a - b + d * (k - 1) + op + 1
            }
            size = (out(s.h, p.top, p.bottom, k.h, stride.h, dilation.h, outputPadding.h),
                    out(s.w, p.left, p.right, k.w, stride.w, dilation.w, outputPadding.w))
        }
        try checkSize(size, name)
        let attributes: [ONNXAttribute] = [
            .ints("kernel_shape", [k.h, k.w]), .ints("strides", [stride.h, stride.w]), .ints("dilations", [dilation.h, dilation.w]),
            .int("group", groups), .ints("pads", [p.top, p.left, p.bottom, p.right]),
            .ints("output_padding", [outputPadding.h, outputPadding.w]),
        ]
        var inputs = [x.name, weights(name + ".weight", weight)]
        if let bias { inputs.append(weights(name + ".bias", bias)) }
        return ONNXValue(name: node("ConvTranspose", inputs, name: name, attributes), channels: weight.shape[1] * groups, size: size)
    }

    /// Max pooling (`MaxPool`; `ceil_mode` 1 for Caffe's rounding).
    mutating func maxPool(_ x: ONNXValue, name: String, kernel: Size2, stride: Size2, padding: Size2, dilation: Size2,
                          ceilMode: Bool) throws -> ONNXValue {
        var size: (h: Int, w: Int)? = nil
        if let s = x.size {
            size = (poolOutputSize(input: s.h, kernel: kernel.h, stride: stride.h, padding: padding.h, dilation: dilation.h, ceilMode: ceilMode),
                    poolOutputSize(input: s.w, kernel: kernel.w, stride: stride.w, padding: padding.w, dilation: dilation.w, ceilMode: ceilMode))
        }
        try checkSize(size, name)
        let attributes: [ONNXAttribute] = [
            .ints("kernel_shape", [kernel.h, kernel.w]), .ints("strides", [stride.h, stride.w]),
            .ints("pads", [padding.h, padding.w, padding.h, padding.w]), .ints("dilations", [dilation.h, dilation.w]),
            .int("ceil_mode", ceilMode ? 1 : 0),
        ]
        return ONNXValue(name: node("MaxPool", [x.name], name: name, attributes), channels: x.channels, size: size)
    }

    /// `max(x, 0)` (`Relu`).
    mutating func relu(_ x: ONNXValue, name: String) -> ONNXValue {
        ONNXValue(name: node("Relu", [x.name], name: name), channels: x.channels, size: x.size)
    }

    /// `a + b` (`Add`) of two tensors of the same shape.
    mutating func add(_ a: ONNXValue, _ b: ONNXValue, name: String) throws -> ONNXValue {
        guard a.channels == b.channels else {
            throw FCNError.mismatch("ONNX export: \(name) adds \(a.channels) channels to \(b.channels)")
        }
        if let s = a.size, let t = b.size, s != t {
            throw FCNError.mismatch("ONNX export: \(name) adds a \(s.h)x\(s.w) map to a \(t.h)x\(t.w) one")
        }
        return ONNXValue(name: node("Add", [a.name, b.name], name: name), channels: a.channels, size: a.size ?? b.size)
    }

    /// `x * factor` (`Mul` by a float32 scalar).
    mutating func scaled(_ x: ONNXValue, by factor: Float, name: String) -> ONNXValue {
        let c = scalar(name + ".factor", factor)
        return ONNXValue(name: node("Mul", [x.name, c], name: name), channels: x.channels, size: x.size)
    }

    /// Caffe's crop: the window of `reference`'s height and width at (`top`, `left`) of `x`
    /// (`Slice` on axes 2 and 3; the ends are computed from `Shape(reference)` unless the
    /// sizes are known). A fixed-size export writes no node when the window is all of `x`.
    mutating func crop(_ x: ONNXValue, top: Int, left: Int, like reference: ONNXValue, name: String) throws -> ONNXValue {
        if let s = x.size, let r = reference.size {
            guard s.h - top >= r.h && s.w - left >= r.w else {
                throw FCNError.mismatch("ONNX export: \(name): a \(r.h)x\(r.w) window at [\(top), \(left)] does not fit in \(s.h)x\(s.w)")
            }
            if top == 0 && left == 0 && s == r { return x }
        }
        let hw = spatialShape(of: reference)
        let ends = top == 0 && left == 0 ? hw : arithmetic("Add", hw, .constant([top, left]), name: name + "/ends")
        let inputs = [x.name, materialize(.constant([top, left]), name + "/starts"), materialize(ends, name + "/ends"),
                      materialize(.constant([2, 3]), name + "/axes")]
        return ONNXValue(name: node("Slice", inputs, name: name), channels: x.channels, size: reference.size)
    }

    /// Zeros at the bottom and right of `x` up to the next multiple of `multiple` (`Pad`;
    /// the amounts computed from `Shape(x)` unless known, and no node when they are 0).
    mutating func padBottomRight(_ x: ONNXValue, toMultipleOf multiple: Int, name: String) -> ONNXValue {
        if let s = x.size {
            let ph = (multiple - s.h % multiple) % multiple, pw = (multiple - s.w % multiple) % multiple
            if ph == 0 && pw == 0 { return x }
            let pads = materialize(.constant([0, 0, 0, 0, 0, 0, ph, pw]), name + "/pads")
            return ONNXValue(name: node("Pad", [x.name, pads], name: name, [.string("mode", "constant")]),
                             channels: x.channels, size: (s.h + ph, s.w + pw))
        }
        let hw = spatialShape(of: x)
        let m = ONNXInts.constant([multiple, multiple])
        let up = arithmetic("Add", hw, .constant([multiple - 1, multiple - 1]), name: name + "/up")
        let rounded = arithmetic("Mul", arithmetic("Div", up, m, name: name + "/blocks"), m, name: name + "/rounded")
        let amounts = arithmetic("Sub", rounded, hw, name: name + "/amounts")
        let pads = node("Concat", [materialize(.constant([0, 0, 0, 0, 0, 0]), name + "/begin"), materialize(amounts, name + "/end")],
                        name: name + "/pads", [.int("axis", 0)])
        return ONNXValue(name: node("Pad", [x.name, pads], name: name, [.string("mode", "constant")]),
                         channels: x.channels, size: nil)
    }

    /// Bilinear resize of `x` to the height and width of `reference` (`Resize`, mode
    /// linear, half_pixel coordinates: PyTorch's `F.interpolate(..., mode="bilinear",
    /// align_corners=False)`). The `sizes` input is `[N, C]` of `x` then the target size.
    mutating func resizeBilinear(_ x: ONNXValue, like reference: ONNXValue, name: String) -> ONNXValue {
        let nc = node("Shape", [x.name], name: name + "/nc", [.int("start", 0), .int("end", 2)])
        let hw = materialize(spatialShape(of: reference), name + "/hw")
        let sizes = node("Concat", [nc, hw], name: name + "/sizes", [.int("axis", 0)])
        let attributes: [ONNXAttribute] = [.string("mode", "linear"), .string("coordinate_transformation_mode", "half_pixel")]
        return ONNXValue(name: node("Resize", [x.name, "", "", sizes], name: name, attributes),
                         channels: x.channels, size: reference.size)
    }

    /// Gives the node that computes `x` the output name `name` (the graph output's name).
    /// `x` must be a node's output that no node reads.
    mutating func rename(_ x: ONNXValue, to name: String) -> ONNXValue {
        guard let i = nodes.lastIndex(where: { $0.output == x.name }) else {
            fcnFail("ONNXGraphBuilder.rename", "\(x.name) is not computed by a node")
        }
        fcnCheck(!nodes.contains { $0.inputs.contains(x.name) } && spatialShapes[x.name] == nil, "ONNXGraphBuilder.rename",
                 "\(x.name) is read by another node")
        let out = unique(name)
        let n = nodes[i]
        nodes[i] = ONNXNode(opType: n.opType, name: n.name, inputs: n.inputs, output: out, attributes: n.attributes)
        return ONNXValue(name: out, channels: x.channels, size: x.size)
    }

    private func checkSize(_ size: (h: Int, w: Int)?, _ name: String) throws {
        if let s = size, s.h < 1 || s.w < 1 {
            throw FCNError.mismatch("ONNX export: the fixed input size \(input.size!.h)x\(input.size!.w) leaves \(name) with an empty \(s.h)x\(s.w) output")
        }
    }

    // MARK: Encoding

    /// The GraphProto of these nodes and initializers, with `output` as the graph output.
    func encodeGraph(_ w: inout ProtobufWriter, name: String, docString: String, output: ONNXValue) {
        for n in nodes { w.message(1) { n.encode(&$0) } }
        w.string(2, name)
        for i in initializers { w.message(5) { i.encode(&$0) } }
        w.string(10, docString)
        func dims(_ v: ONNXValue) -> [ONNXDimension] {
            let hw: [ONNXDimension] = v.size.map { [.value($0.h), .value($0.w)] } ?? [.param("height"), .param("width")]
            return [.param("batch"), .value(v.channels)] + hw
        }
        w.message(11) { Self.encodeValueInfo(&$0, name: input.name, dims: dims(input)) }
        w.message(12) { Self.encodeValueInfo(&$0, name: output.name, dims: dims(output)) }
    }

    /// A ValueInfoProto of a float tensor with the given dimensions.
    static func encodeValueInfo(_ w: inout ProtobufWriter, name: String, dims: [ONNXDimension]) {
        w.string(1, name)
        w.message(2) { type in                          // TypeProto
            type.message(1) { tensor in                 // TypeProto.Tensor
                tensor.int(1, 1)                        // elem_type FLOAT
                tensor.message(2) { shape in            // TensorShapeProto
                    for d in dims {
                        shape.message(1) { dim in
                            switch d {
                            case .value(let v): dim.int(1, v)
                            case .param(let p): dim.string(2, p)
                            }
                        }
                    }
                }
            }
        }
    }
}
