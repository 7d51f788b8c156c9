#!/usr/bin/env python3
"""Runs ONNX files exported by swift-fcn in onnxruntime and compares them with the library.

Usage: check_onnx.py FOLDER [--tolerance T]

FOLDER holds, for each case NAME, NAME.onnx and NAME.safetensors; the safetensors file has
float32 tensors input.K and expected.K for K = 0, 1, ... (inputs of any size, and the
library's scores for them). Each input is run through one session of NAME.onnx, and

    relative error = max |ort - expected| / max(1, max |expected|)

(the tests' `relativeError`) must be at most T (default 1e-4). The script also checks that
the file names its model in the metadata key "fcn.model", that the graph has one input
"input" [batch, channels, height, width] and one output "scores", and that the output has
the expected shape. It prints one line per comparison and writes FOLDER/report.json.

Exit status: 0 all within tolerance, 1 a comparison or check failed, 2 usage error or a
missing/unreadable file. Needs numpy and onnxruntime only.
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    """float32 tensors of a safetensors file, by name."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} has dtype {entry['dtype']}, expected F32")
        begin, end = entry["data_offsets"]
        out[name] = np.frombuffer(data[base + begin:base + end], dtype="<f4").reshape(entry["shape"])
    return out


def check_case(ort, folder, name, tolerance, threads):
    """Results (dicts) of one case; raises for files that cannot be used."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(os.path.join(folder, name + ".onnx"), options, providers=["CPUExecutionProvider"])
    tensors = read_safetensors(os.path.join(folder, name + ".safetensors"))
    problems = []
    meta = session.get_modelmeta().custom_metadata_map
    description = None
    if "fcn.model" not in meta:
        problems.append("no metadata 'fcn.model'")
    else:
        description = json.loads(meta["fcn.model"])
        if description.get("format") != "swift-fcn.model":
            problems.append(f"metadata 'fcn.model' has format {description.get('format')!r}")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != ["input"] or [o.name for o in outputs] != ["scores"]:
        problems.append(f"inputs {[i.name for i in inputs]}, outputs {[o.name for o in outputs]}")
    elif len(inputs[0].shape) != 4:
        problems.append(f"input shape {inputs[0].shape}")
    results = []
    k = 0
    while f"input.{k}" in tensors:
        x, expected = tensors[f"input.{k}"], tensors[f"expected.{k}"]
        declared = inputs[0].shape[1] if inputs else None
        if isinstance(declared, int) and declared != x.shape[1]:
            problems.append(f"the input has {declared} channels, the test tensor {x.shape[1]}")
        (got,) = session.run(["scores"], {"input": x})
        result = {"model": name, "input": list(x.shape), "input_dims": [str(d) for d in inputs[0].shape],
                  "architecture": description.get("architecture") if description else None}
        if got.shape != expected.shape:
            result.update(ok=False, problem=f"output shape {list(got.shape)}, expected {list(expected.shape)}")
        else:
            diff = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
            peak = float(np.max(np.abs(expected)))
            relative = diff / max(1.0, peak)
            result.update(max_abs=diff, max_expected=peak, relative=relative,
                          ok=bool(np.isfinite(got).all()) and relative <= tolerance)
        if problems:
            result.update(ok=False, problem="; ".join(problems))
        results.append(result)
        k += 1
    if not results:
        results.append({"model": name, "ok": False, "problem": "no input.0 / expected.0 tensors"})
    return results


def main(argv):
    args = argv[1:]
    tolerance = 1e-4
    if "--tolerance" in args:
        i = args.index("--tolerance")
        tolerance = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1 or not os.path.isdir(args[0]):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    folder = args[0]
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"check_onnx: cannot import onnxruntime ({e}); pip install onnxruntime numpy", file=sys.stderr)
        return 2
    names = sorted(f[:-5] for f in os.listdir(folder) if f.endswith(".onnx"))
    if not names:
        print(f"check_onnx: no .onnx files in {folder}", file=sys.stderr)
        return 2
    threads = int(os.environ.get("FCN_ONNX_THREADS", "2"))
    results = []
    for name in names:
        try:
            results.extend(check_case(ort, folder, name, tolerance, threads))
        except Exception as e:  # a file onnxruntime refuses is a failed case, reported by name
            results.append({"model": name, "ok": False, "problem": f"{type(e).__name__}: {e}"})
    for r in results:
        if "relative" in r:
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['model']:<28} input {r['input']}: relative error "
                  f"{r['relative']:.3e} (max |diff| {r['max_abs']:.3e}, max |expected| {r['max_expected']:.3e})"
                  + (f" [{r['problem']}]" if "problem" in r else ""))
        else:
            print(f"FAIL {r['model']}: {r.get('problem')}")
    ok = all(r["ok"] for r in results)
    with open(os.path.join(folder, "report.json"), "w") as f:
        json.dump({"ok": ok, "tolerance": tolerance, "onnxruntime": ort.__version__, "results": results}, f, indent=1)
    print(f"check_onnx: {sum(r['ok'] for r in results)} of {len(results)} comparisons within {tolerance:g} "
          f"(onnxruntime {ort.__version__})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
