"""Image codec fixtures: small PNG / JPEG / PNM files in images/ and Pillow's decoded
pixels in images.safetensors (one case per file).

PNG files Pillow cannot write (2/4-bit gray, 16-bit RGB/RGBA/LA, Adam7 interlaced, every
row filter) come from the small writer below (zlib + hand-written Adam7 and filters; the
filter type cycles 0,1,2,3,4 over rows so all five are exercised). Pillow then decodes every
file and its result is the expected output. Cases:
  kind "png":  pixels [H,W,C] from Pillow (converted to L/LA/RGB/RGBA), optional samples16
               [H,W,C] (the source 16-bit values), indices [H,W] + palette [N,3] for palette files.
  kind "jpeg": pixels [H,W,C] from Pillow (libjpeg-turbo, islow IDCT, fancy upsampling).
  kind "ppm":  pixels [H,W,C]; samples16 when maxval > 255.
  kind "error": a file the decoder must refuse; config "error" names the expected case.
Run: python Tests/Fixtures/gen_images.py
"""
import io
import os
import struct
import zlib

import numpy as np
import torch
from PIL import Image

from fixturelib import save, HERE

OUT = os.path.join(HERE, "images")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)
cases = []


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.float32))


def texture(h, w, c, seed):
    """Smooth gradients, waves, hard-edged blocks and noise: stresses IDCT and filters."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        v = 128 + 60 * np.sin(x / (3 + k) + y / (5 + 2 * k)) + 40 * (x / w - y / h)
        v += r.normal(0, 12, (h, w))
        v[(h // 4):(h // 2), (w // 3):(2 * w // 3)] = 30 + 80 * k
        chans.append(v)
    a = np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)
    return a if c > 1 else a[..., 0]


# ---------------------------------------------------------------- PNG writer

def chunk(typ, body):
    c = zlib.crc32(typ + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + typ + body + struct.pack(">I", c)


def pack_row(row, depth):
    """row: 1-D array of samples (already interleaved)."""
    if depth == 8:
        return row.astype(np.uint8).tobytes()
    if depth == 16:
        return row.astype(">u2").tobytes()
    per = 8 // depth
    out = bytearray((len(row) * depth + 7) // 8)
    for i, v in enumerate(row):
        out[i // per] |= int(v) << (8 - depth * (i % per + 1))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else (b if pb <= pc else c)


def filter_rows(rows, bpp, counter):
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for row in rows:
        f = counter[0] % 5
        counter[0] += 1
        out.append(f)
        for i, x in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            out.append((x - pred) & 0xFF)
        prev = row
    return bytes(out)


def write_png(name, arr, color_type, depth, interlace=False, palette=None, trns=None):
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    spp = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    flat = arr.reshape(h, w, spp)
    bpp = max(1, spp * depth // 8)
    counter = [0]
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)]
    raw = b""
    for x0, y0, dx, dy in passes:
        sub = flat[y0::dy, x0::dx]
        if sub.shape[0] == 0 or sub.shape[1] == 0:
            continue
        rows = [pack_row(sub[r].reshape(-1), depth) for r in range(sub.shape[0])]
        raw += filter_rows(rows, bpp, counter)
    z = zlib.compress(raw, 9)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 1 if interlace else 0))
    data += chunk(b"tEXt", b"Comment\x00made by gen_images.py")
    if palette is not None:
        data += chunk(b"PLTE", bytes(np.asarray(palette, np.uint8).reshape(-1)))
    if trns is not None:
        data += chunk(b"tRNS", bytes(trns))
    half = len(z) // 2   # two IDAT chunks
    data += chunk(b"IDAT", z[:half]) + chunk(b"IDAT", z[half:]) + chunk(b"IEND", b"")
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def pillow_pixels(path, force=None):
    im = Image.open(path)
    im.load()
    if force is not None:   # Pillow opens 16-bit gray+alpha as RGBA (gray replicated)
        im = im.convert(force)
    if im.mode == "P":
        has_alpha = "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif im.mode == "1":
        im = im.convert("L")
    elif im.mode.startswith("I"):
        a = np.array(im).astype(np.uint16)
        return (a >> 8).astype(np.uint8)[..., None]
    a = np.array(im)
    return a if a.ndim == 3 else a[..., None]


def add_png(name, cfg, samples16=None, indices=None, palette=None):
    path = os.path.join(OUT, name)
    ts = {"pixels": t(pillow_pixels(path, "LA" if cfg.get("colorType") == 4 else None))}
    if samples16 is not None:
        s = np.asarray(samples16)
        ts["samples16"] = t(s if s.ndim == 3 else s[..., None])
    if indices is not None:
        im = Image.open(path)
        assert im.mode == "P"
        ts["indices"] = t(np.array(im))
        ts["palette"] = t(np.asarray(palette, np.float32).reshape(-1, 3))
    cases.append((dict(kind="png", file=name, **cfg), ts))


def voc_palette(n=256):
    pal = []
    for i in range(n):
        r = g = b = 0
        for k in range(8):
            r |= ((i >> (3 * k)) & 1) << (7 - k)
            g |= ((i >> (3 * k + 1)) & 1) << (7 - k)
            b |= ((i >> (3 * k + 2)) & 1) << (7 - k)
        pal.append((r, g, b))
    return pal


# Gray at every depth, hand-written (all filters), plain and interlaced.
for depth in [1, 2, 4, 8, 16]:
    for inter in [False, True]:
        h, w = (13, 17) if not inter else (11, 29)
        a = rng.integers(0, 1 << depth, (h, w))
        a[:, : w // 2] = (np.arange(w // 2) * ((1 << depth) - 1) // max(1, w // 2 - 1))[None, :]
        name = f"gray{depth}{'_i' if inter else ''}.png"
        write_png(name, a.astype(np.uint16 if depth == 16 else np.uint8), 0, depth, interlace=inter)
        add_png(name, dict(colorType=0, depth=depth, interlaced=inter), samples16=a if depth == 16 else None)

# Gray+alpha, RGB, RGBA at 8 and 16 bits.
for ct, spp in [(4, 2), (2, 3), (6, 4)]:
    for depth in [8, 16]:
        for inter in [False, True]:
            if depth == 16 and inter and ct != 6:
                continue
            h, w = (13, 17) if not inter else (11, 29)
            if depth == 8:
                a = texture(h, w, spp, seed=ct * 10 + inter)
            else:
                a = rng.integers(0, 65536, (h, w, spp)).astype(np.uint16)
            name = f"ct{ct}_{depth}{'_i' if inter else ''}.png"
            write_png(name, a, ct, depth, interlace=inter)
            add_png(name, dict(colorType=ct, depth=depth, interlaced=inter), samples16=a if depth == 16 else None)

# Palette at 1/2/4/8 bits, one with tRNS, one interlaced.
for depth in [1, 2, 4, 8]:
    n = 1 << depth
    pal = rng.integers(0, 256, (min(n, 40), 3))
    idx = rng.integers(0, len(pal), (13, 17)).astype(np.uint8)
    name = f"pal{depth}.png"
    write_png(name, idx, 3, depth, palette=pal)
    add_png(name, dict(colorType=3, depth=depth, interlaced=False), indices=idx, palette=pal)
pal = rng.integers(0, 256, (12, 3))
idx = rng.integers(0, 12, (21, 33)).astype(np.uint8)
write_png("pal4_trns_i.png", idx, 3, 4, interlace=True, palette=pal, trns=[0, 128, 255, 7])
add_png("pal4_trns_i.png", dict(colorType=3, depth=4, interlaced=True), indices=idx, palette=pal)
# Tiny interlaced images with empty Adam7 passes.
for (h, w) in [(1, 1), (2, 3), (5, 2)]:
    a = texture(max(h, 2), max(w, 2), 3, seed=h * 7 + w)[:h, :w]
    name = f"tiny{h}x{w}_i.png"
    write_png(name, a, 2, 8, interlace=True)
    add_png(name, dict(colorType=2, depth=8, interlaced=True))

# Pillow-written PNGs (its own zlib stream and filter choice), incl. a VOC label map.
for mode, shape in [("L", (21, 33)), ("RGB", (21, 33)), ("RGBA", (13, 17)), ("I;16", (13, 17))]:
    if mode == "I;16":
        arr = rng.integers(0, 65536, shape).astype(np.uint16)
        im = Image.fromarray(arr)
    else:
        im = Image.fromarray(texture(*shape, {"L": 1, "RGB": 3, "RGBA": 4}[mode], seed=5), mode)
    name = f"pillow_{mode.replace(';', '')}.png"
    im.save(os.path.join(OUT, name))
    add_png(name, dict(colorType=-1, depth=16 if mode == "I;16" else 8, interlaced=False),
            samples16=np.array(im).astype(np.uint16) if mode == "I;16" else None)
lab = np.zeros((21, 33), np.uint8)
y, x = np.mgrid[0:21, 0:33]
lab[(x - 10) ** 2 + (y - 10) ** 2 < 40] = 15
lab[(x > 18) & (y > 4) & (y < 17)] = 7
lab[(x > 24) & (y > 12)] = 20
edge = np.zeros_like(lab, bool)
edge[1:, :] |= lab[1:, :] != lab[:-1, :]
edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
lab[edge] = 255
im = Image.fromarray(lab, "P")
vp = voc_palette()
im.putpalette([c for rgb in vp for c in rgb])
im.save(os.path.join(OUT, "voc_label.png"))
add_png("voc_label.png", dict(colorType=3, depth=8, interlaced=False), indices=lab, palette=vp)

# ---------------------------------------------------------------- JPEG

def add_jpeg(name, im, **kw):
    path = os.path.join(OUT, name)
    im.save(path, "JPEG", **kw)
    got = np.array(Image.open(path))
    cases.append((dict(kind="jpeg", file=name), {"pixels": t(got if got.ndim == 3 else got[..., None])}))


big = Image.fromarray(texture(48, 64, 3, seed=42), "RGB")
odd1 = Image.fromarray(texture(13, 17, 3, seed=43), "RGB")
odd2 = Image.fromarray(texture(21, 33, 3, seed=44), "RGB")
add_jpeg("rgb444_q95.jpg", big, quality=95, subsampling=0)
add_jpeg("rgb420_q50.jpg", big, quality=50, subsampling=2)
add_jpeg("rgb422_q95.jpg", odd2, quality=95, subsampling=1)
add_jpeg("rgb420_q95_odd.jpg", odd1, quality=95, subsampling=2)
add_jpeg("rgb422_q50_odd.jpg", odd2, quality=50, subsampling=1)
add_jpeg("rgb444_q50_odd.jpg", odd2, quality=50, subsampling=0)
add_jpeg("rgb420_restart.jpg", odd2, quality=90, subsampling=2, restart_marker_blocks=1)
add_jpeg("rgb444_restart_rows.jpg", odd2, quality=75, subsampling=0, restart_marker_rows=1)
add_jpeg("gray_q90.jpg", big.convert("L"), quality=90)
add_jpeg("gray_q50_odd.jpg", odd1.convert("L"), quality=50, restart_marker_blocks=3)
add_jpeg("rgb420_optimized.jpg", odd2, quality=80, subsampling=2, optimize=True)
big.save(os.path.join(OUT, "progressive.jpg"), "JPEG", quality=80, progressive=True)
# Historical: the decoder once refused progressive files. It decodes them now; gen_jpeg.py
# stores Pillow's pixels for this file (jpeg/cases.json) and no test reads this case.
cases.append((dict(kind="error", file="progressive.jpg", error="unsupported"), {}))

# ---------------------------------------------------------------- PNM

def add_ppm(name, data, pixels, samples16=None):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    ts = {"pixels": t(pixels if pixels.ndim == 3 else pixels[..., None])}
    if samples16 is not None:
        ts["samples16"] = t(samples16 if samples16.ndim == 3 else samples16[..., None])
    cases.append((dict(kind="ppm", file=name), ts))


rgb = texture(13, 17, 3, seed=7)
gray = texture(13, 17, 1, seed=8)
for name, im in [("rgb.ppm", Image.fromarray(rgb)), ("gray.pgm", Image.fromarray(gray))]:
    b = io.BytesIO()
    im.save(b, "PPM")
    px = np.array(Image.open(io.BytesIO(b.getvalue())))
    add_ppm(name, b.getvalue(), px)
# ASCII with comments, maxval 255.
hdr = b"P3\n# a comment\n17 # width\n13\n255\n"
add_ppm("rgb_ascii.ppm", hdr + " ".join(str(v) for v in rgb.reshape(-1)).encode() + b"\n", np.array(Image.open(io.BytesIO(hdr + " ".join(str(v) for v in rgb.reshape(-1)).encode()))))
small = (gray // 17).astype(np.int64)   # maxval 15
hdr = b"P2 17 13\n#c\n15\n"
add_ppm("gray_ascii15.pgm", hdr + "\n".join(" ".join(str(v) for v in r) for r in small).encode(),
        ((small * 255 + 7) // 15).astype(np.uint8))
# 16-bit binary gray, maxval 1000 (pixels rescaled with rounding).
g16 = rng.integers(0, 1001, (13, 17)).astype(np.int64)
add_ppm("gray16.pgm", b"P5\n17 13\n1000\n" + g16.astype(">u2").tobytes(), ((g16 * 255 + 500) // 1000).astype(np.uint8), samples16=g16)

save("images", cases)
total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
print(f"{len(os.listdir(OUT))} image files, {total / 1024:.1f} KiB")
