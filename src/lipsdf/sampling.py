"""Training points around a shape: modes ``signed``, ``unsigned``, ``dist`` and ``sal``.

Points come from a mix of uniform samples in the unit box ``[-1, 1]^d`` and
near-surface samples (surface points plus Gaussian noise at a few scales).
All work happens in unit coordinates; the dataset carries the normalisation
back to world units.

* ``signed``: inside (-1) / outside (+1) labels from the winding number,
  balanced counts, optional ambiguity band (drop ``lo < w < hi``) for open or
  noisy inputs. Needs inside/outside: meshes, point clouds, closed 2D
  polylines. With the exact signed distance of each point, except for point
  clouds (which have none).
* ``unsigned``: surface samples (-1) against points elsewhere (+1), with their
  exact unsigned distances (not for point clouds).
* ``dist``: points with their exact distance (signed where defined). Not for
  point clouds, which have no exact ground truth.
* ``sal``: points near the surface at two Gaussian scales with their unsigned
  distance, plus surface points with normals (SAL / SALD baselines).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Optional

import numpy as np

from lipsdf.version import __version__
from lipsdf.dataset import MODES, PointDataset
from lipsdf.errors import LipsdfError, ModeError
from lipsdf.geometry.distance import GroundTruth
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.normals import with_normals
from lipsdf.geometry.shapes import PointCloud, Shape
from lipsdf.geometry.surface import near_surface_samples, surface_samples, uniform_samples
from lipsdf.progress import progress_bar

INSIDE, OUTSIDE = -1, 1
SURFACE, OTHER = -1, 1
_MAX_ROUNDS = 8


@dataclass(frozen=True)
class SamplingConfig:
    """How to draw training points. Lengths are in unit-box units (the box is ``[-1, 1]^d``).

    Attributes
    ----------
    n : training points.
    n_test : test points (half uniform, a quarter near the surface, a quarter on it).
    n_surface : surface samples stored with the dataset (default ``n // 4``).
    uniform_fraction : share of training points drawn uniformly in the box; the rest are near the surface.
    near_sigmas : standard deviations of the near-surface Gaussian noise, one group per value.
    sal_sigmas : the two scales of the ``sal`` mode.
    padding : room around the shape: its largest half-side maps to ``1 / (1 + padding)``.
    band : ``(lo, hi)``: in ``signed`` mode, drop points whose winding number lies in between.
    seed : random seed; same seed, same dataset.
    """

    n: int = 100_000
    n_test: int = 20_000
    n_surface: Optional[int] = None
    uniform_fraction: float = 0.5
    near_sigmas: tuple[float, ...] = (0.01, 0.05)
    sal_sigmas: tuple[float, float] = (0.02, 0.3)
    padding: float = 0.2
    band: Optional[tuple[float, float]] = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n < 2:
            raise LipsdfError(f"need at least 2 training points, got n={self.n}")
        if self.n_test < 4:
            raise LipsdfError(f"need at least 4 test points, got n_test={self.n_test}")
        if self.n_surface is not None and self.n_surface < 1:
            raise LipsdfError(f"n_surface must be positive, got {self.n_surface}")
        if not 0.0 <= self.uniform_fraction <= 1.0:
            raise LipsdfError(f"uniform_fraction must lie in [0, 1], got {self.uniform_fraction}",
                              option="uniform_fraction")
        if not self.near_sigmas or min(self.near_sigmas) <= 0 or min(self.sal_sigmas) <= 0:
            raise LipsdfError("noise scales (sigmas) must be positive")
        if self.padding < 0:
            raise LipsdfError(f"padding must be >= 0, got {self.padding}", option="padding")
        if self.band is not None and not (0.0 < self.band[0] < self.band[1] < 1.0):
            raise LipsdfError(f"band must be two winding numbers 0 < lo < hi < 1, got {self.band}", option="band")

    @property
    def surface_count(self) -> int:
        return self.n_surface if self.n_surface is not None else max(self.n // 4, 1)


def check_mode(shape: Shape, mode: str) -> None:
    """Raise :class:`ModeError` when ``mode`` makes no sense for ``shape``."""
    if mode not in MODES:
        raise ModeError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}", option="mode")
    if mode == "signed" and not shape.has_inside:
        what = "a 3D polyline" if shape.dim == 3 else "an open 2D polyline"
        raise ModeError(f"the signed mode needs inside/outside, which {what} does not have; use the unsigned mode",
                        option="mode")
    if mode == "dist" and isinstance(shape, PointCloud):
        raise ModeError("the dist mode needs exact distances, which a point cloud does not have; "
                        "use the signed, unsigned or sal mode", option="mode")


def mixed_samples(shape: Shape, n: int, config: SamplingConfig, rng: np.random.Generator) -> np.ndarray:
    """Uniform and near-surface samples in the proportion of ``config.uniform_fraction``."""
    n_uniform = int(round(n * config.uniform_fraction))
    points = np.vstack([uniform_samples(n_uniform, shape.dim, rng),
                        near_surface_samples(shape, n - n_uniform, config.near_sigmas, rng)])
    return points[rng.permutation(n)]


# --------------------------------------------------------------------------- modes


def _balanced_signed(shape: Shape, truth: GroundTruth, config: SamplingConfig, rng: np.random.Generator,
                     update) -> dict[str, np.ndarray]:
    """Equal numbers of inside and outside points, from rounds of candidates labelled by winding number.

    The first round follows the configured uniform / near mix; later rounds,
    needed when one side is small (thin shapes), draw near the surface, where
    both sides are found.
    """
    half = config.n // 2
    pools: dict[int, list[np.ndarray]] = {INSIDE: [], OUTSIDE: []}
    counts = {INSIDE: 0, OUTSIDE: 0}
    for round_ in range(_MAX_ROUNDS):
        if round_ == 0:
            candidates = mixed_samples(shape, config.n, config, rng)
        else:
            candidates = near_surface_samples(shape, config.n, config.near_sigmas, rng)
        w = truth.winding_number(candidates, update)
        keep = np.ones(len(w), dtype=bool)
        if config.band is not None:
            keep = (w <= config.band[0]) | (w >= config.band[1])
        inside = w > 0.5
        for label, mask in ((INSIDE, keep & inside), (OUTSIDE, keep & ~inside)):
            if counts[label] < half:
                pools[label].append(candidates[mask][: half - counts[label]])
                counts[label] += len(pools[label][-1])
        if min(counts.values()) >= half:
            break
    per_side = min(counts.values())
    if per_side == 0:
        side = "inside" if counts[INSIDE] == 0 else "outside"
        raise ModeError(f"found no point {side} the shape: its winding number never crosses 1/2 "
                        "(is it a flat or open surface?); use the unsigned mode", option="mode")
    points = np.vstack([np.vstack(pools[INSIDE])[:per_side], np.vstack(pools[OUTSIDE])[:per_side]])
    labels = np.repeat(np.array([INSIDE, OUTSIDE], dtype=np.int8), per_side)
    order = rng.permutation(len(points))
    return {"points": points[order], "labels": labels[order]}


def _signed_with_distances(shape: Shape, truth: GroundTruth, config: SamplingConfig, rng: np.random.Generator,
                           update, exact: bool) -> dict[str, np.ndarray]:
    """Balanced signed points with their distances: the label's sign (the winding number's) on the exact
    unsigned distance, or for a point cloud the distance estimated from its points and normals (whose sign
    may differ from the label's within the points' noise)."""
    arrays = _balanced_signed(shape, truth, config, rng, update)
    if exact:
        arrays["distances"] = arrays["labels"] * truth.unsigned_distance(arrays["points"], update)
    else:
        arrays["distances"] = truth.estimated_signed_distance(arrays["points"], arrays["labels"] == OUTSIDE)
    return arrays


def _test_set(shape: Shape, truth: GroundTruth, config: SamplingConfig, rng: np.random.Generator,
              update) -> dict[str, np.ndarray]:
    n_uniform = config.n_test // 2
    n_surface = config.n_test // 4
    n_near = config.n_test - n_uniform - n_surface
    off_surface = np.vstack([uniform_samples(n_uniform, shape.dim, rng),
                             near_surface_samples(shape, n_near, config.near_sigmas[:1], rng)])
    on_surface, _ = surface_samples(shape, n_surface, rng)
    distances = np.concatenate([truth.distance(off_surface, update), np.zeros(n_surface)])
    region = np.repeat(np.arange(3, dtype=np.int8), [n_uniform, n_near, n_surface])
    return {"test_points": np.vstack([off_surface, on_surface]), "test_distances": distances, "test_region": region}


def sample(
    shape: Shape,
    mode: str = "signed",
    config: Optional[SamplingConfig] = None,
    *,
    source: Optional[dict] = None,
    quiet: bool = True,
    device: Optional[str] = None,
    **overrides,
) -> PointDataset:
    """Sample a training dataset for ``shape`` in ``mode``.

    Parameters
    ----------
    shape : the shape, in world units.
    mode : ``signed``, ``unsigned``, ``dist`` or ``sal``.
    config : a :class:`SamplingConfig`; keyword ``overrides`` replace its fields (``n=...``, ``seed=...``).
    source : provenance stored in the metadata (e.g. ``{"path": ..., "sha256": ...}``).
    quiet : hide the progress bar.
    device : a torch device where a polyline's or a mesh's exact distances and winding numbers are computed
        (:class:`~lipsdf.geometry.distance.GroundTruth`); None: libigl, on the CPU.

    Examples
    --------
    >>> from lipsdf.geometry.primitives import torus
    >>> data = sample(torus(), "dist", n=2000, n_test=400, seed=1)
    >>> data.points.shape, data.distances.shape
    ((2000, 3), (2000,))
    """
    config = SamplingConfig(**{**asdict(config or SamplingConfig()), **overrides})
    check_mode(shape, mode)
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    normalization = Normalization.fit(*shape.bounds(), padding=config.padding)
    unit_shape = shape.transformed(normalization.to_unit)
    estimated = isinstance(unit_shape, PointCloud) and unit_shape.normals is None
    if estimated:
        unit_shape = with_normals(unit_shape)
    truth = GroundTruth(unit_shape, device=device)
    unit_shape = truth.oriented_shape  # a mesh's surface samples and their normals face outward too

    exact = not isinstance(shape, PointCloud)  # exact distances to store with the labels
    n_queries = config.n_test * 3 // 4 + (config.n if mode in ("signed", "dist", "sal") else 0)
    n_queries += {"signed": config.n, "unsigned": config.n - config.n // 2}.get(mode, 0) if exact else 0
    with progress_bar(n_queries, f"sampling {mode}", quiet=quiet) as bar:
        update = bar.update
        if mode == "signed":
            arrays = _signed_with_distances(unit_shape, truth, config, rng, update, exact)
        elif mode == "unsigned":
            n_surface = config.n // 2
            on, _ = surface_samples(unit_shape, n_surface, rng)
            off = mixed_samples(unit_shape, config.n - n_surface, config, rng)
            labels = np.repeat(np.array([SURFACE, OTHER], dtype=np.int8), [n_surface, len(off)])
            order = rng.permutation(config.n)
            arrays = {"points": np.vstack([on, off])[order], "labels": labels[order]}
            if exact:
                distances = np.concatenate([np.zeros(n_surface), truth.unsigned_distance(off, update)])
                arrays["distances"] = distances[order]
        elif mode == "dist":
            points = mixed_samples(unit_shape, config.n, config, rng)
            arrays = {"points": points, "distances": truth.distance(points, update)}
        else:  # sal
            points = near_surface_samples(unit_shape, config.n, config.sal_sigmas, rng)
            arrays = {"points": points, "distances": truth.unsigned_distance(points, update)}
        surface, normals = surface_samples(unit_shape, config.surface_count, rng)
        arrays["surface_points"] = surface
        if normals is not None:
            arrays["surface_normals"] = normals
        arrays.update(_test_set(unit_shape, truth, config, rng, update))

    arrays = {k: v.astype(np.float32) if v.dtype == np.float64 else v for k, v in arrays.items()}
    metadata = _metadata(shape, mode, config, arrays, source, started, truth)
    diagnosis = truth.diagnosis()
    if diagnosis is not None:
        if estimated:  # the cloud had no normals of its own: those checked were estimated here
            kept = [part for part in diagnosis["normals"].split("; ") if part.startswith("winding numbers from")]
            done = "; ".join(["estimated (none given)", *kept])
            diagnosis = {"normals": done, "lines": [f"point cloud normals: {done}"]}
        metadata["diagnosis"] = diagnosis
    return PointDataset(mode, arrays, normalization, metadata)


def _counts(mode: str, arrays: dict[str, np.ndarray]) -> dict[str, int]:
    counts = {"points": len(arrays["points"]), "surface": len(arrays["surface_points"]),
              "test": len(arrays["test_points"])}
    if mode == "signed":
        counts.update(inside=int((arrays["labels"] == INSIDE).sum()), outside=int((arrays["labels"] == OUTSIDE).sum()))
    elif mode == "unsigned":
        counts.update(on_surface=int((arrays["labels"] == SURFACE).sum()),
                      elsewhere=int((arrays["labels"] == OTHER).sum()))
    return counts


def _metadata(shape: Shape, mode: str, config: SamplingConfig, arrays: dict, source: Optional[dict],
              started: float, truth: GroundTruth) -> dict:
    """What a dataset records about where it comes from and how it was drawn."""
    return {
        "kind": shape.kind,
        "dim": shape.dim,
        "source": source or {},
        "seed": config.seed,
        "sampling": asdict(config),
        "counts": _counts(mode, arrays),
        "signed_truth": truth.has_inside,
        "geometry": "libigl (CPU)" if truth.device is None else f"lipsdf PrimitiveTree ({truth.device})",
        "coordinates": "unit",
        "lipsdf_version": __version__,
        "seconds": round(time.perf_counter() - started, 3),
    }
