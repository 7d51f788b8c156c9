"""Golden fixtures for conv2d, convTranspose2d and the TensorFlow output-size form.

Writes conv2d.safetensors, conv_transpose2d.safetensors, conv_transpose2d_tf.safetensors.
Each case stores x, w, (b), out, a random grad_out and PyTorch autograd gradients
grad_x, grad_w, (grad_b) of <out, grad_out>.

Padding modes are applied with F.pad before a padding-free op so that asymmetric and
TensorFlow-SAME paddings are computed independently of the library's resolver:
  "int": p on every side; "pair": [ph, pw]; "explicit": [top, bottom, left, right];
  "valid": none; "same": TF rule, total = max(0, (ceil(in/s)-1)*s + d*(k-1) + 1 - in),
  total//2 before, the rest after.
The transpose convolution with asymmetric padding is the padding-free result cropped.
The TF form is computed as the vector-Jacobian product of conv2d(F.pad(z, tf_pads), w,
stride) with respect to z of the wanted output size (its definition in TensorFlow).
"""
import torch
import torch.nn.functional as F

from fixturelib import save

torch.manual_seed(0)


def tf_same(n, k, s, d):
    out = -(-n // s)
    total = max(0, (out - 1) * s + d * (k - 1) + 1 - n)
    return total // 2, total - total // 2


def resolve(mode, pad, H, W, k, s, d):
    if mode == "int":
        return [pad, pad, pad, pad]
    if mode == "pair":
        return [pad[0], pad[0], pad[1], pad[1]]
    if mode == "explicit":
        return list(pad)
    if mode == "valid":
        return [0, 0, 0, 0]
    t, b = tf_same(H, k[0], s[0], d[0])
    l, r = tf_same(W, k[1], s[1], d[1])
    return [t, b, l, r]


def pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


def grads(out, leaves):
    g = torch.randn(out.shape)
    gs = torch.autograd.grad(out, leaves, grad_outputs=g)
    return g, gs


# (N, Cin, Cout, H, W, kernel, stride, mode, pad, dilation, groups, bias)
CONV = [
    (1, 1, 1, 1, 1, 1, 1, "int", 0, 1, 1, True),
    (2, 3, 5, 7, 7, 3, 1, "int", 1, 1, 1, True),
    (3, 5, 7, 5, 9, 1, 1, "int", 0, 1, 1, True),            # pointwise path
    (2, 3, 5, 9, 7, [2, 3], [2, 1], "int", 0, 1, 1, False),
    (1, 7, 3, 11, 13, 5, 3, "int", 2, 1, 1, False),
    (2, 4, 6, 9, 9, 3, 1, "pair", [1, 2], [2, 1], 2, True),
    (2, 5, 5, 9, 7, 3, 1, "int", 1, 1, 5, True),             # depthwise
    (1, 3, 6, 7, 7, 3, 2, "int", 1, 1, 3, True),             # depthwise, multiplier 2
    (2, 3, 4, 7, 8, [3, 2], 1, "explicit", [0, 2, 1, 0], 1, 1, True),
    (1, 3, 5, 13, 11, 5, 2, "valid", 0, 1, 1, True),
    (2, 3, 3, 7, 9, 3, 1, "same", 0, 1, 1, True),
    (1, 3, 5, 9, 9, 3, 2, "same", 0, 1, 1, True),
    (2, 3, 2, 8, 7, 4, 2, "same", 0, 1, 1, False),
    (1, 5, 3, 13, 10, 5, 3, "same", 0, 1, 1, True),
    (1, 3, 4, 11, 9, [3, 5], [2, 3], "same", 0, [2, 1], 1, True),
    (1, 3, 3, 11, 11, 3, 1, "int", 3, 3, 1, True),
    (2, 6, 4, 5, 7, 1, 1, "int", 0, 1, 2, True),             # pointwise with groups
    (2, 3, 5, 9, 9, 1, 2, "int", 0, 1, 1, True),             # 1x1 stride 2
    (1, 3, 5, 5, 5, 1, 1, "int", 1, 1, 1, True),             # 1x1 padded
    (3, 3, 7, 8, 9, 2, 2, "int", 0, 1, 1, True),
    (1, 17, 3, 5, 5, 3, 1, "int", 1, 1, 1, True),
    (1, 6, 9, 7, 7, 3, 1, "int", 1, 1, 3, True),             # groups 3, 2 channels per group
    (2, 3, 5, 7, 7, 7, 1, "valid", 0, 1, 1, True),           # kernel covers the input
    (3, 1, 7, 13, 13, 5, 1, "int", 2, 1, 1, False),
    (1, 3, 4, 12, 11, 3, [3, 2], "pair", [2, 1], [1, 2], 1, True),
    (1, 3, 3, 9, 8, 3, 1, "same", 0, 2, 1, True),
    (2, 4, 4, 6, 5, [1, 3], [1, 2], "explicit", [1, 0, 0, 2], [1, 1], 4, True),
]

# Kernels 7 wide (the Winograd F(2, 7) path of fc6), drawn from their own seed after CONV so
# that the cases above and the transpose fixtures keep their values.
CONV_WIDE = [
    (1, 6, 5, 10, 12, 7, 1, "int", 3, 1, 1, True),
    (2, 4, 3, 9, 11, [3, 7], 1, "explicit", [1, 0, 2, 4], 1, 1, True),   # odd output width
    (1, 3, 4, 8, 9, [1, 7], 1, "same", 0, 1, 1, False),
    (1, 5, 6, 9, 20, 7, 1, "valid", 0, 1, 1, True),
]

# Kernels overhanging the input, so that some tap rows or columns meet only padding (the
# live-tap path, Ops/Conv2D+LiveTaps.swift), from their own seed after CONV_WIDE.
CONV_DEAD = [
    (2, 6, 5, 2, 2, 7, 1, "same", 0, 1, 1, True),            # fc6 on a 2x2 map: 3x3 taps live
    (1, 4, 3, 3, 3, 7, 1, "int", 3, 1, 1, True),             # 3x3 map: 5x5 live
    (1, 3, 4, 1, 1, 7, 1, "int", 3, 1, 1, True),             # 1x1 map: the centre tap
    (2, 4, 3, 2, 5, 7, 1, "int", 3, 1, 1, False),            # rows trimmed, columns not
    (1, 3, 4, 3, 3, 7, 2, "int", 3, 1, 1, True),             # stride 2: taps 1..5
    (1, 3, 3, 2, 2, 3, 1, "int", 3, 3, 1, True),             # dilation 3: the middle tap
    (1, 4, 6, 2, 3, 5, 1, "int", 2, 1, 2, True),             # groups 2
    (1, 3, 4, 2, 3, 7, 1, "explicit", [4, 1, 0, 6], 1, 1, True),   # asymmetric: box 2x3
    (1, 3, 2, 2, 9, [7, 3], 1, "same", 0, 1, 1, True),       # 7x3 on 2x9
]

# (N, Cin, Cout, H, W, kernel, stride, pad (int/pair/explicit list of 4), outputPadding, dilation, groups, bias)
CONVT = [
    (1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, True),
    (2, 3, 5, 4, 5, 3, 2, 1, 1, 1, 1, True),
    (1, 4, 3, 3, 3, 4, 2, 1, 0, 1, 1, False),                # FCN 2x deconv
    (2, 3, 2, 5, 4, [2, 3], [2, 1], 0, 0, 1, 1, True),
    (1, 5, 7, 3, 5, 3, 3, [1, 0], [2, 1], 1, 1, True),
    (1, 3, 4, 5, 5, 3, 1, 2, 1, 2, 1, True),                 # outputPadding >= stride (dilation 2)
    (1, 3, 2, 4, 5, 3, [1, 2], [1, 1], [1, 1], [2, 3], 1, True),
    (2, 4, 6, 4, 3, 3, 2, 1, 1, 1, 2, True),                 # groups 2
    (2, 3, 3, 4, 4, 3, 2, 1, 0, 1, 3, True),                 # depthwise
    (1, 3, 6, 3, 4, 3, 1, 1, 0, 1, 3, True),                 # groups 3, multiplier 2
    (2, 5, 7, 5, 6, 1, 1, 0, 0, 1, 1, True),                 # pointwise path
    (1, 5, 3, 4, 3, 1, 2, 0, 1, 1, 1, True),                 # 1x1 stride 2
    (1, 2, 2, 2, 2, 16, 8, 4, 0, 1, 1, False),               # FCN-8s final 8x deconv
    (1, 3, 2, 4, 3, 4, 2, [1, 0, 0, 2], 0, 1, 1, True),      # asymmetric crop
    (1, 2, 3, 3, 4, 5, 3, 0, 2, 1, 1, True),
    (1, 3, 2, 1, 1, 7, 1, 0, 0, 1, 1, True),                 # 1x1 input -> 7x7
    (3, 7, 1, 3, 4, 2, 2, 0, 0, 1, 1, True),
    (1, 17, 3, 4, 4, 3, 1, 1, 0, 1, 1, True),
    (1, 3, 2, 3, 4, 3, [3, 2], [1, 0], [2, 1], 1, 1, True),
    (1, 3, 3, 5, 5, 3, 1, 2, 0, 1, 1, True),                 # output smaller than input
    (1, 2, 3, 3, 3, 2, 2, 1, 2, 3, 1, True),                 # outputPadding 2 < dilation 3
    (2, 4, 2, 3, 3, 3, 2, 1, 1, 2, 2, True),                 # groups + dilation
]

# (N, Cin, Cout, H, W, kernel, stride, mode, outputSize)
CONVT_TF = [
    (1, 3, 3, 4, 4, 2, 2, "same", [8, 8]),
    (1, 2, 3, 3, 3, 5, 2, "same", [6, 5]),
    (2, 2, 2, 3, 3, 3, 2, "same", [5, 6]),
    (1, 3, 2, 4, 4, 4, 2, "same", [7, 8]),
    (1, 1, 2, 2, 2, 3, 2, "same", [4, 4]),
    (1, 2, 2, 5, 5, 3, 1, "same", [5, 5]),
    (1, 2, 1, 3, 3, 2, 3, "same", [7, 9]),
    (1, 2, 3, 3, 3, 3, 2, "valid", [7, 8]),
    (2, 1, 2, 4, 4, 2, 2, "valid", [8, 9]),
    (1, 2, 2, 2, 2, 4, 3, "valid", [7, 9]),
    (1, 2, 3, 3, 3, [3, 2], [2, 3], "same", [6, 9]),
    (1, 3, 2, 3, 2, [2, 5], [2, 1], "valid", [7, 6]),
]


def conv_cases():
    cases = conv_cases_of(CONV)
    state = torch.get_rng_state()
    torch.manual_seed(7)
    cases += conv_cases_of(CONV_WIDE)
    torch.manual_seed(8)
    cases += conv_cases_of(CONV_DEAD)
    torch.set_rng_state(state)
    return cases


def conv_cases_of(table):
    cases = []
    for (N, Cin, Cout, H, W, k, s, mode, pad, d, groups, bias) in table:
        k, s, d = pair(k), pair(s), pair(d)
        x = torch.randn(N, Cin, H, W, requires_grad=True)
        w = torch.randn(Cout, Cin // groups, k[0], k[1], requires_grad=True)
        b = torch.randn(Cout, requires_grad=True) if bias else None
        p = resolve(mode, pad, H, W, k, s, d)
        xp = F.pad(x, (p[2], p[3], p[0], p[1]))
        out = F.conv2d(xp, w, b, stride=s, dilation=d, groups=groups)
        leaves = [x, w] + ([b] if bias else [])
        g, gs = grads(out, leaves)
        cfg = dict(kernel=k, stride=s, mode=mode, padding=pad if isinstance(pad, list) else [pad],
                   resolved=p, dilation=d, groups=groups, bias=bias)
        ts = dict(x=x, w=w, out=out, grad_out=g, grad_x=gs[0], grad_w=gs[1])
        if bias:
            ts.update(b=b, grad_b=gs[2])
        cases.append((cfg, ts))
    return cases


def convt_cases():
    cases = []
    for (N, Cin, Cout, H, W, k, s, pad, op, d, groups, bias) in CONVT:
        k, s, d, op = pair(k), pair(s), pair(d), pair(op)
        if isinstance(pad, list) and len(pad) == 4:
            p = pad
        else:
            pp = pair(pad)
            p = [pp[0], pp[0], pp[1], pp[1]]
        x = torch.randn(N, Cin, H, W, requires_grad=True)
        w = torch.randn(Cin, Cout // groups, k[0], k[1], requires_grad=True)
        b = torch.randn(Cout, requires_grad=True) if bias else None
        if p[0] == p[1] and p[2] == p[3]:
            out = F.conv_transpose2d(x, w, b, stride=s, padding=(p[0], p[2]), output_padding=op,
                                     groups=groups, dilation=d)
        else:
            full = F.conv_transpose2d(x, w, b, stride=s, output_padding=op, groups=groups, dilation=d)
            out = full[:, :, p[0]:full.shape[2] - p[1], p[2]:full.shape[3] - p[3]]
        leaves = [x, w] + ([b] if bias else [])
        g, gs = grads(out, leaves)
        cfg = dict(kernel=k, stride=s, padding=p, output_padding=op, dilation=d, groups=groups, bias=bias)
        ts = dict(x=x, w=w, out=out, grad_out=g, grad_x=gs[0], grad_w=gs[1])
        if bias:
            ts.update(b=b, grad_b=gs[2])
        cases.append((cfg, ts))
    return cases


def convt_tf_cases():
    cases = []
    for (N, Cin, Cout, H, W, k, s, mode, osz) in CONVT_TF:
        k, s = pair(k), pair(s)
        x = torch.randn(N, Cin, H, W, requires_grad=True)
        w = torch.randn(Cin, Cout, k[0], k[1], requires_grad=True)
        b = torch.randn(Cout, requires_grad=True)
        p = resolve(mode, 0, osz[0], osz[1], k, s, [1, 1])
        z = torch.zeros(N, Cout, osz[0], osz[1], requires_grad=True)
        y = F.conv2d(F.pad(z, (p[2], p[3], p[0], p[1])), w, stride=s)
        assert list(y.shape) == [N, Cin, H, W], (y.shape, (N, Cin, H, W))
        vjp, = torch.autograd.grad(y, z, grad_outputs=x, create_graph=True)
        out = vjp + b.view(1, -1, 1, 1)
        g, gs = grads(out, [x, w, b])
        cfg = dict(kernel=k, stride=s, mode=mode, output_size=list(osz))
        cases.append((cfg, dict(x=x, w=w, b=b, out=out, grad_out=g, grad_x=gs[0], grad_w=gs[1], grad_b=gs[2])))
    return cases


if __name__ == "__main__":
    save("conv2d", conv_cases())
    save("conv_transpose2d", convt_cases())
    save("conv_transpose2d_tf", convt_tf_cases())
