"""Golden fixtures for the general Tensor ops (arithmetic, reductions, shape ops, matmul).

Writes tensor_binary, tensor_scalar, tensor_unary, tensor_reduce, tensor_shape and
tensor_matmul .safetensors. Every case stores the inputs, an upstream gradient `grad_out`,
the PyTorch output `out` and the autograd gradients `grad_<input>`.
Run: python Tests/Fixtures/gen_tensor.py
"""
import torch

from fixturelib import save

torch.manual_seed(0)
g = torch.Generator().manual_seed(1234)


def rn(*shape):
    return torch.randn(list(shape), generator=g)


def run(fn, inputs):
    """Returns out and grads of fn(*inputs) for a random upstream gradient."""
    leaves = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*leaves)
    go = rn(*out.shape)
    out.backward(go)
    return out.detach().clone(), go, [l.grad.clone() for l in leaves]


# ---------------------------------------------------------------- binary, broadcasting
PAIRS = [
    ([3], [3]), ([2, 3], [2, 3]), ([2, 3, 1, 5], [3, 4, 1]), ([4, 1], [3]), ([1], [2, 3]),
    ([], [2, 3]), ([2, 3], []), ([5, 1, 3], [1, 4, 1]), ([2, 3, 4, 5], [3, 1, 1]),
    ([2, 3, 4, 5], [1, 3, 1, 1]), ([2, 3, 4, 5], [5]), ([2, 3, 4, 5], [4, 1]),
    ([3, 1], [1, 3]), ([1, 1, 1], [2, 1, 3]), ([2, 1, 4], [2, 3, 4]), ([6, 7], [6, 1]),
    ([6, 7], [1, 7]), ([2, 1, 3, 1], [1, 4, 1, 5]), ([1, 3, 1, 1], [2, 3, 4, 5]),
    ([7], [1]), ([2, 2, 2, 2, 3], [2, 1, 2, 1, 3]), ([3, 4, 5], [3, 4, 5]), ([1, 5], [4, 1]),
    ([2, 0, 3], [1, 3]),
]
OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": torch.maximum,
    "minimum": torch.minimum,
}
cases = []
for op, fn in OPS.items():
    for sa, sb in PAIRS:
        a, b = rn(*sa), rn(*sb)
        if op == "div":
            b = torch.sign(b) * (0.5 + b.abs())
        out, go, (ga, gb) = run(fn, [a, b])
        cases.append(({"op": op}, {"a": a, "b": b, "out": out, "grad_out": go, "grad_a": ga, "grad_b": gb}))
# ties for maximum/minimum: integer-valued operands (gradient split evenly).
for op in ["maximum", "minimum"]:
    for sa, sb in [([4, 5], [4, 5]), ([3, 4], [4]), ([2, 3, 4], [3, 1])]:
        a, b = torch.round(rn(*sa)), torch.round(rn(*sb))
        out, go, (ga, gb) = run(OPS[op], [a, b])
        cases.append(({"op": op, "ties": True}, {"a": a, "b": b, "out": out, "grad_out": go, "grad_a": ga, "grad_b": gb}))
save("tensor_binary", cases)

