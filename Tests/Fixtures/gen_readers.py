"""Fixtures of the .caffemodel and PyTorch checkpoint readers (Tests/FCNTests/IO/CaffeModelTests.swift,
TorchCheckpointTests.swift, Tests/FCNTests/Models/VGGFCNCaffeTests.swift).

No Caffe is needed: the caffemodels are written by the small protobuf encoder below,
following caffe.proto's field numbers (NetParameter.layer = 100 / layers = 2, LayerParameter
name 1, type 2, bottom 3, top 4, param 6, blobs 7, convolution_param 106, power_param 122,
scale_param 142, python_param 130; V1LayerParameter bottom 2, top 3, name 4, type 5 (enum),
blobs 6, convolution_param 10, power_param 21, data_param 11; BlobProto shape 7 (BlobShape
dim 1), data 5, double_data 8, legacy num/channels/height/width 1-4). When the `protobuf`
package is installed, every file is parsed back with message classes built at run time from
a descriptor of that part of caffe.proto and compared with what was meant to be written.

Writes into Fixtures/readers/:
  vgg32s_v2.caffemodel      FCN-32s, `layer`, BlobShape dims, packed float data
  vgg16s_v1.caffemodel      FCN-16s, legacy `layers`, 4-D num/channels/height/width, unpacked floats
  vgg8s_mixed.caffemodel    FCN-8s at width 1/96, `layer`, dims unpacked, data split over packed
                            and unpacked fields, two blobs as double_data, unknown fields of
                            every wire type (varint, 64-bit, 32-bit, length-delimited, groups)
  vgg8s_atonce_scale.caffemodel  FCN-8s at-once, Scale layers scale_pool4/3 holding 0.01 / 0.0001
  vgg8s_atonce_power_v1.caffemodel  the same with V1 POWER layers (power_param.scale)
  vgg8s_state.pth           torch.save(model.state_dict()) of a PyTorch FCN-8s at width 1/128
  tvlike_model_wrapper.pth  {"model": state dict, "optimizer": SGD state, "epoch", ...} of the
                            torchvision-style model of gen_safetensors.py (tvlike_state.safetensors)
  tvlike_state_dict_wrapper.pth  {"state_dict": ..., "epoch": 3}
  tvlike_parameters.pth     dict(model.named_parameters()) (torch._utils._rebuild_parameter)
  views.pth                 views of shared storages: transposed, offset slices, stride-2,
                            stride-0 (expand), 0-d, empty; float16/bfloat16/float64/int64/
                            int32/uint8/bool storages
  views_big_endian.pth      views.pth with byteorder "big" and every storage byte-swapped
  views_deflated.pth        views.pth re-zipped with deflate and ZIP64 extra fields
  legacy.pth                torch.save(..., _use_new_zipfile_serialization=False)
and Fixtures/readers_caffe.safetensors, readers_torch.safetensors (fixturelib format):
  caffe cases {file, variant, classes, width, format}: input, output (PyTorch's scores)
  torch cases {file, names, wrapper, same_as}: "t.<name>" = the expected tensor as float32
  (the tvlike files: none, their values are tvlike_state.safetensors; the rewritten views
  files: those of views.pth), plus input/output for vgg8s_state.pth.
Weights are random (PyTorch's generator), the upsampling kernels bilinear plus noise, so a
reader that rebuilt them instead of reading them would fail.
    python Tests/Fixtures/gen_readers.py
    python Tests/Fixtures/gen_readers.py --large fcn8s_large.caffemodel   # or .pth:
        a full-width FCN-8s (0.5 GB) for ReaderMemoryTests (FCN_LARGE_WEIGHTS=that path)
"""
import io
import os
import struct
import zipfile

import numpy as np
import torch
from safetensors.torch import load_file

from fixturelib import HERE, save
from gen_models import VGGFCN, bilinear_kernel, ch

OUT = os.path.join(HERE, "readers")
torch.manual_seed(85)


# ---------------------------------------------------------------- protobuf encoder
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def tag(field, wire):
    return varint(field << 3 | wire)


def vint(field, n):
    return tag(field, 0) + varint(n)


