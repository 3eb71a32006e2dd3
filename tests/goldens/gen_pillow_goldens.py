#!/usr/bin/env python3
"""Writes tests/goldens/pba_ops.bin.gz: PBA's ops run by Pillow, for rolekd-augment's parity
tests (plugins/augment/tests/pillow_parity.rs).

Run by hand (Python 3 + Pillow + numpy only):
    python tests/goldens/gen_pillow_goldens.py [--fmnist DIR]

The ops follow PBA's augmentation_transforms as method.md states them: images are RGBA
(RGB inputs) or LA (grayscale inputs) with alpha 255; geometric ops and Cutout leave
alpha-0 (uncovered) pixels; Posterize, Solarize, Equalize, AutoContrast and Invert go
through RGB (or L) and come back opaque. Each case stores the RGB/L bytes and the
alpha == 0 mask of the result.

File layout (little endian, gzip-compressed):
    b"RKDGOLD1", u32 pillow-version length + bytes,
    u32 n_inputs, per input: u16 name length + name, u16 w, u16 h, u8 channels, pixels,
    u32 n_cases, per case: u16 input index, u8 n_ops, per op: u8 name length + name,
        u8 level, u8 negate, i16 cx, i16 cy (Cutout centre, else -1),
        then w*h*c output bytes and w*h mask bytes (1 = uncovered).
"""

import argparse
import gzip
import io
import os
import struct

import numpy as np
import PIL
from PIL import Image, ImageEnhance, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "pba_ops.bin.gz")

SIGNED = ["Rotate", "TranslateX", "TranslateY", "ShearX", "ShearY"]
ENHANCE = ["Brightness", "Color", "Contrast", "Sharpness"]
LEVEL_OPS = SIGNED + ENHANCE + ["Posterize", "Solarize", "Cutout"]
FIXED_OPS = ["Invert", "Equalize", "AutoContrast"]


def int_parameter(level, maxval):
    return int(level * maxval / 10)


def float_parameter(level, maxval):
    return float(level) * maxval / 10


def through_base(img, fn):
    """PBA's RGB round trip: drop alpha, apply, come back opaque."""
    base = "RGB" if img.mode == "RGBA" else "L"
    return fn(img.convert(base)).convert(img.mode)


