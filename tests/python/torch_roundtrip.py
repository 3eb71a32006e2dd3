"""PyTorch's side of tests/interop.rs: builds models with python/rolekd_models.py, saves them
as a user would, and checks what rolekd exported (no rolekd code here, only PyTorch).

  make ARCH CLASSES DIR [SIZE] (ARCH `torchvision.resnet18`: torchvision's class) state_dicts
                               (plain .pth, RepDistiller-style wrapped .pth, .safetensors),
                               SIZE x SIZE inputs (default 32) and the expected logits
  check ARCH CLASSES DIR SD TS ABITS
                               loads SD (strict) and TS, prints the largest logit differences
                               against rolekd's (DIR/rolekd_logits.safetensors) as JSON
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "python"))
import rolekd_models  # noqa: E402


def build(arch, classes, abits=32):
    """`torchvision.<name>`: torchvision's own model class; anything else rolekd_models'."""
    if arch.startswith("torchvision."):
        import torchvision
        return getattr(torchvision.models, arch.split(".", 1)[1])(num_classes=classes)
    return getattr(rolekd_models, arch)(num_classes=classes, activation_bits=abits)


def make(arch, classes, out, size=32):
    torch.manual_seed(0)
    model = build(arch, classes)
    # Non-trivial BatchNorm statistics and affine parameters, as after training.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
            m.num_batches_tracked.fill_(1234)
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
            m.bias.data.uniform_(-0.1, 0.1)   # VGG's conv biases (rolekd folds them)
    model.eval()
    x = torch.randn(6, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(x)
    # A copy: the optimizer step below changes the model's tensors in place.
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(sd, os.path.join(out, "plain.pth"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    model(x).sum().backward()
    opt.step()
    torch.save({"model": sd, "epoch": 240, "best_acc": torch.tensor(77.5),
                "optimizer": opt.state_dict()}, os.path.join(out, "wrapped.pth"))
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(out, "sd.safetensors"))
    save_file({"images": x}, os.path.join(out, "inputs.safetensors"))
    save_file({"logits": logits}, os.path.join(out, "expected.safetensors"))


def check(arch, classes, out, sd_path, ts_path, abits):
    x = load_file(os.path.join(out, "inputs.safetensors"))["images"]
    ours = load_file(os.path.join(out, "rolekd_logits.safetensors"))["logits"]
    model = build(arch, classes, abits)
    model.load_state_dict(load_file(sd_path), strict=True)
    model.eval()
    ts = torch.jit.load(ts_path)
    with torch.no_grad():
        a = model(x)
        b = ts(x)
    print(json.dumps({
        "state_dict_max_diff": (a - ours).abs().max().item(),
        "torchscript_max_diff": (b - ours).abs().max().item(),
        "scale": ours.abs().max().item(),
    }))


if __name__ == "__main__":
    cmd, arch, classes, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if cmd == "make":
        make(arch, classes, out, *(int(a) for a in sys.argv[5:6]))
    else:
        check(arch, classes, out, sys.argv[5], sys.argv[6], int(sys.argv[7]))
