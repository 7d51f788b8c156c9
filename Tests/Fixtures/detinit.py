"""Deterministic parameter initialisation shared with the Swift tests.

Both sides fill every parameter and buffer of a model from its dotted name alone, so a
model's weights need not be stored in a fixture (only inputs and outputs are): the
tensor named `name` is filled with uniform samples of FCNRandom(seed ^ fnv1a64(name)),
the library's SplitMix64 generator, `u = float32(x >> 40) * 2**-24`, mapped to
`low + (high - low) * u` in float32. Swift side: Tests/FCNTests/Support/DeterministicInit.swift.

Ranges (chosen to keep activations O(1) through deep nets):
  *.weight of a conv/linear (rank >= 2): +-sqrt(3 / fan_in)  (unit variance per output)
  *.bias: +-0.1;  batch norm weight: [0.5, 1.5);  bias: +-0.1
  running_mean: +-0.1;  running_var: [0.5, 1.5);  num_batches_tracked: left as is
  frozen bilinear upsampling weights (upscore*, upsample_*): left as built (bilinear)
"""
import numpy as np
import torch

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for b in s.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def splitmix_uniform(seed, n):
    """n uniforms in [0, 1) as float32, exactly as FCNRandom.nextUniform()."""
    idx = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + idx * np.uint64(GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def fill(name, shape, low, high, seed):
    u = splitmix_uniform(seed ^ fnv1a64(name), int(np.prod(shape)) if len(shape) else 1)
    low32, span = np.float32(low), np.float32(high) - np.float32(low)
    return torch.from_numpy((low32 + span * u).astype(np.float32).reshape(shape))


def is_upsampling(name):
    return name.split(".")[-2].startswith(("upscore", "upsample"))


def range_for(name, shape):
    leaf = name.split(".")[-1]
    if leaf == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        b = float(np.sqrt(3.0 / fan_in))
        return -b, b
    if leaf == "weight":        # batch norm scale
        return 0.5, 1.5
    if leaf == "running_var":
        return 0.5, 1.5
    return -0.1, 0.1            # biases, running_mean


def deterministic_init(model, seed):
    sd = model.state_dict()
    with torch.no_grad():
        for name, t in sd.items():
            if name.endswith("num_batches_tracked") or is_upsampling(name):
                continue
            low, high = range_for(name, list(t.shape))
            t.copy_(fill(name, list(t.shape), low, high, seed))
    return model
