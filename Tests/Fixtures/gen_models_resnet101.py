"""Extra ResNet fixtures (models_resnet101.safetensors); weights are not stored, both sides
fill them with detinit.deterministic_init(model, 2015).
    python Tests/Fixtures/gen_models_resnet101.py
Cases:
  0. torchvision fcn_resnet101, 5 classes, aux on: state-dict names (in order) and parameter
     count, and a small eval-mode forward on [1, 3, 24, 20] (outputs "output", "aux").
  1. seed 002's ResNet-34 FCN-8s (gen_models.ResNet34FCN), 3 classes, in TRAINING mode
     (batch norm on batch statistics) on [2, 3, 64, 32] (see training_input): output, the running statistics of
     stage1.1 and stage3.2.bn2 after the step, and the gradients of a few parameters for
     the loss sum(output * R), R = pattern(shape) (not stored). Computed in float64 (the
     exact reference; PyTorch's own float32 gradients differ from it by up to about 2e-3,
     recorded as torch_float32_grad_error: training-mode batch norm over 4 values per
     channel in layer4 is ill-conditioned).
  2. torchvision resnet18 classifier with 10 classes (avgpool + fc): names, parameter count
     and an eval-mode forward on [1, 3, 40, 33].
"""
import sys

import torch
import torchvision

from detinit import deterministic_init
from fixturelib import save
from gen_models import ResNet34FCN

SEED = 2015
TRAIN_INDEX = 73
GRADS = ["stage1.0.weight", "stage1.1.weight", "stage2.0.downsample.1.weight", "stage3.2.bn2.bias",
         "scores1.bias", "scores3.weight", "upsample_2x.weight", "upsample_8x.weight"]


def pattern(shape):
    """The upstream gradient, not stored: element i (row-major) is ((i * 7919) % 17 - 8) / 8."""
    n = 1
    for d in shape:
        n *= d
    i = torch.arange(n, dtype=torch.int64)
    return (((i * 7919) % 17 - 8).to(torch.float32) / 8).reshape(shape)


def relu_margin(x):
    """Smallest |input| of any ReLU of the FCN-8s (float64, training mode) for input x."""
    m = deterministic_init(ResNet34FCN(3), SEED).train().double()
    mins = []
    for mod in m.modules():
        if isinstance(mod, torch.nn.ReLU):
            mod.register_forward_pre_hook(lambda _, inp: mins.append(inp[0].detach().abs().min().item()))
    with torch.no_grad():
        m(x.double())
    return min(mins)


def training_input():
    """The gradient check input: sample TRAIN_INDEX of randn(2, 3, 64, 32) from a generator
    seeded 1, chosen (by `--search`, over 200 samples) for the largest distance of every
    ReLU input from the kink. A ReLU input closer to 0 than the float32 rounding noise of
    the forward pass (about 1e-6..1e-5 here) may switch sides between PyTorch and this
    library and change the gradients of all earlier layers by up to a few percent: the
    first sample tried had an input at -2.4e-6 in layer2 and gave 2.5e-2 errors there.
    The margin of the chosen sample is 2.8e-5."""
    g = torch.Generator().manual_seed(1)
    samples = 200 if "--search" in sys.argv else TRAIN_INDEX + 1
    best = None
    for i in range(samples):
        x = torch.randn(2, 3, 64, 32, generator=g)
        if i == TRAIN_INDEX or "--search" in sys.argv:
            margin = relu_margin(x)
            if best is None or margin > best[1]:
                best = (x, margin, i)
    print(f"gradient input: sample {best[2]}, ReLU margin {best[1]:.3g}")
    return best[0], best[1]


def meta(model, name, **extra):
    return {"model": name, "seed": SEED, "params": sum(p.numel() for p in model.parameters()),
            "names": list(model.state_dict().keys()), **extra}


def main():
    torch.manual_seed(0)
    cases = []

    m = torchvision.models.segmentation.fcn_resnet101(weights=None, weights_backbone=None,
                                                      num_classes=5, aux_loss=True)
    m = deterministic_init(m, SEED).eval()
    x = torch.randn(1, 3, 24, 20)
    with torch.no_grad():
        out = m(x)
    cases.append((meta(m, "fcn_resnet101", classes=5, aux=True),
                  {"input": x, "output": out["out"], "aux": out["aux"]}))

    x, margin = training_input()
    steps = {}
    for dtype in [torch.float64, torch.float32]:
        m = deterministic_init(ResNet34FCN(3), SEED).train().to(dtype)
        y = m(x.to(dtype))
        (y * pattern(y.shape).to(dtype)).sum().backward()
        ts = {"input": x, "output": y}
        sd = m.state_dict()
        for k in ["stage1.1", "stage3.2.bn2"]:
            ts[k + ".running_mean"] = sd[k + ".running_mean"]
            ts[k + ".running_var"] = sd[k + ".running_var"]
        params = dict(m.named_parameters())
        for k in GRADS:
            ts["grad." + k] = params[k].grad
        steps[dtype] = ts
    ref, f32 = steps[torch.float64], steps[torch.float32]
    torch_err = max(((f32[k].double() - ref[k]).abs().max() / max(1.0, ref[k].abs().max().item())).item()
                    for k in ref if k.startswith("grad."))
    print(f"PyTorch float32 gradients vs float64: worst relative error {torch_err:.3g}")
    cases.append((meta(m, "resnet34_fcn8s_train", classes=3, grads=GRADS, relu_margin=margin,
                       reference="float64", torch_float32_grad_error=torch_err), ref))

    m = deterministic_init(torchvision.models.resnet18(weights=None, num_classes=10), SEED).eval()
    x = torch.randn(1, 3, 40, 33)
    with torch.no_grad():
        y = m(x)
    cases.append((meta(m, "resnet18", classes=10), {"input": x, "output": y}))

    save("models_resnet101", cases)


if __name__ == "__main__":
    main()
