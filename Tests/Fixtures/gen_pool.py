"""Golden fixtures for pooling, unpooling, bilinear interpolation and crops.

Writes maxpool2d, maxunpool2d, avgpool2d, adaptive_avgpool2d, interpolate_bilinear and
crop .safetensors beside this file. Every case stores the input `x`, the output `out`, a
random upstream gradient `grad_out` and PyTorch's autograd gradient `grad_x`.
Run: python Tests/Fixtures/gen_pool.py
"""
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from fixturelib import save

g = torch.Generator().manual_seed(20240601)


def randn(*shape):
    return torch.randn(*shape, generator=g)


def with_grad(fn, x):
    x = x.clone().requires_grad_(True)
    out = fn(x)
    if isinstance(out, tuple):
        main = out[0]
    else:
        main = out
    go = randn(*main.shape)
    main.backward(go)
    return out, go, x.grad


def pair(v):
    return list(v) if isinstance(v, (list, tuple)) else [v, v]


# ---------------------------------------------------------------- max pool
# (N, C, H, W, kernel, stride, padding, dilation, ceil, ties)
max_cfgs = [
    (2, 3, 5, 5, 2, 2, 0, 1, True, False),     # FCN pool, odd size: last window is 1 wide
    (1, 1, 7, 7, 2, 2, 0, 1, True, False),
    (2, 5, 8, 6, 2, 2, 0, 1, True, False),     # FCN pool, even sizes
    (1, 3, 13, 11, 2, 2, 0, 1, False, False),  # floor mode drops the last row/col
    (2, 3, 7, 9, 3, 2, 1, 1, False, False),
    (2, 3, 7, 9, 3, 2, 1, 1, True, False),
    (1, 17, 5, 5, 3, 1, 1, 1, False, False),
    (3, 1, 6, 6, 3, 3, 1, 1, True, False),     # ceil mode drops the window starting at in+p
    (1, 3, 9, 9, 3, 2, 0, 2, False, False),    # dilation
    (2, 5, 11, 13, 3, 3, 1, 2, True, False),   # dilation + ceil + padding
    (1, 3, 1, 1, 1, 1, 0, 1, False, False),    # 1x1
    (2, 1, 1, 5, [1, 3], [1, 2], [0, 1], 1, True, False),
    (1, 5, 9, 7, [3, 2], [2, 1], [1, 0], [1, 2], False, False),  # non-square everything
    (2, 3, 10, 10, 4, 3, 2, 1, True, False),
    (1, 3, 12, 5, 5, 4, 2, 1, True, False),
    (2, 3, 3, 3, 3, 1, 0, 1, False, False),    # one output per plane
    (1, 1, 13, 13, 2, 1, 1, 1, True, False),
    (2, 17, 4, 4, 2, 2, 1, 1, True, False),
    (1, 3, 7, 7, 2, 2, 0, 1, True, True),      # ties: first max in scan order wins
    (2, 3, 8, 9, 3, 2, 1, 1, False, True),
    (1, 5, 5, 5, 3, 1, 1, 2, True, True),
    (1, 1, 9, 9, 2, 3, 1, 1, True, False),     # stride > kernel
]
cases = []
for (n, c, h, w, k, s, p, d, ceil, ties) in max_cfgs:
    if ties:
        x = torch.randint(0, 3, (n, c, h, w), generator=g).float()
    else:
        x = randn(n, c, h, w)
    (out, idx), go, gx = with_grad(
        lambda t: F.max_pool2d(t, k, s, p, d, ceil_mode=ceil, return_indices=True), x)
    cfg = dict(kernel=pair(k), stride=pair(s), padding=pair(p), dilation=pair(d), ceil=ceil, ties=ties)
    cases.append((cfg, dict(x=x, out=out, indices=idx.float(), grad_out=go, grad_x=gx)))
save("maxpool2d", cases)

