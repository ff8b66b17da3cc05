"""Collections of shapes for :func:`lipsdf.pipeline.many.fit_many`: finding the inputs, naming their outputs,
fingerprinting their settings, and the summary of a run.

Inputs are shape files, ``builtin:NAME``, folders (searched recursively for readable formats) and
manifests: ``.csv`` files with a ``path`` column, or ``.txt`` files whose first line is not a row of
numbers (those are point clouds), with one path per line. Both give paths relative to the manifest,
and per-shape options: further ``.csv`` columns, or ``key=value`` words after the path
(``bunny.obj epochs=80 mode=unsigned time=90s``), read by
:meth:`lipsdf.pipeline.options.FitOptions.from_flat`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from lipsdf.errors import InputFileError
from lipsdf.files import PathLike, atomic_output, sha256_of_file
from lipsdf.geometry.io import READ_FORMATS, shape_name
from lipsdf.geometry.primitives import BUILTIN_PREFIX
from lipsdf.version import __version__

SUMMARY_COLUMNS = ("name", "status", "seconds", "chamfer_l1_rel", "hausdorff_rel", "normal_consistency", "mae_rel",
                   "max_pair_ratio", "input", "reason")


@dataclass
class Item:
    """One shape of a collection: where it comes from, its output name, and its own fit options."""

    source: str
    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def _is_manifest(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        return True
    if path.suffix.lower() != ".txt":
        return False
    with open(path, errors="replace") as handle:
        for line in handle:
            words = line.replace(",", " ").split()
            if words and not words[0].startswith("#"):
                try:
                    [float(word) for word in words]
                    return False  # a row of numbers: a point cloud
                except ValueError:
                    return True
    return False


def _value(text: str) -> Any:
    """A manifest option's value: a number, a boolean, a list of numbers (``0.01;0.05``), or the text."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    if ";" in text:
        return tuple(_value(part) for part in text.split(";"))
    return text.strip()


def _read_manifest(path: Path) -> list[Item]:
    items = []
    with open(path, newline="", errors="replace") as handle:
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(handle))
            if rows and "path" not in rows[0]:
                raise InputFileError(f"manifest {path} needs a 'path' column")
            entries = [(row.pop("path"), {k: _value(v) for k, v in row.items() if k and v not in (None, "")})
                       for row in rows]
        else:
            entries = []
            for number, line in enumerate(handle, 1):
                words = line.split("#", 1)[0].split()
                if not words:
                    continue
                options = dict(word.split("=", 1) for word in words[1:] if "=" in word)
                if len(options) != len(words) - 1:
                    raise InputFileError(f"manifest {path}, line {number}: options are key=value words")
                entries.append((words[0], {k: _value(v) for k, v in options.items()}))
    for source, options in entries:
        target = source if source.startswith(BUILTIN_PREFIX) else str((path.parent / source))
        items.append(Item(target, options=options))
    return items


def find_inputs(inputs: Sequence[PathLike], exclude: Optional[Path] = None) -> tuple[list[Item], list[Item]]:
    """The shapes that ``inputs`` name, in a stable order with unique output names, and the inputs that
    name nothing (missing paths), each with its reason in ``options["reason"]``.

    Folders are searched recursively for readable formats, skipping hidden folders and ``exclude``
    (the output folder, whose meshes are no inputs).

    Examples
    --------
    >>> items, missing = find_inputs(["builtin:torus", "builtin:circle", "no/such.obj"])
    >>> [item.name for item in items], missing[0].options["reason"]
    (['torus', 'circle'], 'no such file or folder: no/such.obj')
    """
    found: list[Item] = []
    missing: list[Item] = []
    exclude = exclude.resolve() if exclude is not None else None
    for entry in map(str, inputs):
        path = Path(entry)
        if entry.startswith(BUILTIN_PREFIX):
            found.append(Item(entry))
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in READ_FORMATS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and not (exclude is not None and exclude in p.resolve().parents))
            found.extend(Item(str(p)) for p in files if not _is_manifest(p))
        elif path.is_file() and _is_manifest(path):
            found.extend(_read_manifest(path))
        elif path.is_file():
            found.append(Item(entry))
        else:
            missing.append(Item(entry, shape_name(entry), {"reason": f"no such file or folder: {entry}"}))
    return _named(found), missing


