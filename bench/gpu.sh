#!/usr/bin/env bash
# The benchmark suite's GPU rows, for a CUDA machine that has PyTorch but no Rust: the
# release binary and Fashion-MNIST travel there in gpu-bundle/ (git-ignored, ~50 MB).
#
#   bash bench/gpu.sh prepare                 # here: build, fill gpu-bundle/
#   bash bench/gpu.sh run PYTHON              # there: PYTHON has torch with CUDA
#
# `run` names the GPU, checks that the binary sees CUDA, and prints one table (also
# bench/results-gpu.json, and $OUT/results-gpu.json when $OUT is set). Each row is a ratio
# against a reference measured in the same invocation: rolekd's train stage vs the PyTorch
# eager script (bench/torch_reference.py, same model, batch, optimizer, data on the GPU)
# for the small CNN and ResNet-20 on Fashion-MNIST and ResNet-18 (CIFAR stem) at batch 256
# on CIFAR-10-shaped data (random bytes in CIFAR's binary format: images/s does not depend
# on the pixels); and the distillation step against a student step plus a teacher forward.
# About 3 minutes on an H100-class GPU. DEVICE=cpu TRAIN_SIZE=2000 R18_SIZE=512 runs the
# same script on a CPU, to check the script itself where no GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=gpu-bundle