# ---------------------------------------------------------------- max unpool
# (N, C, H, W, kernel, stride, padding, output_size or None)
unpool_cfgs = [
    (2, 3, 6, 6, 2, 2, 0, None),
    (1, 5, 7, 7, 2, 2, 0, [7, 7]),
    (1, 5, 6, 8, 2, 2, 0, None),
    (2, 1, 9, 9, 3, 2, 1, None),
    (1, 3, 9, 8, 3, 2, 1, [9, 8]),
    (2, 17, 6, 6, 3, 3, 0, None),
    (1, 3, 6, 6, 3, 3, 0, [7, 8]),
    (1, 3, 13, 11, [3, 2], [2, 1], [1, 0], None),
    (3, 1, 4, 4, 2, 1, 0, None),
    (1, 3, 1, 1, 1, 1, 0, None),
    (2, 3, 11, 11, 4, 3, 2, [11, 11]),
    (1, 5, 8, 8, 2, 2, 1, None),
    (2, 3, 10, 7, 3, 2, 0, [9, 7]),
    (1, 1, 12, 12, 2, 2, 0, [13, 13]),
    (1, 3, 6, 9, [2, 3], [2, 3], 0, None),
    (2, 5, 7, 5, 2, 1, 1, None),
    (1, 3, 9, 9, 5, 2, 2, None),
    (1, 17, 4, 6, 2, 2, 0, None),
    (2, 1, 3, 3, 3, 1, 1, None),
    (1, 3, 8, 8, 4, 4, 0, [9, 10]),
]
cases = []
for (n, c, h, w, k, s, p, osz) in unpool_cfgs:
    x0 = randn(n, c, h, w)
    pooled, idx = F.max_pool2d(x0, k, s, p, return_indices=True)
    (out), go, gx = with_grad(lambda t: F.max_unpool2d(t, idx, k, s, p, output_size=osz), pooled)
    cfg = dict(kernel=pair(k), stride=pair(s), padding=pair(p), output_size=osz if osz else [])
    cases.append((cfg, dict(x=pooled, indices=idx.float(), out=out, grad_out=go, grad_x=gx)))
save("maxunpool2d", cases)

# ---------------------------------------------------------------- avg pool
# (N, C, H, W, kernel, stride, padding, ceil, count_include_pad, divisor_override)
avg_cfgs = [
    (2, 3, 5, 5, 2, 2, 0, True, True, None),
    (1, 3, 7, 7, 3, 2, 1, False, True, None),
    (1, 3, 7, 7, 3, 2, 1, False, False, None),
    (2, 5, 7, 9, 3, 2, 1, True, True, None),
    (2, 5, 7, 9, 3, 2, 1, True, False, None),
    (1, 1, 6, 6, 3, 3, 1, True, True, None),    # ceil drops a window; clipped at in+p
    (1, 1, 6, 6, 3, 3, 1, True, False, None),
    (1, 17, 8, 8, 4, 3, 2, True, True, None),   # ceil window runs past in+p
    (1, 17, 8, 8, 4, 3, 2, True, False, None),
    (2, 3, 9, 7, [3, 2], [2, 1], [1, 0], False, True, None),
    (2, 3, 9, 7, [3, 2], [2, 1], [1, 1], True, False, None),
    (1, 3, 1, 1, 1, 1, 0, False, True, None),
    (1, 3, 13, 13, 5, 4, 2, True, True, None),
    (1, 3, 13, 13, 5, 4, 2, True, False, None),
    (3, 1, 11, 5, 2, 2, 1, True, True, None),
    (3, 1, 11, 5, 2, 2, 1, True, False, None),
    (1, 5, 7, 7, 3, 2, 1, False, True, 5),
    (1, 5, 7, 7, 3, 2, 1, True, False, 2),
    (2, 3, 12, 10, 3, 1, 1, False, True, None),
    (1, 3, 4, 6, [2, 4], [2, 3], [1, 2], True, False, None),
    (2, 3, 5, 5, 5, 1, 2, False, False, None),
    (1, 1, 10, 10, 3, 3, 0, True, True, None),
]
cases = []
for (n, c, h, w, k, s, p, ceil, cip, div) in avg_cfgs:
    x = randn(n, c, h, w)
    out, go, gx = with_grad(lambda t: F.avg_pool2d(t, k, s, p, ceil_mode=ceil, count_include_pad=cip,
                                                    divisor_override=div), x)
    cfg = dict(kernel=pair(k), stride=pair(s), padding=pair(p), ceil=ceil, count_include_pad=cip,
               divisor=div if div else 0)
    cases.append((cfg, dict(x=x, out=out, grad_out=go, grad_x=gx)))
