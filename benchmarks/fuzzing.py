"""Hostile files for every reader: valid seeds, seeded mutations, and the one rule every case must obey.

A plain module (not a conftest), shared by ``tests/test_fuzz.py`` (Hypothesis picks the cases, in CI)
and ``benchmarks/robustness.py`` (the long mode, by hand). The rule: loading a file either gives a
valid result or raises a :class:`~lipsdf.errors.LipsdfError`, within a time and a memory bound;
anything else (another exception, a hang, a huge allocation) is a bug.
"""

from __future__ import annotations

import contextlib
import io
import json
import resource
import signal
import struct
import time
import tracemalloc
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError
from lipsdf.field import NeuralField
from lipsdf.geometry.io import load_shape, save_points, save_shape
from lipsdf.geometry.primitives import box, circle
from lipsdf.nn import build_model

TIME_LIMIT = 10.0  # seconds per case
MEMORY_LIMIT = 256 << 20  # bytes one case may allocate: traced (numpy, Python) or new resident memory (torch)


def seed_files(folder: Path) -> dict[str, Path]:
    """One valid file of each format lipsdf reads, by format name."""
    folder.mkdir(parents=True, exist_ok=True)
    mesh = box((1.0, 0.5, 0.25))
    files = {}
    for name, suffix in (("obj", ".obj"), ("ply-binary", ".ply"), ("off", ".off"), ("stl-binary", ".stl"),
                         ("mesh", ".mesh")):
        files[name] = folder / f"{name}{suffix}"
        save_shape(mesh, files[name])
    import trimesh

    exported = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    files["ply-ascii"] = folder / "ply-ascii.ply"
    files["ply-ascii"].write_bytes(exported.export(file_type="ply", encoding="ascii"))
    files["stl-ascii"] = folder / "stl-ascii.stl"
    files["stl-ascii"].write_text(exported.export(file_type="stl_ascii"))
    points = np.random.default_rng(0).normal(size=(40, 3))
    for name, suffix in (("xyz", ".xyz"), ("npz", ".npz")):
        files[name] = folder / f"{name}{suffix}"
        save_points(points, files[name], normals=points)
    files["geojson"] = folder / "geojson.geojson"
    ring = [[0, 0], [4, 0], [4, 3], [0, 3], [0, 0]]
    files["geojson"].write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": {}}]}))
    from lipsdf.sampling import sample

    files["dataset"] = folder / "dataset.npz"
    sample(circle(), "signed", n=200, n_test=40, seed=0).save(files["dataset"])
    config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    files["field"] = folder / "field.pt"
    from lipsdf.geometry.normalize import Normalization

    NeuralField(build_model(config), Normalization(np.zeros(2), 2.0), config).save(files["field"])
    return files


def load(fmt: str, path: Path):
    """What lipsdf does with a file of that format."""
    if fmt == "dataset":
        return PointDataset.load(path)
    if fmt == "field":
        return NeuralField.load(path)
    return load_shape(path)


# --------------------------------------------------------------------------- mutations


def truncate(data: bytes, rng: np.random.Generator) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def flip_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        if out:
            out[int(rng.integers(len(out)))] = int(rng.integers(256))
    return bytes(out)


def _replace_first_number_after(text: bytes, keyword: bytes, value: bytes) -> bytes:
    at = text.find(keyword)
    if at < 0:
        return text
    start = at + len(keyword)
    while start < len(text) and text[start:start + 1] in b" \t\r\n":
        start += 1
    end = start
    while end < len(text) and text[end:end + 1].isdigit():
        end += 1
    return text[:start] + value + text[end:]


def huge_counts(data: bytes, rng: np.random.Generator, fmt: str) -> bytes:
    """Headers that promise far more elements than the file holds (10^12 vertices, 4e9 triangles, ...)."""
    huge = str(int(rng.choice([10 ** 12, 2 ** 31 - 1, 2 ** 63 - 1, 10 ** 9]))).encode()
    if fmt.startswith("ply"):
        return _replace_first_number_after(data, b"element vertex", huge)
    if fmt == "off":
        lines = data.split(b"\n")
        body = 1 if lines[0].strip() == b"OFF" else 0
        parts = lines[body].split()
        if parts:
            parts[0] = huge
        lines[body] = b" ".join(parts)
        return b"\n".join(lines)
    if fmt == "stl-binary" and len(data) >= 84:
        return data[:80] + struct.pack("<I", int(rng.choice([2 ** 32 - 1, 10 ** 9]))) + data[84:]
    if fmt == "mesh":
        return _replace_first_number_after(data, b"Vertices", huge)
    if fmt in ("npz", "dataset"):
        return _npz_with_huge_array(data, huge)
    return data + b"\n" + huge


