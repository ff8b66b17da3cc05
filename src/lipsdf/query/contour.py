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
import torch

from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.geometry.shapes import Polyline, TriangleMesh
from lipsdf.query.grid import Device, Grid, field_grid, grid_unit_values, to_world, use_device

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

    ``values`` (float32, the network's precision) holds exact field values
    (world units) where ``evaluated`` is True; elsewhere a stand-in on the
    same side of every iso-level (pruned)."""

    grid: Grid
    values: np.ndarray
    evaluated: np.ndarray
    evaluations: int
    pruned: bool
    value_range: tuple[float, float]  # of ``values``


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


def _blocks_keep(centre_values: torch.Tensor, radii: torch.Tensor, levels: np.ndarray) -> torch.Tensor:
    """True for blocks that may contain one of the levels: some level within ``radius`` of the centre value."""
    sorted_levels = torch.as_tensor(np.sort(levels), dtype=centre_values.dtype, device=centre_values.device)
    # The level nearest to each centre value, found by bisection (many levels stay cheap).
    position = torch.clamp(torch.searchsorted(sorted_levels, centre_values), 1, len(sorted_levels)) - 1
    nearest = torch.minimum((centre_values - sorted_levels[position]).abs(),
                            (centre_values - sorted_levels[torch.clamp(position + 1, max=len(sorted_levels) - 1)]).abs())
    return nearest <= radii


def sample_grid(field: NeuralField, grid: Grid, levels: Union[float, Sequence[float]], prune: bool = True,
                batch_size: int = DEFAULT_BATCH_SIZE, quiet: bool = True, crop: bool = False) -> GridSampling:
    """Field values on ``grid``, exact wherever a cell may cross one of ``levels``.

    ``prune=False`` evaluates every vertex. Pruning needs a 1-Lipschitz field
    (sll, ortho); for others it is a :class:`LipsdfError`. ``crop``: return
    only the smallest block of the grid holding every cell that crosses a
    level (``grid`` is then that block); the same block, pruned or dense.
    """
    levels = _as_levels(levels)
    return sample_grid_where(field, grid, lambda values, radii: _blocks_keep(values, radii, levels), prune,
                             batch_size, quiet, crop_levels=levels if crop else None)


def sample_grid_where(field: NeuralField, grid: Grid, keep: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                      prune: bool = True, batch_size: int = DEFAULT_BATCH_SIZE, quiet: bool = True,
                      crop_levels: Optional[np.ndarray] = None) -> GridSampling:
    """Field values on ``grid``, exact in every block that ``keep(centre_values, radii)`` keeps.

    ``keep`` gets the values at block centres and the largest change the
    field can make within each block (half-diagonal plus slack), both float64
    tensors in world units on the field's device, and says which blocks may
    hold vertices the caller needs exactly. Vertices of dropped blocks hold
    their block's centre value.

    The whole hierarchy lives on the field's device: one network call and one
    host sync per level, whatever the number of blocks. ``crop_levels``: see
    :func:`sample_grid`'s ``crop``.
    """
    if not prune:
        return _dense(field, grid, 0, batch_size, quiet, crop_levels)
    if not field.is_lipschitz:
        raise LipsdfError(f"a {field.arch} field is not 1-Lipschitz, so cells cannot be pruned; evaluate densely")

    device, dim = field.device, grid.dim
    norm = field.normalization
    n_cells = torch.as_tensor(np.asarray(grid.shape) - 1, device=device)
    total_cells = math.prod(n - 1 for n in grid.shape)
    block = 1 << max(0, math.ceil(math.log2(max(max(grid.shape) - 1, 1) / _COARSEST_BLOCKS)))
    starts = torch.cartesian_prod(*[torch.arange(0, n - 1, block, device=device) for n in grid.shape])
    starts = starts.reshape(-1, dim)
    corners = torch.as_tensor(list(itertools.product((0, 1), repeat=dim)), device=device)
    origin = torch.as_tensor((grid.lower - norm.center) / norm.scale, device=device)  # float64
    spacing = grid.spacing / norm.scale
    stand_in: Optional[torch.Tensor] = None  # centre values of the pruned blocks at the current block size
    evaluations = 0
    while True:
        extents = torch.minimum(starts + block, n_cells) - starts
        centres = (origin + spacing * (starts + 0.5 * extents)).float()
        centre_values = field.unit_values(centres, batch_size).double() * norm.scale
        evaluations += len(centres)
        radii = 0.5 * grid.spacing * torch.linalg.vector_norm(extents.double(), dim=1)
        kept = keep(centre_values, radii * (1 + _LIPSCHITZ_SLACK) + 1e-6 * norm.scale)
        stand_in = _refined(stand_in, n_cells, block)
        dropped = starts[~kept] // block
        stand_in[tuple(dropped.T)] = centre_values[~kept].float()
        starts = starts[kept]
        if block <= 4 and len(starts) * block ** dim > _GIVE_UP * total_cells:  # flat: pruning costs more
            return _dense(field, grid, evaluations, batch_size, quiet, crop_levels)
        if block <= _FINEST_BLOCK:
            break
        block //= 2
        starts = _children(starts, block, n_cells, corners)
    while block > 1:  # the surviving blocks' cells
        block //= 2
        stand_in = _refined(stand_in, n_cells, block)
        starts = _children(starts, block, n_cells, corners)

    # Each vertex takes the stand-in of the cell it is the lower corner of (the last cell on the upper faces);
    # every corner of a surviving cell is then evaluated exactly.
    owners = [torch.clamp(torch.arange(n, device=device), max=n - 2) for n in grid.shape]
    values = stand_in[torch.meshgrid(*owners, indexing="ij")].reshape(-1)
    evaluated = torch.zeros(grid.size, dtype=torch.bool, device=device)
    for corner in corners:  # a handful of vectorised passes, one per cell corner
        evaluated[_flat_index(starts + corner, grid.shape)] = True
    index = torch.nonzero(evaluated).flatten()
    values[index] = to_world(field, grid_unit_values(field, grid, index, batch_size, quiet))
    assert not torch.isnan(values).any(), "every vertex is owned by a pruned or a surviving cell"
    return _on_host(grid, values.reshape(grid.shape), evaluated.reshape(grid.shape), evaluations + len(index),
                    True, crop_levels, cells=starts)


def _dense(field: NeuralField, grid: Grid, evaluations: int, batch_size: int, quiet: bool,
           crop_levels: Optional[np.ndarray]) -> GridSampling:
    """Every vertex evaluated (after ``evaluations`` spent on a pruning that gave up)."""
    values = to_world(field, grid_unit_values(field, grid, batch_size=batch_size, quiet=quiet))
    evaluated = torch.ones(grid.shape, dtype=torch.bool, device=field.device)
    return _on_host(grid, values.reshape(grid.shape), evaluated, evaluations + grid.size, False, crop_levels)


def _on_host(grid: Grid, values: torch.Tensor, evaluated: torch.Tensor, evaluations: int, pruned: bool,
             crop_levels: Optional[np.ndarray], cells: Optional[torch.Tensor] = None) -> GridSampling:
    """The sampling as NumPy arrays, cropped on the device first when asked (less to copy and to march).
    ``cells``: the lower corners of the only cells that can cross a level (the survivors of pruning)."""
    low, high = torch.aminmax(values)
    box = None if crop_levels is None else _crossing_box(values, crop_levels, cells)
    if box is not None:
        values, evaluated = values[box], evaluated[box]
        start = np.array([axis.start for axis in box])
        grid = Grid(grid.lower + grid.spacing * start, grid.spacing, tuple(values.shape))
    return GridSampling(grid, values.contiguous().cpu().numpy(), evaluated.contiguous().cpu().numpy(), evaluations,
                        pruned, (float(low), float(high)))


def _crossing_box(values: torch.Tensor, levels: np.ndarray,
                  cells: Optional[torch.Tensor] = None) -> Optional[tuple[slice, ...]]:
    """The smallest block of vertices holding every cell whose corner values reach a level (min <= level
    <= max), among ``cells`` (lower corners; default: all); None when no cell does.

    A pruned cell's corners, stand-ins or not, all sit strictly on one side of every level, as the true
    values do, so the survivors of pruning hold every such cell, and pruned and dense grids give the same
    block."""
    dim, shape = values.dim(), values.shape
    corners = list(itertools.product((0, 1), repeat=dim))
    if cells is None:  # every cell: the corner values as shifted views of the grid
        stack = [values[tuple(slice(c, c + n - 1) for c, n in zip(corner, shape))] for corner in corners]
    else:
        flat = values.reshape(-1)
        stack = [flat[_flat_index(cells + torch.as_tensor(corner, device=values.device), shape)]
                 for corner in corners]
    low, high = stack[0].clone(), stack[0].clone()
    for corner_values in stack[1:]:
        torch.minimum(low, corner_values, out=low)
        torch.maximum(high, corner_values, out=high)
    crossing = torch.zeros_like(low, dtype=torch.bool)
    for level in levels:
        crossing |= (low <= level) & (high >= level)
    if cells is None:
        crossing_cells = torch.nonzero(crossing)
    else:
        crossing_cells = cells[crossing]
    if len(crossing_cells) == 0:
        return None
    first, last = crossing_cells.min(dim=0).values.tolist(), crossing_cells.max(dim=0).values.tolist()
    return tuple(slice(a, b + 2) for a, b in zip(first, last))


def _flat_index(vertices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """C-order flat indices of ``(m, d)`` integer vertex coordinates in a grid of ``shape``."""
    strides = torch.as_tensor([math.prod(shape[axis + 1:]) for axis in range(len(shape))], device=vertices.device)
    return (vertices * strides).sum(dim=1)


def _refined(stand_in: Optional[torch.Tensor], n_cells: torch.Tensor, block: int) -> torch.Tensor:
    """The stand-in array at block size ``block``: each block of the previous level (twice the size) passes
    its value to its children; NaN where no ancestor was pruned. A new NaN array at the first level."""
    shape = tuple(int(n) for n in -(-n_cells // block))
    if stand_in is None:
        return torch.full(shape, float("nan"), device=n_cells.device)
    for axis, size in enumerate(shape):
        stand_in = stand_in.repeat_interleave(2, dim=axis).narrow(axis, 0, size)
    return stand_in


def _children(starts: torch.Tensor, block: int, n_cells: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """The sub-blocks of side ``block`` of blocks of side ``2 * block``, clipped to the grid."""
    children = (starts[:, None, :] + block * corners[None]).reshape(-1, starts.shape[1])
    return children[(children < n_cells).all(dim=1)]


def marching(values: np.ndarray, grid: Grid, iso: float, evaluated: Optional[np.ndarray] = None,
             value_range: Optional[tuple[float, float]] = None) -> Optional[Union[TriangleMesh, Polyline]]:
    """The level set ``values = iso`` on ``grid`` in world units: marching cubes (3D) or squares (2D).

    ``evaluated`` (3D): the vertices holding exact values (the rest hold pruned stand-ins); marching cubes
    then visits only the cells at those vertices, which holds every cell a dense grid would triangulate
    (stand-ins make no crossing), so the mesh is the same, for a fraction of the work. ``value_range``:
    the values' minimum and maximum when already known (saves two passes over a large grid).

    Triangles face the side where the field grows (outwards for a signed
    distance); 2D loops are oriented counter-clockwise around where the field
    is below ``iso``. None when the level set is empty.
    """
    low, high = value_range if value_range is not None else (values.min(), values.max())
    if not (low < iso < high):
        return None
    if grid.dim == 3:
        from skimage.measure import marching_cubes

        mask = evaluated
        vertices, faces, _, _ = marching_cubes(values, level=iso, gradient_direction="ascent", allow_degenerate=False,
                                               mask=mask)
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
                           quiet=quiet, crop=True)
    mask = sampling.evaluated if sampling.pruned else None
    contours = [Contour(float(level), marching(sampling.values, sampling.grid, float(level), mask,
                                               sampling.value_range))
                for level in levels]
    return ContourResult(contours, grid, sampling.evaluations, sampling.pruned, time.perf_counter() - started,
                         sampling.value_range)
