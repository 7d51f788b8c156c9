"""Shared helpers for the golden-fixture scripts (gen_*.py).

Each script builds a list of cases, each a (config dict, {name: tensor}) pair, and calls
`save(name, cases)`, which writes Fixtures/<name>.safetensors with tensors named
"<case>.<name>" and the configs as JSON in __metadata__["cases"].
Run with a Python that has torch and safetensors, from any directory:
    python Tests/Fixtures/gen_conv.py
"""
import json
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, cases):
    tensors, configs = {}, []
    for i, (cfg, ts) in enumerate(cases):
        configs.append(cfg)
        for k, v in ts.items():
            tensors[f"{i}.{k}"] = v.detach().to(torch.float32).contiguous()
    path = os.path.join(HERE, name + ".safetensors")
    save_file(tensors, path, metadata={"cases": json.dumps(configs)})
    size = os.path.getsize(path)
    print(f"wrote {path}: {len(cases)} cases, {size / 1024:.1f} KiB")


def rand(*shape, seed=None, gen=None):
    """Normal samples from a torch generator (deterministic across runs)."""
    return torch.randn(*shape, generator=gen)