if [ "${1:-}" = prepare ]; then
  source scripts/env.sh
  cargo build --release -q --bin rolekd-run
  rm -rf "$bundle" && mkdir -p "$bundle/fashion-mnist"
  cp target/release/rolekd-run "$bundle/"
  cp "${ROLEKD_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}"/*-ubyte.gz "$bundle/fashion-mnist/"
  du -sh "$bundle"
  echo "carry $bundle; run: bash bench/gpu.sh run /opt/torch/.venv/bin/python"
  exit 0
fi
[ "${1:-}" = run ] || { echo "usage: bash bench/gpu.sh prepare | run PYTHON" >&2; exit 2; }
py=${2:?the python with CUDA torch}
torch_lib=$("$py" -c 'import torch,os; print(os.path.join(os.path.dirname(torch.__file__),"lib"))')
export LD_LIBRARY_PATH="$torch_lib:${LD_LIBRARY_PATH:-}"
export ROLEKD_FASHION_MNIST="$PWD/$bundle/fashion-mnist"
bin="$PWD/$bundle/rolekd-run"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
device=${DEVICE:-cuda}
if [ "$device" = cpu ]; then
  gpu="none (DEVICE=cpu: a check of this script)"
else
  gpu=$("$py" -c 'import torch; print(torch.cuda.get_device_name(0))')
fi

# CIFAR-10-shaped data: 5 x 10,000 training records and 10,000 test records.
cifar="$work/cifar-10-batches-bin"
"$py" - "$cifar" <<'PY'
import os, sys, numpy as np
d = sys.argv[1]; os.makedirs(d)
rng = np.random.default_rng(0)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    rec = rng.integers(0, 256, size=(10000, 3073), dtype=np.uint8)
    rec[:, 0] %= 10
    rec.tofile(os.path.join(d, name))
PY

n=${TRAIN_SIZE:-50000}
r18_n=${R18_SIZE:-20000}
cat > "$work/gpu.yaml" <<YAML
name: bench-gpu
seed: 0
device: $device
data: {type: fashion-mnist, train_size: $n, test_size: 1000}
x-opt: &opt {type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005}
stages:
  small_cnn: {kind: train, model: {type: small-cnn, channels: [16, 32]}, epochs: 2, optimizer: *opt, workers: 4}
  resnet20: {kind: train, model: {type: resnet-cifar, depth: 20, width: 16}, epochs: 2, optimizer: *opt, workers: 4}
  distill: {kind: distill, teacher: "\${resnet20.checkpoint}", model: {type: small-cnn, channels: [16, 32]}, epochs: 2, optimizer: *opt, workers: 4}
  teacher_fwd: {kind: evaluate, checkpoint: "\${resnet20.checkpoint}", batch_size: 128}
YAML
cat > "$work/r18.yaml" <<YAML
name: bench-gpu-r18
seed: 0
device: $device
data: {type: cifar10, path: $cifar, train_size: $r18_n, test_size: 1000}
stages:
  resnet18: {kind: train, model: {type: resnet18-cifar}, epochs: 2, batch_size: 256, optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0005}, workers: 4}
  resnet18_bf16: {kind: train, model: {type: resnet18-cifar}, epochs: 2, batch_size: 256, optimizer: {type: sgd, lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.0005}, workers: 4, precision: bf16}
YAML
# The second epoch's throughput: the first pays cuDNN's autotuning and allocator warm-up.
ips() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['images_per_s'])" "$1"; }
"$bin" "$work/gpu.yaml" --run-dir "$work/run" > "$work/run.log" 2>&1 || { cat "$work/run.log"; exit 1; }
[ "$device" = cpu ] || grep -q "on Cuda" "$work/run.log" || { echo "the binary did not run on CUDA:"; cat "$work/run.log"; exit 1; }
"$bin" "$work/r18.yaml" --run-dir "$work/r18" > "$work/r18.log" 2>&1 || { cat "$work/r18.log"; exit 1; }
ref() { "$py" bench/torch_reference.py --device "$device" --epochs 2 "$@" | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])'; }
stage_s() { python3 -c "import json; print(json.load(open('$1/result.json'))['result']['summary']['stage_seconds'])"; }
r_cnn=$(ips "$work/run/small_cnn/metrics.jsonl"); t_cnn=$(ref --model cnn --channels 16,32 --train-size "$n")
r_res=$(ips "$work/run/resnet20/metrics.jsonl"); t_res=$(ref --model resnet20 --width 16 --train-size "$n")
r_18=$(ips "$work/r18/resnet18/metrics.jsonl"); t_18=$(ref --model resnet18 --batch 256 --lr 0.1 --cifar10 "$cifar" --train-size "$r18_n")
r_kd=$(ips "$work/run/distill/metrics.jsonl"); fwd_s=$(stage_s "$work/run/teacher_fwd")
# bf16 (issue 18): rolekd's autocast against PyTorch's, eager and torch.compile (compile
# time off the clock), and the fastest fp32 PyTorch configuration.
r18=(--model resnet18 --batch 256 --lr 0.1 --cifar10 "$cifar" --train-size "$r18_n" --channels-last --warmup 5)
r_18_bf=$(ips "$work/r18/resnet18_bf16/metrics.jsonl")
t_18_bf=$(ref "${r18[@]}" --bf16); t_18_bf_c=$(ref "${r18[@]}" --bf16 --compile)
t_18_c=$(ref "${r18[@]}" --compile)

python3 - "$gpu" "$r_cnn" "$t_cnn" "$r_res" "$t_res" "$r_18" "$t_18" "$r_kd" "$fwd_s" "${OUT:-}" "$device" \
  "$r_18_bf" "$t_18_bf" "$t_18_bf_c" "$t_18_c" <<'PY'
import json, os, sys
gpu = sys.argv[1]
r_cnn, t_cnn, r_res, t_res, r_18, t_18, r_kd, fwd_s = map(float, sys.argv[2:10])
out, device = sys.argv[10], sys.argv[11]
r_18_bf, t_18_bf, t_18_bf_c, t_18_c = map(float, sys.argv[12:16])
expected_kd = 1 / (1 / r_cnn + fwd_s / 1000)
rows = [
    ("1. train small-cnn: rolekd / PyTorch eager (img/s)", r_cnn / t_cnn, ">= 1.2", f"{r_cnn:.0f} vs {t_cnn:.0f}"),
    ("1. train resnet20: rolekd / PyTorch eager (img/s)", r_res / t_res, ">= 1.2", f"{r_res:.0f} vs {t_res:.0f}"),
    ("1. train resnet18-cifar b256: rolekd / PyTorch eager (img/s)", r_18 / t_18, ">= 1.2", f"{r_18:.0f} vs {t_18:.0f}"),
    ("2. distill step / (student step + teacher fwd) (time)", expected_kd / r_kd, "<= 1.05", f"{r_kd:.0f} img/s vs {expected_kd:.0f} expected"),
    ("1c. train resnet18-cifar b256: rolekd / torch.compile fp32", r_18 / t_18_c, "-", f"{r_18:.0f} vs {t_18_c:.0f}"),
    ("8. train resnet18-cifar b256: rolekd bf16 / rolekd fp32", r_18_bf / r_18, ">= 1.7", f"{r_18_bf:.0f} vs {r_18:.0f}"),
    ("8. resnet18-cifar bf16: rolekd / PyTorch autocast eager-cl", r_18_bf / t_18_bf, "-", f"{r_18_bf:.0f} vs {t_18_bf:.0f}"),
    ("8. resnet18-cifar bf16: rolekd / PyTorch autocast compile-cl", r_18_bf / t_18_bf_c, "-", f"{r_18_bf:.0f} vs {t_18_bf_c:.0f}"),
    ("8. resnet18-cifar bf16: rolekd / fastest PyTorch bf16", r_18_bf / max(t_18_bf, t_18_bf_c), ">= 1.1", f"{r_18_bf:.0f} vs {max(t_18_bf, t_18_bf_c):.0f}"),
]
print(f"GPU: {gpu}")
print(f"{'benchmark':<62} {'value':>8}  {'target':>8}  detail")
for name, v, target, detail in rows:
    print(f"{name:<62} {v:8.3f}  {target:>8}  {detail}")
doc = {"gpu": gpu, "rows": {n: {"value": v, "target": t, "detail": d} for n, v, t, d in rows}}
# A CPU check of the script records nothing.
paths = [] if device == "cpu" else ["bench/results-gpu.json"]
for path in paths + ([os.path.join(out, "results-gpu.json")] if out else []):
    json.dump(doc, open(path, "w"), indent=2)
PY
