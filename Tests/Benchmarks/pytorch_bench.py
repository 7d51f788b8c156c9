#!/usr/bin/env python3
"""PyTorch / numpy counterpart of fcn-bench: the same rows, the same shapes, the same output.

    python Tests/Benchmarks/pytorch_bench.py [--threads N] [--json] [--filter TEXT] [--repeats N]

Rows: `sgemm S` (torch.mm, S x S x S), `numpy sgemm S` (numpy.matmul, float32), and
`gemm <layer> 500`: the im2col GEMM of each VGG16-FCN layer at a 500 x 500 input
(M = Cout, K = Cin*kh*kw, N = Hout*Wout; conv1_1 pad 100, other 3x3 convs pad 1,
2x2/2 ceil-mode pools, fc6 7x7 valid), computed as torch.mm([M, K], [K, N]).
Layer and network rows (same names and shapes as fcn-bench, see LayerRows.swift there):
`conv <layer> 500` (F.conv2d + bias, ReLU where the net has one), `deconv <layer> 500`
(F.conv_transpose2d with the bilinear kernel), `pool pool1 500`,
`fcn{32,16,8}s forward {224,500}` (the Caffe-layout VGGFCN of
Tests/Fixtures/gen_models.py, 21 classes, full width, random weights, eval,
no_grad), `fcn8s train step 256` (train mode, cross-entropy, backward; upsampling weights
frozen as in the reference), `fcn_resnet50 train step 256` (torchvision's, no aux head, train
mode: batch statistics; cross-entropy, backward, batch 1); `resnet34-fcn8s forward 500` (seed 002's model of
Tests/Fixtures/gen_models.py, zero padded to a multiple of 32 and cropped back, as
fcn-bench's), `fcn_resnet50 forward 520`, `fcn_resnet101 forward 520` (torchvision's, no
aux head), each also as `ort ...` (onnxruntime), `ov-f32 ...` (OpenVINO with
INFERENCE_PRECISION_HINT f32) and `ov ...` (OpenVINO at its default precision: bf16 on a
CPU with AVX512_BF16); and `ort fcn{32,16,8}s forward {224,500}`: the same network
exported with torch.onnx.export and run by onnxruntime (intra_op_num_threads = threads,
inter_op_num_threads = 1), and by OpenVINO (`ov-f32 ...`, `ov ...`, as for the families). `ort conv <layer> 500` runs each convolution row (conv + bias,
ReLU where the net has one) exported alone; onnxruntime then also converts the input to its
blocked NCHWc layout and back on every call, which a whole network does only at its ends.
GFLOP = 2 * multiply-adds of the convolution layers.
--only NAME runs exactly one row (for peak-memory measurements).
Timing: monotonic clock (process CPU clock with --cpu), one warm-up run, best of N. --json prints
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
    p.add_argument("--cpu", action="store_true", help="process CPU time instead of wall time")
    p.add_argument("--only", default=None, help="run only the row with exactly this name")
    p.add_argument("--no-ort", action="store_true", help="skip the onnxruntime rows")
    p.add_argument("--export", nargs=3, metavar=("VARIANT", "SIZE", "PATH"), help=argparse.SUPPRESS)
    return p.parse_args()


ARGS = parse()
# BLAS thread pools read these when the libraries load: set them before importing numpy/torch.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)

import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

# `--only "ort fcn..."` (peak-memory runs) never imports torch in this process: the ONNX file
# is exported by a child process, so the resident set is onnxruntime's alone.
ORT_ONLY = ARGS.only is not None and ARGS.only.startswith("ort fcn")
if ORT_ONLY:
    torch = None
else:
    import torch  # noqa: E402
    torch.set_num_threads(ARGS.threads)


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows = []

    def wants(self, name):
        if self.args.only is not None:
            return name == self.args.only
        return self.args.filter is None or self.args.filter in name

    def run(self, name, flops, fn):
        if not self.wants(name):
            return
        fn()
        best = float("inf")
        clock = time.process_time_ns if self.args.cpu else time.perf_counter_ns
        for _ in range(max(1, self.args.repeats)):
            t0 = clock()
            fn()
            best = min(best, (clock() - t0) / 1e6)
        gflops = flops / (best * 1e6) if flops > 0 else 0.0
        self.rows.append({"row": name, "ms": round(best, 3), "gflops": round(gflops, 1)})
        if not self.args.json:
            print(f"{name:<28}{best:>12.3f}{gflops:>10.1f}", flush=True)

    def header(self):
        if not self.args.json:
            version = torch.__version__ if torch is not None else "not loaded"
            print(f"pytorch_bench (torch {version}, numpy {np.__version__}), threads = {self.args.threads}")
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


# MARK: layer and network rows

def vgg_fcn_layers(size, classes=21):
    """Distinct convolutions (name, cin, cout, k, pad, h, relu) and upsampling layers
    (name, c, k, s, h) of VGG16-FCN for a size x size input, as fcn-bench's vggFCNLayers."""
    convs, seen = [], set()
    st = {"h": size, "cin": 3}
    pools = {}

    def conv(name, cout, k, pad, relu=True):
        key = (st["cin"], cout, k, pad, st["h"])
        if key not in seen:
            convs.append((name, st["cin"], cout, k, pad, st["h"], relu))
            seen.add(key)
        st["h"] = st["h"] + 2 * pad - k + 1
        st["cin"] = cout

    for s, stage in enumerate([[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]):
        for i, c in enumerate(stage):
            conv(f"conv{s + 1}_{i + 1}", c, 3, 100 if (s, i) == (0, 0) else 1)
        st["h"] = (st["h"] - 1) // 2 + 1
        pools[s + 1] = st["h"]
    conv("fc6", 4096, 7, 0)
    conv("fc7", 4096, 1, 0)
    conv("score_fr", classes, 1, 0, relu=False)
    convs.append(("score_pool4", 512, classes, 1, 0, pools[4], False))
    convs.append(("score_pool3", 256, classes, 1, 0, pools[3], False))
    h = st["h"]
    up2 = ("upscore2", classes, 4, 2, h)
    h2 = (h - 1) * 2 + 4
    up_p4 = ("upscore_pool4", classes, 4, 2, h2)
    h4 = (h2 - 1) * 2 + 4
    return convs, [up2, up_p4, ("upscore8", classes, 16, 8, h4), ("upscore", classes, 64, 32, h),
                   ("upscore16", classes, 32, 16, h2)]


def conv_flops(cin, cout, k, pad, h):
    o = h + 2 * pad - k + 1
    return 2.0 * cin * cout * k * k * o * o


def fcn_flops(variant, size, classes=21):
    """(forward, train step) GFLOP counts as fcn-bench's vggFCNFlops."""
    convs = []
    st = {"h": size, "cin": 3}
    pools = {}

    def conv(cout, k, pad):
        convs.append((st["cin"], cout, k, pad, st["h"]))
        st["h"] = st["h"] + 2 * pad - k + 1
        st["cin"] = cout

    for s, stage in enumerate([[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]]):
        for c in stage:
            conv(c, 3, 100 if not convs else 1)
        st["h"] = (st["h"] - 1) // 2 + 1
        pools[s + 1] = st["h"]
    conv(4096, 7, 0)
    conv(4096, 1, 0)
    conv(classes, 1, 0)
    h = st["h"]
    dec = []
    if variant == "32s":
        dec.append((64, h))
    else:
        h2 = (h - 1) * 2 + 4
        dec.append((4, h))
        if variant == "16s":
            convs.append((512, classes, 1, 0, h2))
            dec.append((32, h2))
        else:
            convs.append((512, classes, 1, 0, pools[4]))
            convs.append((256, classes, 1, 0, pools[3]))
            dec += [(4, h2), (16, (h2 - 1) * 2 + 4)]
    cf = [conv_flops(*c) for c in convs]
    df = sum(2.0 * classes * classes * k * k * hh * hh for k, hh in dec)
    return sum(cf) + df, 3 * sum(cf) - cf[0] + 2 * df


def bench_tensor(shape, gen):
    return torch.rand(*shape, generator=gen) * 2 - 1


def load_vggfcn():
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "Fixtures"))
    from gen_models import VGGFCN  # noqa: E402
    return VGGFCN


