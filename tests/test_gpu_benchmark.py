"""`benchmarks/gpu.py --smoke`: the GPU benchmark's code paths, tiny, on the CPU (the real run needs CUDA)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


def test_gpu_benchmark_smoke_run_writes_every_figure(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu.json").read_text())
    assert results["smoke"] and results["device"] == "cpu"
    assert results["training"]["eager_points_per_second"] > 0 and results["training"]["default_points_per_second"] > 0
    assert results["precision"]["pair_ratio_float64_after_tf32_training"] <= 1 + 1e-5
    assert results["mesh"]["identical"]  # the pruned mesh is the dense one
    assert results["trace"]["stepped_through"] == 0 and results["trace"]["hits"] > 0
    assert results["fit"]["max_pair_ratio"] <= 1 + 1e-6
    text = (tmp_path / "gpu.md").read_text()
    assert "points/s" in text and "rays/s" in text and "smoke run" in text


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_benchmark_refuses_to_run_without_cuda_unless_smoke():
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
