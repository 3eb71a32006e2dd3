"""PyTorch eager reference for rolekd's trainer: the same model, data, optimizer and
schedule, so accuracy and throughput can be compared in one invocation.

usage: python bench/torch_reference.py --model resnet8 --width 8 --train-size 10000 --epochs 1
       python bench/torch_reference.py --model resnet18 --batch 256 --cifar10 DIR --device cuda
       python bench/torch_reference.py --model resnet20 --channels-last --bf16 --compile

--bf16: the forward pass and the loss under torch.autocast(dtype=bfloat16), the recipe
PyTorch documents (fp32 weights and optimizer). --compile: torch.compile(model) (inductor);
--warmup N batches train before the clock starts, so compilation is not timed.
"""
import argparse, gzip, json, math, os, time
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

def idx(path):
    with gzip.open(path) as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(magic & 0xFF)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * len(dims)).reshape(dims)

class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False); self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False); self.b2 = nn.BatchNorm2d(cout)
        self.sc = None
        if stride != 1 or cin != cout:
            self.sc = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (x if self.sc is None else self.sc(x)))

class ResNet(nn.Module):
    def __init__(self, depth, width, cin, classes):
        super().__init__()
        n = (depth - 2) // 6
        self.c = nn.Conv2d(cin, width, 3, 1, 1, bias=False); self.b = nn.BatchNorm2d(width)
        layers, c = [], width
        for s, w in enumerate([width, 2 * width, 4 * width]):
            for i in range(n):
                layers.append(Block(c, w, 2 if s > 0 and i == 0 else 1)); c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    def forward(self, x):
        x = self.layers(F.relu(self.b(self.c(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

class ResNet18(nn.Module):
    """ResNet-18 with the CIFAR stem: a 3x3 stride-1 conv, no max-pool; 4 stages of 2 blocks."""
    def __init__(self, cin, classes):
        super().__init__()
        self.c = nn.Conv2d(cin, 64, 3, 1, 1, bias=False); self.b = nn.BatchNorm2d(64)
        layers, c = [], 64
        for s, w in enumerate([64, 128, 256, 512]):
            for i in range(2):
                layers.append(Block(c, w, 2 if s > 0 and i == 0 else 1)); c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    def forward(self, x):
        x = self.layers(F.relu(self.b(self.c(x))))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))

def cifar10(path, train_size):
    """CIFAR-10's binary batches: a label byte, then 3072 bytes (R, G, B planes)."""
    def read(names):
        raw = np.concatenate([np.fromfile(os.path.join(path, n), np.uint8) for n in names])
        rec = raw.reshape(-1, 3073)
        return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0]
    xtr, ytr = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    xte, yte = read(["test_batch.bin"])
    return xtr[:train_size], ytr[:train_size], xte, yte

class SmallCnn(nn.Module):
    def __init__(self, channels, cin, classes):
        super().__init__()
        layers, c = [], cin
        for w in channels:
            layers += [nn.Conv2d(c, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]; c = w
        self.f = nn.Sequential(*layers)
        self.fc = None; self.c = c
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    def forward(self, x):
        x = self.f(x).flatten(1)
        if self.fc is None:
            self.fc = nn.Linear(x.shape[1], 10)
        return self.fc(x)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("ROLEKD_FASHION_MNIST", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--model", default="resnet8")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--channels", default="16,32")
    ap.add_argument("--train-size", type=int, default=60000)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true", help="NHWC layout (model and batches)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--cifar10", help="a cifar-10-batches-bin directory instead of Fashion-MNIST")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for forward and loss")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--warmup", type=int, default=0, help="untimed training batches first")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    if a.cifar10:
        xtr, ytr, xte, yte = cifar10(a.cifar10, a.train_size)
        mean = xtr.mean(axis=(0, 2, 3), keepdims=True) / 255
        std = xtr.std(axis=(0, 2, 3), keepdims=True) / 255
        norm = lambda x: torch.tensor((x / 255.0 - mean) / std, dtype=torch.float32)
    else:
        xtr = idx(f"{a.data}/train-images-idx3-ubyte.gz")[: a.train_size]
        ytr = idx(f"{a.data}/train-labels-idx1-ubyte.gz")[: a.train_size]
        xte, yte = idx(f"{a.data}/t10k-images-idx3-ubyte.gz"), idx(f"{a.data}/t10k-labels-idx1-ubyte.gz")
        mean, std = xtr.mean() / 255, xtr.std() / 255
        norm = lambda x: torch.tensor((x / 255.0 - mean) / std, dtype=torch.float32).unsqueeze(1)
    # Data in memory on the device, as rolekd's trainer gets its batches.
    xtr, xte = norm(xtr).to(dev), norm(xte).to(dev)
    ytr = torch.tensor(ytr, dtype=torch.long).to(dev)
    yte = torch.tensor(yte, dtype=torch.long).to(dev)
    cin = xtr.shape[1]
    if a.model == "resnet18":
        model = ResNet18(cin, 10)
    elif a.model.startswith("resnet"):
        model = ResNet(int(a.model[6:]), a.width, cin, 10)
    else:
        model = SmallCnn([int(c) for c in a.channels.split(",")], cin, 10)
        model(xtr[:2].cpu())
    model = model.to(dev)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    train_model = torch.compile(model) if a.compile else model
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16)
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps = math.ceil(len(xtr) / a.batch) * a.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    out = []
    def train_step(b):
        with amp:
            loss = F.cross_entropy(train_model(xtr[b].contiguous(memory_format=fmt)), ytr[b])
        opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    if a.warmup:
        # Untimed batches (compilation, allocator and oneDNN primitive caches), then the
        # weights, optimizer and schedule start over so the timed run is a normal one.
        state = ({k: v.clone() for k, v in model.state_dict().items()}, opt.state_dict(), sched.state_dict())
        for i in range(a.warmup):
            train_step(torch.arange(i * a.batch, (i + 1) * a.batch, device=dev) % len(xtr))
        if len(xtr) % a.batch:  # the epoch's last, smaller batch: its own compiled graph
            train_step(torch.arange(len(xtr) % a.batch, device=dev))
        model.load_state_dict(state[0]); opt.load_state_dict(state[1]); sched.load_state_dict(state[2])
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), device=dev)
        sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
        sync()
        t0 = time.time()
        for i in range(0, len(xtr), a.batch):
            train_step(perm[i:i + a.batch])
        sync()
        dt = time.time() - t0
        model.eval()
        with torch.no_grad(), amp:
            acc = sum((model(xte[i:i + 256].contiguous(memory_format=fmt)).argmax(1) == yte[i:i + 256]).sum().item() for i in range(0, len(xte), 256)) / len(xte)
        out.append({"epoch": epoch + 1, "test_acc": acc, "images_per_s": len(xtr) / dt, "seconds": dt})
        print(json.dumps(out[-1]), flush=True)

if __name__ == "__main__":
    main()