def _named(items: list[Item]) -> list[Item]:
    """Output names after the shapes; stems shared by several inputs get a digest of the full path, so that
    a name does not depend on the order of the inputs (and reruns find their folders)."""
    stems: dict[str, int] = {}
    for item in items:
        stems[shape_name(item.source)] = stems.get(shape_name(item.source), 0) + 1
    for item in items:
        stem = shape_name(item.source)
        if stems[stem] > 1:
            where = item.source if item.source.startswith(BUILTIN_PREFIX) else str(Path(item.source).resolve())
            key = where + json.dumps(item.options, sort_keys=True)
            stem = f"{stem}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
        item.name = stem
    return items


def fingerprint(source: str, settings: dict[str, Any]) -> str:
    """SHA-256 of the input's content and of the fit settings: the same input and settings, the same
    fingerprint (how a rerun knows that a shape's outputs are up to date)."""
    content = source if source.startswith(BUILTIN_PREFIX) else sha256_of_file(source)
    text = json.dumps({"input": content, "settings": settings, "lipsdf": __version__}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Row:
    """One line of ``summary.csv``: how a shape's fit went (lengths as fractions of the diagonal)."""

    name: str
    status: str  # done, skipped (up to date), failed
    seconds: float = 0.0
    chamfer_l1_rel: Optional[float] = None
    hausdorff_rel: Optional[float] = None
    normal_consistency: Optional[float] = None
    mae_rel: Optional[float] = None
    max_pair_ratio: Optional[float] = None
    input: str = ""
    reason: str = ""

    @classmethod
    def from_metrics(cls, name: str, status: str, source: str, metrics: dict[str, Any]) -> "Row":
        """A row from a ``metrics.json`` of ``lipsdf fit``."""
        surface = metrics.get("surface") or {}
        return cls(name, status, metrics.get("seconds", {}).get("total", 0.0), surface.get("chamfer_l1_rel"),
                   surface.get("hausdorff_rel"), surface.get("normal_consistency"),
                   metrics["distance"]["all"]["mae_rel"], metrics["lipschitz"]["max_ratio"], source)


def write_summary(rows: Sequence[Row], folder: Path) -> tuple[Path, Path]:
    """``summary.csv`` (one row per shape) and ``summary.md`` (the same table with median and worst lines)."""
    with atomic_output(folder / "summary.csv") as tmp:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
            writer.writeheader()
            writer.writerows(dataclasses.asdict(row) for row in rows)
    with atomic_output(folder / "summary.md") as tmp:
        tmp.write_text(summary_table(rows))
    return folder / "summary.csv", folder / "summary.md"


def summary_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, then the median and the worst of each metric over the fitted shapes.

    Examples
    --------
    >>> print(summary_table([Row("a", "done", 1.0, 0.001, 0.01, 0.99, 0.002, 0.9)]).splitlines()[-1])
    | worst |  | 1 s | 0.100% | 1.000% | 0.990 | 0.200% | 0.900000 |
    """
    lines = ["| shape | status | seconds | Chamfer L1 | Hausdorff | normal cons. | MAE | largest pair ratio |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]

    def cells(values: Sequence[Optional[float]]) -> list[str]:
        out = []
        for value, kind in zip(values, ("s", "%", "%", "f", "%", "r")):
            out.append("—" if value is None else f"{value:.0f} s" if kind == "s" else f"{100 * value:.3f}%"
                       if kind == "%" else f"{value:.3f}" if kind == "f" else f"{value:.6f}")
        return out

    metrics = ("seconds", "chamfer_l1_rel", "hausdorff_rel", "normal_consistency", "mae_rel", "max_pair_ratio")
    for row in rows:
        status = row.status if not row.reason else f"{row.status}: {row.reason}"
        lines.append("| " + " | ".join([row.name, status.replace("|", "/")]
                                        + cells([getattr(row, m) for m in metrics])) + " |")
    fitted = [row for row in rows if row.status != "failed"]
    if fitted:
        worst = {"normal_consistency": min}  # the worst of the others is their largest
        for label in ("median", "worst"):
            values = []
            for metric in metrics:
                known = [getattr(row, metric) for row in fitted if getattr(row, metric) is not None]
                if not known:
                    values.append(None)
                elif label == "median":
                    values.append(statistics.median(known))
                else:
                    values.append(worst.get(metric, max)(known))
            lines.append("| " + " | ".join([label, ""] + cells(values)) + " |")
    return "\n".join(lines) + "\n"