save("avgpool2d", cases)

# ---------------------------------------------------------------- adaptive avg pool
# (N, C, H, W, outH, outW)
adaptive_cfgs = [
    (2, 3, 7, 7, 1, 1), (1, 3, 7, 7, 3, 3), (1, 5, 10, 10, 3, 3), (2, 3, 13, 11, 4, 5),
    (1, 17, 5, 5, 7, 7), (1, 3, 3, 5, 5, 2), (2, 1, 1, 1, 3, 3), (1, 3, 9, 9, 9, 9),
    (1, 3, 8, 12, 6, 6), (3, 1, 11, 7, 2, 3), (1, 5, 6, 6, 4, 4), (1, 3, 13, 13, 6, 5),
    (2, 3, 5, 9, 1, 4), (1, 1, 12, 12, 5, 7), (1, 3, 2, 2, 3, 1), (2, 5, 7, 4, 7, 4),
    (1, 3, 11, 11, 2, 2), (1, 17, 3, 3, 1, 1), (1, 3, 9, 5, 4, 3), (2, 3, 4, 13, 3, 6),
]
cases = []
for (n, c, h, w, oh, ow) in adaptive_cfgs:
    x = randn(n, c, h, w)
    out, go, gx = with_grad(lambda t: F.adaptive_avg_pool2d(t, (oh, ow)), x)
    cases.append((dict(output_size=[oh, ow]), dict(x=x, out=out, grad_out=go, grad_x=gx)))
save("adaptive_avgpool2d", cases)

# ---------------------------------------------------------------- bilinear interpolation
# (N, C, H, W, size or None, scale or None, align_corners)
interp_cfgs = [
    (1, 1, 2, 2, [4, 4], None, False),
    (1, 1, 2, 2, [4, 4], None, True),
    (2, 3, 5, 5, [11, 9], None, False),
    (2, 3, 5, 5, [11, 9], None, True),
    (1, 3, 13, 11, [5, 4], None, False),        # down
    (1, 3, 13, 11, [5, 4], None, True),
    (1, 5, 7, 7, None, [2.0, 2.0], False),
    (1, 5, 7, 7, None, [2.0, 2.0], True),
    (2, 3, 9, 7, None, [0.5, 0.5], False),       # ratio 2, not 9/4
    (2, 3, 9, 7, None, [0.5, 0.5], True),
    (1, 3, 5, 7, None, [1.7, 1.7], False),       # ratio 1/1.7, not 5/8
    (1, 3, 5, 7, None, [1.7, 1.7], True),
    (1, 3, 6, 5, None, [1.7, 0.6], False),
    (1, 1, 1, 1, [5, 3], None, False),           # 1x1 input
    (1, 1, 1, 1, [5, 3], None, True),
    (2, 3, 7, 5, [1, 1], None, False),           # 1x1 output
    (2, 3, 7, 5, [1, 1], None, True),
    (1, 17, 4, 6, [4, 6], None, False),          # same size: copy
    (1, 3, 10, 10, None, [1.05, 1.05], False),   # out == in with a scale: still a copy
    (1, 3, 3, 3, [13, 1], None, False),
    (1, 3, 8, 8, [3, 12], None, True),
    (3, 1, 6, 6, [9, 9], None, False),
    (1, 3, 5, 9, [7, 7], None, False),
    (1, 5, 7, 7, None, [3.0, 3.0], False),
]
cases = []
for (n, c, h, w, size, scale, ac) in interp_cfgs:
    x = randn(n, c, h, w)
    if size is not None:
        out, go, gx = with_grad(lambda t: F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=ac), x)
    else:
        out, go, gx = with_grad(lambda t: F.interpolate(t, scale_factor=tuple(scale), mode="bilinear",
                                                        align_corners=ac), x)
    cfg = dict(size=size if size else [], scale=scale if scale else [], align_corners=ac)
    cases.append((cfg, dict(x=x, out=out, grad_out=go, grad_x=gx)))
