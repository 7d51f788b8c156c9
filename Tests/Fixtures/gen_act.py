"""Golden fixtures for activations, softmax, batch norm and linear (PyTorch autograd).

Writes act.safetensors, softmax.safetensors, batchnorm.safetensors, linear.safetensors.
Each case stores its inputs, the output, a random upstream gradient grad_out and the
PyTorch autograd gradients for it.
    python Tests/Fixtures/gen_act.py
"""
import torch
import torch.nn.functional as F

from fixturelib import save

torch.manual_seed(0)
SHAPES = [[7], [3, 5], [1, 1, 1, 1], [2, 3, 4, 5], [1, 17, 3, 3], [2, 21, 2, 3], [3, 1, 6, 2],
          [1, 5, 9, 11], [4, 3, 2, 2], [2, 2, 1, 13], [1, 3, 13, 1], [5, 5], [2, 7, 3],
          [1, 21, 4, 4], [2, 3, 4, 3], [3, 4, 5], [1, 1, 9, 7], [6, 1], [2, 5, 3, 3], [1, 8, 3, 5],
          [2, 17, 2, 3], [11]]


def activation_cases():
    cases = []
    ops = [("relu", None), ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", 1.5),
           ("sigmoid", None), ("tanh", None)]
    for op, slope in ops:
        for k, shape in enumerate(SHAPES):
            scale = [1.0, 3.0, 30.0, 1e4][k % 4] if op in ("sigmoid", "tanh") else 2.0
            x = torch.randn(*shape) * scale
            flat = x.view(-1)
            flat[:: 5] = 0.0  # exact zeros: kink of relu / leaky relu
            x = x.clone().requires_grad_(True)
            if op == "relu":
                y = F.relu(x)
            elif op == "leaky_relu":
                y = F.leaky_relu(x, slope)
            elif op == "sigmoid":
                y = torch.sigmoid(x)
            else:
                y = torch.tanh(x)
            g = torch.randn(*shape)
            y.backward(g)
            cfg = {"op": op, "shape": shape, "scale": scale}
            if slope is not None:
                cfg["slope"] = slope
            cases.append((cfg, {"x": x, "y": y, "grad_out": g, "grad_x": x.grad}))
    return cases


def softmax_cases():
    cases = []
    configs = []
    for k, shape in enumerate(SHAPES):
        rank = len(shape)
        axes = [a for a in ([1, -1, 0] if rank > 1 else [0, -1])]
        axis = axes[k % len(axes)]
        scale = [1.0, 5.0, 1e4][k % 3]
        configs.append((shape, axis, scale))
    for log in (False, True):
        for shape, axis, scale in configs:
            x = (torch.randn(*shape) * scale).requires_grad_(True)
            y = F.log_softmax(x, dim=axis) if log else F.softmax(x, dim=axis)
            g = torch.randn(*shape)
            y.backward(g)
            cases.append(({"log": log, "shape": shape, "axis": axis, "scale": scale},
                          {"x": x, "y": y, "grad_out": g, "grad_x": x.grad}))
    return cases


def batchnorm_cases():
    cases = []
    shapes = [[4, 3], [2, 5], [3, 1, 4, 4], [2, 3, 5, 7], [1, 17, 3, 3], [2, 21, 2, 3], [4, 5, 1, 1],
              [1, 3, 6, 5], [5, 2], [2, 8, 4, 4], [3, 4, 3, 2]]
    k = 0
    for shape in shapes:
        for training, affine in ((True, True), (True, False), (False, True), (False, False)):
            if (k % 2 == 1) and not training:
                k += 1
                continue  # keep the file small: 3 of 4 modes on alternating shapes
            C = shape[1]
            momentum = [0.1, 0.3, 1.0, 0.0][k % 4]
            eps = [1e-5, 1e-3][k % 2]
            x = (torch.randn(*shape) * 2 + 1.5).requires_grad_(True)
            w = (torch.rand(C) + 0.5).requires_grad_(True) if affine else None
            b = torch.randn(C).requires_grad_(True) if affine else None
            rm0 = torch.randn(C) * 0.5
            rv0 = torch.rand(C) + 0.5
            rm, rv = rm0.clone(), rv0.clone()
            y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=momentum, eps=eps)
            g = torch.randn(*shape)
            y.backward(g)
            ts = {"x": x, "running_mean": rm0, "running_var": rv0, "y": y, "grad_out": g, "grad_x": x.grad,
                  "new_running_mean": rm, "new_running_var": rv}
            if affine:
                ts.update({"weight": w, "bias": b, "grad_weight": w.grad, "grad_bias": b.grad})
            cases.append(({"shape": shape, "training": training, "affine": affine,
                           "momentum": momentum, "eps": eps}, ts))
            k += 1
    return cases


def linear_cases():
    cases = []
    configs = [([5, 3], -1, 4, True), ([2, 7], -1, 1, False), ([1, 1], -1, 1, True), ([6, 17], -1, 21, True),
               ([2, 3, 5], -1, 7, True), ([3, 2, 4, 9], -1, 5, False), ([1, 3, 4, 4], 1, 5, True),
               ([2, 21, 3, 3], 1, 17, True), ([2, 5, 2, 7], 1, 3, False), ([1, 1, 5, 5], 1, 4, True),
               ([3, 8, 1, 1], 1, 8, True), ([2, 3, 4], 1, 6, True), ([4, 3], 0, 2, True),
               ([2, 3, 4, 5], 2, 3, True), ([2, 3, 4, 5], 3, 2, False), ([1, 16, 7, 3], 1, 21, True),
               ([7], 0, 3, True), ([3, 4, 2], -2, 5, True), ([2, 9, 2, 2], 1, 1, True),
               ([5, 13], 1, 11, False), ([2, 4, 6, 6], 1, 4, True), ([3, 31], -1, 2, True)]
    for shape, axis, fout, has_bias in configs:
        fin = shape[axis]
        x = torch.randn(*shape).requires_grad_(True)
        w = (torch.randn(fout, fin) / fin ** 0.5).requires_grad_(True)
        b = torch.randn(fout).requires_grad_(True) if has_bias else None
        y = F.linear(x.movedim(axis, -1), w, b).movedim(-1, axis)
        g = torch.randn(*y.shape)
        y.backward(g)
        ts = {"x": x, "weight": w, "y": y, "grad_out": g, "grad_x": x.grad, "grad_weight": w.grad}
        if has_bias:
            ts.update({"bias": b, "grad_bias": b.grad})
        cases.append(({"shape": shape, "axis": axis, "out": fout, "bias": has_bias}, ts))
    return cases


if __name__ == "__main__":
    save("act", activation_cases())
    save("softmax", softmax_cases())
    save("batchnorm", batchnorm_cases())
    save("linear", linear_cases())
