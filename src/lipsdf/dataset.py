"""PointDataset: the training data of one shape, saved as a single ``.npz``.

Arrays are in *unit* coordinates (the box ``[-1, 1]^d`` the network sees);
``normalization`` maps them back to the user's world units. Distances in unit
coordinates are world distances divided by ``normalization.scale``.

Arrays by mode (``n`` points of dimension ``d``):

==========  =====================================================================
signed      ``points`` (n, d), ``labels`` (n,) int8: -1 inside, +1 outside; ``distances`` (n,), signed
unsigned    ``points`` (n, d), ``labels`` (n,) int8: -1 on the surface, +1 elsewhere; ``distances`` (n,)
dist        ``points`` (n, d), ``distances`` (n,): signed where inside is defined
sal         ``points`` (n, d), ``distances`` (n,): unsigned
==========  =====================================================================

In ``signed`` and ``unsigned`` mode, ``distances`` (the exact distance of each
training point, consistent with its label) is there when the shape has exact
distances, which a point cloud does not.

Every mode also has ``surface_points`` (and ``surface_normals`` where the
shape has oriented normals) and a test set: ``test_points``,
``test_distances`` (signed where defined) and ``test_region`` (0 uniform in
the domain, 1 near the surface, 2 on the surface).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from lipsdf.version import __version__
from lipsdf.errors import DatasetError, InputFileError, LipsdfError
from lipsdf.files import PathLike, atomic_output, load_npz
from lipsdf.geometry.normalize import Normalization

FORMAT = "lipsdf-dataset"
FORMAT_VERSION = 1
MODES = ("signed", "unsigned", "dist", "sal")
TEST_ARRAYS = ("test_points", "test_distances", "test_region")
REQUIRED_ARRAYS = {
    "signed": ("points", "labels", "surface_points"),
    "unsigned": ("points", "labels", "surface_points"),
    "dist": ("points", "distances", "surface_points"),
    "sal": ("points", "distances", "surface_points"),
}


@dataclass
class PointDataset:
    """Arrays plus metadata; see the module docstring for the arrays of each mode.

    Examples
    --------
    >>> from lipsdf.sampling import sample
    >>> from lipsdf.geometry.primitives import circle
    >>> data = sample(circle(), "signed", n=1000, n_test=200, seed=0)
    >>> data.mode, data.points.shape, int((data.labels < 0).sum())
    ('signed', (1000, 2), 500)
    """

    mode: str
    arrays: dict[str, np.ndarray]
    normalization: Normalization
    metadata: dict = field(default_factory=dict)
    path: Optional[Path] = field(default=None, compare=False)  # the file it was loaded from, if any

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DatasetError(f"unknown dataset mode {self.mode!r}; expected one of {', '.join(MODES)}")
        missing = [k for k in REQUIRED_ARRAYS[self.mode] + TEST_ARRAYS if k not in self.arrays]
        if missing:
            raise DatasetError(f"a {self.mode} dataset needs arrays {', '.join(missing)}")
        _check_arrays(self.arrays, self.normalization.dim)

    def __getattr__(self, name: str) -> np.ndarray:
        arrays = self.__dict__.get("arrays", {})
        if name in arrays:
            return arrays[name]
        raise AttributeError(name)

    def digest(self) -> str:
        """SHA-256 of the arrays: the same data, the same digest (how a resumed run checks its dataset)."""
        digest = hashlib.sha256()
        for name in sorted(self.arrays):
            digest.update(name.encode())
            digest.update(np.ascontiguousarray(self.arrays[name]).tobytes())
        return digest.hexdigest()

    @property
    def dim(self) -> int:
        return self.arrays["points"].shape[1]

    @property
    def kind(self) -> str:
        return self.metadata.get("kind", "")

    def world(self, name: str) -> np.ndarray:
        """Array ``name`` in world units (points mapped back, distances scaled)."""
        values = self.arrays[name]
        if name.endswith("points"):
            return self.normalization.to_world(values)
        if name.endswith("distances"):
            return self.normalization.distance_to_world(values)
        return values

    def save(self, path: PathLike) -> Path:
        """Write one ``.npz`` atomically; returns the path."""
        path = Path(path)
        if path.suffix.lower() != ".npz":
            raise InputFileError(f"dataset files end in .npz, got {path.name}")
        header = dict(self.metadata, format=FORMAT, format_version=FORMAT_VERSION, mode=self.mode,
                      normalization=self.normalization.to_dict())
        header.setdefault("lipsdf_version", __version__)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, metadata=np.array(json.dumps(header)), **self.arrays)
        return path

    @classmethod
    def load(cls, path: PathLike) -> "PointDataset":
        """Read a dataset written by :meth:`save`, checking its format version."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"no such dataset file: {path}")
        try:
            arrays = load_npz(path)
        except InputFileError as exc:
            raise DatasetError(f"{exc}; not a lipsdf dataset") from None
        if "metadata" not in arrays:
            raise DatasetError(f"{path} is not a lipsdf dataset (no metadata); make one with `lipsdf sample`")
        try:
            header = json.loads(str(arrays.pop("metadata")))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path} has unreadable metadata ({exc})") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise DatasetError(f"{path} is not a lipsdf dataset")
        version = header.get("format_version")
        if version != FORMAT_VERSION:
            raise DatasetError(
                f"{path} has dataset format version {version}, this lipsdf reads version {FORMAT_VERSION}; "
                "re-create it with `lipsdf sample`"
            )
        try:
            normalization = Normalization.from_dict(header["normalization"])
        except (KeyError, TypeError, ValueError, LipsdfError) as exc:
            raise DatasetError(f"{path} has no valid normalisation in its metadata ({exc})") from None
        try:
            return cls(header.get("mode"), arrays, normalization, header, path=path)
        except DatasetError as exc:
            raise DatasetError(f"{path}: {exc}") from None


def _check_arrays(arrays: dict[str, np.ndarray], dim: int) -> None:
    """Arrays that agree with each other: real numbers, finite, (n, dim) points, one value per point."""
    for name, array in arrays.items():
        if array.dtype.kind not in "fiu" or array.ndim not in (1, 2):
            raise DatasetError(f"array {name!r} must hold real numbers in 1 or 2 dimensions, got "
                               f"{array.dtype} with shape {array.shape}")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DatasetError(f"array {name!r} holds NaN or infinite values")
    for points, per_point in (("points", ("labels", "distances")), ("test_points", ("test_distances", "test_region")),
                              ("surface_points", ("surface_normals",))):
        if points not in arrays:
            continue
        if arrays[points].ndim != 2 or arrays[points].shape[1] != dim:
            raise DatasetError(f"array {points!r} must be (n, {dim}) to match the normalisation, "
                               f"got {arrays[points].shape}")
        for name in per_point:
            if name in arrays and len(arrays[name]) != len(arrays[points]):
                raise DatasetError(f"array {name!r} has {len(arrays[name])} entries for "
                                   f"{len(arrays[points])} {points.replace('_', ' ')}")
    if "surface_normals" in arrays and arrays["surface_normals"].shape != arrays["surface_points"].shape:
        raise DatasetError("surface normals and surface points differ in shape")
    if "labels" in arrays and not np.isin(arrays["labels"], (-1, 1)).all():
        raise DatasetError("labels must be -1 or +1")

