"""Adam against Muon at an equal time: learning curves (test error against training seconds) and end quality.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.optimisers [CASE ...]    # or --table: rewrite the table and plot

Each case is one shape fitted twice by ``lipsdf fit --time 3m`` as a new process, once with
``--optimiser adam`` and once with ``--optimiser muon`` (every other setting the recipe's), one after the
other on an otherwise idle machine. A run's curve is its training log: after each epoch, the mean error on
the fit's test points (drawn like the training points: mostly near the surface), in % of the diagonal. The
table gives the end quality (``lipsdf eval``) and when each curve first reaches the other's final error.
Writes benchmarks/results/optimisers.json, optimisers.md and optimisers.png.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

from benchmarks.defaults import epochs_trained, measure_fit, percent

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BUDGET = "3m"
OPTIMISERS = ("adam", "muon")
CASES = {
    "bunny (mesh, signed)": (DATA / "meshes" / "stanford-bunny.obj", {}),
    "suzanne (unsigned)": (DATA / "meshes" / "suzanne.obj", {"mode": "unsigned"}),
    "france (outline, signed)": (DATA / "polylines2d" / "fra.obj", {}),
}


def run_case(name: str) -> dict:
    path, options = CASES[name]
    return {optimiser: measure_fit(path, {**options, "time": BUDGET, "training": {"optimiser": optimiser}})
            for optimiser in OPTIMISERS}


def seconds_to_reach(curve: list[list[float]], error: float) -> Optional[float]:
    """The training seconds after which ``curve`` (``[seconds, error]`` pairs) first is at or below ``error``.

    >>> seconds_to_reach([[1.0, 0.3], [2.0, 0.2], [3.0, 0.1]], 0.2), seconds_to_reach([[1.0, 0.3]], 0.2)
    (2.0, None)
    """
    return next((seconds for seconds, value in curve if value <= error), None)


def write(rows: dict) -> None:
    (RESULTS / "optimisers.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    lines = ["# Adam against Muon at an equal time", "",
             f"`python -m benchmarks.optimisers`: each shape fitted by `lipsdf fit --time {BUDGET}`, once per "
             "optimiser, alone on a 2-core CPU (each row names its commit and date). Lengths are % of the "
             "bounding-box diagonal. Test MAE: the training log's last error on the fit's test points (mostly "
             "near the surface); reaches the other's: the training seconds after which this run's test error "
             "first reached the other run's final one. Curves: optimisers.png.", "",
             "| case | optimiser | epochs | train s | test MAE | reaches the other's at | Chamfer L1 | Hausdorff | "
             "normal cons. | MAE uniform | largest pair ratio | commit, date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, runs in rows.items():
        for optimiser, r in runs.items():
            other = next(run for key, run in runs.items() if key != optimiser)
            reached = seconds_to_reach(r["curve"], other["curve"][-1][1])
            nc = "-" if r["normal_consistency"] is None else f"{r['normal_consistency']:.4f}"
            lines.append(f"| {name} | {optimiser} | {epochs_trained(r)} | {r['seconds']['train']:.0f} | "
                         f"{percent(r['curve'][-1][1], 3)} | {'never' if reached is None else f'{reached:.0f} s'} | "
                         f"{percent(r['chamfer_l1_rel'], 4)} | {percent(r['hausdorff_rel'], 2)} | {nc} | "
                         f"{percent(r['mae_uniform_rel'], 2)} | {r['max_pair_ratio']:.4f} | "
                         f"{r.get('commit', '-')}, {r.get('date', '-')} |")
    (RESULTS / "optimisers.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / "optimisers.png")


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.6), squeeze=False)
    for axis, (name, runs) in zip(axes[0], rows.items()):
        for optimiser, r in runs.items():
            seconds, errors = zip(*r["curve"])
            axis.plot(seconds, [100 * error for error in errors], label=optimiser)
        axis.set_yscale("log")
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("training seconds")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("test MAE, % of the diagonal")
    axes[0][0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__)
        return
    stored = RESULTS / "optimisers.json"
    rows = json.loads(stored.read_text())["rows"] if stored.exists() else {}
    if sys.argv[1:] == ["--table"]:
        write(rows)
        return
    names = sys.argv[1:] or list(CASES)
    unknown = set(names) - set(CASES)
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    for name in names:
        rows[name] = run_case(name)
        write({key: rows[key] for key in CASES if key in rows})
        print(name, {key: (run["trained_epochs"], run["chamfer_l1_rel"]) for key, run in rows[name].items()},
              flush=True)


if __name__ == "__main__":
    main()
