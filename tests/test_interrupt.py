"""Real signals on real `lipsdf` processes: no partial output, the right exit status, one line saying what was
kept; and a killed run resumed from its checkpoint ends with the same weights as an uninterrupted one."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lipsdf.cli import main

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process CPU time from /proc")

ENV = dict(os.environ, PYTHONUNBUFFERED="1")


def _start(args, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lipsdf", *map(str, args)], cwd=cwd, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _cpu_seconds(process: subprocess.Popen) -> float:
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_until(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"finished before the signal: {process.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _stop(process: subprocess.Popen, number: int) -> tuple[int, str]:
    process.send_signal(number)
    _, err = process.communicate(timeout=60)
    return process.returncode, err


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)["weights"]


def _same_weights(a: Path, b: Path) -> bool:
    first, second = _weights(a), _weights(b)
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


TRAIN = ["--layers", 3, "--width", 32, "--epochs", 20, "--batch-size", 200, "--checkpoint-every", 2,
         "--device", "cpu", "-q"]


def test_sigterm_during_train_keeps_a_checkpoint_that_resumes_to_the_same_weights(tmp_path):
    assert main(["sample", "builtin:circle", "-n", 4000, "--n-test", 400, "-o", tmp_path / "data.npz", "-q"]) == 0
    full = subprocess.run([sys.executable, "-m", "lipsdf", "train", "data.npz", *map(str, TRAIN), "-o", "full.pt"],
                          cwd=tmp_path, env=ENV)
    assert full.returncode == 0

    process = _start(["train", "data.npz", *TRAIN, "-o", "cut.pt"], tmp_path)
    _wait_until(lambda: _lines(tmp_path / "cut.jsonl") >= 5, process)
    code, err = _stop(process, signal.SIGTERM)
    assert code == 143
    assert err.count("\n") == 1 and "interrupted by SIGTERM; kept the checkpoint of epoch" in err
    assert "continue with `lipsdf train --resume cut.pt`" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.jsonl", "cut.pt", "data.npz", "full.jsonl", "full.pt"]

    resumed = subprocess.run([sys.executable, "-m", "lipsdf", "train", "--resume", "cut.pt", "-q"], cwd=tmp_path,
                             env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _same_weights(tmp_path / "full.pt", tmp_path / "cut.pt")
    assert _lines(tmp_path / "cut.jsonl") == TRAIN[TRAIN.index("--epochs") + 1]
    assert "training" not in torch.load(tmp_path / "cut.pt", weights_only=True)  # a finished field is plain


def test_sigint_during_sample_writes_nothing(tmp_path):
    process = _start(["sample", "builtin:torus", "-n", 3_000_000, "-o", "big.npz"], tmp_path)
    assert process.stdout.readline().startswith("builtin:torus: mesh")  # loaded, now sampling
    code, err = _stop(process, signal.SIGINT)
    assert code == 130
    assert err == "lipsdf: interrupted by SIGINT; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


FIT = ["-n", 3000, "--n-test", 400, "--layers", 3, "--width", 32, "--epochs", 16, "--batch-size", 200, "--res", 64,
       "--eval-n-uniform", 500, "--eval-n-near", 500, "--eval-pairs", 500, "--eval-n-surface", 500, "--device", "cpu",
       "-q"]


def test_sigterm_during_fit_training_resumes_to_the_same_field(tmp_path):
    full = subprocess.run([sys.executable, "-m", "lipsdf", "fit", "builtin:circle", *map(str, FIT), "-o", "full"],
                          cwd=tmp_path, env=ENV)
    assert full.returncode == 0

    process = _start(["fit", "builtin:circle", *FIT, "-o", "cut"], tmp_path)
    _wait_until(lambda: _lines(tmp_path / "cut" / ".lipsdf-fit" / "circle.jsonl") >= 7, process)
    code, err = _stop(process, signal.SIGTERM)
    assert code == 143 and err.count("\n") == 1
    assert "kept the dataset and the field (or its last checkpoint) in cut/.lipsdf-fit" in err
    assert "continue with `lipsdf fit --resume cut`" in err
    assert [p.name for p in (tmp_path / "cut").iterdir()] == [".lipsdf-fit"]

    resumed = subprocess.run([sys.executable, "-m", "lipsdf", "fit", "--resume", "cut", "-q"], cwd=tmp_path,
                             env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _same_weights(tmp_path / "full" / "circle.pt", tmp_path / "cut" / "circle.pt")
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == sorted(p.name for p in (tmp_path / "full").iterdir())


def test_sigterm_during_fit_sampling_leaves_nothing(tmp_path):
    process = _start(["fit", "builtin:torus", "-n", 3_000_000, "-o", "out", "-q"], tmp_path)
    _wait_until(lambda: (tmp_path / "out" / ".lipsdf-fit" / "plan.json").exists(), process)
    code, err = _stop(process, signal.SIGTERM)
    assert code == 143 and err == "lipsdf: interrupted by SIGTERM; nothing was written\n"
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_mesh_writes_nothing(tmp_path):
    assert main(["fit", "builtin:sphere", "-o", tmp_path / "fit", "-n", 2000, "--n-test", 400, "--epochs", 1,
                 "--layers", 2, "--width", 16, "--res", 32, "--eval-n-uniform", 200, "--eval-n-near", 200,
                 "--eval-pairs", 200, "--eval-n-surface", 200, "-q"]) == 0
    process = _start(["mesh", tmp_path / "fit" / "sphere.pt", "--dense", "--res", 600, "-o", tmp_path / "m.obj"],
                     tmp_path)
    _wait_until(lambda: _cpu_seconds(process) > 4.0, process)  # well past start-up: evaluating the grid
    code, err = _stop(process, signal.SIGTERM)
    assert code == 143 and err == "lipsdf: interrupted by SIGTERM; nothing was written\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit"]


# --------------------------------------------------------------------------- full disks and read-only folders


def test_a_full_disk_during_fit_leaves_nothing_behind(tmp_path, capsys, monkeypatch):
    import lipsdf.dataset

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lipsdf.dataset.np, "savez", full)
    assert main(["fit", "builtin:circle", "-o", tmp_path / "out", "-n", 500, "--n-test", 100, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_output_folder_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import tempfile

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(kwargs.get("dir", "")))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    assert main(["sample", "builtin:circle", "-n", 500, "--n-test", 100, "-o", tmp_path / "c.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_fit_many_keeps_checkpoints_that_a_rerun_resumes(tmp_path):
    args = ["fit-many", "builtin:circle", "builtin:rectangle", "-o", "out", "--workers", 1, *FIT]
    process = _start(args, tmp_path)
    log = tmp_path / "out" / "circle" / ".lipsdf-fit" / "circle.jsonl"
    _wait_until(lambda: _lines(log) >= 7, process)  # a checkpoint every 5 epochs
    code, err = _stop(process, signal.SIGTERM)
    assert code == 143 and err.count("\n") == 1 and "the same command again continues" in err
    assert (tmp_path / "out" / "circle" / ".lipsdf-fit" / "circle.pt").is_file()  # kept, for the rerun
    rerun = subprocess.run([sys.executable, "-m", "lipsdf", *map(str, args)], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    metrics = json.loads((tmp_path / "out" / "circle" / "metrics.json").read_text())
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "out" / "circle" / "circle.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, FIT[FIT.index("--epochs") + 1] + 1)) and metrics["fingerprint"]  # one log, resumed, not restarted
    assert not (tmp_path / "out" / "circle" / ".lipsdf-fit").exists()