# ---------------------------------------------------------------- tensor with scalar
cases = []
for op in ["add", "sub", "mul", "div"]:
    for side in ["left", "right"]:
        for shape, s in [([2, 3], 1.5), ([4, 1, 5], -0.75), ([7], 3.0)]:
            x = rn(*shape)
            if op == "div" and side == "left":
                x = torch.sign(x) * (0.5 + x.abs())
            if side == "left":
                fn = {"add": lambda t: s + t, "sub": lambda t: s - t, "mul": lambda t: s * t, "div": lambda t: s / t}[op]
            else:
                fn = {"add": lambda t: t + s, "sub": lambda t: t - s, "mul": lambda t: t * s, "div": lambda t: t / s}[op]
            out, go, (gx,) = run(fn, [x])
            cases.append(({"op": op, "side": side, "scalar": s}, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
save("tensor_scalar", cases)

# ---------------------------------------------------------------- unary
cases = []
UNARY = [
    ("neg", {}, lambda t: -t, False),
    ("exp", {}, torch.exp, False),
    ("log", {}, torch.log, True),
    ("sqrt", {}, torch.sqrt, True),
    ("square", {}, torch.square, False),
    ("abs", {}, torch.abs, False),
    ("pow", {"p": 2.0}, lambda t: t.pow(2.0), False),
    ("pow", {"p": 3.0}, lambda t: t.pow(3.0), False),
    ("pow", {"p": 0.5}, lambda t: t.pow(0.5), True),
    ("pow", {"p": -1.5}, lambda t: t.pow(-1.5), True),
    ("pow", {"p": 1.7}, lambda t: t.pow(1.7), True),
    ("pow", {"p": 0.0}, lambda t: t.pow(0.0), False),
    ("pow", {"p": 1.0}, lambda t: t.pow(1.0), False),
    ("clamp", {"min": -0.5, "max": 0.5}, lambda t: t.clamp(-0.5, 0.5), False),
    ("clamp", {"min": 0.0}, lambda t: t.clamp(min=0.0), False),
    ("clamp", {"max": 0.25}, lambda t: t.clamp(max=0.25), False),
    ("clamp", {"min": 0.5, "max": -0.5}, lambda t: t.clamp(0.5, -0.5), False),
]
for name, cfg, fn, positive in UNARY:
    for shape in [[5], [3, 4], [2, 3, 4, 5]]:
        x = rn(*shape)
        if positive:
            x = 0.1 + x.abs()
        if name in ("abs", "clamp"):
            x = torch.cat([x.flatten()[:-3], torch.tensor([0.0, 0.5, -0.5])]).reshape(shape) if x.numel() > 3 else x
        out, go, (gx,) = run(fn, [x])
        c = dict(cfg)
        c["op"] = name
        cases.append((c, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
save("tensor_unary", cases)

# ---------------------------------------------------------------- reductions
cases = []
RED = [
    ([2, 3, 4, 5], [1], False), ([2, 3, 4, 5], [0, 2, 3], False), ([2, 3, 4, 5], [0, 2, 3], True),
    ([2, 3, 4, 5], [-1], True), ([2, 3, 4, 5], [0], False), ([2, 3, 4, 5], [1, 3], False),
    ([2, 3, 4, 5], [3, 0], True), ([2, 3, 4, 5], [0, 1, 2, 3], False), ([7], [0], False),
    ([6, 1, 5], [1], False), ([6, 1, 5], [0, 1], True), ([4, 9], [1], True), ([4, 9], [0], False),
    ([3, 1, 4, 1, 5], [0, 2, 4], False), ([3, 1, 4, 1, 5], [1, 3], True), ([2, 3, 4], [], False),
    ([1000], [0], False), ([3, 5, 7], [-2], False), ([3, 5, 7], [-3, -1], True), ([5, 5], [0, 1], True),
]
for op in ["sum", "mean", "amax", "amin"]:
    for shape, axes, keep in RED:
        x = rn(*shape)
        fn = {"sum": torch.sum, "mean": torch.mean, "amax": torch.amax, "amin": torch.amin}[op]
        if len(axes) == 0:
            f = lambda t: t * 1.0  # no reduction
        else:
            f = lambda t: fn(t, dim=axes, keepdim=keep)
        out, go, (gx,) = run(f, [x])
        cases.append(({"op": op, "axes": axes, "keep": keep}, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
    # ties: integer-valued data
    if op in ("amax", "amin"):
        for shape, axes, keep in [([4, 6], [1], False), ([3, 4, 5], [0, 2], True), ([8], [0], False)]:
            x = torch.round(rn(*shape) * 0.7)
            fn = torch.amax if op == "amax" else torch.amin
            out, go, (gx,) = run(lambda t: fn(t, dim=axes, keepdim=keep), [x])
            cases.append(({"op": op, "axes": axes, "keep": keep, "ties": True}, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
for op in ["argmax", "argmin"]:
    for shape, axis, keep in [([2, 3, 4, 5], 1, False), ([2, 3, 4, 5], -1, True), ([9], 0, False),
                              ([4, 6], 0, True), ([3, 1, 5], 1, False), ([5, 8], 1, False)]:
        x = torch.round(rn(*shape) * 0.7)  # ties: the first extremum wins
        fn = torch.argmax if op == "argmax" else torch.argmin
        out = fn(x, dim=axis, keepdim=keep).float()
        cases.append(({"op": op, "axes": [axis], "keep": keep}, {"x": x, "out": out}))
save("tensor_reduce", cases)

# ---------------------------------------------------------------- shape ops
cases = []
for shape, perm in [([2, 3], [1, 0]), ([2, 3, 4], [2, 0, 1]), ([2, 3, 4, 5], [0, 2, 3, 1]),
                    ([2, 3, 4, 5], [0, 3, 1, 2]), ([2, 3, 4, 5], [3, 2, 1, 0]), ([37, 41], [1, 0]),
                    ([1, 3, 1, 4], [3, 1, 2, 0]), ([2, 3, 4], [0, 1, 2]), ([3, 4, 5], [1, 0, 2])]:
    x = rn(*shape)
    out, go, (gx,) = run(lambda t: t.permute(*perm), [x])
    cases.append(({"op": "permute", "perm": perm}, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
for shape, axis, start, end, step in [([5, 4], 0, 1, 4, 1), ([5, 4], 1, 0, 4, 2), ([2, 7, 3], 1, 2, 7, 3),
                                      ([2, 3, 6, 6], 3, 1, 5, 1), ([2, 3, 6, 6], 2, 0, 6, 4), ([9], 0, 3, 3, 1),
                                      ([2, 3, 6, 6], 0, 1, 2, 1), ([4, 5, 6], -1, -4, -1, 1)]:
    x = rn(*shape)
    idx = [slice(None)] * len(shape)
    idx[axis] = slice(start, end, step)
    out, go, (gx,) = run(lambda t: t[tuple(idx)], [x])
    cases.append(({"op": "slice", "axis": axis, "start": start, "end": end, "step": step},
                  {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
for shapes, axis in [([[2, 3], [4, 3]], 0), ([[2, 3], [2, 1], [2, 5]], 1), ([[2, 3, 4, 5], [2, 1, 4, 5]], 1),
                     ([[1, 2, 3], [1, 2, 3], [1, 2, 3]], -1), ([[3, 2], [0, 2], [1, 2]], 0)]:
    xs = [rn(*s) for s in shapes]
    out, go, gs = run(lambda *ts: torch.cat(ts, dim=axis), xs)
    t = {"out": out, "grad_out": go}
    for i, (x, gx) in enumerate(zip(xs, gs)):
        t[f"x{i}"], t[f"grad_x{i}"] = x, gx
    cases.append(({"op": "concat", "axis": axis, "n": len(xs)}, t))
for shape, axis, n in [([2, 3], 0, 3), ([2, 3], 2, 2), ([4], -1, 2)]:
    xs = [rn(*shape) for _ in range(n)]
    out, go, gs = run(lambda *ts: torch.stack(ts, dim=axis), xs)
    t = {"out": out, "grad_out": go}
    for i, (x, gx) in enumerate(zip(xs, gs)):
        t[f"x{i}"], t[f"grad_x{i}"] = x, gx
    cases.append(({"op": "stack", "axis": axis, "n": n}, t))
for shape, pads, value in [([2, 3, 4, 5], [[1, 1], [2, 0]], 0.0), ([2, 3, 4, 5], [[0, 0], [0, 0], [3, 1]], 1.5),
                           ([3, 4], [[-1, 2], [1, -2]], 0.0), ([2, 3, 6, 6], [[-2, -1], [-1, -3]], 0.0),
                           ([5], [[2, 3]], -1.0), ([2, 2, 3], [[1, 0], [0, 1], [1, 1]], 0.0),
                           ([2, 3, 4, 5], [[-1, 3], [2, -2]], 0.25)]:
    x = rn(*shape)
    flat = []
    for b, a in reversed(pads):
        flat += [b, a]
    out, go, (gx,) = run(lambda t: torch.nn.functional.pad(t, flat, value=value), [x])
    cases.append(({"op": "pad", "pads": [v for p in pads for v in p], "value": value},
                  {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
for shape, target in [([3, 1], [2, 3, 4]), ([1, 4], [3, 4]), ([2, 1, 1], [2, 3, 5]), ([], [2, 2])]:
    x = rn(*shape)
    out, go, (gx,) = run(lambda t: t.expand(*target), [x])
    cases.append(({"op": "expand", "target": target}, {"x": x, "out": out, "grad_out": go, "grad_x": gx}))
save("tensor_shape", cases)

# ---------------------------------------------------------------- matmul
cases = []
for sa, sb in [([3, 4], [4, 5]), ([1, 7], [7, 1]), ([5, 1], [1, 6]), ([9, 13], [13, 11]),
               ([2, 3, 4], [2, 4, 5]), ([3, 5, 2], [3, 2, 6]), ([2, 3, 4], [4, 5]), ([4, 6, 3], [3, 2]),
               ([3, 4], [2, 4, 5]), ([17, 19], [19, 23]), ([1, 1], [1, 1]), ([2, 1, 8], [2, 8, 1])]:
    a, b = rn(*sa), rn(*sb)
    out, go, (ga, gb) = run(torch.matmul, [a, b])
    cases.append(({"op": "matmul"}, {"a": a, "b": b, "out": out, "grad_out": go, "grad_a": ga, "grad_b": gb}))
save("tensor_matmul", cases)
