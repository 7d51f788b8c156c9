#!/usr/bin/env python3
"""Writes a PASCAL VOC-layout segmentation dataset of drawn shapes, for `fcn-train --data voc`.

The shapes are drawn independently of the library's `SyntheticShapes` (other shapes, other
colour rules, other noise, JPEG images, palette PNG labels with a void band), so a recipe tuned
on `SyntheticShapes` can be checked on data it was not tuned on.

Layout (what `VOCSegmentation` reads):
    ROOT/JPEGImages/<id>.jpg               RGB, JPEG quality 85, 4:2:0 chroma
    ROOT/SegmentationClass/<id>.png        8-bit palette PNG (VOC palette), class ids,
                                           255 on a 1-pixel void band around each object
    ROOT/ImageSets/Segmentation/{train,val}.txt
    ROOT/class_names.txt                   one class name per line (for --class-names)

Classes: 0 background, 1 ellipse, 2 star, 3 cross, 4 ring.
Image i of a split is a pure function of (seed, split, i): a background of two blended
random colours along a random direction, blotches of low-frequency colour, 2-5 objects of
random class, colour, size and rotation (later ones occlude earlier ones), uniform noise,
then JPEG. Sides vary from 72 to 112 pixels, so training crops them.

    python3 make_voc_shapes.py ROOT [--train 2000] [--val 200] [--seed 7]

Needs Pillow and numpy (pip install pillow numpy).
"""
import argparse
import math
import os
import random

import numpy as np

from PIL import Image, ImageDraw, ImageFilter

CLASS_NAMES = ["background", "ellipse", "star", "cross", "ring"]


def voc_palette():
    """The PASCAL VOC colour map (bit-interleaved class ids), 256 entries."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def rotated(points, cx, cy, angle):
    ca, sa = math.cos(angle), math.sin(angle)
    return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in points]


def shape_polygons(kind, cx, cy, r, angle, rng):
    """The shape as a list of (polygon, fill) pairs in draw order; fill False cuts a hole."""
    if kind == 1:  # ellipse: axes r and 0.45r..0.9r, rotated
        b = r * rng.uniform(0.45, 0.9)
        pts = [(r * math.cos(t), b * math.sin(t)) for t in (2 * math.pi * k / 48 for k in range(48))]
        return [(rotated(pts, cx, cy, angle), True)]
    if kind == 2:  # five-pointed star, inner radius 0.4r..0.55r
        inner = r * rng.uniform(0.4, 0.55)
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else inner
            t = math.pi * k / 5 - math.pi / 2
            pts.append((rad * math.cos(t), rad * math.sin(t)))
        return [(rotated(pts, cx, cy, angle), True)]
    if kind == 3:  # cross (plus sign), arm half-width 0.18r..0.3r
        w = r * rng.uniform(0.18, 0.3)
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w)]
        return [(rotated(pts, cx, cy, angle), True)]
    # ring: outer r, inner 0.45r..0.65r (the hole shows what is below)
    inner = r * rng.uniform(0.45, 0.65)
    outer = [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in (2 * math.pi * k / 48 for k in range(48))]
    hole = [(cx + inner * math.cos(t), cy + inner * math.sin(t)) for t in (2 * math.pi * k / 48 for k in range(48))]
    return [(outer, True), (hole, False)]


def random_colour(rng, avoid=None):
    """A colour at least 90 (sum of channel differences) away from `avoid`."""
    while True:
        c = tuple(rng.randrange(256) for _ in range(3))
        if avoid is None or sum(abs(a - b) for a, b in zip(c, avoid)) >= 90:
            return c


def make_sample(rng):
    w, h = rng.randrange(72, 113), rng.randrange(72, 113)
    c0, c1 = random_colour(rng), random_colour(rng)
    # Background: two colours blended along a random direction.
    angle = rng.uniform(0, 2 * math.pi)
    dx, dy = math.cos(angle), math.sin(angle)
    span = abs(dx) * w + abs(dy) * h
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    proj = xs * dx + ys * dy
    t = np.clip((proj - proj.min()) / max(span, 1e-9), 0, 1)[..., None]
    grad = Image.fromarray((np.array(c0) + (np.array(c1) - np.array(c0)) * t).astype(np.uint8), "RGB")
    image = grad
    # Low-frequency blotches (background clutter, not labelled).
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(2, 6)):
        x, y, s = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 20)
        draw.ellipse([x - s, y - s, x + s, y + s], fill=random_colour(rng))
    image = image.filter(ImageFilter.GaussianBlur(4))
    draw = ImageDraw.Draw(image)
    label = Image.new("L", (w, h), 0)
    ldraw = ImageDraw.Draw(label)
    objects = []
    for _ in range(rng.randrange(2, 6)):
        kind = rng.randrange(1, 5)
        r = rng.uniform(9, 22)
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        objects.append((kind, shape_polygons(kind, cx, cy, r, rng.uniform(0, 2 * math.pi), rng)))
    mean_bg = tuple(sum(c) // 2 for c in zip(c0, c1))
    for kind, polys in objects:
        colour = random_colour(rng, avoid=mean_bg)
        image_before, label_before = image.copy(), label.copy()
        for poly, fill in polys:
            if fill:
                draw.polygon(poly, fill=colour)
                ldraw.polygon(poly, fill=kind)
            else:
                # The hole shows what lay below before this object: pixels and labels.
                mask = Image.new("L", (w, h), 0)
                ImageDraw.Draw(mask).polygon(poly, fill=255)
                image.paste(image_before, (0, 0), mask)
                label.paste(label_before, (0, 0), mask)
    # Void band, one pixel wide: a pixel with a neighbour of a higher class id becomes 255
    # (VOC marks object boundaries so).
    lab = np.array(label)
    lmax = np.array(label.filter(ImageFilter.MaxFilter(3)))
    out = Image.fromarray(np.where(lmax != lab, 255, lab).astype(np.uint8), "P")
    out.putpalette(voc_palette())
    # Noise: uniform +-12 per channel.
    noise = np.random.default_rng(rng.getrandbits(64)).integers(-12, 13, size=(h, w, 3))
    image = Image.fromarray(np.clip(np.array(image).astype(np.int64) + noise, 0, 255).astype(np.uint8), "RGB")
    return image, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("root")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        os.makedirs(os.path.join(a.root, sub), exist_ok=True)
    for split, n in (("train", a.train), ("val", a.val)):
        ids = []
        for i in range(n):
            rng = random.Random(f"{a.seed}/{split}/{i}")
            image, label = make_sample(rng)
            sid = f"{split}_{i:06d}"
            image.save(os.path.join(a.root, "JPEGImages", sid + ".jpg"), quality=85)
            label.save(os.path.join(a.root, "SegmentationClass", sid + ".png"))
            ids.append(sid)
        with open(os.path.join(a.root, "ImageSets/Segmentation", split + ".txt"), "w") as f:
            f.write("\n".join(ids) + "\n")
    with open(os.path.join(a.root, "class_names.txt"), "w") as f:
        f.write("\n".join(CLASS_NAMES) + "\n")
    print(f"wrote {a.train} training and {a.val} validation images to {a.root}")


if __name__ == "__main__":
    main()
