"""Fixtures for the layers and the safetensors reader/writer (Tests/FCNTests/Layers,
Tests/FCNTests/IO/SafeTensorsTests.swift).

Writes:
  st_dtype_{f32,f16,bf16,f64}.safetensors  the same values stored by safetensors.torch.save_file
                                           in each float dtype (the F32 one has __metadata__)
  st_dtype_ints.safetensors                I64/I32/I16/I8/U8/BOOL tensors
  st_dtype_expected.safetensors            F32 reference: <dtype>.<name> = t.to(dtype).float(),
                                           and the float32 sources the writer tests convert
  layers.safetensors                       layer cases (fixturelib format): weights, input, output,
                                           parameter counts from torch
  tvlike_state.safetensors                 state_dict() of a small torchvision-style model
                                           (int64 num_batches_tracked included)
  tvlike_io.safetensors                    its input and eval-mode output; key order in metadata
Run: python Tests/Fixtures/gen_safetensors.py
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from fixturelib import HERE, save

torch.manual_seed(0)
g = torch.Generator().manual_seed(1234)


def out(name):
    return os.path.join(HERE, name + ".safetensors")


# ---------------------------------------------------------------- dtypes
special = torch.tensor([0.0, -0.0, 1.0, -2.5, 0.1, 1 / 3, 65504.0, 65520.0, 1e5, -1e-8,
                        6e-8, 3e-5, 6.1e-5, 5.96e-8, 2.98e-8, 1.00048828125, 1.0009765625,
                        1.00146484375, 3.0e38, float("inf"), float("-inf"), float("nan"),
                        1.00390625, 1.005859375, 1.0078125, -7.0e-39, 1e-40], dtype=torch.float64)
matrix = torch.randn(2, 3, 4, generator=g, dtype=torch.float64) * 10
ties = (torch.arange(0, 64, dtype=torch.float64) / 2048 + 1)            # many exact ties for f16
bf_ties = (torch.arange(0, 64, dtype=torch.float64) / 256 + 1)
sources = {"special": special, "matrix": matrix, "ties": ties, "bf_ties": bf_ties}

expected = {}
for dt, name in [(torch.float32, "f32"), (torch.float16, "f16"), (torch.bfloat16, "bf16"), (torch.float64, "f64")]:
    ts = {k: v.to(torch.float32).to(dt).contiguous() for k, v in sources.items()}
    meta = {"format": "pt", "written_by": "safetensors.torch.save_file", "dtype": name} if name == "f32" else None
    save_file(ts, out("st_dtype_" + name), metadata=meta)
    for k, v in ts.items():
        expected[f"{name}.{k}"] = v.to(torch.float32)
for k, v in sources.items():
    expected[f"source.{k}"] = v.to(torch.float32)
save_file(expected, out("st_dtype_expected"))

ints = {
    "i64": torch.tensor([0, -1, 7, 16777216, -123456], dtype=torch.int64),
    "i32": torch.tensor([[1, -2], [3, 2147483], [0, -9]], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, 0, -1], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 128], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True], dtype=torch.bool),
    "scalar": torch.tensor(42, dtype=torch.int64),
}
save_file(ints, out("st_dtype_ints"))

# ---------------------------------------------------------------- layers
def count(m):
    return sum(p.numel() for p in m.parameters())


cases = []
conv_cfgs = [
    dict(cin=3, cout=5, k=3, stride=1, padding=1, dilation=1, groups=1, bias=True, n=2, h=7, w=6),
    dict(cin=4, cout=6, k=3, stride=2, padding=0, dilation=1, groups=2, bias=False, n=1, h=9, w=8),
    dict(cin=3, cout=4, k=[3, 2], stride=[1, 2], padding=[2, 1], dilation=[2, 1], groups=1, bias=True, n=1, h=8, w=7),
    dict(cin=6, cout=6, k=3, stride=1, padding=1, dilation=1, groups=6, bias=True, n=2, h=5, w=5),
    dict(cin=2, cout=3, k=1, stride=1, padding=0, dilation=1, groups=1, bias=True, n=3, h=4, w=3),
    dict(cin=3, cout=2, k=7, stride=1, padding=12, dilation=1, groups=1, bias=True, n=1, h=3, w=2),
]
for c in conv_cfgs:
    m = nn.Conv2d(c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"], dilation=c["dilation"],
                  groups=c["groups"], bias=c["bias"])
    x = torch.randn(c["n"], c["cin"], c["h"], c["w"], generator=g)
    ts = {"weight": m.weight, "input": x, "output": m(x)}
    if c["bias"]:
        ts["bias"] = m.bias
    cases.append((dict(layer="conv2d", params=count(m), **c), ts))

convt_cfgs = [
    dict(cin=3, cout=2, k=4, stride=2, padding=1, output_padding=0, dilation=1, groups=1, bias=True, n=2, h=3, w=4),
    dict(cin=4, cout=6, k=3, stride=2, padding=0, output_padding=1, dilation=1, groups=2, bias=False, n=1, h=3, w=3),
    dict(cin=2, cout=2, k=16, stride=8, padding=4, output_padding=0, dilation=1, groups=1, bias=False, n=1, h=2, w=3),
    dict(cin=2, cout=3, k=3, stride=1, padding=1, output_padding=0, dilation=2, groups=1, bias=True, n=1, h=4, w=4),
]
for c in convt_cfgs:
    m = nn.ConvTranspose2d(c["cin"], c["cout"], c["k"], stride=c["stride"], padding=c["padding"],
                           output_padding=c["output_padding"], dilation=c["dilation"], groups=c["groups"], bias=c["bias"])
    x = torch.randn(c["n"], c["cin"], c["h"], c["w"], generator=g)
    ts = {"weight": m.weight, "input": x, "output": m(x)}
    if c["bias"]:
        ts["bias"] = m.bias
    cases.append((dict(layer="conv_transpose2d", params=count(m), **c), ts))

for c in [dict(fin=7, fout=5, bias=True, shape=[3, 7]), dict(fin=4, fout=3, bias=False, shape=[2, 3, 4])]:
    m = nn.Linear(c["fin"], c["fout"], bias=c["bias"])
    x = torch.randn(*c["shape"], generator=g)
    ts = {"weight": m.weight, "input": x, "output": m(x)}
    if c["bias"]:
        ts["bias"] = m.bias
    cases.append((dict(layer="linear", params=count(m), **c), ts))

for training in [False, True]:
    for momentum in ([0.1] if not training else [0.1, None]):
        m = nn.BatchNorm2d(5, momentum=momentum)
        with torch.no_grad():
            m.weight.copy_(torch.rand(5, generator=g) + 0.5)
            m.bias.copy_(torch.randn(5, generator=g))
            m.running_mean.copy_(torch.randn(5, generator=g))
            m.running_var.copy_(torch.rand(5, generator=g) + 0.5)
            m.num_batches_tracked.fill_(3)
        ts = {"weight": m.weight, "bias": m.bias, "running_mean": m.running_mean.clone(),
              "running_var": m.running_var.clone()}
        x = torch.randn(2, 5, 4, 3, generator=g) * 2 + 1
        m.train(training)
        ts["input"] = x
        ts["output"] = m(x)
        ts["new_running_mean"] = m.running_mean
        ts["new_running_var"] = m.running_var
        cases.append((dict(layer="batchnorm2d", params=count(m), training=training,
                           momentum=momentum if momentum is not None else -1,
                           num_batches_tracked=int(m.num_batches_tracked)), ts))

pool_cfgs = [
    dict(layer="maxpool2d", k=2, stride=2, padding=0, ceil=True, h=7, w=5),
    dict(layer="maxpool2d", k=3, stride=2, padding=1, ceil=False, h=8, w=9),
    dict(layer="avgpool2d", k=3, stride=2, padding=1, ceil=True, count_include_pad=False, h=6, w=7),
    dict(layer="avgpool2d", k=2, stride=1, padding=0, ceil=False, count_include_pad=True, h=4, w=5),
    dict(layer="adaptiveavgpool2d", out=[3, 2], h=7, w=5),
]
for c in pool_cfgs:
    x = torch.randn(2, 3, c["h"], c["w"], generator=g)
    if c["layer"] == "maxpool2d":
        m = nn.MaxPool2d(c["k"], c["stride"], c["padding"], ceil_mode=c["ceil"])
    elif c["layer"] == "avgpool2d":
        m = nn.AvgPool2d(c["k"], c["stride"], c["padding"], ceil_mode=c["ceil"], count_include_pad=c["count_include_pad"])
    else:
        m = nn.AdaptiveAvgPool2d(c["out"])
    cases.append((dict(params=0, **c), {"input": x, "output": m(x)}))

# Parameter counts of containers (no tensors needed beyond a dummy).
seq = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1, bias=False),
                    nn.Dropout(0.5), nn.Linear(10, 2))
cases.append((dict(layer="sequential_count", params=count(seq),
                   state_keys=list(seq.state_dict().keys())), {"dummy": torch.zeros(1)}))
save("layers", cases)


# ---------------------------------------------------------------- torchvision-style model
class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(6)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(Block(6), Block(6))

    def forward(self, x):
        return self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))


class TVLike(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.classifier = nn.Sequential(nn.Conv2d(6, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5), nn.ReLU(),
                                        nn.Dropout(0.1), nn.Conv2d(5, 3, 1))

    def forward(self, x):
        return self.classifier(self.backbone(x))


model = TVLike()
with torch.no_grad():
    for mod in model.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.bias.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_mean.copy_(torch.randn(mod.num_features, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(mod.num_features, generator=g) + 0.5)
            mod.num_batches_tracked.fill_(17)
model.eval()
x = torch.randn(2, 3, 13, 11, generator=g)
y = model(x)
sd = model.state_dict()
assert sd["backbone.bn1.num_batches_tracked"].dtype == torch.int64
save_file({k: v.contiguous() for k, v in sd.items()}, out("tvlike_state"))
for p in model.backbone.parameters():
    p.requires_grad_(False)
trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
save_file({"input": x, "output": y.detach()}, out("tvlike_io"),
          metadata={"keys": json.dumps(list(sd.keys())), "params": str(count(model)),
                    "trainable_backbone_frozen": str(trainable)})
for n in ["st_dtype_f32", "st_dtype_f16", "st_dtype_bf16", "st_dtype_f64", "st_dtype_ints", "st_dtype_expected",
          "tvlike_state", "tvlike_io"]:
    print(f"wrote {n}.safetensors: {os.path.getsize(out(n)) / 1024:.1f} KiB")