def _npz_with_huge_array(data: bytes, huge: bytes) -> bytes:
    """The same archive with its first array's header claiming a huge shape."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = {name: archive.read(name) for name in archive.namelist()}
    except zipfile.BadZipFile:
        return data
    name = next(n for n in members if n != "metadata.npy")
    members[name] = members[name].replace(b"'shape': (", b"'shape': (" + huge + b", ", 1)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for key, value in members.items():
            archive.writestr(key, value)
    return out.getvalue()


def non_finite(data: bytes, rng: np.random.Generator, fmt: str) -> bytes:
    """NaN or infinity in place of coordinates."""
    token = rng.choice([b"nan", b"inf", b"-inf", b"1e999"])
    if fmt in ("npz", "dataset"):
        return _npz_edit(data, lambda name, array: np.where(np.random.default_rng(0).random(array.shape) < 0.1,
                                                          np.nan, array) if array.dtype.kind == "f" else array)
    if fmt in ("ply-binary", "stl-binary", "field"):
        out = bytearray(data)
        for _ in range(4):
            at = int(rng.integers(0, max(len(out) - 4, 1)))
            out[at:at + 4] = struct.pack("<f", float("nan"))
        return bytes(out)
    words = data.split(b" ")
    numeric = [i for i, w in enumerate(words) if w.strip().replace(b".", b"").replace(b"-", b"").isdigit()]
    for i in rng.choice(numeric, size=min(3, len(numeric)), replace=False) if numeric else []:
        words[int(i)] = token + (b"\n" if words[int(i)].endswith(b"\n") else b"")
    return b" ".join(words)


def _npz_edit(data: bytes, edit: Callable[[str, np.ndarray], np.ndarray]) -> bytes:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception:
        return data
    out = io.BytesIO()
    np.savez(out, **{name: edit(name, array) for name, array in arrays.items()})
    return out.getvalue()


def wrong_shapes(data: bytes, rng: np.random.Generator, fmt: str) -> bytes:
    """Arrays or rows of the wrong dimension, length or dtype."""
    if fmt in ("npz", "dataset"):
        choice = int(rng.integers(4))

        def edit(name: str, array: np.ndarray) -> np.ndarray:
            if name == "metadata" or array.ndim == 0:
                return array
            if choice == 0:  # one column too many
                return np.column_stack([array, array[:, :1]]) if array.ndim == 2 else array
            if choice == 1:  # a shorter array
                return array[: len(array) // 2]
            if choice == 2:  # integers, or complex numbers
                return array.astype(np.int64) if array.dtype.kind == "f" else array.astype(np.complex128)
            return array.reshape(-1)  # flattened
        return _npz_edit(data, edit)
    if fmt == "xyz":
        return data.replace(b"\n", b" 1\n", 3)
    if fmt == "geojson":
        return data.replace(b"[0, 0]", b"[0, 0, 0, 0]", 1)
    if fmt == "field":
        return flip_bytes(data, rng)
    return data.replace(b"\n", b" 7 8\n", 5)


MUTATIONS: dict[str, Callable[..., bytes]] = {
    "truncate": lambda data, rng, fmt: truncate(data, rng),
    "flip": lambda data, rng, fmt: flip_bytes(data, rng),
    "huge-count": huge_counts,
    "non-finite": non_finite,
    "wrong-shape": wrong_shapes,
    "empty": lambda data, rng, fmt: b"",
}


# --------------------------------------------------------------------------- the rule


@dataclass
class Outcome:
    kind: str  # "valid", "error" (a LipsdfError), or "bug: ..." (anything else)
    message: str
    seconds: float
    peak_bytes: int


class _TimeLimit(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    def stop(signum, frame):
        raise _TimeLimit(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_case(fmt: str, path: Path) -> Outcome:
    """Load ``path`` as lipsdf would and classify what happened."""
    resident = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10  # high-water mark, bytes (Linux)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with _time_limit(TIME_LIMIT):
            load(fmt, path)
        kind, message = "valid", ""
    except LipsdfError as exc:
        kind, message = "error", str(exc)
        if "\n" in message:
            kind = "bug: a multi-line error"
    except BaseException as exc:  # noqa: BLE001 - classifying is the point
        kind, message = f"bug: {type(exc).__name__}", str(exc)[:300]
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10) - resident  # what tracemalloc misses (torch)
    if max(peak, grown) > MEMORY_LIMIT and not kind.startswith("bug"):
        kind = f"bug: {max(peak, grown) >> 20} MiB allocated"
    return Outcome(kind, message, seconds, peak)


def mutated_case(seeds: dict[str, Path], fmt: str, mutation: str, seed: int, folder: Path) -> Path:
    """Write the mutated file for (format, mutation, seed) and return its path."""
    rng = np.random.default_rng(seed)
    source = seeds[fmt]
    path = folder / f"case{source.suffix}"
    if path.is_dir():
        path.rmdir()
    path.write_bytes(MUTATIONS[mutation](source.read_bytes(), rng, fmt))
    return path
