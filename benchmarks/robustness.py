"""Robustness, the long mode of the fuzz suite: many seeded hostile files per format, every outcome counted.

Run by hand (not part of the tests):

    .venv/bin/python -m benchmarks.robustness [--cases-per-mutation 1000]

Every (format, mutation, seed) case is built and judged by benchmarks/fuzzing.py, as in `make test`
(which runs a sample of them): loading must give a valid result or one LipsdfError line, within
10 s and 256 MiB. Writes benchmarks/results/robustness.json and robustness.md.
"""

from __future__ import annotations

import argparse
import collections
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import fuzzing

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases-per-mutation", type=int, default=1000)
    args = parser.parse_args()
    started = time.perf_counter()
    folder = Path(tempfile.mkdtemp())
    seeds = fuzzing.seed_files(folder / "seeds")
    work = folder / "work"
    work.mkdir()
    rows, bugs, slowest = {}, [], None
    for fmt in seeds:
        counts: collections.Counter = collections.Counter()
        worst = (0.0, "")
        peak = 0
        for mutation in fuzzing.MUTATIONS:
            for seed in range(args.cases_per_mutation if mutation != "empty" else 1):
                path = fuzzing.mutated_case(seeds, fmt, mutation, seed, work)
                outcome = fuzzing.run_case(fmt, path)
                kind = "bug" if outcome.kind.startswith("bug") else outcome.kind
                counts[kind] += 1
                peak = max(peak, outcome.peak_bytes)
                if kind == "bug":
                    bugs.append({"format": fmt, "mutation": mutation, "seed": seed, "kind": outcome.kind,
                                 "message": outcome.message})
                if outcome.seconds > worst[0]:
                    worst = (outcome.seconds, f"{mutation} seed {seed}")
                if slowest is None or outcome.seconds > slowest["seconds"]:
                    slowest = {"format": fmt, "mutation": mutation, "seed": seed, "seconds": outcome.seconds,
                               "outcome": outcome.kind}
        rows[fmt] = {"cases": sum(counts.values()), "valid": counts["valid"], "error": counts["error"],
                     "bug": counts["bug"], "slowest_seconds": round(worst[0], 4), "slowest_case": worst[1],
                     "peak_mib": round(peak / 2 ** 20, 2)}
        print(fmt, rows[fmt], flush=True)
    result = {"machine": f"{platform.machine()}, torch {torch.__version__}, numpy {np.__version__}",
              "date": time.strftime("%Y-%m-%d"), "cases_per_mutation": args.cases_per_mutation,
              "mutations": list(fuzzing.MUTATIONS), "formats": rows, "bugs": bugs, "slowest": slowest,
              "seconds": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "robustness.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "robustness.md").write_text(_markdown(result))
    print(f"{sum(r['cases'] for r in rows.values())} cases, {len(bugs)} bugs, {result['seconds']} s")


def _markdown(result: dict) -> str:
    lines = ["# Robustness: the fuzz suite's long mode", "",
             f"{result['machine']}; run on {result['date']}; {result['cases_per_mutation']} seeded cases per "
             f"(format, mutation) (one for `empty`), mutations: {', '.join(result['mutations'])}; "
             f"{result['seconds']} s in all.", "",
             "Each case must end in a valid result or one `LipsdfError` line, within 10 s and 256 MiB "
             "(numpy and Python allocations as tracemalloc sees them, and growth of the process's peak resident "
             "memory for what it does not see, such as torch's). Peak MiB below is the traced part.", "",
             "| format | cases | valid | one-line error | bug | slowest case | its seconds | peak MiB |",
             "|---|---:|---:|---:|---:|---|---:|---:|"]
    for fmt, row in result["formats"].items():
        lines.append(f"| {fmt} | {row['cases']} | {row['valid']} | {row['error']} | {row['bug']} | "
                     f"{row['slowest_case']} | {row['slowest_seconds']:.4f} | {row['peak_mib']} |")
    slowest = result["slowest"]
    lines += ["", f"Slowest case overall: {slowest['format']}, {slowest['mutation']} seed {slowest['seed']}, "
                  f"{slowest['seconds']:.3f} s ({slowest['outcome']}).", ""]
    if result["bugs"]:
        lines += ["Bugs:", ""] + [f"- {b['format']} {b['mutation']} seed {b['seed']}: {b['kind']}: "
                                  f"{b['message']}" for b in result["bugs"]]
    else:
        lines.append("No bugs: every case ended in a valid result or one clear error.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
