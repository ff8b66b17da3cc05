"""Every benchmark still runs: each answers --help as `python -m benchmarks.NAME`, and uses only public API."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(path.stem for path in (ROOT / "benchmarks").glob("*.py")
                 if path.stem not in ("__init__", "provenance", "fuzzing", "messy"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_benchmark_answers_help(name):
    done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "benchmarks" in done.stdout or "usage" in done.stdout


def test_benchmarks_touch_no_private_part_of_lipsdf():
    private = re.compile(r"mock\.patch|\._(start|step|field|offset)\b|sys\.path")
    offenders = [f"{path.name}:{number}" for path in (ROOT / "benchmarks").glob("*.py")
                 for number, line in enumerate(path.read_text().splitlines(), 1) if private.search(line)]
    assert offenders == []


def test_benchmarks_readme_lists_every_script():
    readme = (ROOT / "benchmarks" / "README.md").read_text()
    assert [name for name in SCRIPTS if f"`{name}`" not in readme] == []
