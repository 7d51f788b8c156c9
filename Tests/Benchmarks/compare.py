#!/usr/bin/env python3
"""Side-by-side table of fcn-bench (swift-fcn) and pytorch_bench.py (PyTorch, onnxruntime).

    python Tests/Benchmarks/compare.py [--threads N] [--filter TEXT] [--repeats N] [--cpu]
                                       [--bench PATH] [--rounds R] [--memory] [--bf16]

Runs `fcn-bench --json` and `pytorch_bench.py --json` with the same thread count and
filter, `--rounds` times alternating (ours, theirs, ours, theirs, ...; the best time per
row is kept), then prints one table: our ms, PyTorch's ms and the ratio torch/ours, and for
the whole-network rows onnxruntime's ms (row `ort <name>`) and the ratio ort/ours, and OpenVINO's ratios in float32 (`ov-f32 <name>`)
and at its default precision (`ov <name>`: bf16 on CPUs with AVX512_BF16; pip install
openvino, else the columns stay empty). A ratio above 1 means swift-fcn is faster. `--memory` adds the peak resident set size of one
FCN-8s 500 x 500 inference in each runtime (ours without and with fcn-bench's packed-weight
cache, which packs at the second call) (`/usr/bin/time -v`, a process per runtime
running only that row). `--bf16` also runs fcn-bench with `--precision bf16` and adds our
bfloat16 ms and the ratios ov/ours-bf16 and ort/ours-bf16 (the peers at their defaults against
ours in bfloat16). The machine load (`uptime`) is printed before and after.
Build first: swift build -c release --product fcn-bench
"""
import argparse
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))


def parse():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--filter", default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--cpu", action="store_true", help="process CPU time (single-thread runs on a shared machine)")
    p.add_argument("--bench", default=os.path.join(ROOT, ".build", "release", "fcn-bench"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--bf16", action="store_true", help="also fcn-bench --precision bf16 (columns bf16, ov/bf16)")
    p.add_argument("--skip-gemm", action="store_true", help="leave out the sgemm / gemm rows")
    return p.parse_args()


def run_json(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    line = [l for l in out.splitlines() if l.startswith("{")][-1]
    return json.loads(line)


def common_args(args):
    a = ["--threads", str(args.threads), "--json", "--repeats", str(args.repeats)]
    if args.filter:
        a += ["--filter", args.filter]
    if args.cpu:
        a.append("--cpu")
    return a


def max_rss_kb(cmd):
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return int(m.group(1)) if m else None


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def main():
    args = parse()
    ours, theirs, bf16 = {}, {}, {}
    print(f"load before: {uptime()}", flush=True)
    for _ in range(max(1, args.rounds)):
        for row in run_json([args.bench] + common_args(args))["rows"]:
            ours[row["row"]] = min(ours.get(row["row"], float("inf")), row["ms"])
        if args.bf16:
            for row in run_json([args.bench, "--precision", "bf16"] + common_args(args))["rows"]:
                bf16[row["row"]] = min(bf16.get(row["row"], float("inf")), row["ms"])
        for row in run_json([args.python, os.path.join(HERE, "pytorch_bench.py")] + common_args(args))["rows"]:
            theirs[row["row"]] = min(theirs.get(row["row"], float("inf")), row["ms"])
    print(f"load after:  {uptime()}")
    clock = "CPU ms" if args.cpu else "ms"
    print(f"\nthreads = {args.threads}, best of {args.repeats} runs x {args.rounds} rounds, {clock}; ratio > 1: swift-fcn faster")
    print(f"{'row':<28}{'swift-fcn':>11}{'torch':>11}{'torch/ours':>12}{'ort':>11}{'ort/ours':>10}"
          f"{'ov-f32':>11}{'ov-f32/ours':>13}{'ov':>11}{'ov/ours':>9}"
          + (f"{'bf16':>10}{'ort/bf16':>10}{'ov/bf16':>9}" if args.bf16 else ""))
    for name, ms in ours.items():
        if args.skip_gemm and (name.startswith("gemm ") or name.startswith("sgemm ")):
            continue
        t = theirs.get(name)
        o = theirs.get("ort " + name)
        cells = [f"{name:<28}", f"{ms:>11.1f}"]
        cells.append(f"{t:>11.1f}{t / ms:>12.2f}" if t else f"{'':>11}{'':>12}")
        cells.append(f"{o:>11.1f}{o / ms:>10.2f}" if o else f"{'':>11}{'':>10}")
        f32, ov = theirs.get("ov-f32 " + name), theirs.get("ov " + name)
        cells.append(f"{f32:>11.1f}{f32 / ms:>13.2f}" if f32 else f"{'':>11}{'':>13}")
        cells.append(f"{ov:>11.1f}{ov / ms:>9.2f}" if ov else f"{'':>11}{'':>9}")
        b = bf16.get(name)
        if b:
            cells.append(f"{b:>10.1f}" + (f"{o / b:>10.2f}" if o else f"{'':>10}") + (f"{ov / b:>9.2f}" if ov else ""))
        print("".join(cells).rstrip())
    if args.memory:
        row = "fcn8s forward 500"
        # One inference (warm-up + 1 run): the packed-weight cache packs on the second call, so
        # the peak with it on includes the packed copies; both are printed.
        ours_kb = max_rss_kb([args.bench, "--threads", str(args.threads), "--filter", row, "--repeats", "1",
                              "--weight-cache", "0"])
        ours_cached_kb = max_rss_kb([args.bench, "--threads", str(args.threads), "--filter", row, "--repeats", "1"])
        torch_kb = max_rss_kb([args.python, os.path.join(HERE, "pytorch_bench.py"), "--threads", str(args.threads),
                               "--only", row, "--repeats", "1", "--no-ort"])
        ort_kb = max_rss_kb([args.python, os.path.join(HERE, "pytorch_bench.py"), "--threads", str(args.threads),
                             "--only", "ort " + row, "--repeats", "1"])
        print(f"\npeak RSS, one process running only '{row}' (weights included):")
        for name, kb in (("swift-fcn", ours_kb), ("  + cache", ours_cached_kb), ("torch", torch_kb), ("onnxruntime", ort_kb)):
            print(f"  {name:<12}{kb / 1024:>9.0f} MiB" if kb else f"  {name:<12}        ?")
    return 0


if __name__ == "__main__":
    sys.exit(main())