def ld(field, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return tag(field, 2) + varint(len(payload)) + payload


def f32(field, x):
    return tag(field, 5) + struct.pack("<f", x)


def unknown_fields():
    """Fields caffe.proto does not define (numbers 900+), one of every wire type, and a
    group holding a nested group."""
    inner = tag(902, 3) + vint(1, 5) + tag(902, 4)
    return (vint(900, 12345) + tag(901, 1) + struct.pack("<d", 2.5) + tag(903, 5) + struct.pack("<f", 1.5)
            + ld(904, b"\x00\xff junk") + tag(905, 3) + vint(7, 1) + inner + ld(8, b"x") + tag(905, 4))


def blob(t, legacy=False, packed=True, double=False, split=False, dims_packed=True, extras=b""):
    """BlobProto of tensor t."""
    a = t.detach().numpy().astype(np.float64 if double else np.float32).ravel()
    shape = list(t.shape)
    out = bytearray()
    if legacy:
        s4 = [1] * (4 - len(shape)) + shape
        for f, d in zip((1, 2, 3, 4), s4):
            out += vint(f, d)
    else:
        out += ld(7, ld(1, b"".join(varint(d) for d in shape)) if dims_packed else b"".join(vint(1, d) for d in shape))
    field, fmt, dt, wire = (8, "<d", "<f8", 1) if double else (5, "<f", "<f4", 5)
    if split:   # first half packed, the rest unpacked
        h = len(a) // 2
        out += ld(field, a[:h].astype(dt).tobytes())
        out += b"".join(tag(field, wire) + struct.pack(fmt, x) for x in a[h:])
    elif packed:
        out += ld(field, a.astype(dt).tobytes())
    else:
        out += b"".join(tag(field, wire) + struct.pack(fmt, x) for x in a)
    return bytes(out + extras)


V1 = {"CONVOLUTION": 4, "DECONVOLUTION": 39, "RELU": 18, "POOLING": 17, "DROPOUT": 6, "DATA": 5,
      "ELTWISE": 25, "POWER": 26, "SOFTMAX_LOSS": 21}


class NetWriter:
    """Writes a NetParameter in the current (`layer`) or V1 (`layers`) format."""

    def __init__(self, v1, **blob_opts):
        self.v1, self.opts, self.layers, self.meant = v1, blob_opts, [], []

    def layer(self, name, type, bottoms=(), tops=(), blobs=(), conv=None, power=None, scale_param=None,
              extra=b"", blob_opts=None):
        opts = dict(self.opts, **(blob_opts or {}))
        msg = bytearray()
        if self.v1:
            msg += ld(4, name) + vint(5, V1[type])
            msg += b"".join(ld(2, b) for b in bottoms) + b"".join(ld(3, t) for t in tops)
            msg += b"".join(ld(6, blob(t, **opts)) for t in blobs)
            if conv:
                msg += ld(10, conv)
            if power:
                msg += ld(21, power)
            msg += vint(7, 1) if blobs else b""   # blobs_lr (unused by readers)
        else:
            msg += ld(1, name) + ld(2, type)
            msg += b"".join(ld(3, b) for b in bottoms) + b"".join(ld(4, t) for t in tops)
            msg += ld(6, f32(3, 1.0) + f32(4, 1.0)) if blobs else b""   # ParamSpec lr_mult, decay_mult
            msg += b"".join(ld(7, blob(t, **opts)) for t in blobs)
            if conv:
                msg += ld(106, conv)
            if power:
                msg += ld(122, power)
            if scale_param:
                msg += ld(142, scale_param)
        self.layers.append(bytes(msg + extra))
        self.meant.append((name, [list(t.shape) for t in blobs]))

    def bytes(self, name):
        field = 2 if self.v1 else 100
        return ld(1, name) + b"".join(ld(field, l) for l in self.layers)


def conv_param(num, kernel, pad=0, stride=1, bias=True, packed_repeated=False):
    p = vint(1, num)
    if not bias:
        p += vint(2, 0)
    if packed_repeated:
        p += ld(3, varint(pad)) + ld(4, varint(kernel)) + ld(6, varint(stride))
    else:
        p += vint(3, pad) + vint(4, kernel) + vint(6, stride)
    return p


def write_caffe_fcn(model, variant, v1, atonce=None, mixed=False, **blob_opts):
    """The reference net's layers (fcn.berkeleyvision.org voc-fcn*/net.py) with model's weights."""
    w = NetWriter(v1, **blob_opts)
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    if v1:
        w.layer("data", "DATA", tops=["data", "label"], extra=ld(11, ld(1, "voc_lmdb") + vint(4, 1)))
    else:
        w.layer("data", "Python", tops=["data", "label"],
                extra=ld(130, ld(1, "voc_layers") + ld(2, "VOCSegDataLayer") + ld(3, "{'split': 'train'}")))
    relu = "RELU" if v1 else "ReLU"
    pool = "POOLING" if v1 else "Pooling"
    conv = "CONVOLUTION" if v1 else "Convolution"
    deconv = "DECONVOLUTION" if v1 else "Deconvolution"
    bottom = "data"
    n = 0
    for s, count in enumerate([2, 2, 3, 3, 3], 1):
        for i in range(1, count + 1):
            name = f"conv{s}_{i}"
            wt = sd[name + ".weight"]
            opts = {"double": True} if mixed and name == "conv3_2" else None
            w.layer(name, conv, [bottom], [name], [wt, sd[name + ".bias"]],
                    conv=conv_param(wt.shape[0], 3, pad=100 if name == "conv1_1" else 1, packed_repeated=mixed),
                    extra=unknown_fields() if mixed and n % 3 == 0 else b"", blob_opts=opts)
            w.layer(f"relu{s}_{i}", relu, [name], [name])
            bottom = name
            n += 1
        w.layer(f"pool{s}", pool, [bottom], [f"pool{s}"], extra=ld(19 if v1 else 121, vint(2, 2) + vint(3, 2)))
        bottom = f"pool{s}"
    for name, k in [("fc6", 7), ("fc7", 1)]:
        wt = sd[name + ".weight"]
        w.layer(name, conv, [bottom], [name], [wt, sd[name + ".bias"]], conv=conv_param(wt.shape[0], k),
                blob_opts={"double": True} if mixed and name == "fc7" else None)
        w.layer("relu" + name[2], relu, [name], [name])
        w.layer("drop" + name[2], "DROPOUT" if v1 else "Dropout", [name], [name])
        bottom = name
    C = sd["score_fr.weight"].shape[0]
    w.layer("score_fr", conv, [bottom], ["score_fr"], [sd["score_fr.weight"], sd["score_fr.bias"]], conv=conv_param(C, 1))

    def up(name, src, k, s):
        w.layer(name, deconv, [src], [name], [sd[name + ".weight"]], conv=conv_param(C, k, stride=s, bias=False))

    def scale(name, src, value):
        if atonce == "scale":
            c = sd[("score_" + name[6:]) + ".weight"].shape[1]
            w.layer(name, "Scale", [src], [name], [torch.full((c,), value)],
                    scale_param=ld(3, ld(1, "constant") + f32(2, value)))
        else:
            w.layer(name, "POWER" if v1 else "Power", [src], [name], power=f32(2, value))
        return name

    if variant == "32s":
        up("upscore", "score_fr", 64, 32)
    else:
        up("upscore2", "score_fr", 4, 2)
        p4 = scale("scale_pool4", "pool4", 0.01) if atonce else "pool4"
        w.layer("score_pool4", conv, [p4], ["score_pool4"], [sd["score_pool4.weight"], sd["score_pool4.bias"]], conv=conv_param(C, 1))
        w.layer("fuse_pool4", "ELTWISE" if v1 else "Eltwise", ["upscore2", "score_pool4c"], ["fuse_pool4"])
        if variant == "16s":
            up("upscore16", "fuse_pool4", 32, 16)
        else:
            up("upscore_pool4", "fuse_pool4", 4, 2)
            p3 = scale("scale_pool3", "pool3", 0.0001) if atonce else "pool3"
            w.layer("score_pool3", conv, [p3], ["score_pool3"], [sd["score_pool3.weight"], sd["score_pool3.bias"]], conv=conv_param(C, 1))
            up("upscore8", "fuse_pool3", 16, 8)
    w.layer("loss", "SOFTMAX_LOSS" if v1 else "SoftmaxWithLoss", ["score", "label"], ["loss"])
    return w


def check_with_protobuf(data, writer):
    """Parses `data` with protobuf message classes built from a descriptor of caffe.proto's
    NetParameter / LayerParameter / V1LayerParameter / BlobProto / BlobShape subset."""
    try:
        from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    except ImportError:
        print("  (protobuf not installed: skipped the cross-check)")
        return
    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="caffe_subset.proto", package="caffe", syntax="proto2")

    def msg(name, fields):
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if tname:
                f.type_name = ".caffe." + tname

    R, O = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("BlobShape", [("dim", 1, F.TYPE_INT64, R, None)])
    msg("BlobProto", [("shape", 7, F.TYPE_MESSAGE, O, "BlobShape"), ("data", 5, F.TYPE_FLOAT, R, None),
                      ("double_data", 8, F.TYPE_DOUBLE, R, None), ("num", 1, F.TYPE_INT64, O, None),
                      ("channels", 2, F.TYPE_INT64, O, None), ("height", 3, F.TYPE_INT64, O, None),
                      ("width", 4, F.TYPE_INT64, O, None)])
    msg("LayerParameter", [("name", 1, F.TYPE_STRING, O, None), ("type", 2, F.TYPE_STRING, O, None),
                           ("blobs", 7, F.TYPE_MESSAGE, R, "BlobProto")])
    msg("V1LayerParameter", [("name", 4, F.TYPE_STRING, O, None), ("type", 5, F.TYPE_INT32, O, None),
                             ("blobs", 6, F.TYPE_MESSAGE, R, "BlobProto")])
    msg("NetParameter", [("name", 1, F.TYPE_STRING, O, None), ("layer", 100, F.TYPE_MESSAGE, R, "LayerParameter"),
                         ("layers", 2, F.TYPE_MESSAGE, R, "V1LayerParameter")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    Net = message_factory.GetMessageClass(pool.FindMessageTypeByName("caffe.NetParameter"))
    net = Net()
    net.ParseFromString(data)
    layers = net.layers if writer.v1 else net.layer
    got = []
    for l in layers:
        shapes = []
        for b in l.blobs:
            shape = [b.num, b.channels, b.height, b.width] if b.HasField("num") else list(b.shape.dim)
            count = len(b.double_data) or len(b.data)
            assert count == int(np.prod(shape)), (l.name, shape, count)
            shapes.append(shape)
        got.append((l.name, shapes))
    want = [(n, [([1] * (4 - len(s)) + s) if writer.opts.get("legacy") else s for s in shapes]) for n, shapes in writer.meant]
    assert got == want, "protobuf parse differs from what was written"
    print("  protobuf cross-check: %d layers OK" % len(got))


def random_fcn(variant, classes, width):
    model = VGGFCN(variant, classes, width).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.split(".")[0].startswith("upscore"):
                k = p.shape[-1]
                p.copy_(bilinear_kernel(classes, k) + 0.05 * torch.randn(p.shape))
            elif name.endswith("weight"):
                p.copy_(torch.randn(p.shape) * (3.0 / np.prod(p.shape[1:])) ** 0.5)
            else:
                p.copy_(torch.randn(p.shape) * 0.1)
    return model


def caffe_cases():
    os.makedirs(OUT, exist_ok=True)
    specs = [
        ("vgg32s_v2", "32s", 2, 1 / 128, dict(v1=False)),
        ("vgg16s_v1", "16s", 3, 1 / 128, dict(v1=True, legacy=True, packed=False)),
        ("vgg8s_mixed", "8s", 4, 1 / 96, dict(v1=False, split=True, dims_packed=False, mixed=True)),
        ("vgg8s_atonce_scale", "8s-atonce", 5, 1 / 128, dict(v1=False, atonce="scale")),
        ("vgg8s_atonce_power_v1", "8s-atonce", 3, 1 / 128, dict(v1=True, legacy=True, atonce="power")),
    ]
    cases = []
    for file, variant, classes, width, opts in specs:
        model = random_fcn(variant, classes, width)
        writer = write_caffe_fcn(model, variant.split("-")[0], **opts)
        data = writer.bytes("FCN-" + variant)
        path = os.path.join(OUT, file + ".caffemodel")
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path}: {len(data) / 1024:.1f} KiB")
        check_with_protobuf(data, writer)
        x = torch.randn(1, 3, 19, 23) * 50
        with torch.no_grad():
            y = model(x)
        cases.append(({"file": file + ".caffemodel", "variant": variant, "classes": classes, "width": width,
                       "format": "v1" if opts["v1"] else "current"}, {"input": x, "output": y}))
    return cases


# ---------------------------------------------------------------- PyTorch checkpoints
def rewrite_zip(src, dst, transform=lambda name, data: data, compress=zipfile.ZIP_STORED, zip64=False):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression=compress) as zout:
        for info in zin.infolist():
            data = transform(info.filename, zin.read(info.filename))
            zi = zipfile.ZipInfo(info.filename)
            zi.compress_type = compress
            with zout.open(zi, "w", force_zip64=zip64) as f:
                f.write(data)


