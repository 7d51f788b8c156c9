"""JPEG decoder fixtures: progressive, CMYK/YCCK and EXIF-oriented files, synthetic and
real photos, with Pillow's decoded pixels as the expected output.

Writes into Fixtures/jpeg/:
  *.jpg              the inputs;
  expected/*.png     what Pillow makes of each input: Image.open(f), then
                     ImageOps.exif_transpose unless the case opts out, then .convert("RGB")
                     for CMYK/YCCK (gray stays "L"); saved as PNG (lossless, read back
                     by the decoder under test's PNG reader, itself checked against Pillow);
  cases.json         one entry per case: file (relative to Fixtures/), expected (PNG, or
                     null for an error case), applyOrientation, exifOrientation (the value
                     JPEG.exifOrientation must report), error ("unsupported" or
                     "invalidFormat") and message (a substring of the error) for files
                     the decoder must refuse, and a note.
The Swift tests (Tests/FCNTests/IO/JPEGProgressiveTests.swift) need no Python.

Inputs: Pillow's encoder (libjpeg-turbo) at quality 50-100, 4:4:4 / 4:2:2 / 4:2:0,
odd sizes, restart intervals, progressive (libjpeg's standard script: DC first and
refinement, spectral selection, successive approximation, EOB runs); jpegtran (Debian
package libjpeg-turbo-progs) for lossless rewrites with custom progressive scan scripts
and arithmetic coding; imagecodecs for YCCK; EXIF (APP1) and XMP blocks written below
(little- and big-endian TIFF headers). Real photos: scikit-image's sample data, reduced
to about 130 pixels: astronaut (NASA, public domain), coffee (Rachel Michetti, CC0),
chelsea (Stefan van der Walt, CC0), as their skimage.data docstrings state.
Run with a Python that has pillow, numpy, scikit-image and imagecodecs, and with jpegtran
on the PATH:
    python Tests/Fixtures/gen_jpeg.py
"""
import io
import json
import os
import struct
import subprocess
import tempfile

import imagecodecs
import numpy as np
from PIL import Image, ImageOps, features
from skimage import data as skdata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "jpeg")
EXP = os.path.join(OUT, "expected")
os.makedirs(EXP, exist_ok=True)
for d in (OUT, EXP):
    for f in os.listdir(d):
        if f.endswith((".jpg", ".png")):
            os.remove(os.path.join(d, f))
cases = []


def texture(h, w, c, seed):
    """Gradients, waves, a hard-edged block and noise: stresses IDCT, upsampling, colour."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    chans = []
    for k in range(c):
        v = 128 + 70 * np.sin(x / (2.5 + k) + y / (4 + 1.5 * k)) + 50 * (x / w - y / h)
        v += r.normal(0, 14, (h, w))
        v[(h // 4):(h // 2), (w // 3):(2 * w // 3)] = 20 + 70 * k
        chans.append(v)
    a = np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)
    return a if c > 1 else a[..., 0]


def pillow_expected(path, orient):
    im = Image.open(path)
    im.load()
    if orient:
        im = ImageOps.exif_transpose(im)
    if im.mode == "CMYK":
        im = im.convert("RGB")
    assert im.mode in ("L", "RGB"), im.mode
    return im


def add(name, data, orient=True, exif_value=1, note=""):
    """Writes `data` as jpeg/<name>.jpg and Pillow's decoding as expected/<name>.png."""
    path = os.path.join(OUT, name + ".jpg")
    with open(path, "wb") as f:
        f.write(data)
    exp = pillow_expected(path, orient)
    exp_name = name + ("" if orient else "_raw") + ".png"
    exp.save(os.path.join(EXP, exp_name), optimize=True)
    cases.append(dict(file="jpeg/" + name + ".jpg", expected="jpeg/expected/" + exp_name,
                      applyOrientation=orient, exifOrientation=exif_value, note=note))


def add_error(name, data, error, message, note=""):
    with open(os.path.join(OUT, name + ".jpg"), "wb") as f:
        f.write(data)
    cases.append(dict(file="jpeg/" + name + ".jpg", expected=None, error=error, message=message, note=note))


