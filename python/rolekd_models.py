"""PyTorch versions of rolekd's CIFAR-style models, with RepDistiller's parameter names.

`rolekd-run export CHECKPOINT --format state-dict -o student.safetensors` writes a
state_dict that loads into these classes with `load_state_dict(..., strict=True)`:

    import safetensors.torch, rolekd_models
    model = rolekd_models.resnet8x4(num_classes=100)
    model.load_state_dict(safetensors.torch.load_file("student.safetensors"), strict=True)

The same names are what `rolekd-run import --from repdistiller` reads, so teachers trained
with RepDistiller (or with these classes) import as they are.

DoReFa students: the exported weights are already quantised; build the class with the
student's `activation_bits` (and `quantize_first_last`) so that activations are quantised
as in rolekd: `round(clip(x, 0, 1) * (2^k - 1)) / (2^k - 1)` in place of ReLU.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "ResNetCifar",
    "WideResNet",
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "resnet18_cifar",
    "VGG",
    "vgg8",
    "vgg13",
    "wrn_16_2",
    "wrn_40_2",
]


class Act(nn.Module):
    """ReLU, or DoReFa's k-bit activation when `bits` < 32."""

    def __init__(self, bits=32):
        super().__init__()
        self.bits = bits

    def forward(self, x):
        if self.bits >= 32:
            return F.relu(x)
        n = float(2**self.bits - 1)
        return torch.round(torch.clamp(x, 0.0, 1.0) * n) / n


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, plus the shortcut (identity, or 1x1 conv + BN), then act."""

    def __init__(self, c_in, c_out, stride, act_bits, out_bits):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act = Act(act_bits)
        self.out_act = Act(out_bits)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.out_act(y + shortcut)


class ResNetCifar(nn.Module):
    """rolekd's `resnet-cifar`: depth 6n + 2, stages of width w, 2w, 4w after a 3x3 stem
    (`stages=[(width, blocks), ...]` for other layouts, e.g. `resnet18_cifar`)."""

    def __init__(self, depth=20, width=16, stem_width=None, num_classes=10, in_channels=3,
                 activation_bits=32, quantize_first_last=False, stages=None):
        super().__init__()
        if stages is None:
            assert depth >= 8 and (depth - 2) % 6 == 0, "depth must be 6n + 2"
            n = (depth - 2) // 6
            stages = [(width, n), (2 * width, n), (4 * width, n)]
        stem = stem_width or width
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.act = Act(activation_bits)
        last_bits = activation_bits if quantize_first_last else 32
        c = stem
        self.n_stages = len(stages)
        for s, (w, n) in enumerate(stages):
            blocks = []
            for b in range(n):
                last = s == len(stages) - 1 and b == n - 1
                stride = 2 if s > 0 and b == 0 else 1
                blocks.append(BasicBlock(c, w, stride, activation_bits,
                                         last_bits if last else activation_bits))
                c = w
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        for s in range(self.n_stages):
            x = getattr(self, f"layer{s + 1}")(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class WideBlock(nn.Module):
    """Pre-activation block of a wide ResNet: BN-act-conv3x3-BN-act-conv3x3, plus the
    shortcut (identity, or a 1x1 conv of the activated input)."""

    def __init__(self, c_in, c_out, stride, act_bits):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.act = Act(act_bits)
        self.equal = c_in == c_out and stride == 1
        self.convShortcut = None if self.equal else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x):
        a = self.act(self.bn1(x))
        y = self.conv2(self.act(self.bn2(self.conv1(a))))
        return y + (x if self.equal else self.convShortcut(a))


class _Group(nn.Module):
    def __init__(self, blocks):
        super().__init__()
        self.layer = nn.Sequential(*blocks)

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    """rolekd's `wrn`: WRN-depth-k, depth 6n + 4, groups of 16k, 32k, 64k channels."""

    def __init__(self, depth=16, widen=2, num_classes=10, in_channels=3,
                 activation_bits=32, quantize_first_last=False):
        super().__init__()
        assert (depth - 4) % 6 == 0, "depth must be 6n + 4"
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        c = widths[0]
        for g in range(3):
            blocks = []
            for b in range(n):
                stride = 2 if g > 0 and b == 0 else 1
                blocks.append(WideBlock(c, widths[g + 1], stride, activation_bits))
                c = widths[g + 1]
            setattr(self, f"block{g + 1}", _Group(blocks))
        self.bn1 = nn.BatchNorm2d(c)
        self.act = Act(activation_bits if quantize_first_last else 32)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = self.act(self.bn1(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


_VGG = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGG(nn.Module):
    """rolekd's `vgg-cifar` with RepDistiller's names: `blockK` of (conv, BN, act) triples
    (the convs carry a bias, zero in exported rolekd models), max-pool after blocks 0-3,
    global average pooling, `classifier`."""

    def __init__(self, depth=13, num_classes=10, in_channels=3, activation_bits=32,
                 quantize_first_last=False):
        super().__init__()
        c = in_channels
        last_bits = activation_bits if quantize_first_last else 32
        for b, widths in enumerate(_VGG[depth]):
            layers = []
            for k, w in enumerate(widths):
                last = b == 4 and k == len(widths) - 1
                layers += [nn.Conv2d(c, w, 3, 1, 1), nn.BatchNorm2d(w),
                           Act(last_bits if last else activation_bits)]
                c = w
            setattr(self, f"block{b}", nn.Sequential(*layers))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        for b in range(5):
            x = getattr(self, f"block{b}")(x)
            if b < 4:
                x = F.max_pool2d(x, 2, 2)
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet8(**kw): return ResNetCifar(8, 16, **kw)
def resnet14(**kw): return ResNetCifar(14, 16, **kw)
def resnet20(**kw): return ResNetCifar(20, 16, **kw)
def resnet32(**kw): return ResNetCifar(32, 16, **kw)
def resnet44(**kw): return ResNetCifar(44, 16, **kw)
def resnet56(**kw): return ResNetCifar(56, 16, **kw)
def resnet110(**kw): return ResNetCifar(110, 16, **kw)
def resnet8x4(**kw): return ResNetCifar(8, 64, stem_width=32, **kw)
def resnet32x4(**kw): return ResNetCifar(32, 64, stem_width=32, **kw)
def resnet18_cifar(**kw):
    return ResNetCifar(width=64, stages=[(64, 2), (128, 2), (256, 2), (512, 2)], **kw)
def vgg8(**kw): return VGG(8, **kw)
def vgg13(**kw): return VGG(13, **kw)
def wrn_16_2(**kw): return WideResNet(16, 2, **kw)
def wrn_40_2(**kw): return WideResNet(40, 2, **kw)
