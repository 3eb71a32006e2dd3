#!/usr/bin/env bash
# The benchmark suite: each row is a ratio measured in this invocation against a reference
# doing the same work on this machine. Prints one table and writes bench/results.json.
#   bash bench/suite.sh            (TRAIN_SIZE=N to change the slice; default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
n=${TRAIN_SIZE:-10000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py="$ROLEKD_VENV/bin/python"

ips() { python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['images_per_s'])" "$1"; }

# 1. Training throughput: rolekd train stage vs PyTorch eager, same model/batch/optimizer.
cat > "$work/train.yaml" <<YAML
name: bench-train
seed: 0
device: cpu
data: {type: fashion-mnist, train_size: $n, test_size: 1000}
x-opt: &opt {type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0005}
stages:
  small_cnn: {kind: train, model: {type: small-cnn, channels: [16, 32]}, epochs: 1, optimizer: *opt, workers: 1}
  resnet20: {kind: train, model: {type: resnet-cifar, depth: 20, width: 16}, epochs: 1, optimizer: *opt, workers: 1}
  distill: {kind: distill, teacher: "\${resnet20.checkpoint}", model: {type: small-cnn, channels: [16, 32]}, epochs: 1, optimizer: *opt, workers: 1}
  teacher_fwd: {kind: evaluate, checkpoint: "\${resnet20.checkpoint}", batch_size: 128}
YAML
t0=$(date +%s.%N)
target/release/rolekd-run "$work/train.yaml" --run-dir "$work/run" -q > /dev/null
r_cnn=$(ips "$work/run/small_cnn/metrics.jsonl")
r_res=$(ips "$work/run/resnet20/metrics.jsonl")
r_kd=$(ips "$work/run/distill/metrics.jsonl")
t_cnn=$("$py" bench/torch_reference.py --model cnn --channels 16,32 --train-size "$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
t_res=$("$py" bench/torch_reference.py --model resnet20 --width 16 --train-size "$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images_per_s"])')
# Teacher forward throughput: eval-mode forward over the test slice, timed by the stage.
fwd_s=$(python3 -c "import json; print(json.load(open('$work/run/teacher_fwd/result.json'))['result']['summary']['stage_seconds'])")

# 7. Time to first training step: start-up, graph build, data load, first batch.
cat > "$work/first.yaml" <<YAML
name: first-step
device: cpu
data: {type: fashion-mnist}
stages:
  t: {kind: train, model: {type: small-cnn}, epochs: 1}
YAML
first=$( (timeout 30 target/release/rolekd-run "$work/first.yaml" --run-dir "$work/first" 2>&1 || true) \
  | sed -n 's/.*first training step \([0-9.]*\)s after start.*/\1/p' | head -1)

# Machine peak: a large float32 matmul in libtorch.
peak=$("$py" - <<'PY'
import time, torch
a = torch.randn(2048, 2048); b = torch.randn(2048, 2048)
a @ b
t = time.time(); r = 5
for _ in range(r): a @ b
print(f"{2 * 2048**3 * r / (time.time() - t) / 1e9:.1f}")
PY
)

python3 - "$r_cnn" "$t_cnn" "$r_res" "$t_res" "$r_kd" "$fwd_s" "$first" "$peak" "$n" <<'PY'
import json, sys
r_cnn, t_cnn, r_res, t_res, r_kd, fwd_s, first, peak, n = map(float, sys.argv[1:])
teacher_fwd_ips = 1000 / fwd_s
# Expected distillation time per image: one student step + one teacher forward.
expected_kd = 1 / (1 / r_cnn + 1 / teacher_fwd_ips)
rows = [
    ("train small-cnn: rolekd / PyTorch eager (img/s)", r_cnn / t_cnn, ">= 1.2", f"{r_cnn:.0f} vs {t_cnn:.0f}"),
    ("train resnet20: rolekd / PyTorch eager (img/s)", r_res / t_res, ">= 1.2", f"{r_res:.0f} vs {t_res:.0f}"),
    ("distill step / (student step + teacher fwd) (time)", expected_kd / r_kd, "<= 1.05", f"{r_kd:.0f} img/s vs {expected_kd:.0f} expected"),
    ("time to first training step (s)", first, "-", "start-up, graph, data load"),
    ("machine matmul peak (GFLOP/s, fp32)", peak, "-", "torch 2048^3"),
]
print(f"{'benchmark':<52} {'value':>8}  {'target':>8}  detail")
for name, v, target, detail in rows:
    print(f"{name:<52} {v:8.3f}  {target:>8}  {detail}")
json.dump({name: {"value": v, "target": target, "detail": detail} for name, v, target, detail in rows},
          open("bench/results.json", "w"), indent=2)
PY
echo "(augmentation: bash bench/augment.sh; PBA vs none in training: bash bench/train_aug_overhead.sh)"
