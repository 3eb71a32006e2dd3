"""PyTorch's side of tests/torch_legacy.rs: files in torch.save's legacy (pre-1.6) format,
as RepDistiller's released teachers are, with the values they hold beside them.

  tensors DIR              DIR/tensors.pth (legacy): a tensor of every storage type a
                           state_dict holds, views sharing one storage (a slice, a
                           transpose, a strided column), a scalar and an empty tensor;
                           DIR/tensors.safetensors: the same values. Prints the number of
                           distinct storages as JSON.
  model ARCH CLASSES DIR   torch_roundtrip.py's `make` (plain, wrapped and safetensors
                           state_dicts, inputs, expected logits), then DIR/legacy.pth: the
                           RepDistiller-style wrapped checkpoint in the legacy format
"""
import collections
import json
import os
import sys

import torch
from safetensors.torch import save_file

import torch_roundtrip


def tensors(out):
    g = torch.Generator().manual_seed(3)
    base = torch.arange(12, dtype=torch.float32) * 0.5 - 2.0
    grid = base.view(3, 4)
    t = collections.OrderedDict([
        ("float", base),
        ("slice", base[2:7]),
        ("transposed", grid.t()),
        ("column", grid[:, 1]),
        ("double", torch.randn(5, dtype=torch.float64, generator=g)),
        ("half", torch.randn(2, 3, generator=g).half()),
        ("bfloat16", torch.randn(4, generator=g).bfloat16()),
        ("long", torch.tensor([7, -3, 2**40])),
        ("int", torch.tensor([1, -2], dtype=torch.int32)),
        ("byte", torch.tensor([0, 255, 7], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(5)),
        ("empty", torch.zeros(0, 3)),
    ])
    torch.save(t, os.path.join(out, "tensors.pth"), _use_new_zipfile_serialization=False)
    save_file({k: v.clone().contiguous() for k, v in t.items()},
              os.path.join(out, "tensors.safetensors"))
    storages = {v.untyped_storage().data_ptr() for v in t.values() if v.numel() > 0}
    print(json.dumps({"storages": len(storages) + 1}))   # + the empty tensor's


def model(arch, classes, out):
    torch_roundtrip.make(arch, classes, out)
    wrapped = torch.load(os.path.join(out, "wrapped.pth"), weights_only=False)
    torch.save(wrapped, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    if sys.argv[1] == "tensors":
        tensors(sys.argv[2])
    else:
        model(sys.argv[2], int(sys.argv[3]), sys.argv[4])
