"""Marching squares / marching cubes on a field, dense or Lipschitz-pruned.

Pruning: a 1-Lipschitz field changes by at most ``r`` within distance ``r``
of a point, so a block of cells whose centre value ``f(c)`` is farther than
the block's half-diagonal from every iso-level cannot contain any of them.
Blocks are checked coarse to fine (halving until single cells), and only the
corners of the cells that survive are evaluated. Every other vertex gets the
centre value of the pruned block that owns it: that value lies between the
same two iso-levels as the vertex's true value, so marching cubes sees no
crossing there, and the cells with a crossing see exactly the values a dense
grid would. The output therefore equals dense marching cubes at the same
resolution, for far fewer network evaluations (about the grid's surface
instead of its volume).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import numpy as np

from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.geometry.shapes import Polyline, TriangleMesh
from lipsdf.query.grid import Device, Grid, field_grid, grid_values, use_device

DEFAULT_RESOLUTION = {2: 512, 3: 128}
# Slack on the Lipschitz bound: float32 network values and a frozen Lipschitz
# parametrisation are exact to about 1e-6 relative, not to the last bit.
_LIPSCHITZ_SLACK = 1e-3
_COARSEST_BLOCKS = 8  # blocks per axis at the first level
# Checking single cells costs about as many evaluations as their corners; the
# corners of surviving 2x2(x2) blocks are cheaper (measured: 0.6x at 256^3).
_FINEST_BLOCK = 2
_GIVE_UP = 0.5  # evaluate densely when this share of the cells is still in play near the finest level


@dataclass
class GridSampling:
    """Values on a grid and what they cost.

    ``values`` holds exact field values (world units) where ``evaluated`` is
    True; elsewhere a stand-in on the same side of every iso-level (pruned)."""

    grid: Grid
    values: np.ndarray
    evaluated: np.ndarray
    evaluations: int
    pruned: bool


@dataclass
class Contour:
    """The level set ``f = iso``: a triangle mesh (3D) or polylines (2D) in world units; None when empty."""

    iso: float
    shape: Optional[Union[TriangleMesh, Polyline]]


@dataclass
class ContourResult:
    contours: list[Contour]
    grid: Grid
    evaluations: int
    pruned: bool
    seconds: float = 0.0
    value_range: tuple[float, float] = (0.0, 0.0)  # of the field on the grid (pruned: of the values seen)


def _as_levels(iso: Union[float, Sequence[float]]) -> np.ndarray:
    levels = np.atleast_1d(np.asarray(iso, dtype=np.float64))
    if levels.ndim != 1 or len(levels) == 0 or not np.isfinite(levels).all():
        raise LipsdfError(f"iso-levels must be finite numbers, got {iso!r}")
    return levels


def _blocks_keep(centre_values: np.ndarray, radii: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """True for blocks that may contain one of the levels: some level within ``radius`` of the centre value."""
    sorted_levels = np.sort(levels)
    # The level nearest to each centre value, found by bisection (many levels stay cheap).
    position = np.clip(np.searchsorted(sorted_levels, centre_values), 1, len(sorted_levels)) - 1
    nearest = np.minimum(np.abs(centre_values - sorted_levels[position]),
                         np.abs(centre_values - sorted_levels[np.minimum(position + 1, len(sorted_levels) - 1)]))
    return nearest <= radii


def sample_grid(field: NeuralField, grid: Grid, levels: Union[float, Sequence[float]], prune: bool = True,
                batch_size: int = DEFAULT_BATCH_SIZE, quiet: bool = True) -> GridSampling:
    """Field values on ``grid``, exact wherever a cell may cross one of ``levels``.

    ``prune=False`` evaluates every vertex. Pruning needs a 1-Lipschitz field
    (sll, ortho); for others it is a :class:`LipsdfError`.
    """
    levels = _as_levels(levels)
    return sample_grid_where(field, grid, lambda values, radii: _blocks_keep(values, radii, levels), prune,
                             batch_size, quiet)


def sample_grid_where(field: NeuralField, grid: Grid, keep: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      prune: bool = True, batch_size: int = DEFAULT_BATCH_SIZE, quiet: bool = True) -> GridSampling:
    """Field values on ``grid``, exact in every block that ``keep(centre_values, radii)`` keeps.

    ``keep`` gets the values at block centres and the largest change the
    field can make within each block (half-diagonal plus slack, world units)
    and says which blocks may hold vertices the caller needs exactly. Vertices
    of dropped blocks hold their block's centre value.
    """
    if not prune:
        values = grid_values(field, grid, batch_size=batch_size, quiet=quiet).reshape(grid.shape)
        return GridSampling(grid, values, np.ones(grid.shape, bool), grid.size, pruned=False)
    if not field.is_lipschitz:
        raise LipsdfError(f"a {field.arch} field is not 1-Lipschitz, so cells cannot be pruned; evaluate densely")

    dim = grid.dim
    n_cells = np.asarray(grid.shape) - 1
    block = 1 << max(0, math.ceil(math.log2(max(n_cells.max() / _COARSEST_BLOCKS, 1))))
    starts = np.stack(np.meshgrid(*[np.arange(0, n, block) for n in n_cells], indexing="ij"), -1).reshape(-1, dim)
    corners = np.array(list(itertools.product((0, 1), repeat=dim)))
    values = np.full(grid.shape, np.nan)
    evaluations = 0
    while True:
        extents = np.minimum(starts + block, n_cells) - starts
        centres = grid.lower + grid.spacing * (starts + 0.5 * extents)
        radii = 0.5 * grid.spacing * np.linalg.norm(extents, axis=1)
        centre_values = field(centres, batch_size=batch_size) if len(centres) else np.zeros(0)
        evaluations += len(centres)
        kept = keep(centre_values, radii * (1 + _LIPSCHITZ_SLACK) + 1e-6 * field.normalization.scale)
        _fill_pruned(values, n_cells, starts[~kept], block, centre_values[~kept])
        starts = starts[kept]
        if block <= 4 and len(starts) * block ** dim > _GIVE_UP * n_cells.prod():  # flat: pruning costs more
            values = grid_values(field, grid, batch_size=batch_size, quiet=quiet).reshape(grid.shape)
            return GridSampling(grid, values, np.ones(grid.shape, bool), evaluations + grid.size, pruned=False)
        if block <= _FINEST_BLOCK:
            break
        block //= 2
        starts = _children(starts, block, n_cells, corners)
    while block > 1:  # the surviving blocks' cells
        block //= 2
        starts = _children(starts, block, n_cells, corners)

    # Exact values at every corner of the cells that survived.
    index = np.unique(np.ravel_multi_index((starts[:, None, :] + corners[None]).reshape(-1, dim).T, grid.shape))
    values.flat[index] = grid_values(field, grid, index, batch_size=batch_size, quiet=quiet)
    evaluated = np.zeros(grid.shape, bool)
    evaluated.flat[index] = True
    assert not np.isnan(values).any(), "every vertex is owned by a pruned or a surviving cell"
    return GridSampling(grid, values, evaluated, evaluations + len(index), pruned=True)


def _children(starts: np.ndarray, block: int, n_cells: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """The sub-blocks of side ``block`` of blocks of side ``2 * block``, clipped to the grid."""
    children = (starts[:, None, :] + block * corners[None]).reshape(-1, starts.shape[1])
    return children[(children < n_cells).all(axis=1)]


def _fill_pruned(values: np.ndarray, n_cells: np.ndarray, starts: np.ndarray, block: int,
                 centre_values: np.ndarray) -> None:
    """Give each vertex owned by a pruned block (the block of the cell it is the lower corner of) its centre value."""
    if len(starts) == 0:
        return
    coarse = np.full(tuple(-(-n_cells // block)), np.nan)
    coarse[tuple((starts // block).T)] = centre_values
    owners = [np.minimum(np.arange(n + 1), n - 1) // block for n in n_cells]
    expanded = coarse[np.ix_(*owners)]
    np.copyto(values, expanded, where=~np.isnan(expanded))


def marching(values: np.ndarray, grid: Grid, iso: float) -> Optional[Union[TriangleMesh, Polyline]]:
    """The level set ``values = iso`` on ``grid`` in world units: marching cubes (3D) or squares (2D).

    Triangles face the side where the field grows (outwards for a signed
    distance); 2D loops are oriented counter-clockwise around where the field
    is below ``iso``. None when the level set is empty.
    """
    if not (values.min() < iso < values.max()):
        return None
    if grid.dim == 3:
        from skimage.measure import marching_cubes

        vertices, faces, _, _ = marching_cubes(values, level=iso, gradient_direction="ascent", allow_degenerate=False)
        faces = faces[:, ::-1]  # skimage's winding is clockwise seen along the gradient
        try:
            return TriangleMesh(grid.lower + grid.spacing * vertices.astype(np.float64), faces)
        except LipsdfError:
            return None
    from skimage.measure import find_contours

    lines = find_contours(values, level=iso)
    vertices, edges, offset = [], [], 0
    for line in lines:
        closed = len(line) > 2 and np.array_equal(line[0], line[-1])
        points = line[:-1] if closed else line
        if len(points) < 2:
            continue
        index = np.arange(len(points)) + offset
        edges.append(np.column_stack([index, np.roll(index, -1)]) if closed else np.column_stack([index[:-1], index[1:]]))
        vertices.append(points)
        offset += len(points)
    if not vertices:
        return None
    try:
        return Polyline(grid.lower + grid.spacing * np.concatenate(vertices), np.concatenate(edges))
    except LipsdfError:
        return None


def default_level(field: NeuralField, resolution: Optional[int] = None,
                  bounds: Optional[Sequence[float]] = None) -> float:
    """The level that stands for the shape: 0 for a signed field; one grid cell (of the grid at
    ``resolution`` over ``bounds``) for an unsigned field, which has no crossing at 0.

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config, kind="unsigned")
    >>> round(default_level(field, resolution=21), 6)
    0.1
    """
    if field.kind == "signed":
        return 0.0
    return field_grid(field, resolution or DEFAULT_RESOLUTION[field.dim], bounds).spacing


def shape_contour(field: NeuralField, resolution: Optional[int] = None,
                  batch_size: int = DEFAULT_BATCH_SIZE) -> Optional[Union[TriangleMesh, Polyline]]:
    """The level set that stands for the shape (at :func:`default_level`) over the field's box, or None
    when the field has no such level there."""
    return contour(field, default_level(field, resolution), resolution, batch_size=batch_size).contours[0].shape


def resolve_levels(field: NeuralField, levels: Sequence[float] = (), resolution: Optional[int] = None,
                   bounds: Optional[Sequence[float]] = None) -> list[float]:
    """The iso-levels to extract: ``levels``, or :func:`default_level` when none are given.

    An unsigned field is >= 0, so it has no crossing at or below 0: such levels are refused.
    """
    if len(levels) == 0:
        return [default_level(field, resolution, bounds)]
    if field.kind == "unsigned" and min(levels) <= 0:
        spacing = field_grid(field, resolution or DEFAULT_RESOLUTION[field.dim], bounds).spacing
        raise LipsdfError(f"an unsigned field is >= 0 and has no crossing at {min(levels):g}; use a small positive "
                          f"iso-level (one grid cell here is {spacing:.3g})", option="iso")
    return [float(level) for level in levels]


def contour(field: NeuralField, iso: Union[float, Sequence[float]] = 0.0, resolution: Optional[int] = None,
            bounds: Optional[Sequence[float]] = None, dense: bool = False, batch_size: int = DEFAULT_BATCH_SIZE,
            device: Device = None, quiet: bool = True) -> ContourResult:
    """Level sets of a field: marching cubes (3D) or marching squares (2D), for one or several iso-levels.

    Parameters
    ----------
    field : the field.
    iso : one level or a sequence of levels, in world units.
    resolution : vertices along the longest side of the box (default: 128 in 3D, 512 in 2D).
    bounds : ``lower..., upper...`` corners in world units (default: the field's box).
    dense : evaluate every grid vertex instead of Lipschitz-pruning (always dense for fields
        that are not 1-Lipschitz: mlp, siren).
    batch_size, device : how to evaluate the network.

    Returns
    -------
    ContourResult : one :class:`Contour` per level, the grid and the number of network evaluations.

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config)
    >>> result = contour(field, iso=[0.0, 0.1], resolution=32)
    >>> len(result.contours), result.grid.shape
    (2, (32, 32))
    """
    started = time.perf_counter()
    field = use_device(field, device)
    levels = _as_levels(iso)
    grid = field_grid(field, resolution or DEFAULT_RESOLUTION[field.dim], bounds)
    sampling = sample_grid(field, grid, levels, prune=not dense and field.is_lipschitz, batch_size=batch_size,
                           quiet=quiet)
    contours = [Contour(float(level), marching(sampling.values, grid, float(level))) for level in levels]
    return ContourResult(contours, grid, sampling.evaluations, sampling.pruned, time.perf_counter() - started,
                         (float(sampling.values.min()), float(sampling.values.max())))