save("interpolate_bilinear", cases)

# ---------------------------------------------------------------- crops
# Caffe crop: (N, C, H, W, refH, refW, offH, offW); center crop: (N, C, H, W, h, w) via torchvision
crop_cfgs = [
    (2, 3, 7, 7, 5, 5, 1, 1), (1, 3, 9, 8, 4, 3, 5, 2), (1, 1, 5, 5, 5, 5, 0, 0),
    (2, 17, 6, 9, 1, 1, 5, 8), (1, 5, 13, 11, 7, 6, 3, 0), (3, 1, 4, 4, 2, 3, 2, 1),
    (1, 3, 10, 12, 10, 1, 0, 11), (1, 3, 8, 8, 3, 3, 0, 5), (2, 3, 5, 3, 1, 3, 4, 0),
    (1, 3, 12, 12, 8, 8, 4, 4),
]
center_cfgs = [
    (1, 3, 5, 5, 2, 2), (2, 3, 4, 4, 1, 1), (1, 3, 7, 8, 3, 3), (1, 1, 6, 6, 3, 4),
    (2, 5, 9, 11, 4, 6), (1, 3, 3, 3, 4, 6),   # larger than the image: zero padded
    (1, 3, 5, 4, 5, 4), (1, 1, 2, 7, 5, 2), (1, 3, 13, 13, 10, 1), (1, 17, 3, 5, 1, 5),
]
cases = []
for (n, c, h, w, rh, rw, oh, ow) in crop_cfgs:
    x = randn(n, c, h, w)
    out, go, gx = with_grad(lambda t: t[:, :, oh:oh + rh, ow:ow + rw], x)
    cases.append((dict(kind="caffe", size=[rh, rw], offset=[oh, ow]), dict(x=x, out=out, grad_out=go, grad_x=gx)))
for (n, c, h, w, ch, cw) in center_cfgs:
    x = randn(n, c, h, w)
    out, go, gx = with_grad(lambda t: TF.center_crop(t, [ch, cw]), x)
    cases.append((dict(kind="center", size=[ch, cw], offset=[]), dict(x=x, out=out, grad_out=go, grad_x=gx)))
save("crop", cases)

# ---------------------------------------------------------------- FCN bilinear kernel
# The seed's numpy bilinear_kernel (ogrid tent on the diagonal), and a conv_transpose2d
# with it, k4 s2 p1, against F.interpolate (equal in the interior only).
import numpy as np


def bilinear_kernel(in_channels, out_channels, kernel_size):
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = np.ogrid[:kernel_size, :kernel_size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    weight = np.zeros((in_channels, out_channels, kernel_size, kernel_size), dtype="float32")
    weight[range(in_channels), range(out_channels), :, :] = filt
    return torch.from_numpy(weight)


cases = []
for (c, k) in [(3, 1), (3, 2), (3, 3), (2, 4), (2, 5), (2, 6), (2, 7), (3, 16), (1, 32), (1, 64)]:
    cases.append((dict(channels=c, kernel=k), dict(weight=bilinear_kernel(c, c, k))))
for (n, c, h, w) in [(1, 3, 5, 5), (2, 2, 4, 7)]:
    x = randn(n, c, h, w)
    wt = bilinear_kernel(c, c, 4)
    up = F.conv_transpose2d(x, wt, stride=2, padding=1)
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    cases.append((dict(channels=c, kernel=4), dict(weight=wt, x=x, deconv=up, interp=ref)))
save("bilinear_kernel", cases)
