"""torchvision's ImageNet training input pipeline, timed, as the reference for rolekd's image
loader: images/s of RandomResizedCrop(224) + flip + normalize over DIR/train, one thread per
process, so per-core rates compare. Two decoders: PIL (ImageFolder, the common recipe) and
torchvision.io.decode_jpeg (libjpeg-turbo on raw bytes, transforms.v2 on uint8 tensors).

usage: python bench/loader_torchvision.py --tree /tmp/tree --batch 64 --batches 20 --workers 2 --mode pil
Prints one JSON line; the clock starts after 3 warm-up batches. --max-rss adds, in KiB: this
process's peak RSS, the largest single worker's (getrusage reports children's maximum, not their
sum), and this process's RSS right after importing torch, to subtract. Use a tree made without
--corrupt: neither decoder here skips broken files.
"""
import argparse, json, os, resource, time
import torch
import torchvision
from torchvision import datasets, transforms

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
WARMUP = 3

def one_thread(_worker_id=None):
    torch.set_num_threads(1)

class DecodeJpeg(torch.utils.data.Dataset):
    """ImageFolder's samples, decoded by torchvision.io instead of PIL."""
    def __init__(self, root):
        from torchvision.transforms import v2
        self.samples = datasets.ImageFolder(root).samples
        self.transform = v2.Compose([
            v2.RandomResizedCrop(224, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(MEAN, STD),
        ])
    def __len__(self):
        return len(self.samples)
    def __getitem__(self, i):
        path, label = self.samples[i]
        img = torchvision.io.decode_jpeg(torchvision.io.read_file(path), mode=torchvision.io.ImageReadMode.RGB)
        return self.transform(img), label

def dataset(mode, root):
    if mode == "pil":
        return datasets.ImageFolder(root, transforms.Compose([
            transforms.RandomResizedCrop(224),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]))
    return DecodeJpeg(root)

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--batches", type=int, default=20, help="timed batches, after the warm-up")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--mode", choices=["pil", "decode_jpeg"], default="pil")
    p.add_argument("--max-rss", action="store_true")
    a = p.parse_args()
    one_thread()
    import_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # torch's own share
    ds = dataset(a.mode, os.path.join(a.tree, "train"))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=a.batch, shuffle=True, num_workers=a.workers, drop_last=True,
        persistent_workers=a.workers > 0, worker_init_fn=one_thread if a.workers > 0 else None)
    need = WARMUP + a.batches
    if len(loader) == 0:
        raise SystemExit(f"{len(ds)} images: fewer than one batch of {a.batch}")
    seen = n = 0
    start = None
    while seen < need:  # epochs repeat until enough batches (small trees)
        for x, _ in loader:
            seen += 1
            if seen == WARMUP:
                start = time.perf_counter()
            elif seen > WARMUP:
                n += x.shape[0]
            if seen == need:
                break
    seconds = time.perf_counter() - start
    out = {"mode": a.mode, "workers": a.workers, "batch": a.batch, "images": n,
           "seconds": round(seconds, 4), "images_per_s": round(n / seconds, 2),
           "per_core": round(n / seconds / max(a.workers, 1), 2)}
    if a.max_rss:
        del loader  # joins the persistent workers: RUSAGE_CHILDREN counts only ended children
        out["rss_after_import_kib"] = import_rss
        out["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out["max_rss_children_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(out))

if __name__ == "__main__":
    main()
