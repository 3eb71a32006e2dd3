"""Reads every TensorBoard event file under a directory with TensorBoard's own reader and
prints {relative dir: {tag: [[step, value], ...]}} as JSON (used by tests/interop.rs)."""
import json
import os
import sys

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

root = sys.argv[1]
out = {}
for dirpath, _, files in os.walk(root):
    for name in files:
        if "tfevents" not in name:
            continue
        acc = EventAccumulator(os.path.join(dirpath, name), size_guidance={"scalars": 0})
        acc.Reload()
        tags = {}
        for tag in acc.Tags()["scalars"]:
            tags[tag] = [[e.step, e.value] for e in acc.Scalars(tag)]
        out[os.path.relpath(dirpath, root)] = tags
print(json.dumps(out, sort_keys=True))
