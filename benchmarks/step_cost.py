"""What one training step costs on this CPU: precision, threads and torch.compile, at lipsdf fit's batch.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.step_cost

Times epochs of :class:`lipsdf.training.Trainer` (``fit-hinge``, batch 2048) on 100k signed points of the
France outline, for SLL 20 x 48 (fit's outline network) and 20 x 64 (its mesh network): float32 against
bfloat16 products (autocast; the timed epochs are all in bfloat16), on two threads and on one; and 20 x 48 through
``torch.compile``, its first epoch (which compiles) and its steady ones. An epoch's seconds are the mean of
epochs 2 and 3 of four (the first includes the set-up), test evaluation included, as in a fit. Run alone:
the machine's other work changes the times. Writes benchmarks/results/step_cost.json and step_cost.md.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from lipsdf.geometry.io import load_shape
from lipsdf.pipeline.recipes import SIGNED_SAMPLING
from lipsdf.sampling import sample
from lipsdf.training import EpochRecords, Trainer, TrainingConfig, model_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BATCH, POINTS = 2048, 100_000


def epoch_seconds(data, width: int, threads: int, **training) -> tuple[float, float]:
    """(first epoch's seconds from the start, mean seconds of epochs 2 and 3)."""
    torch.set_num_threads(threads)
    started, epochs = time.perf_counter(), EpochRecords()
    config = TrainingConfig(epochs=4, batch_size=BATCH, checkpoint_every=0, **training)
    Trainer(data, model_config("signed", data.dim, arch="sll", width=width, layers=20), config,
            callbacks=[epochs]).run()
    marks = [started, *epochs.ended]
    return marks[1] - marks[0], (marks[3] - marks[1]) / 2


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data in {DATA}")
    data = sample(load_shape(DATA / "polylines2d" / "fra.obj"), "signed", n=POINTS, n_test=20_000, seed=0,
                  **SIGNED_SAMPLING)
    steps = POINTS // BATCH
    rows = []
    for width in (48, 64):
        for threads in (2, 1):
            for precision in ("float32", "bf16"):
                # under bf16 the first 3/4 of the steps are bfloat16: epochs 1 to 3 of 4, so the two timed ones
                _, epoch = epoch_seconds(data, width, threads, matmul_precision=precision)
                rows.append({"network": f"SLL 20 x {width}", "threads": threads, "precision": precision,
                             "compile": False, "epoch_s": round(epoch, 3), "step_ms": round(1000 * epoch / steps, 2)})
                print(rows[-1], flush=True)
    first, epoch = epoch_seconds(data, 48, 2, compile=True)
    rows.append({"network": "SLL 20 x 48", "threads": 2, "precision": "float32", "compile": True,
                 "first_epoch_s": round(first, 1), "epoch_s": round(epoch, 3),
                 "step_ms": round(1000 * epoch / steps, 2)})
    print(rows[-1], flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, CPU"
    date = time.strftime("%Y-%m-%d")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "step_cost.json").write_text(json.dumps({"machine": machine, "date": date, "rows": rows}, indent=2)
                                            + "\n")
    lines = ["# What a training step costs", "",
             f"{machine}, {date}. `python benchmarks/step_cost.py`: `fit-hinge` at batch {BATCH} on {POINTS} "
             "signed points of the France outline; an epoch is the mean of epochs 2 and 3 of four, test "
             "evaluation included; bf16 = the timed steps' products in bfloat16.", "",
             "| network | threads | precision | torch.compile | epoch s | step ms | first epoch s |",
             "|---|---:|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['network']} | {r['threads']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
                     f"{r['epoch_s']:.3f} | {r['step_ms']:.2f} | {r.get('first_epoch_s', '-')} |")
    (RESULTS / "step_cost.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
