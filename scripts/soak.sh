#!/usr/bin/env bash
# Soak test (not in CI): runs the quick role-wise pipeline over and over for N minutes,
# SIGKILLing it at random moments and rerunning until each run finishes, then checks that
# the run directory is complete (every stage's result, checkpoint or schedule, the summary
# and the report) and that no temp file is left where a real one is missing.
#
#   bash scripts/soak.sh [MINUTES=30] [RUN_ROOT=/tmp/rolekd-soak]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release -q --bin rolekd-run
minutes=${1:-30}
root=${2:-/tmp/rolekd-soak}
bin=target/release/rolekd-run
end=$(( $(date +%s) + minutes * 60 ))
# A small budget so one run takes a couple of minutes.
shrink=(--set data.train_size=1200 --set data.test_size=400 --set device=cpu)
for s in teacher_search student_search student_random_search; do
  shrink+=(--set "stages.$s.train_size=400" --set "stages.$s.val_size=300"
           --set "stages.$s.trial.epochs=2" --set "stages.$s.trial.batch_size=64")
done
for s in teacher student student_alone kd_standard kd_teacher_schedule kd_randaugment kd_random_search; do
  shrink+=(--set "stages.$s.epochs=1")
done

check_complete() {
  local dir=$1 missing=0
  for f in pipeline.yaml summary.md report.md; do
    [[ -f $dir/$f ]] || { echo "MISSING $dir/$f"; missing=1; }
  done
  for s in teacher student student_alone kd_standard kd_teacher_schedule kd_randaugment kd_random_search; do
    for f in result.json metrics.jsonl checkpoint/weights.safetensors; do
      [[ -f $dir/$s/$f ]] || { echo "MISSING $dir/$s/$f"; missing=1; }
    done
  done
  for s in teacher_search student_search student_random_search; do
    for f in result.json schedule.json population.sqlite; do
      [[ -f $dir/$s/$f ]] || { echo "MISSING $dir/$s/$f"; missing=1; }
    done
  done
  while IFS= read -r tmp; do
    local name real
    name=$(basename "$tmp"); real="$(dirname "$tmp")/${name#*-}"
    [[ -e $real ]] || { echo "TEMP WITHOUT ITS FILE $tmp"; missing=1; }
  done < <(find "$dir" -name '.tmp*')
  return $missing
}

mkdir -p "$root"
runs=0 kills=0 failures=0
while (( $(date +%s) < end )); do
  dir=$root/run-$runs
  rm -rf "$dir"
  while :; do
    "$bin" pipelines/role-wise-quick.yaml --run-dir "$dir" -q "${shrink[@]}" > "$dir.log" 2>&1 &
    pid=$!
    sleep $(( RANDOM % 15 + 1 ))
    if kill -0 "$pid" 2>/dev/null; then
      kill -9 "$pid"; wait "$pid" 2>/dev/null || true
      kills=$((kills + 1))
    elif wait "$pid"; then
      break
    else
      echo "run $runs failed by itself:"; tail -5 "$dir.log"; failures=$((failures + 1)); break
    fi
  done
  if check_complete "$dir"; then echo "run $runs complete after $kills kills so far"; else failures=$((failures + 1)); fi
  runs=$((runs + 1))
done
echo "soak: $runs runs, $kills kills, $failures failures in $minutes min"
(( failures == 0 ))
