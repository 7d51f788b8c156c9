#!/usr/bin/env python3
"""PyTorch / numpy counterpart of fcn-bench: the same rows, the same shapes, the same output.

    python Tests/Benchmarks/pytorch_bench.py [--threads N] [--json] [--filter TEXT] [--repeats N]

Rows: `sgemm S` (torch.mm, S x S x S), `numpy sgemm S` (numpy.matmul, float32), and
`gemm <layer> 500`: the im2col GEMM of each VGG16-FCN layer at a 500 x 500 input
(M = Cout, K = Cin*kh*kw, N = Hout*Wout; conv1_1 pad 100, other 3x3 convs pad 1,
2x2/2 ceil-mode pools, fc6 7x7 valid), computed as torch.mm([M, K], [K, N]).
Timing: monotonic clock, one warm-up run, best of N. --json prints
{"threads": N, "rows": [{"row": ..., "ms": ..., "gflops": ...}, ...]} like fcn-bench.
"""
import argparse
import os
import sys


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true")
    p.add_argument("--filter", default=None)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args()


ARGS = parse()
# BLAS thread pools read these when the libraries load: set them before importing numpy/torch.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(ARGS.threads)


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []

    def wants(self, name):
        return self.args.filter is None or self.args.filter in name

    def run(self, name, flops, fn):
        if not self.wants(name):
            return
        fn()
        best = float("inf")
        for _ in range(max(1, self.args.repeats)):
            t0 = time.perf_counter_ns()
            fn()
            best = min(best, (time.perf_counter_ns() - t0) / 1e6)
        gflops = flops / (best * 1e6) if flops > 0 else 0.0
        self.rows.append({"row": name, "ms": round(best, 3), "gflops": round(gflops, 1)})
        if not self.args.json:
            print(f"{name:<28}{best:>12.3f}{gflops:>10.1f}", flush=True)

    def header(self):
        if not self.args.json:
            print(f"pytorch_bench (torch {torch.__version__}, numpy {np.__version__}), threads = {self.args.threads}")
            print(f"{'row':<28}{'ms':>12}{'GFLOP/s':>10}")

    def finish(self):
        if self.args.json:
            print(json.dumps({"threads": self.args.threads, "rows": self.rows}))


def fcn_layer_gemms(size):
    """(name, M, N, K) of the VGG16-FCN im2col GEMMs, duplicates (conv3_3 == conv3_2, ...) dropped."""
    rows, seen = [], set()
    state = {"h": size, "cin": 3}

    def conv(name, cout, kernel, pad):
        state["h"] = state["h"] + 2 * pad - kernel + 1
        m, n, k = cout, state["h"] ** 2, state["cin"] * kernel * kernel
        if (m, n, k) not in seen:
            rows.append((f"gemm {name} {size}", m, n, k))
            seen.add((m, n, k))
        state["cin"] = cout

    def pool():
        state["h"] = (state["h"] + 1) // 2  # 2x2 stride 2, ceil mode

    conv("conv1_1", 64, 3, 100); conv("conv1_2", 64, 3, 1); pool()
    conv("conv2_1", 128, 3, 1); conv("conv2_2", 128, 3, 1); pool()
    for i in (1, 2, 3):
        conv(f"conv3_{i}", 256, 3, 1)
    pool()
    for i in (1, 2, 3):
        conv(f"conv4_{i}", 512, 3, 1)
    pool()
    for i in (1, 2, 3):
        conv(f"conv5_{i}", 512, 3, 1)
    pool()
    conv("fc6", 4096, 7, 0)
    conv("fc7", 4096, 1, 0)
    conv("score_fr", 21, 1, 0)
    return rows


def main():
    bench = Bench(ARGS)
    bench.header()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for s in (256, 512, 1024, 2048):
            name = f"sgemm {s}"
            if bench.wants(name):
                a = torch.rand(s, s, generator=gen) * 2 - 1
                b = torch.rand(s, s, generator=gen) * 2 - 1
                out = torch.empty(s, s)
                bench.run(name, 2.0 * s ** 3, lambda: torch.mm(a, b, out=out))
        for s in (256, 512, 1024, 2048):
            name = f"numpy sgemm {s}"
            if bench.wants(name):
                rng = np.random.default_rng(0)
                a = rng.uniform(-1, 1, (s, s)).astype(np.float32)
                b = rng.uniform(-1, 1, (s, s)).astype(np.float32)
                out = np.empty((s, s), np.float32)
                bench.run(name, 2.0 * s ** 3, lambda: np.matmul(a, b, out=out))
        for name, m, n, k in fcn_layer_gemms(500):
            if not bench.wants(name):
                continue
            a = torch.rand(m, k, generator=gen) * 2 - 1
            b = torch.rand(k, n, generator=gen) * 2 - 1
            out = torch.empty(m, n)
            bench.run(name, 2.0 * m * n * k, lambda: torch.mm(a, b, out=out))
            del a, b, out
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
