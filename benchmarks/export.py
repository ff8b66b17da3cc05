"""Exported fields: onnxruntime against `NeuralField` at the same batch, and `lipsdf view`'s frame time.

Run by hand (not part of the tests); needs ``pip install 'lipsdf[export]'``, Playwright and Chromium
(``make test`` installs them):

    .venv/bin/python -m benchmarks.export [--field FIELD.pt]

Two fields: the default 3D field (SLL 20 x 64): ``--field``, else the bunny field that
``benchmarks.defaults`` leaves in ``out/bench/``, else one fitted here by ``lipsdf fit builtin:torus
--quick``; and a small one (SLL 4 x 16, trained here on a sphere for a few seconds).

* **Throughput**: points per second of world distances on points spread over the field's box, at batches
  of 4,096 and 65,536, by ``NeuralField`` (PyTorch, float32) and by onnxruntime on the exported model, in
  the same process, each the best of five rounds that time both in turn, at least one second each. On a
  machine with CUDA, also on the GPU (``NeuralField`` on CUDA; onnxruntime where its CUDA provider is
  installed).
* **Viewer**: the time of one full-quality 512 x 512 frame (``window.lipsdf.render``, tiles included) of
  each field's page in headless Chromium, from the default view, as the page's own clock measures it;
  the WebGL renderer Chromium reports is recorded (SwiftShader on a machine without a GPU). The default
  field's page, drawn, is saved as docs/images/view_bunny.png.

Writes benchmarks/results/export.json and export.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from benchmarks.provenance import provenance
from lipsdf.export import export_field, field_program, write_view
from lipsdf.field import NeuralField
from lipsdf.geometry.primitives import sphere
from lipsdf.sampling import sample
from lipsdf.training import Trainer, TrainingConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BENCH_FIELD = ROOT / "out" / "bench" / "bunny_fit.pt"
BATCHES = (4096, 65536)
FRAME = 512
SCREENSHOT = ROOT / "docs" / "images" / "view_bunny.png"  # the README's picture of the viewer
BROWSER_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def default_field(given: Path | None, folder: Path) -> tuple[NeuralField, str]:
    """The default-size 3D field and where it came from."""
    if given is not None:
        return NeuralField.load(given), f"{given.name}, given with --field"
    if BENCH_FIELD.exists():
        return NeuralField.load(BENCH_FIELD), "the bunny field of benchmarks.defaults"
    subprocess.run([sys.executable, "-m", "lipsdf", "fit", "builtin:torus", "--quick", "-q", "-o", str(folder)],
                   check=True)
    return NeuralField.load(folder / "torus.pt"), "lipsdf fit builtin:torus --quick"


def small_field() -> NeuralField:
    data = sample(sphere(), "signed", n=4000, n_test=400, seed=0)
    return Trainer(data, {"arch": "sll", "layers": 4, "width": 16},
                   TrainingConfig(epochs=15, batch_size=500, checkpoint_every=0)).run()


def points_per_second(runs: dict[str, Callable[[np.ndarray], object]], points: np.ndarray,
                      repeats: int = 5) -> dict[str, float]:
    """Each run's best rate over ``repeats`` rounds, each timing every run in turn over as many calls as fill
    one second: interleaved, so that a slower spell of a shared machine falls on both."""
    for run in runs.values():
        run(points)  # warm up: first-call allocations, lazy initialisation
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeats):
        for name, run in runs.items():
            calls, started = 0, time.perf_counter()
            while calls == 0 or time.perf_counter() - started < 1.0:
                run(points)
                calls += 1
            best[name] = max(best[name], calls * len(points) / (time.perf_counter() - started))
    return best


def throughput(field: NeuralField, folder: Path, device: str) -> dict:
    """Points/s of ``NeuralField`` and of onnxruntime, by batch, on ``device``."""
    import onnxruntime

    (model,) = export_field(field, folder / "field.onnx")
    providers = ["CPUExecutionProvider"] if device == "cpu" else ["CUDAExecutionProvider"]
    session = None
    if providers[0] in onnxruntime.get_available_providers():
        session = onnxruntime.InferenceSession(str(model), providers=providers)
    field = field.to(device)
    low, high = field.normalization.world_bounds()
    rows = {}
    for batch in BATCHES:
        points = np.random.default_rng(0).uniform(low, high, size=(batch, field.dim)).astype(np.float32)
        runs = {"neural_field": lambda p: field(p, batch_size=batch)}
        if session is not None:
            runs["onnxruntime"] = lambda p: session.run(["distance"], {"points": p})
        rows[str(batch)] = {"onnxruntime": None, **points_per_second(runs, points)}
    return rows


def frame_milliseconds(field: NeuralField, folder: Path, frames: int, screenshot: Optional[Path] = None) -> dict:
    """The page's time for full ``FRAME`` x ``FRAME`` frames of ``field`` (the median of ``frames``); the
    page, once drawn, is saved to ``screenshot`` when given."""
    from playwright.sync_api import sync_playwright

    page_path = write_view(field_program(field), folder / "view.html", "view")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        page = browser.new_page(viewport={"width": FRAME, "height": FRAME})
        page.goto(page_path.resolve().as_uri())
        page.evaluate("window.lipsdf.ready")
        renderer = page.evaluate("""() => { const gl = document.querySelector('canvas').getContext('webgl2');
            const info = gl.getExtension('WEBGL_debug_renderer_info');
            return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); }""")
        times = [page.evaluate(f"""async () => {{ const started = performance.now();
            await window.lipsdf.render({{width: {FRAME}, height: {FRAME}}});
            return performance.now() - started; }}""") for _ in range(frames)]
        warning = page.inner_text("#warning")
        if screenshot is not None:
            page.screenshot(path=str(screenshot))
        browser.close()
    return {"milliseconds": float(np.median(times)), "frames": frames, "renderer": renderer,
            "context_lost": "context lost" in warning}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--field", type=Path, default=None, help="the default-size 3D field to measure")
    args = parser.parse_args()
    devices = ["cpu"] + ["cuda"] * torch.cuda.is_available()
    rows = {}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        big, source = default_field(args.field, folder)
        for name, field, frames in (("default", big, 1), ("small", small_field(), 3)):
            rows[name] = {"source": source if name == "default" else "SLL 4 x 16, trained here on a sphere",
                          "network": f"{field.arch} {field.model_config['layers']} x {field.model_config['width']}",
                          "throughput": {device: throughput(field, folder, device) for device in devices},
                          "viewer": frame_milliseconds(field, folder, frames,
                                                       SCREENSHOT if name == "default" else None)}
            print(name, json.dumps(rows[name]), flush=True)
    result = {"rows": rows, **provenance()}
    (RESULTS / "export.json").write_text(json.dumps(result, indent=2) + "\n")
    write_table(result)


def write_table(result: dict) -> None:
    lines = ["# Exported fields: onnxruntime and `lipsdf view`", "",
             f"`python -m benchmarks.export`, commit {result.get('commit')}, {result.get('date')}, "
             f"{result.get('machine')}. Points/s: world distances of points spread over the field's box, the "
             "best of five rounds of at least one second, `NeuralField` (PyTorch, float32) and "
             "onnxruntime on the exported model timed in turn in each round, in the same process. Frame: one full-quality 512 x 512 "
             "frame of `lipsdf view`'s page in headless Chromium (`window.lipsdf.render`), by the page's "
             "clock; the renderer is what Chromium's WebGL reports.", "",
             "| field | network | device | batch | NeuralField points/s | onnxruntime points/s | onnxruntime / "
             "NeuralField |", "|---|---|---|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        for device, batches in row["throughput"].items():
            for batch, rates in batches.items():
                ours, theirs = rates["neural_field"], rates["onnxruntime"]
                ratio = "-" if theirs is None else f"{theirs / ours:.2f}x"
                shown = "-" if theirs is None else f"{theirs:,.0f}"
                lines.append(f"| {name} | {row['network']} | {device} | {int(batch):,} | {ours:,.0f} | {shown} | "
                             f"{ratio} |")
    lines += ["", "| field | network | source | 512 x 512 frame | renderer | context lost |", "|---|---|---|---:|---|---|"]
    for name, row in result["rows"].items():
        viewer = row["viewer"]
        lines.append(f"| {name} | {row['network']} | {row['source']} | {viewer['milliseconds'] / 1000:.2f} s "
                     f"(median of {viewer['frames']}) | {viewer['renderer']} | {'yes' if viewer['context_lost'] else 'no'} |")
    (RESULTS / "export.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
