"""Write a small synthetic ImageNet-shaped folder tree, so the image loader can be benchmarked
without the real data set: the same layout (DIR/{train,val}/<wnid>/<name>.JPEG), JPEGs of about
ImageNet's mean size (width 300..500, height 250..450), quality 90. Content is a smooth gradient,
a few filled shapes and mild noise: pure noise would compress (and decode) unlike photographs.
Files come out smaller than ImageNet's (~110 KB mean); --noise raises their entropy.
--corrupt K adds K truncated JPEGs to train folders, to exercise the loader's error path.

usage: python bench/make_imagenet_tree.py --out /tmp/tree --classes 10 --per-class 20 [--corrupt 2]
Deterministic from --seed.
"""
import argparse, io, os
import numpy as np
from PIL import Image, ImageDraw

def picture(rng, noise):
    w, h = int(rng.integers(300, 501)), int(rng.integers(250, 451))
    # Smooth gradient: each channel is a random plane a + b*x + c*y.
    x = np.linspace(0, 1, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    a, b, c = (rng.uniform(lo, hi, 3).astype(np.float32) for lo, hi in ((0, 255), (-128, 128), (-128, 128)))
    im = Image.fromarray(np.clip(a + b * x + c * y, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(2, 7))):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 2)), y0 + int(rng.integers(20, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=fill)
    # Luma noise over everything: a window of one pre-drawn tile (fresh noise per image is slow).
    oy, ox = int(rng.integers(0, noise.shape[0] - h + 1)), int(rng.integers(0, noise.shape[1] - w + 1))
    img = np.asarray(im, dtype=np.float32) + noise[oy:oy + h, ox:ox + w]
    return Image.fromarray(np.clip(img, 0, 255, out=img).astype(np.uint8), "RGB")

def jpeg(im, quality):
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--per-class", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quality", type=int, default=90)
    p.add_argument("--corrupt", type=int, default=0)
    p.add_argument("--noise", type=float, default=8.0, help="luma noise std dev (larger: bigger files)")
    a = p.parse_args()
    rng = np.random.default_rng(a.seed)
    noise = rng.standard_normal((512, 512, 1), dtype=np.float32) * np.float32(a.noise)
    count = total = 0
    first = None
    for split, n in (("train", a.per_class), ("val", max(a.per_class // 5, 1))):
        for k in range(a.classes):
            wnid = f"n{k:08d}"
            d = os.path.join(a.out, split, wnid)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                data = jpeg(picture(rng, noise), a.quality)
                first = first or data
                with open(os.path.join(d, f"{wnid}_{split}_{i:06d}.JPEG"), "wb") as f:
                    f.write(data)
                count += 1; total += len(data)
    for k in range(a.corrupt):
        data = jpeg(picture(rng, noise), a.quality)
        data = data[:len(data) // 2]
        d = os.path.join(a.out, "train", f"n{k % max(a.classes, 1):08d}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"corrupt_{k}.JPEG"), "wb") as f:
            f.write(data)
        count += 1; total += len(data)
    print(f"{count} files ({a.corrupt} corrupt), {total} bytes, {total / max(count, 1) / 1024:.1f} KiB mean, in {a.out}")

if __name__ == "__main__":
    main()
