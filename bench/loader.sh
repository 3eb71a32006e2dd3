#!/usr/bin/env bash
# The streamed loader against torchvision's, on the same synthetic ImageNet-like tree
# (bench/make_imagenet_tree.py: ~400x350 JPEGs, quality 90): the training transform
# (decode + RandomResizedCrop 224 + flip + normalise, batch 64), images/s with the same
# number of workers, rounds interleaved; then rolekd's peak RSS on a tree 10x larger.
#   bash bench/loader.sh     (IMAGES=N per tree, default 1000; WORKERS, default 2; REPEATS, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
py="$ROLEKD_VENV/bin/python"
n=${IMAGES:-1000}
w=${WORKERS:-2}
reps=${REPEATS:-3}
batches=${BATCHES:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

tree() { # $1 dir, $2 images
  "$py" bench/make_imagenet_tree.py --out "$1" --classes 10 --per-class $(($2 / 10)) > /dev/null
  printf 'name: loader-bench\nseed: 0\ndevice: cpu\ndata: {type: image-stream, path: %s, size: 224}\nstages: {unused: {kind: train, model: {type: resnet18}, epochs: 1}}\n' "$1" > "$1.yaml"
}
field() { python3 -c "import json,sys; print(json.loads(sys.stdin.read().splitlines()[-1])['$1'])"; }
tree "$work/small" "$n"

rk=(); pil=(); dj=()
for i in $(seq "$reps"); do
  rk+=("$(target/release/rolekd-run data speed "$work/small.yaml" --workers "$w" --batches "$batches" | field images_per_s)")
  pil+=("$("$py" bench/loader_torchvision.py --tree "$work/small" --batch 64 --batches "$batches" --workers "$w" --mode pil | field images_per_s)")
  dj+=("$("$py" bench/loader_torchvision.py --tree "$work/small" --batch 64 --batches "$batches" --workers "$w" --mode decode_jpeg | field images_per_s)")
done
best() { python3 -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }
r=$(best "${rk[@]}"); p=$(best "${pil[@]}"); d=$(best "${dj[@]}")
echo "images/s, best of $reps, $w workers, batch 64, $n images:"
echo "  rolekd image-stream      $r   (rounds: ${rk[*]})"
echo "  torchvision PIL          $p   (rounds: ${pil[*]})"
echo "  torchvision decode_jpeg  $d   (rounds: ${dj[*]})"
python3 -c "import sys; r,p,d=map(float,sys.argv[1:]); print(f'  ratio rolekd / fastest torchvision: {r/max(p,d):.2f}x (target >= 1.5x)')" "$r" "$p" "$d"

# Memory: peak RSS of the same loader over a tree 10x larger (same batches timed).
tree "$work/large" $((n * 10))
s=$(target/release/rolekd-run data speed "$work/small.yaml" --workers "$w" --batches "$batches" | field max_rss_kib)
l=$(target/release/rolekd-run data speed "$work/large.yaml" --workers "$w" --batches "$batches" | field max_rss_kib)
echo "peak RSS: $n images $((s / 1024)) MiB, $((n * 10)) images $((l / 1024)) MiB (ratio $(python3 -c "print(f'{$l/$s:.2f}')"))"