def make_net(variant):
    VGGFCN = load_vggfcn()
    torch.manual_seed(1)
    net = VGGFCN(variant, 21, 1)
    for n, p in net.named_parameters():
        if "upscore" in n:
            p.requires_grad_(False)  # frozen bilinear upsampling, as the reference (and fcn-bench)
    return net


FAMILIES = {"resnet34-fcn8s": 500, "fcn_resnet50": 520, "fcn_resnet101": 520}


class PaddedToStride(torch.nn.Module if torch is not None else object):
    """The seed-002 ResNet-34 FCN-8s, whose skip sums need H, W multiples of 32, on any size:
    zero padding at the bottom and right, scores cropped back (as fcn-bench's model does)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        h, w = x.shape[2], x.shape[3]
        ph, pw = (32 - h % 32) % 32, (32 - w % 32) % 32
        y = self.net(torch.nn.functional.pad(x, (0, pw, 0, ph)))
        return y[:, :, :h, :w]


class OutOnly(torch.nn.Module if torch is not None else object):
    """torchvision's segmentation models return {"out": ...}: the scores alone."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def import_torchvision():
    """torchvision, importable where its compiled ops do not load (a wheel built for another
    torch build, e.g. PyPI's torchvision beside a CPU-only torch): the models need none of
    those ops, only its meta registrations would fail, so they are skipped."""
    import types
    if "torchvision" not in sys.modules:
        sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    return torchvision


