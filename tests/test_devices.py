"""Telling whether a GPU can be there without importing torch, and `lipsdf sample` not importing it."""

import importlib.machinery
import subprocess
import sys

import pytest

from lipsdf import devices
from lipsdf.cli_parser import build_parser


def _fake_torch(monkeypatch, tmp_path, version_text):
    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    if version_text is not None:
        (package / "version.py").write_text(version_text)
    spec = importlib.machinery.ModuleSpec("torch", None, origin=str(package / "__init__.py"))
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: spec)


@pytest.mark.parametrize("text, gpu", [
    ("__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\nhip: Optional[str] = None\n", False),
    ("__version__ = '2.13.0+cu128'\ncuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n", True),
    ("__version__ = '2.13.0+rocm6.4'\ncuda = None\nhip = '6.4.43483'\n", True),
    ("__version__ = '9.0'\n", True),  # a layout not known here: look for the device the slow way
    (None, True),
], ids=["cpu build", "cuda build", "rocm build", "unknown layout", "no version file"])
def test_gpu_build_reads_torchs_version_file(monkeypatch, tmp_path, text, gpu):
    _fake_torch(monkeypatch, tmp_path, text)
    assert devices.gpu_build() is gpu
    if not gpu:
        assert devices.geometry_device(None) is None


def test_a_parser_for_one_command_has_its_options_only():
    full, one = build_parser(), build_parser(only="sample")
    choices = next(a for a in one._actions if a.dest == "command").choices
    assert list(choices) == ["sample"]
    assert set(next(a for a in full._actions if a.dest == "command").choices) >= {"sample", "fit", "render", "view"}
    args = one.parse_args(["sample", "builtin:circle", "-n", "100"])
    assert args == full.parse_args(["sample", "builtin:circle", "-n", "100"])


@pytest.mark.skipif(devices.gpu_build(), reason="this torch is built for a GPU: sample looks for one with torch")
def test_sample_does_not_import_torch_on_a_cpu_build(tmp_path):
    code = ("import sys; from lipsdf.cli import main; "
            f"code = main(['sample', 'builtin:circle', '-n', '200', '--n-test', '40', '-q', '-o', r'{tmp_path / 'c.npz'}']); "
            "print(code, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0", "False"]
    assert (tmp_path / "c.npz").exists()