def apply_op(img, name, level, negate, centre):
    if name == "Rotate":
        deg = int_parameter(level, 30)
        return img.rotate(-deg if negate else deg)
    if name in ("TranslateX", "TranslateY"):
        t = int_parameter(level, 10)
        t = -t if negate else t
        data = (1, 0, t, 0, 1, 0) if name == "TranslateX" else (1, 0, 0, 0, 1, t)
        return img.transform(img.size, Image.AFFINE, data)
    if name in ("ShearX", "ShearY"):
        s = float_parameter(level, 0.3)
        s = -s if negate else s
        data = (1, s, 0, 0, 1, 0) if name == "ShearX" else (1, 0, 0, s, 1, 0)
        return img.transform(img.size, Image.AFFINE, data)
    if name in ENHANCE:
        v = float_parameter(level, 1.8) + 0.1
        return getattr(ImageEnhance, name)(img).enhance(v)
    if name == "Posterize":
        bits = 4 - int_parameter(level, 4)
        return through_base(img, lambda im: ImageOps.posterize(im, bits))
    if name == "Solarize":
        thr = 256 - int_parameter(level, 256)
        return through_base(img, lambda im: ImageOps.solarize(im, thr))
    if name == "Invert":
        return through_base(img, ImageOps.invert)
    if name == "Equalize":
        return through_base(img, ImageOps.equalize)
    if name == "AutoContrast":
        return through_base(img, ImageOps.autocontrast)
    if name == "Cutout":
        size = int_parameter(level, 20)
        if size <= 0:
            return img
        img = img.copy()
        w, h = img.size
        cx, cy = centre
        fill = (125, 122, 113, 0) if img.mode == "RGBA" else (122, 0)
        px = img.load()
        for x in range(max(0, cx - size // 2), min(w, cx + size // 2)):
            for y in range(max(0, cy - size // 2), min(h, cy + size // 2)):
                px[x, y] = fill
        return img
    raise ValueError(name)


def lcg(seed):
    state = seed & 0xFFFFFFFF
    while True:
        state = (state * 1664525 + 1013904223) & 0xFFFFFFFF
        yield state >> 24


def synthetic(kind, seed, size=32):
    """Deterministic RGB test images (no RNG library involved)."""
    g = lcg(seed)
    y, x = np.mgrid[0:size, 0:size]
    if kind == "gradient":
        r = (x * 255 // (size - 1)).astype(np.int32)
        gg = (y * 255 // (size - 1)).astype(np.int32)
        b = ((x + y) * 4 % 256).astype(np.int32)
        noise = np.array([next(g) for _ in range(size * size)]).reshape(size, size) % 23 - 11
        arr = np.stack([r + noise, gg - noise, b + noise // 2], axis=-1)
    elif kind == "blocks":
        arr = np.zeros((size, size, 3), np.int32)
        for by in range(0, size, 4):
            for bx in range(0, size, 4):
                arr[by:by + 4, bx:bx + 4] = [next(g), next(g), next(g)]
    elif kind == "lowcontrast":
        vals = np.array([next(g) for _ in range(size * size * 3)]).reshape(size, size, 3)
        arr = 70 + vals * 60 // 255 + (x[..., None] * 2)
    else:
        raise ValueError(kind)
    return np.clip(arr, 0, 255).astype(np.uint8)


def fashion_mnist(directory, indices):
    path = os.path.join(directory, "train-images-idx3-ubyte.gz")
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n, rows, cols = struct.unpack(">IIII", data[:16])
    assert magic == 2051, magic
    out = []
    for i in indices:
        start = 16 + i * rows * cols
        out.append(np.frombuffer(data[start:start + rows * cols], np.uint8).reshape(rows, cols))
    return out


def to_pil(arr):
    if arr.ndim == 2:
        return Image.fromarray(arr, "L").convert("LA")
    return Image.fromarray(arr, "RGB").convert("RGBA")


def from_pil(img):
    a = np.asarray(img)
    alpha = a[..., -1]
    assert set(np.unique(alpha)) <= {0, 255}, (img.mode, np.unique(alpha))
    return a[..., :-1].copy(), (alpha == 0).astype(np.uint8)


def cases_for(w, h, rich):
    """(ops) lists: every op at several levels and both signs, plus chains that mix
    uncovered pixels with the other ops."""
    levels = list(range(10)) if rich else [0, 3, 5, 9]
    centre = (w // 3, h - 3)
    out = []
    for name in LEVEL_OPS:
        for level in levels:
            for negate in ([False, True] if name in SIGNED else [False]):
                out.append([(name, level, negate, centre if name == "Cutout" else None)])
    for name in FIXED_OPS:
        out.append([(name, 0, False, None)])
    chains = [
        [("Rotate", 9, False, None), ("Equalize", 0, False, None)],
        [("Rotate", 7, True, None), ("AutoContrast", 0, False, None)],
        [("Rotate", 5, True, None), ("Color", 0, False, None)],
        [("Rotate", 9, False, None), ("Sharpness", 9, False, None)],
        [("ShearX", 9, True, None), ("Contrast", 3, False, None)],
        [("ShearY", 6, False, None), ("Brightness", 8, False, None)],
        [("TranslateY", 5, False, None), ("Solarize", 9, False, None)],
        [("TranslateX", 7, True, None), ("Posterize", 9, False, None)],
        [("Cutout", 9, False, (2, 3)), ("Invert", 0, False, None)],
        [("Cutout", 8, False, (w // 2, h // 2)), ("Sharpness", 0, False, None)],
        [("Cutout", 9, False, (w - 1, 0)), ("Rotate", 6, False, None)],
        [("Cutout", 7, False, (10, 12)), ("Contrast", 9, False, None)],
        [("Cutout", 9, False, (20, 20)), ("Equalize", 0, False, None)],
        [("Rotate", 4, False, None), ("Cutout", 6, False, (5, 5))],
    ]
    return out + chains


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fmnist", default=os.environ.get(
        "ROLEKD_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    args = ap.parse_args()

    inputs = [("fmnist-%d" % i, a) for i, a in zip((0, 1, 2), fashion_mnist(args.fmnist, (0, 1, 2)))]
    inputs += [("gradient", synthetic("gradient", 1)), ("blocks", synthetic("blocks", 2)),
               ("lowcontrast", synthetic("lowcontrast", 3))]

    buf = io.BytesIO()
    buf.write(b"RKDGOLD1")
    ver = PIL.__version__.encode()
    buf.write(struct.pack("<I", len(ver)) + ver)
    buf.write(struct.pack("<I", len(inputs)))
    for name, arr in inputs:
        h, w = arr.shape[:2]
        c = 1 if arr.ndim == 2 else arr.shape[2]
        buf.write(struct.pack("<H", len(name)) + name.encode())
        buf.write(struct.pack("<HHB", w, h, c))
        buf.write(arr.tobytes())
    cases = []
    for idx, (name, arr) in enumerate(inputs):
        h, w = arr.shape[:2]
        # Every level on one grayscale and one colour image; 0, 3, 5, 9 on the others.
        for ops in cases_for(w, h, rich=name in ("fmnist-0", "gradient")):
            img = to_pil(arr)
            for (op, level, negate, centre) in ops:
                img = apply_op(img, op, level, negate, centre)
            cases.append((idx, ops, from_pil(img)))
    buf.write(struct.pack("<I", len(cases)))
    for idx, ops, (data, mask) in cases:
        buf.write(struct.pack("<HB", idx, len(ops)))
        for (op, level, negate, centre) in ops:
            cx, cy = centre if centre else (-1, -1)
            buf.write(struct.pack("<B", len(op)) + op.encode())
            buf.write(struct.pack("<BBhh", level, int(negate), cx, cy))
        buf.write(data.tobytes())
        buf.write(mask.tobytes())
    raw = buf.getvalue()
    with open(OUT, "wb") as f:
        f.write(gzip.compress(raw, 9, mtime=0))
    print("%s: %d cases, %d bytes raw, %d compressed (Pillow %s)"
          % (OUT, len(cases), len(raw), os.path.getsize(OUT), PIL.__version__))


if __name__ == "__main__":
    main()