def make_family(name):
    """The model family `name` (21 classes, random weights, eval mode, no aux head)."""
    torch.manual_seed(1)
    import_torchvision()
    if name == "resnet34-fcn8s":
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, os.path.join(here, "..", "Fixtures"))
        from gen_models import ResNet34FCN  # noqa: E402
        return PaddedToStride(ResNet34FCN(21)).eval()
    torchvision = import_torchvision()
    make = {"fcn_resnet50": torchvision.models.segmentation.fcn_resnet50,
            "fcn_resnet101": torchvision.models.segmentation.fcn_resnet101}[name]
    return OutOnly(make(weights=None, weights_backbone=None, num_classes=21, aux_loss=False)).eval()


def export_onnx(variant, size, path):
    """Builds the network (seeded as make_net, or make_family for a family name) and writes
    it as ONNX (legacy exporter)."""
    import warnings
    net = make_family(variant) if variant in FAMILIES else make_net(variant).eval()
    x = torch.zeros(1, 3, size, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)


def ort_load(path):
    """An onnxruntime CPU session for the ONNX file at `path` with the run's thread count
    (intra-op threads = --threads, one inter-op thread, all graph optimisations)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = ARGS.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def ov_compiled(path, precision):
    """An OpenVINO CPU model compiled from the ONNX file at `path` with the run's thread
    count: `precision` "f32" (INFERENCE_PRECISION_HINT f32) or None (OpenVINO's default,
    bf16 on CPUs with AVX512_BF16 or AMX)."""
    import openvino as ov
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": ARGS.threads, "PERFORMANCE_HINT": "LATENCY"}
    if precision:
        config["INFERENCE_PRECISION_HINT"] = precision
    return core.compile_model(core.read_model(path), "CPU", config)


def onnx_file(variant, size, tmpdir):
    """The network `variant` (a VGG FCN variant or a family name) at `size`, exported to ONNX
    in `tmpdir` by a child process (so that this process's memory holds only what the
    runtime needs), once; returns its path."""
    import subprocess
    path = os.path.join(tmpdir, f"{variant}_{size}.onnx")
    if not os.path.exists(path):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--export", variant, str(size), path], check=True)
    return path


def ort_session(variant, size, tmpdir):
    """An onnxruntime session for the network (see onnx_file)."""
    return ort_load(onnx_file(variant, size, tmpdir))


def layer_rows(bench):
    import tempfile
    if ORT_ONLY:
        network_rows(bench, None)
        return
    import torch.nn.functional as F
    gen = torch.Generator().manual_seed(1)
    convs, deconvs = vgg_fcn_layers(500)
    tmp = tempfile.TemporaryDirectory()
    with torch.no_grad():
        for name, cin, cout, k, pad, h, relu in convs:
            row = f"conv {name} 500"
            want_o = bench.wants("ort " + row) and not ARGS.no_ort
            if not (bench.wants(row) or want_o):
                continue
            x = bench_tensor((1, cin, h, h), gen)
            bound = 1 / (cin * k * k) ** 0.5
            w = bench_tensor((cout, cin, k, k), gen) * bound
            b = bench_tensor((cout,), gen) * bound
            if relu:
                fn = lambda: F.relu(F.conv2d(x, w, b, padding=pad), inplace=True)  # noqa: E731
            else:
                fn = lambda: F.conv2d(x, w, b, padding=pad)  # noqa: E731
            if bench.wants(row):
                bench.run(row, conv_flops(cin, cout, k, pad, h), fn)
            if want_o:
                sess = ort_conv_session(x, w, b, pad, relu, os.path.join(tmp.name, f"{name}.onnx"))
                feed = {"x": x.numpy()}
                bench.run("ort " + row, conv_flops(cin, cout, k, pad, h), lambda: sess.run(None, feed))
                del sess
            del x, w, b
        for name, c, k, s, h in deconvs:
            row = f"deconv {name} 500"
            if not bench.wants(row):
                continue
            x = bench_tensor((1, c, h, h), gen)
            w = bench_tensor((c, c, k, k), gen)
            bench.run(row, 2.0 * c * c * k * k * h * h, lambda: F.conv_transpose2d(x, w, stride=s))
        if bench.wants("pool pool1 500"):
            x = bench_tensor((1, 64, 698, 698), gen)
            bench.run("pool pool1 500", 0, lambda: F.max_pool2d(x, 2, 2, ceil_mode=True))
            del x
    tmp.cleanup()
    network_rows(bench, gen)


def ort_conv_session(x, w, b, pad, relu, path):
    """An onnxruntime session for one convolution (+ ReLU) with the given weights."""
    import warnings
    conv = torch.nn.Conv2d(w.shape[1], w.shape[0], w.shape[2], padding=pad)
    conv.weight.copy_(w)
    conv.bias.copy_(b)
    net = torch.nn.Sequential(conv, torch.nn.ReLU()) if relu else conv
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (x,), path, input_names=["x"], output_names=["y"], opset_version=17, dynamo=False)
    return ort_load(path)


def network_rows(bench, gen):
    import tempfile
    tmp = tempfile.TemporaryDirectory()
    for size in (224, 500):
        for variant in ("32s", "16s", "8s"):
            row = f"fcn{variant} forward {size}"
            ort_row = "ort " + row
            want_t, want_o = bench.wants(row), bench.wants(ort_row) and not ARGS.no_ort
            if not (want_t or want_o):
                continue
            flops = fcn_flops(variant, size)[0]
            x = (np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32) * 2 - 1) * 100
            if want_t:
                net = make_net(variant).eval()
                xt = torch.from_numpy(x)
                with torch.no_grad():
                    bench.run(row, flops, lambda: net(xt))
                del net, xt
            if want_o:
                sess = ort_session(variant, size, tmp.name)
                feed = {"x": x}
                bench.run(ort_row, flops, lambda: sess.run(None, feed))
                del sess
            for prefix, precision in (("ov-f32 ", "f32"), ("ov ", None)):
                if ARGS.no_ort or not bench.wants(prefix + row):
                    continue
                try:
                    compiled = ov_compiled(onnx_file(variant, size, tmp.name), precision)
                except ImportError:
                    continue
                request = compiled.create_infer_request()
                bench.run(prefix + row, flops, lambda: request.infer({0: x}))
                del request, compiled
    row = "fcn8s train step 256"
    if bench.wants(row) and torch is not None:
        import torch.nn.functional as F
        net = make_net("8s").train()
        x = bench_tensor((1, 3, 256, 256), gen) * 100
        labels = torch.randint(0, 21, (1, 256, 256), generator=gen)

        def step():
            net.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), labels, ignore_index=255)
            loss.backward()

        bench.run(row, fcn_flops("8s", 256)[1], step)
    tmp.cleanup()


def family_rows(bench):
    """`<family> forward <size>` in PyTorch (eval, no_grad), and the same network exported
    to ONNX run by onnxruntime (`ort ...`), OpenVINO in float32 (`ov-f32 ...`) and OpenVINO
    at its default precision (`ov ...`)."""
    import tempfile
    tmp = tempfile.TemporaryDirectory()
    for name, size in FAMILIES.items():
        row = f"{name} forward {size}"
        wanted = {k: bench.wants(k + row) for k in ("", "ort ", "ov-f32 ", "ov ")}
        if not any(wanted.values()):
            continue
        x = (np.random.default_rng(size).random((1, 3, size, size), dtype=np.float32) * 2 - 1)
        if wanted[""] and torch is not None:
            net = make_family(name)
            xt = torch.from_numpy(x)
            with torch.no_grad():
                bench.run(row, 0, lambda: net(xt))
            del net, xt
        if ARGS.no_ort or not (wanted["ort "] or wanted["ov-f32 "] or wanted["ov "]):
            continue
        path = onnx_file(name, size, tmp.name)
        if wanted["ort "]:
            sess = ort_load(path)
            bench.run("ort " + row, 0, lambda: sess.run(None, {sess.get_inputs()[0].name: x}))
            del sess
        for prefix, precision in (("ov-f32 ", "f32"), ("ov ", None)):
            if wanted[prefix]:
                try:
                    compiled = ov_compiled(path, precision)
                except ImportError:
                    continue
                request = compiled.create_infer_request()
                bench.run(prefix + row, 0, lambda: request.infer({0: x}))
                del request, compiled
    tmp.cleanup()
    row = "fcn_resnet50 train step 256"
    if bench.wants(row) and torch is not None:
        import torch.nn.functional as F
        net = make_family("fcn_resnet50").train()
        gen = torch.Generator().manual_seed(9)
        x = torch.rand((1, 3, 256, 256), generator=gen) * 2 - 1
        labels = torch.randint(0, 21, (1, 256, 256), generator=gen)

        def step():
            net.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), labels, ignore_index=255)
            loss.backward()

        bench.run(row, 0, step)


def main():
    if ARGS.export:
        export_onnx(ARGS.export[0], int(ARGS.export[1]), ARGS.export[2])
        return 0
    bench = Bench(ARGS)
    bench.header()
    if ORT_ONLY:
        layer_rows(bench)
        bench.finish()
        return 0
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
    layer_rows(bench)
    family_rows(bench)
    bench.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
