"""`lipsdf fit` with its defaults: time and quality on the bunny, a country outline, and the bunny in quick mode.

Run by hand (not part of the tests); needs ../shared/data:

    .venv/bin/python benchmarks/fit.py

Runs the command itself (a fresh process each, as a user would), keeps each
run's metrics.json, and writes benchmarks/results/fit.json and fit.md. The
targets: the bunny within 10 minutes with Chamfer L1 below 0.5% of the
diagonal and a largest pair ratio of at most 1 + 1e-5; an outline within 3
minutes.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "out" / "bench" / "fit"
RUNS = {
    "bunny": (["meshes/stanford-bunny.obj"], 600),
    "france": (["polylines2d/fra.obj"], 180),
    "bunny --quick": (["meshes/stanford-bunny.obj", "--quick"], None),
}


def main() -> None:
    if not DATA.is_dir():
        raise SystemExit(f"needs the shared data in {DATA}")
    lipsdf = Path(sys.executable).with_name("lipsdf")
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU",
               "date": time.strftime("%Y-%m-%d"), "runs": {}}
    for name, (args, limit) in RUNS.items():
        output = WORK / name.replace(" --", "_")
        started = time.perf_counter()
        subprocess.run([str(lipsdf), "fit", str(DATA / args[0]), *args[1:], "-o", str(output), "-q"], check=True)
        wall = time.perf_counter() - started
        metrics = json.loads((output / "metrics.json").read_text())
        results["runs"][name] = {"wall_seconds": round(wall, 1), "limit_seconds": limit, "metrics": metrics}
        print(f"{name}: {wall:.0f} s, Chamfer L1 {100 * metrics['surface']['chamfer_l1_rel']:.3f}%, "
              f"pair ratio {metrics['lipschitz']['max_ratio']:.6f}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fit.json").write_text(json.dumps(results, indent=2))
    lines = ["# `lipsdf fit` with its defaults", "",
             f"{results['machine']}; {results['date']}. Lengths as % of the bounding-box diagonal.", "",
             "| run | wall time (limit) | sample / train / contour / render / eval s | Chamfer L1 | Hausdorff | "
             "test MAE | sign acc. | largest pair ratio (pairs) | normal cons. |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for name, run in results["runs"].items():
        m = run["metrics"]
        s, d = m["seconds"], m["distance"]["all"]
        limit = f" ({run['limit_seconds']} s)" if run["limit_seconds"] else ""
        lines.append(f"| `lipsdf fit {name}` | {run['wall_seconds']} s{limit} | "
                     f"{' / '.join(str(round(s[k])) for k in ('sample', 'train', 'contour', 'render', 'eval'))} | "
                     f"{100 * m['surface']['chamfer_l1_rel']:.3f}% | {100 * m['surface']['hausdorff_rel']:.2f}% | "
                     f"{100 * d['mae_rel']:.2f}% | {100 * d['sign_accuracy']:.2f}% | "
                     f"{m['lipschitz']['max_ratio']:.6f} ({m['lipschitz']['pairs']}) | "
                     f"{m['surface']['normal_consistency']:.4f} |")
    (RESULTS / "fit.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
