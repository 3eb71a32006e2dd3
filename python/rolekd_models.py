"""PyTorch reference models for rolekd's interop: RepDistiller's CIFAR models
(HobbitLong/RepDistiller, models/resnet.py, wrn.py, vgg.py), written here from those files'
forward passes, with their parameter names.

They serve two ends. `rolekd-run import --from repdistiller` reads these names, and
tests/interop.rs checks that rolekd's models compute what these classes compute, so each
class follows RepDistiller's forward rather than rolekd's code. And
`rolekd-run export CHECKPOINT --format state-dict -o student.safetensors` writes a
state_dict that loads into them with `load_state_dict(..., strict=True)`:

    import safetensors.torch, rolekd_models
    model = rolekd_models.resnet8x4(num_classes=100)
    model.load_state_dict(safetensors.torch.load_file("student.safetensors"), strict=True)

Pooling: RepDistiller's ResNets and WRNs average over fixed 8x8 windows, which is global
average pooling at the 32x32 inputs they are built for; these classes pool globally, so
they also take rolekd's other image sizes (28x28 Fashion-MNIST).

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
    "vgg11",
    "vgg13",
    "vgg16",
    "vgg19",
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
    """RepDistiller's CIFAR ResNet (models/resnet.py, BasicBlock): a 3x3 stem of
    `stem_width` channels, BN, ReLU; stages of width w, 2w, 4w (depth 6n + 2, n blocks each,
    stride 1, 2, 2; a 1x1 conv + BN `downsample` where the shape changes); pooling; `fc`.
    `resnet8x4`/`resnet32x4` are its `[32, 64, 128, 256]` filters.

    `stages=[(width, blocks), ...]` gives other layouts: `resnet18_cifar`, which has no
    RepDistiller original (torchvision's ResNet-18 with a 3x3 stride-1 stem and no
    max-pool, the usual CIFAR port, with torchvision's names)."""

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
        # RepDistiller's test: channels alone (a group's stride-2 block always widens).
        self.equal = c_in == c_out
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
    """RepDistiller's WRN-depth-k (models/wrn.py): 3x3 stem of 16 channels, groups
    `block1..3` of n pre-activation blocks (depth 6n + 4; 16k, 32k, 64k channels; stride
    1, 2, 2), final BN-ReLU (`bn1`), pooling, `fc`."""

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


# RepDistiller's cfg lists (models/vgg.py: 'S' vgg8, 'A' vgg11, 'B' vgg13, 'D' vgg16,
# 'E' vgg19): the conv widths of block0..block4.
_VGG = {
    8: [[64], [128], [256], [512], [512]],
    11: [[64], [128], [256, 256], [512, 512], [512, 512]],
    13: [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    16: [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    19: [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}


class VGG(nn.Module):
    """RepDistiller's `vggN_bn` (HobbitLong/RepDistiller, models/vgg.py; its model_dict names
    them `vgg8` ... `vgg19`), written from that file's forward:

    - `blockK` is a Sequential of (conv3x3 with bias, BN, ReLU) per width, the block's last
      ReLU left out (so a block ends on its BN: module indices conv 3l, BN 3l + 1); the
      forward applies the ReLU after each block;
    - max-pool 2x2 after block0, block1 and block2; after block3 only when the input is 64
      pixels high (`h == 64`), so 32x32 inputs reach block3 and block4 at 4x4;
    - adaptive average pooling to 1x1 after block4, then `classifier` (Linear(512, classes)).

    rolekd's additions, which leave the state_dict unchanged: `in_channels` (RepDistiller's
    is 3) and DoReFa activations in place of the ReLUs (`activation_bits`)."""

    def __init__(self, depth=13, num_classes=10, in_channels=3, activation_bits=32,
                 quantize_first_last=False):
        super().__init__()
        cfg = _VGG[depth]
        last_bits = activation_bits if quantize_first_last else 32
        c = in_channels
        for b, widths in enumerate(cfg):
            layers = []
            for w in widths:
                layers += [nn.Conv2d(c, w, kernel_size=3, padding=1), nn.BatchNorm2d(w),
                           Act(activation_bits)]
                c = w
            setattr(self, f"block{b}", nn.Sequential(*layers[:-1]))
        # The ReLU after each block (the one its Sequential leaves out).
        self.block_act = Act(activation_bits)
        self.last_act = Act(last_bits)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x):
        h = x.shape[2]
        x = F.max_pool2d(self.block_act(self.block0(x)), 2, 2)
        x = F.max_pool2d(self.block_act(self.block1(x)), 2, 2)
        x = F.max_pool2d(self.block_act(self.block2(x)), 2, 2)
        x = self.block_act(self.block3(x))
        if h == 64:
            x = F.max_pool2d(x, 2, 2)
        x = self.last_act(self.block4(x))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


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
def vgg11(**kw): return VGG(11, **kw)
def vgg13(**kw): return VGG(13, **kw)
def vgg16(**kw): return VGG(16, **kw)
def vgg19(**kw): return VGG(19, **kw)
def wrn_16_2(**kw): return WideResNet(16, 2, **kw)
def wrn_40_2(**kw): return WideResNet(40, 2, **kw)