def save(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def jpegtran(data, *args, scans=None):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = os.path.join(tmp, "in.jpg"), os.path.join(tmp, "out.jpg")
        with open(src, "wb") as f:
            f.write(data)
        cmd = ["jpegtran", "-copy", "none", *args]
        if scans is not None:
            sp = os.path.join(tmp, "scans.txt")
            with open(sp, "w") as f:
                f.write(scans)
            cmd += ["-scans", sp]
        subprocess.run(cmd + ["-outfile", dst, src], check=True)
        with open(dst, "rb") as f:
            return f.read()


# ---------------------------------------------------------------- EXIF / XMP blocks

def tiff_ifd0(entries, big_endian):
    """A TIFF header + IFD0 with `entries` [(tag, type, count, payload bytes)]; payloads
    over 4 bytes go after the IFD and the entry holds their offset."""
    e = ">" if big_endian else "<"
    head = (b"MM" if big_endian else b"II") + struct.pack(e + "HI", 42, 8)
    n = len(entries)
    extra_at = 8 + 2 + 12 * n + 4
    body, extra = struct.pack(e + "H", n), b""
    for tag, typ, count, payload in entries:
        if len(payload) > 4:
            body += struct.pack(e + "HHII", tag, typ, count, extra_at + len(extra))
            extra += payload + (b"\0" if len(payload) % 2 else b"")
        else:
            body += struct.pack(e + "HHI", tag, typ, count) + payload.ljust(4, b"\0")
    return head + body + struct.pack(e + "I", 0) + extra


def exif_block(orientation, big_endian, as_long=False):
    e = ">" if big_endian else "<"
    entries = [(0x010F, 2, 8, b"FCNTest\0"),                                   # Make (ASCII, at an offset)
               (0x0112, 4 if as_long else 3, 1,
                struct.pack(e + ("I" if as_long else "H"), orientation)),        # Orientation
               (0x011A, 5, 1, struct.pack(e + "II", 72, 1)),                     # XResolution (RATIONAL)
               (0x0128, 3, 1, struct.pack(e + "H", 2))]                          # ResolutionUnit
    return b"Exif\0\0" + tiff_ifd0(entries, big_endian)


def with_app1(jpeg, payload):
    """Inserts an APP1 segment right after SOI."""
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def xmp_block(orientation):
    return (b"http://ns.adobe.com/xap/1.0/\0<?xpacket begin=''?><x:xmpmeta xmlns:x='adobe:ns:meta/'>"
            b"<rdf:RDF><rdf:Description tiff:Orientation=\"" + str(orientation).encode() +
            b"\"/></rdf:RDF></x:xmpmeta><?xpacket end='w'?>")


# ---------------------------------------------------------------- synthetic

rgb64 = Image.fromarray(texture(48, 64, 3, 1), "RGB")
rgb33 = Image.fromarray(texture(21, 33, 3, 2), "RGB")
rgb17 = Image.fromarray(texture(13, 17, 3, 3), "RGB")
gray33 = Image.fromarray(texture(21, 33, 1, 4), "L")
gray17 = Image.fromarray(texture(13, 17, 1, 5), "L")
cmyk33 = Image.fromarray(texture(21, 33, 4, 6), "CMYK")

add("prog_444_q90", save(rgb64, quality=90, subsampling=0, progressive=True), note="progressive 4:4:4")
add("prog_422_q75_odd", save(rgb33, quality=75, subsampling=1, progressive=True), note="progressive 4:2:2, odd size")
add("prog_420_q50_odd", save(rgb17, quality=50, subsampling=2, progressive=True), note="progressive 4:2:0, odd size")
add("prog_420_q100", save(rgb33, quality=100, subsampling=2, progressive=True), note="progressive at quality 100")
add("prog_420_restart", save(rgb33, quality=95, subsampling=2, progressive=True, restart_marker_blocks=1),
    note="progressive, a restart after every MCU / block")
add("prog_444_restart_rows", save(rgb33, quality=80, subsampling=0, progressive=True, restart_marker_rows=1),
    note="progressive, a restart every MCU row")
add("prog_gray_q85", save(gray33, quality=85, progressive=True), note="progressive gray")
add("prog_gray_restart_odd", save(gray17, quality=60, progressive=True, restart_marker_blocks=2),
    note="progressive gray, odd size, restarts")
base420 = save(rgb33, quality=90, subsampling=2)
# Custom scan scripts (jpegtran rewrites the same coefficients losslessly).
add("prog_spectral_only", jpegtran(base420, scans="0 1 2: 0 0 0 0;\n0: 1 5 0 0;\n0: 6 63 0 0;\n1: 1 63 0 0;\n2: 1 63 0 0;\n"),
    note="spectral selection only, no successive approximation")
add("prog_approx_deep", jpegtran(base420, scans=(
    "0: 0 0 0 2;\n1: 0 0 0 1;\n2: 0 0 0 0;\n0: 0 0 2 1;\n0: 0 0 1 0;\n1: 0 0 1 0;\n"
    "0: 1 9 0 3;\n0: 10 63 0 2;\n1: 1 63 0 2;\n2: 1 63 0 1;\n0: 1 9 3 2;\n0: 1 63 2 1;\n0: 1 63 1 0;\n"
    "1: 1 63 2 1;\n1: 1 63 1 0;\n2: 1 63 1 0;\n")),
    note="non-interleaved DC scans, DC refined twice, AC refined three times in uneven bands")
add("prog_jpegtran_restart", jpegtran(base420, "-progressive", "-restart", "2B"),
    note="jpegtran's progressive script with a restart every 2 MCUs")

add("cmyk_q90", save(cmyk33, quality=90), note="CMYK (Adobe APP14 transform 0, inverted samples)")
add("cmyk_prog_q70", save(cmyk33, quality=70, progressive=True), note="progressive CMYK")
add("ycck_q90", imagecodecs.jpeg8_encode(np.array(cmyk33), level=90, colorspace="CMYK", outcolorspace="YCCK"),
    note="YCCK (Adobe APP14 transform 2), Y and K 2x2, Cb and Cr 1x1")

# EXIF orientations 1-8 on a non-square image, both byte orders, SHORT and LONG values.
for o in range(1, 9):
    add(f"exif_{o}", with_app1(base420, exif_block(o, big_endian=o % 2 == 0, as_long=o == 7)), exif_value=o,
        note=f"EXIF orientation {o}, {'big' if o % 2 == 0 else 'little'}-endian TIFF" + (", LONG value" if o == 7 else ""))
add("exif_6", with_app1(base420, exif_block(6, big_endian=True)), orient=False, exif_value=6,
    note="orientation 6 not applied (applyOrientation: false)")
add("exif_5_gray_prog", with_app1(save(gray33, quality=80, progressive=True), exif_block(5, big_endian=False)), exif_value=5,
    note="progressive gray, transposed")
add("exif_8_cmyk", with_app1(save(cmyk33, quality=85), exif_block(8, big_endian=True)), exif_value=8, note="CMYK, rotated")
add("xmp_6", with_app1(base420, xmp_block(6)), exif_value=6, note="orientation from XMP only")
add("exif_9_invalid", with_app1(base420, exif_block(9, big_endian=False)), exif_value=1, note="orientation 9: ignored")

# Refused files.
add_error("arithmetic", jpegtran(base420, "-arithmetic"), "unsupported", "arithmetic", note="SOF9")
add_error("arithmetic_prog", jpegtran(base420, "-arithmetic", "-progressive"), "unsupported", "arithmetic", note="SOF10")
twelve = bytearray(base420)
sof = twelve.index(b"\xff\xc0")
twelve[sof + 4] = 12
add_error("precision12", bytes(twelve), "unsupported", "12-bit", note="SOF0 with 12-bit samples (header patched)")

# ---------------------------------------------------------------- real photos

def photo(arr, size):
    return Image.fromarray(arr).resize(size, Image.LANCZOS)


astro = photo(skdata.astronaut(), (131, 131))
coffee = photo(skdata.coffee(), (149, 99))
cat = photo(skdata.chelsea(), (135, 90))
add("photo_astronaut_q50_420", save(astro, quality=50, subsampling=2), note="photo, baseline")
add("photo_astronaut_prog_q85_422_restart", save(astro, quality=85, subsampling=1, progressive=True, restart_marker_blocks=3),
    note="photo, progressive, restarts")
add("photo_astronaut_cmyk", save(astro.convert("CMYK"), quality=90), note="photo, CMYK")
add("photo_coffee_q100_444", save(coffee, quality=100, subsampling=0), note="photo, quality 100")
add("photo_coffee_prog_q75_420", save(coffee, quality=75, subsampling=2, progressive=True), note="photo, progressive")
add("photo_coffee_exif6_q90", with_app1(save(coffee, quality=90, subsampling=2), exif_block(6, big_endian=True)), exif_value=6,
    note="photo, EXIF orientation 6 (a portrait camera shot)")
add("photo_chelsea_q95_422", save(cat, quality=95, subsampling=1, restart_marker_rows=1), note="photo, restarts")
add("photo_chelsea_prog_q60_444_exif3", with_app1(save(cat, quality=60, subsampling=0, progressive=True), exif_block(3, big_endian=False)),
    exif_value=3, note="photo, progressive, EXIF orientation 3")
add("photo_chelsea_ycck", imagecodecs.jpeg8_encode(np.array(cat.convert("CMYK")), level=85, colorspace="CMYK", outcolorspace="YCCK"),
    note="photo, YCCK")

# The progressive file of the older fixture set (images/), refused before this decoder.
im = pillow_expected(os.path.join(HERE, "images", "progressive.jpg"), True)
im.save(os.path.join(EXP, "images_progressive.png"), optimize=True)
cases.append(dict(file="images/progressive.jpg", expected="jpeg/expected/images_progressive.png",
                  applyOrientation=True, exifOrientation=1, note="images/progressive.jpg (64x48, quality 80)"))

with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(dict(pillow=Image.__version__, libjpeg_turbo=features.version("libjpeg_turbo"), cases=cases), f, indent=1)
total = sum(os.path.getsize(os.path.join(d, f)) for d in (OUT, EXP) for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))
print(f"{len(cases)} cases, {total / 1024:.1f} KiB in jpeg/")
