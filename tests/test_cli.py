import subprocess
import sys

import numpy as np
import pytest

from lipsdf.cli import main
from lipsdf.dataset import PointDataset


def test_sample_writes_dataset_and_preview(tmp_path, capsys):
    out, png = tmp_path / "flower.npz", tmp_path / "flower.png"
    assert main(["sample", "builtin:flower", "-n", "2000", "--n-test", "400", "-o", str(out),
                 "--preview", str(png)]) == 0
    data = PointDataset.load(out)
    assert data.mode == "signed" and len(data.points) == 2000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "1000 inside" in printed and "1000 outside" in printed


def test_sample_quiet_prints_nothing(tmp_path, capsys):
    assert main(["sample", "builtin:torus", "--mode", "dist", "-n", "1000", "--n-test", "100",
                 "-o", str(tmp_path / "t.npz"), "-q"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("argv, message", [
    (["sample", "{tmp}/missing.obj"], "no such file"),
    (["sample", "{tmp}/shape.xyz2"], "unknown shape format"),
    (["sample", "builtin:helix"], "needs inside/outside"),
    (["sample", "{tmp}/flat.obj", "--kind", "polyline2d"], "constant z"),
    (["sample", "builtin:circle", "-o", "{tmp}/nowhere/x.npz"], "does not exist"),
    (["sample", "builtin:circle", "-o", "{tmp}/x.txt"], "must end in .npz"),
    (["sample", "builtin:circle", "--band", "0.7", "0.3"], "band"),
    (["sample", "builtin:circle", "--uniform-fraction", "2"], "uniform_fraction"),
])
def test_bad_input_gives_one_line_status_2_and_no_output(tmp_path, capsys, argv, message):
    (tmp_path / "shape.xyz2").write_text("0 0 0\n")
    (tmp_path / "flat.obj").write_text("v 0 0 0\nv 1 0 1\nv 0 1 0\nl 1 2 3\n")
    before = set(tmp_path.rglob("*"))
    code = main([a.format(tmp=tmp_path) for a in argv] + ["-o", str(tmp_path / "out.npz")]
                if "-o" not in argv else [a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert set(tmp_path.rglob("*")) == before


def test_bad_options_exit_2_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample", "builtin:circle", "-n", "-3"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_console_script_runs_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lipsdf", "sample", str(tmp_path / "none.ply")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "no such file" in result.stderr


def test_unwritable_output_is_one_line_status_2(tmp_path, capsys, monkeypatch):
    import lipsdf.dataset

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x.npz"))

    monkeypatch.setattr(lipsdf.dataset.np, "savez", refuse)
    assert main(["sample", "builtin:circle", "-n", "200", "--n-test", "40", "-o", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Permission denied" in err
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def circle_dataset(tmp_path):
    path = tmp_path / "circle.npz"
    assert main(["sample", "builtin:circle", "-n", "2000", "--n-test", "400", "-o", str(path), "-q"]) == 0
    return path


def test_train_writes_field_log_and_preview(tmp_path, circle_dataset, capsys):
    out = tmp_path / "c.pt"
    assert main(["train", str(circle_dataset), "--layers", "3", "--width", "16", "--epochs", "3",
                 "--batch-size", "500", "-o", str(out), "--log", str(tmp_path / "c.csv"),
                 "--preview", str(tmp_path / "c.png")]) == 0
    from lipsdf.field import NeuralField

    field = NeuralField.load(out)
    assert field.model_config == {"arch": "sll", "dim": 2, "layers": 3, "width": 16}
    assert field.summary["epochs"] == 3 and field.summary["loss"] == "fit-hinge"
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 4
    assert (tmp_path / "c.png").is_file()
    printed = capsys.readouterr().out
    assert "training sll 3 x 16 with fit-hinge" in printed and "test mean error" in printed


def test_train_defaults_name_outputs_after_the_dataset(tmp_path, circle_dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", str(circle_dataset), "--layers", "2", "--width", "8", "--epochs", "1", "-q"]) == 0
    assert (tmp_path / "circle.pt").is_file() and (tmp_path / "circle.jsonl").is_file()


@pytest.mark.parametrize("argv, message", [
    (["train", "{tmp}/missing.npz"], "no such dataset"),
    (["train", "{tmp}/plain.npz"], "not a lipsdf dataset"),
    (["train", "{data}", "--loss", "sald"], "trains on sal datasets, but this one is signed"),
    (["train", "{data}", "-o", "{tmp}/f.txt"], "must end in .pt"),
    (["train", "{data}", "-o", "{tmp}/nowhere/f.pt"], "does not exist"),
    (["train", "{data}", "--log", "{tmp}/log.txt"], ".jsonl or .csv"),
    (["train", "{data}", "--final-margin", "0.5"], "final margin"),
    (["train", "{data}", "--arch", "sll", "--width", "1"], "width"),
])
def test_train_bad_input_gives_one_line_status_2_and_no_output(tmp_path, circle_dataset, capsys, argv, message):
    np.savez(tmp_path / "plain.npz", points=np.zeros((3, 2)))
    before = set(tmp_path.rglob("*"))
    args = [a.format(tmp=tmp_path, data=circle_dataset) for a in argv]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "out.pt")]
    code = main(args + ["--epochs", "1", "--layers", "2", "--log", str(tmp_path / "log.jsonl")]
                if "--log" not in args else args + ["--epochs", "1", "--layers", "2"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert set(tmp_path.rglob("*")) == before


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_train_on_missing_cuda_is_a_clear_error(circle_dataset, capsys):
    assert main(["train", str(circle_dataset), "--device", "cuda", "-o", str(circle_dataset.with_suffix(".pt"))]) == 2
    assert "no usable CUDA" in capsys.readouterr().err
    assert not circle_dataset.with_suffix(".pt").exists()
