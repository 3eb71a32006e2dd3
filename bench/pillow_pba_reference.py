"""Pillow reference of the PBA augmentation pipeline, one thread: a 60-gene policy (every op
p = 0.5, magnitude 6 in both slots), 0/1/2 ops per image with PBA's count distribution,
then pad 4 + random crop, random flip, cutout. Prints images/s as JSON.

usage: python bench/pillow_pba_reference.py rgb|gray N
"""
import json, random, sys, time
import numpy as np
from PIL import Image, ImageEnhance, ImageOps

def level(l, maxval):
    return l * maxval / 10.0

def affine(img, m):
    return img.transform(img.size, Image.AFFINE, m, resample=Image.NEAREST, fillcolor=0)

def sign(v):
    return -v if random.random() > 0.5 else v

OPS = {
    "Rotate": lambda im, l: im.rotate(sign(int(level(l, 30))), resample=Image.NEAREST),
    "TranslateX": lambda im, l: affine(im, (1, 0, sign(int(level(l, 10))), 0, 1, 0)),
    "TranslateY": lambda im, l: affine(im, (1, 0, 0, 0, 1, sign(int(level(l, 10))))),
    "Brightness": lambda im, l: ImageEnhance.Brightness(im).enhance(level(l, 1.8) + 0.1),
    "Color": lambda im, l: ImageEnhance.Color(im).enhance(level(l, 1.8) + 0.1),
    "Invert": lambda im, l: ImageOps.invert(im),
    "Sharpness": lambda im, l: ImageEnhance.Sharpness(im).enhance(level(l, 1.8) + 0.1),
    "Posterize": lambda im, l: ImageOps.posterize(im, 4 - int(level(l, 4))),
    "ShearX": lambda im, l: affine(im, (1, sign(level(l, 0.3)), 0, 0, 1, 0)),
    "Solarize": lambda im, l: ImageOps.solarize(im, 256 - int(level(l, 256))),
    "ShearY": lambda im, l: affine(im, (1, 0, 0, sign(level(l, 0.3)), 1, 0)),
    "Equalize": lambda im, l: ImageOps.equalize(im),
    "AutoContrast": lambda im, l: ImageOps.autocontrast(im),
    "Cutout": lambda im, l: cutout_pil(im, int(level(l, 20))),
    "Contrast": lambda im, l: ImageEnhance.Contrast(im).enhance(level(l, 1.8) + 0.1),
}

def cutout_pil(im, size):
    if size <= 0:
        return im
    a = np.array(im)
    h, w = a.shape[:2]
    y, x = random.randrange(h), random.randrange(w)
    a[max(0, y - size // 2):y + size // 2, max(0, x - size // 2):x + size // 2] = 0
    return Image.fromarray(a)

def apply_policy(policy, im):
    count = np.random.choice([0, 1, 2], p=[0.2, 0.3, 0.5])
    if count == 0:
        return im
    random.shuffle(policy)
    for name, p, mag in policy:
        if random.random() < p:
            im = OPS[name](im, mag)
            count -= 1
            if count == 0:
                break
    return im

def finish(a, cut):
    h, w = a.shape[:2]
    padded = np.pad(a, ((4, 4), (4, 4)) + ((0, 0),) * (a.ndim - 2))
    y, x = random.randint(0, 8), random.randint(0, 8)
    a = padded[y:y + h, x:x + w]
    if random.random() < 0.5:
        a = a[:, ::-1]
    a = a.copy()
    cy, cx = random.randrange(h), random.randrange(w)
    a[max(0, cy - cut // 2):cy + cut // 2, max(0, cx - cut // 2):cx + cut // 2] = 0
    return a

def main():
    kind = sys.argv[1] if len(sys.argv) > 1 else "rgb"
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    side, ch, cut = (28, 1, 8) if kind == "gray" else (32, 3, 16)
    pixels = (np.arange(side * side * ch) * 37 % 251).astype(np.uint8)
    base = pixels.reshape(side, side) if ch == 1 else pixels.reshape(side, side, ch)
    policy = [(name, 0.5, 6) for name in OPS] * 2
    random.seed(0); np.random.seed(0)
    t = time.perf_counter()
    for _ in range(n):
        im = Image.fromarray(base)
        finish(np.asarray(apply_policy(policy, im)), cut)
    s = time.perf_counter() - t
    print(json.dumps({"images": kind, "images_per_s": round(n / s, 1)}))

if __name__ == "__main__":
    main()