def views_dict():
    base = torch.randn(6, 8)
    ints = torch.arange(-20, 20, dtype=torch.int64).reshape(5, 8)
    return {
        "contiguous": base,
        "transposed": base.t(),                       # strides (1, 8), same storage
        "offset_slice": base[2:5, 3:7],               # offset 19, strides (8, 1)
        "every_other": base[:, ::2],                  # strides (8, 2)
        "row": base[4],                               # offset 32, 1-D
        "scalar": base[1, 2],                         # 0-d, offset 10
        "expanded": torch.tensor([1.5, -2.0, 3.25]).expand(4, 3),   # stride (0, 1)
        "empty": torch.zeros(0, 3),
        "half": (torch.randn(3, 5) * 100).half(),
        "half_t": (torch.randn(4, 3)).half().t(),
        "bfloat16": torch.randn(2, 7).bfloat16(),
        "double": torch.randn(3, 3, dtype=torch.float64) * 1e3,
        "int64": ints,
        "int64_cols": ints[:, 1::3],
        "int32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "uint8": torch.arange(0, 250, 25, dtype=torch.uint8),
        "bool": torch.tensor([True, False, True, True]),
        "num_batches_tracked": torch.tensor(123456, dtype=torch.int64),
    }


def torch_cases():
    cases = []

    def record(file, obj, wrapper=None, extra=None, values=True):
        """Saves obj; the case holds the state dict's names and (values=True) its tensors."""
        path = os.path.join(OUT, file)
        torch.save(obj, path)
        sd = obj if wrapper is None else obj[wrapper]
        ts = {"t." + k: v.detach().float().contiguous().clone() for k, v in sd.items()} if values else {}
        ts.update(extra or {})
        cases.append(({"file": file, "names": list(sd.keys()), "wrapper": wrapper or ""}, ts))
        print(f"wrote {path}: {os.path.getsize(path) / 1024:.1f} KiB")
        return path

    model = random_fcn("8s", 3, 1 / 128)
    x = torch.randn(1, 3, 21, 18) * 50
    with torch.no_grad():
        y = model(x)
    record("vgg8s_state.pth", model.state_dict(), extra={"input": x, "output": y}, values=False)

    tv = load_file(os.path.join(HERE, "tvlike_state.safetensors"))
    keys = __import__("json").loads(__import__("safetensors").safe_open(
        os.path.join(HERE, "tvlike_io.safetensors"), "pt").metadata()["keys"])
    from collections import OrderedDict
    sd = OrderedDict((k, tv[k]) for k in keys)
    params = [torch.nn.Parameter(v.clone()) for k, v in sd.items() if v.is_floating_point()]
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    record("tvlike_model_wrapper.pth", {"epoch": 7, "model": sd, "optimizer": opt.state_dict(), "best_iou": 0.625,
                                        "args": {"lr": 0.01, "name": "run-1", "flags": [True, None, (1, 2)]}}, "model",
           values=False)
    record("tvlike_state_dict_wrapper.pth", {"state_dict": sd, "epoch": 3}, "state_dict", values=False)
    named = OrderedDict((k, torch.nn.Parameter(v.clone(), requires_grad=k.endswith("weight")))
                        for k, v in sd.items() if v.is_floating_point())
    record("tvlike_parameters.pth", named, values=False)

    views = views_dict()
    src = record("views.pth", views)

    def swap(name, data):
        if name.endswith("/byteorder"):
            return b"big"
        if "/data/" in name:
            key = name.rsplit("/", 1)[1]
            size = storage_sizes[key]
            return np.frombuffer(data, dtype=np.uint8).reshape(-1, size)[:, ::-1].tobytes() if size > 1 else data
        return data

    # Element size of each storage key, from the persistent ids of the pickle.
    import pickle
    sizes = {"FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "DoubleStorage": 8, "LongStorage": 8,
             "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}

    class Peek(pickle.Unpickler):
        def persistent_load(self, pid):
            storage_sizes[pid[2]] = sizes[pid[1].__name__]
            return None

        def find_class(self, module, name):
            return (lambda *a: None) if name == "_rebuild_tensor_v2" else super().find_class(module, name)

    storage_sizes = {}
    with zipfile.ZipFile(src) as z:
        Peek(io.BytesIO(z.read("views/data.pkl"))).load()
    for name, kw in [("views_big_endian.pth", dict(transform=swap)),
                     ("views_deflated.pth", dict(compress=zipfile.ZIP_DEFLATED, zip64=True))]:
        path = os.path.join(OUT, name)
        rewrite_zip(src, path, **kw)
        cases.append(({"file": name, "names": list(views.keys()), "wrapper": "", "same_as": "views.pth"}, {}))
        print(f"wrote {path}: {os.path.getsize(path) / 1024:.1f} KiB")
    if torch.load(os.path.join(OUT, "views_big_endian.pth"))["transposed"].equal(views["transposed"]):
        print("  views_big_endian.pth loads in torch with the same values")

    path = os.path.join(OUT, "legacy.pth")
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    print(f"wrote {path}")
    return cases


def write_large(path):
    """A full-width FCN-8s (21 classes, 134 M parameters, 0.5 GB) with random weights, for
    measuring memory (not a fixture): .caffemodel written layer by layer, or .pth by torch.save."""
    torch.manual_seed(1)
    if path.endswith(".pth"):
        torch.save(random_fcn("8s", 21, 1).state_dict(), path)
    else:
        from gen_models import VGGFCN as Ref
        shapes = {k: v.shape for k, v in Ref("8s", 21, 1).state_dict().items()}
        layers = []
        for k in shapes:
            name = k.split(".")[0]
            if name not in layers:
                layers.append(name)
        with open(path, "wb") as f:
            f.write(ld(1, "FCN-8s large"))
            for name in layers:
                blobs = [torch.randn(shapes[name + ".weight"]) * 0.01]
                if name + ".bias" in shapes:
                    blobs.append(torch.randn(shapes[name + ".bias"]) * 0.01)
                deconv = name.startswith("upscore")
                k = blobs[0].shape[-1]
                msg = ld(1, name) + ld(2, "Deconvolution" if deconv else "Convolution") + b"".join(ld(7, blob(b)) for b in blobs)
                msg += ld(106, conv_param(blobs[0].shape[0], k, pad=100 if name == "conv1_1" else (1 if k == 3 else 0),
                                          stride={4: 2, 16: 8}.get(k, 1) if deconv else 1, bias=not deconv))
                f.write(ld(100, msg))
    print(f"wrote {path}: {os.path.getsize(path) / 2**20:.0f} MiB")


if __name__ == "__main__":
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--large":
        write_large(sys.argv[2])
    else:
        save("readers_caffe", caffe_cases())
        save("readers_torch", torch_cases())
