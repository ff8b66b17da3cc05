"""Levers at an equal time: learning curves (test error against training seconds) and end quality, per study.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python -m benchmarks.equal_time STUDY [CASE ...]    # or STUDY --table: rewrite its table and plot

A study compares the variants of one lever (``optimisers``: Adam against Muon; ``error-focus``: no error
focus against half of each epoch drawn by error). Each case is one shape fitted once per variant by
``lipsdf fit --time 3m`` as a new process (every setting but the lever's the recipe's), one after the other on
an otherwise idle machine. A run's curve is its training log: after each epoch, the mean error on the fit's
test points (drawn like the training points: mostly near the surface), in % of the diagonal. The table gives
the end quality (``lipsdf eval``) and when each curve first reaches the best other variant's final error.
Writes benchmarks/results/STUDY.json, STUDY.md and STUDY.png (``error-focus`` as error_focus).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from benchmarks.defaults import epochs_trained, measure_fit, percent

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
BUDGET = "3m"
CASES = {
    "bunny (mesh, signed)": (DATA / "meshes" / "stanford-bunny.obj", {}),
    "suzanne (unsigned)": (DATA / "meshes" / "suzanne.obj", {"mode": "unsigned"}),
    "france (outline, signed)": (DATA / "polylines2d" / "fra.obj", {}),
}


@dataclass(frozen=True)
class Study:
    """One lever: its title, and per variant the training flags that differ from the recipe."""

    title: str
    variants: dict[str, dict]


STUDIES = {
    "optimisers": Study("Adam against Muon at an equal time",
                        {"adam": {"optimiser": "adam"}, "muon": {"optimiser": "muon"}}),
    "error-focus": Study("An error focus at an equal time",
                         {"focus 0": {"error_focus": 0.0}, "focus 0.5": {"error_focus": 0.5}}),
}


def run_case(study: Study, name: str) -> dict:
    path, options = CASES[name]
    return {variant: measure_fit(path, {**options, "time": BUDGET, "training": flags})
            for variant, flags in study.variants.items()}


def seconds_to_reach(curve: list[list[float]], error: float) -> Optional[float]:
    """The training seconds after which ``curve`` (``[seconds, error]`` pairs) first is at or below ``error``.

    >>> seconds_to_reach([[1.0, 0.3], [2.0, 0.2], [3.0, 0.1]], 0.2), seconds_to_reach([[1.0, 0.3]], 0.2)
    (2.0, None)
    """
    return next((seconds for seconds, value in curve if value <= error), None)


def write(name: str, rows: dict) -> None:
    study = STUDIES[name]
    stem = name.replace("-", "_")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    flags = "; ".join(f"{variant}: " + " ".join(f"--{key.replace('_', '-')} {value}" for key, value in v.items())
                      for variant, v in study.variants.items())
    lines = [f"# {study.title}", "",
             f"`python -m benchmarks.equal_time {name}`: each shape fitted by `lipsdf fit --time {BUDGET}`, once "
             f"per variant ({flags}), alone on a 2-core CPU (each row names its commit and date). Lengths are % "
             "of the bounding-box diagonal. Test MAE: the training log's last error on the fit's test points "
             "(mostly near the surface); reaches the others': the training seconds after which this run's test "
             f"error first reached the best other run's final one. Curves: {stem}.png.", "",
             "| case | variant | epochs | train s | test MAE | reaches the others' at | Chamfer L1 | Hausdorff | "
             "normal cons. | MAE uniform | largest pair ratio | commit, date |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for case, runs in rows.items():
        for variant, r in runs.items():
            best_other = min(run["curve"][-1][1] for key, run in runs.items() if key != variant)
            reached = seconds_to_reach(r["curve"], best_other)
            nc = "-" if r["normal_consistency"] is None else f"{r['normal_consistency']:.4f}"
            lines.append(f"| {case} | {variant} | {epochs_trained(r)} | {r['seconds']['train']:.0f} | "
                         f"{percent(r['curve'][-1][1], 3)} | {'never' if reached is None else f'{reached:.0f} s'} | "
                         f"{percent(r['chamfer_l1_rel'], 4)} | {percent(r['hausdorff_rel'], 2)} | {nc} | "
                         f"{percent(r['mae_uniform_rel'], 2)} | {r['max_pair_ratio']:.4f} | "
                         f"{r.get('commit', '-')}, {r.get('date', '-')} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    plot(rows, RESULTS / f"{stem}.png")


def plot(rows: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(rows), figsize=(4.5 * len(rows), 3.6), squeeze=False)
    for axis, (name, runs) in zip(axes[0], rows.items()):
        for variant, r in runs.items():
            seconds, errors = zip(*r["curve"])
            axis.plot(seconds, [100 * error for error in errors], label=variant)
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
    arguments = sys.argv[1:]
    if not arguments or {"-h", "--help"} & set(arguments):
        print(__doc__)
        return
    name, cases = arguments[0], arguments[1:]
    if name not in STUDIES:
        sys.exit(f"unknown study {name!r}; choose from {list(STUDIES)}")
    study = STUDIES[name]
    stored = RESULTS / f"{name.replace('-', '_')}.json"
    rows = json.loads(stored.read_text())["rows"] if stored.exists() else {}
    if cases == ["--table"]:
        write(name, rows)
        return
    cases = cases or list(CASES)
    unknown = set(cases) - set(CASES)
    if unknown:
        sys.exit(f"unknown cases {sorted(unknown)}; choose from {list(CASES)}")
    for case in cases:
        rows[case] = run_case(study, case)
        write(name, {key: rows[key] for key in CASES if key in rows})
        print(case, {key: (run["trained_epochs"], run["chamfer_l1_rel"]) for key, run in rows[case].items()},
              flush=True)


if __name__ == "__main__":
    main()
