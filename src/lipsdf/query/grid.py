"""Batched evaluation of a field on grids and point sets.

Queries work in the field's unit box, where the network lives and float32 is
accurate relative to the shape's size, and convert to world units at the
edges: grids are defined in world coordinates, but vertex coordinates are
computed from integer indices straight into unit coordinates, so that the same
vertex always reaches the network as the same float32 numbers (dense and
pruned contouring rely on this to agree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch

from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.progress import progress_bar

GRID_ROW_BLOCK = 256  # rows: grid batches hold whole blocks of them (see grid_unit_values)

Device = Optional[Union[str, torch.device]]


def use_device(field: NeuralField, device: Device) -> NeuralField:
    """Move ``field`` to ``device`` when one is given (``None`` keeps where it is); returns it."""
    return field if device is None else field.to(device)


@dataclass(frozen=True)
class Grid:
    """A regular grid of vertices with the same spacing on every axis, in world coordinates.

    Parameters
    ----------
    lower : (d,) world position of vertex ``(0, ..., 0)``.
    spacing : world distance between neighbouring vertices.
    shape : vertices per axis.

    Examples
    --------
    >>> grid = Grid.covering(np.array([0.0, 0.0]), np.array([2.0, 1.0]), resolution=5)
    >>> grid.shape, grid.spacing
    ((5, 3), 0.5)
    >>> grid.vertices(np.array([1, 14])).tolist()
    [[0.0, 0.5], [2.0, 1.0]]
    """

    lower: np.ndarray
    spacing: float
    shape: tuple[int, ...]

    @classmethod
    def covering(cls, lower: np.ndarray, upper: np.ndarray, resolution: int) -> "Grid":
        """``resolution`` vertices along the longest side of ``[lower, upper]``, centred on the box.

        Shorter sides get as many vertices as cover them at the same spacing
        (at least 2), so cells are cubes and the grid covers the whole box.
        """
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        if resolution < 2:
            raise LipsdfError(f"a grid needs a resolution of at least 2, got {resolution}")
        sides = upper - lower
        if not (np.isfinite(sides).all() and (sides > 0).all()):
            raise LipsdfError(f"empty or invalid bounds: lower {lower.tolist()}, upper {upper.tolist()}")
        spacing = float(sides.max()) / (resolution - 1)
        counts = np.maximum(np.ceil(sides / spacing - 1e-9).astype(int) + 1, 2)
        counts[np.argmax(sides)] = resolution
        start = 0.5 * (lower + upper) - 0.5 * (counts - 1) * spacing
        return cls(start, spacing, tuple(int(c) for c in counts))

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def upper(self) -> np.ndarray:
        return self.lower + self.spacing * (np.asarray(self.shape) - 1)

    def vertices(self, index: np.ndarray) -> np.ndarray:
        """World coordinates ``(m, d)`` of vertices given by flat (C-order) indices."""
        multi = np.stack(np.unravel_index(np.asarray(index), self.shape), axis=-1)
        return self.lower + self.spacing * multi

    def unit_vertices(self, field: NeuralField, index: torch.Tensor) -> torch.Tensor:
        """Unit-box coordinates of vertices (flat indices, a tensor), as float32 on the field's device.

        Made on the device (in float64, then rounded), so a GPU evaluates a grid without host traffic."""
        index = torch.as_tensor(index, device=field.device)
        multi = []
        for size in reversed(self.shape):
            multi.append(torch.remainder(index, size))
            index = torch.div(index, size, rounding_mode="floor")
        multi_index = torch.stack(multi[::-1], dim=-1).double()
        norm = field.normalization
        origin = torch.as_tensor((self.lower - norm.center) / norm.scale, device=field.device)
        return (origin + (self.spacing / norm.scale) * multi_index).float()


def field_grid(field: NeuralField, resolution: int, bounds: Optional[Sequence[float]] = None) -> Grid:
    """The grid a query runs on: ``bounds`` (``lower..., upper...`` in world units) or the field's box.

    The field's box is its unit box ``[-1, 1]^d`` in world coordinates: the
    shape plus the padding it was trained with.
    """
    if bounds is None:
        lower, upper = field.normalization.world_bounds()
    else:
        values = np.asarray(bounds, dtype=np.float64).reshape(-1)
        if len(values) != 2 * field.dim:
            raise LipsdfError(f"bounds for a {field.dim}D field are {2 * field.dim} numbers "
                              f"(lower corner, then upper corner), got {len(values)}")
        lower, upper = values[: field.dim], values[field.dim:]
        if not (upper > lower).all():
            raise LipsdfError(f"bounds: the upper corner {upper.tolist()} must exceed the lower corner "
                              f"{lower.tolist()} on every axis")
    return Grid.covering(lower, upper, resolution)


def grid_unit_values(field: NeuralField, grid: Grid, index: Optional[torch.Tensor] = None,
                     batch_size: int = DEFAULT_BATCH_SIZE, quiet: bool = True) -> torch.Tensor:
    """Network values (unit-box units, float32, on the field's device) at the grid vertices ``index`` (flat
    indices, a tensor on that device; default: all).

    Vertex coordinates are made one batch at a time on the device, so a 512^3 grid never holds all its
    coordinates in memory at once, and a GPU evaluates it without host traffic.
    """
    # Not batches of 2^20 on a GPU, although they evaluate 1.12x faster (H100, SLL 20 x 64): with them
    # a vertex's value depended on its row in the batch (the pruned 512^3 mesh then differed from the
    # dense one in its last bits); at 2^18 the two meshes are bit-identical.
    # A vertex's value must not depend on the batch it was evaluated in, or a pruned mesh would differ from
    # the dense one in its last bits. A matrix product computes the rows past its last full block of rows
    # with other kernels (a batch of 777 rows did; tests/query/test_contour.py), so every batch holds whole
    # blocks of GRID_ROW_BLOCK rows; on a GPU the kernel also depends on the batch's size, so there every
    # batch is padded to the full size.
    batch_size = -(-field.batch_size(batch_size) // GRID_ROW_BLOCK) * GRID_ROW_BLOCK
    count = grid.size if index is None else len(index)
    out = torch.empty(count, device=field.device)
    with progress_bar(count, "field on grid", quiet=quiet) as bar:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            chunk = (torch.arange(start, stop, device=field.device) if index is None else index[start:stop])
            rows = batch_size if field.device.type == "cuda" else -(-len(chunk) // GRID_ROW_BLOCK) * GRID_ROW_BLOCK
            if len(chunk) < rows:
                chunk = torch.cat([chunk, chunk[-1:].expand(rows - len(chunk))])
            out[start:stop] = field.unit_values(grid.unit_vertices(field, chunk), batch_size)[:stop - start]
            bar.update(stop - start)
    return out


def to_world(field: NeuralField, unit_values: torch.Tensor) -> torch.Tensor:
    """Unit-box values as world values, in float32 (the network's precision), on the same device.

    Every grid query converts through here, so the same vertex gets the same world value whichever way it
    was evaluated (dense and pruned contours rely on this to agree)."""
    return unit_values * np.float32(field.normalization.scale)

