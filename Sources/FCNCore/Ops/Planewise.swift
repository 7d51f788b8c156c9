// Plane-wise ops: NCHW ops that map every [H, W] plane on its own (average pools, bilinear
// resize, crops). Forward and backward run the N*C planes in parallel, each plane written
// by one thread, so the results do not depend on the thread count.

/// `[N, C, outH, outW]` from x `[N, C, inH, inW]`: `body(src, dst)` writes output plane
/// `dst` from input plane `src`.
func mapPlanes(_ x: Tensor, outH: Int, outW: Int,
               _ body: (_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    let inPlane = x.shape[2] * x.shape[3], outPlane = outH * outW
    return Tensor.make(shape: [x.shape[0], x.shape[1], outH, outW]) { ob in
        let o = ob.baseAddress!, xp = UnsafePointer(x.storage.pointer)
        parallelFor(x.shape[0] * x.shape[1]) { p in body(xp + p * inPlane, o + p * outPlane) }
    }
}

/// Records `out` (`[N, C, outH, outW]`) as the output of plane-wise op `op` on x
/// (`[N, C, inH, inW]`): its gradient is zero but for `backward(grad, gx)`, which adds the
/// output-gradient plane `grad` into the input-gradient plane `gx`.
func recordPlanewise(_ op: String, _ out: Tensor, of x: Tensor,
                     backward: @escaping (_ grad: UnsafePointer<Float>, _ gx: UnsafeMutablePointer<Float>) -> Void) -> Tensor {
    let inShape = x.shape, planes = x.shape[0] * x.shape[1]
    let inPlane = x.shape[2] * x.shape[3], outPlane = out.shape[2] * out.shape[3]
    return Tensor.record(op, out, inputs: [x]) { grad, _ in
        var gx = Tensor.zeros(inShape)
        gx.withUnsafeMutableBufferPointer { gb in
            let gd = gb.baseAddress!, gp = UnsafePointer(grad.storage.pointer)
            parallelFor(planes) { p in backward(gp + p * outPlane, gd + p * inPlane) }
        }
        return [gx]
    }
}
