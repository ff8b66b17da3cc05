"""Exact distances and fast winding numbers of segments or triangles on any PyTorch device.

libigl answers these queries on the CPU, one thread per query batch. On a GPU the fit's training
takes seconds, so the CPU's sampling dominated a fit (7.2 s of 23 s, ``benchmarks/results/gpu.md``).
:class:`PrimitiveTree` answers the same queries with tensor operations only, so they run where the
field trains: a bounding-volume hierarchy of the primitives in Morton order (``leaf_size`` primitives a
leaf, ``branching`` children a node), walked breadth first for a whole batch of queries at once, each
query keeping a list of the nodes it still needs.

* :meth:`PrimitiveTree.unsigned_distance`: branch and bound. A node is dropped for a query when its box
  is farther than a distance already known to be reached (a vertex of a visited node); the queries left
  at the leaves take the exact distance to the leaves' primitives.
* :meth:`PrimitiveTree.winding_number`: Barnes-Hut. A node far from a query (farther than ``beta`` times
  its radius) adds its dipole (the sum of its primitives' area vectors), nearer ones open; leaves reached
  add their primitives' exact solid angles (signed angles in 2D).

Both walk with ``torch.no_grad`` and return a tensor on the tree's device.
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import torch

from lipsdf.geometry.queries import morton_order

ArrayLike = Union[np.ndarray, torch.Tensor]

LEAF_SIZE = 8  # primitives a leaf
BRANCHING = 8  # children a node
# Far-field criterion of the winding numbers: a node adds its dipole to a query farther than BETA times
# its radius from its centre. The dipole is the first term of the expansion, whose error falls as
# (radius / distance)^2 relative to the node's solid angle; 2 keeps signs 1% of the diagonal away from a
# surface identical to libigl's (tests/geometry/test_bvh.py).
BETA = 2.0
# Primitive pairs (query, primitive) evaluated at once: bounds the memory of the exact leaf stage.
PAIR_SLICE = 1 << 22
# Queries walked together: bounds the memory of the node lists.
QUERY_CHUNK = 1 << 16


def segment_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from each of ``points`` to the segment ``a b`` of its row (any dimension)."""
    ab, ap = b - a, points - a
    length2 = (ab * ab).sum(-1)
    t = torch.where(length2 > 0, (ap * ab).sum(-1) / length2.clamp_min(torch.finfo(ab.dtype).tiny), 0.0)
    return torch.linalg.vector_norm(ap - t.clamp(0, 1).unsqueeze(-1) * ab, dim=-1)


def triangle_distance(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Distance from each of ``points`` to the triangle ``a b c`` of its row (3D).

    The distance to the plane where the point projects inside the triangle, to the nearest edge elsewhere;
    a degenerate triangle (no area) is its edges.
    """
    normal = torch.linalg.cross(b - a, c - a)
    inside = torch.ones(len(points), dtype=torch.bool, device=points.device)
    for p, q in ((a, b), (b, c), (c, a)):
        inside &= (torch.linalg.cross(q - p, points - p) * normal).sum(-1) >= 0
    area2 = (normal * normal).sum(-1)
    inside &= area2 > 0
    plane = ((points - a) * normal).sum(-1).abs() / area2.clamp_min(torch.finfo(a.dtype).tiny).sqrt()
    edges = torch.minimum(torch.minimum(segment_distance(points, a, b), segment_distance(points, b, c)),
                          segment_distance(points, c, a))
    return torch.where(inside, plane, edges)


def solid_angle_winding(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Each triangle's solid angle seen from its row's point, over 4 pi (Van Oosterom and Strackee)."""
    a, b, c = a - points, b - points, c - points
    la, lb, lc = (torch.linalg.vector_norm(v, dim=-1) for v in (a, b, c))
    numerator = (a * torch.linalg.cross(b, c)).sum(-1)
    denominator = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
    return torch.atan2(numerator, denominator) / (2 * math.pi)


def angle_winding(points: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Each directed segment's signed angle seen from its row's point, over 2 pi (2D)."""
    a, b = a - points, b - points
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return torch.atan2(cross, (a * b).sum(-1)) / (2 * math.pi)


class PrimitiveTree:
    """Segments (2D or 3D) or triangles (3D) in a bounding-volume hierarchy on a torch device.

    Parameters
    ----------
    vertices : (V, d) array.
    cells : (F, 2) segments or (F, 3) triangles, indices into ``vertices``. Winding numbers need 2D
        segments or triangles, directed as a shape's outside wants (counter-clockwise loops, outward faces).
    device : where the tree lives and queries run (default: the CPU).
    dtype : float32 by default: distances within 1e-7 of the diagonal of libigl's float64 ones
        (tests/geometry/test_bvh.py); float64 costs about twice the time and memory.

    Examples
    --------
    >>> square = np.array([[0, 0], [1, 0], [1, 1], [0, 1.]])
    >>> tree = PrimitiveTree(square, np.array([[0, 1], [1, 2], [2, 3], [3, 0]]))
    >>> queries = np.array([[0.5, 0.5], [2.0, 0.5]])
    >>> tree.unsigned_distance(queries).tolist(), tree.winding_number(queries).round(decimals=6).tolist()
    ([0.5, 1.0], [1.0, 0.0])
    """

    def __init__(self, vertices: np.ndarray, cells: np.ndarray, device: Union[str, torch.device, None] = None,
                 dtype: torch.dtype = torch.float32, leaf_size: int = LEAF_SIZE, branching: int = BRANCHING) -> None:
        vertices = np.asarray(vertices, dtype=np.float64)
        cells = np.asarray(cells, dtype=np.int64)
        if len(cells) == 0:
            raise ValueError("a tree needs at least one segment or triangle")
        self.dim, self.arity = vertices.shape[1], cells.shape[1]
        self.device, self.dtype = torch.device(device or "cpu"), dtype
        self.leaf_size, self.branching = int(leaf_size), int(branching)
        # about the box's centre, so that float32 keeps its digits for shapes far from the origin
        self.origin = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
        corners = vertices[cells] - self.origin  # (F, k, d)
        corners = corners[morton_order(corners.mean(axis=1))]
        count = len(corners)
        leaves = -(-count // self.leaf_size)
        padding = leaves * self.leaf_size - count  # the last leaf repeats its last primitive, weighted 0
        weights = np.r_[np.ones(count), np.zeros(padding)]
        corners = np.concatenate([corners, np.repeat(corners[-1:], padding, axis=0)])
        self.corners, self.weights = self._tensor(corners), self._tensor(weights)
        self.levels = self._build(corners.reshape(leaves, self.leaf_size, self.arity, self.dim),
                                  weights.reshape(leaves, self.leaf_size))

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.ascontiguousarray(array), dtype=self.dtype, device=self.device)

    def _moments(self, corners: np.ndarray) -> np.ndarray:
        """Area vectors: outward normals times area (for 2D segments, times length); none for 3D segments."""
        if self.arity == 3:
            return 0.5 * np.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
        if self.dim == 2:
            tangent = corners[..., 1, :] - corners[..., 0, :]
            return np.stack([tangent[..., 1], -tangent[..., 0]], axis=-1)
        return np.zeros(corners.shape[:-2] + (self.dim,))

    def _build(self, leaf_corners: np.ndarray, weights: np.ndarray) -> list[dict[str, torch.Tensor]]:
        """Levels from the leaves up to one root: boxes, a vertex on the shape, and the far-field moments
        (dipole, centre of area, radius about it)."""
        points = leaf_corners.reshape(len(leaf_corners), -1, self.dim)
        vectors = self._moments(leaf_corners) * weights[..., None]
        sizes = np.linalg.norm(vectors, axis=-1)
        level = {"lo": points.min(axis=1), "hi": points.max(axis=1), "vertex": points[:, 0],
                 "centre": _weighted_centre(sizes, leaf_corners.mean(axis=2)), "dipole": vectors.sum(axis=1),
                 "weight": sizes.sum(axis=1)}
        level["radius"] = np.linalg.norm(points - level["centre"][:, None], axis=-1).max(axis=1)
        levels = [level]
        while len(levels[-1]["lo"]) > 1:
            levels[-1] = self._padded(levels[-1])
            levels.append(self._parents(levels[-1]))
        return [{key: self._tensor(value) for key, value in level.items()} for level in levels]

    def _padded(self, level: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A level padded with empty nodes to a multiple of ``branching``: no box, no dipole, never opened."""
        pad = -len(level["lo"]) % self.branching
        empty = {"lo": np.inf, "hi": -np.inf, "vertex": np.inf, "centre": 0.0, "radius": -1.0, "dipole": 0.0,
                 "weight": 0.0}
        return {key: np.concatenate([value, np.full((pad,) + value.shape[1:], empty[key])])
                for key, value in level.items()}

    def _parents(self, children: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One level up from a padded level: ``branching`` children a node."""
        grouped = {key: value.reshape((-1, self.branching) + value.shape[1:]) for key, value in children.items()}
        centre = _weighted_centre(grouped["weight"], grouped["centre"])
        reach = np.linalg.norm(grouped["centre"] - centre[:, None], axis=-1) + grouped["radius"]
        return {"lo": grouped["lo"].min(axis=1), "hi": grouped["hi"].max(axis=1), "vertex": grouped["vertex"][:, 0],
                "centre": centre, "radius": np.where(grouped["radius"] >= 0, reach, -1.0).max(axis=1),
                "dipole": grouped["dipole"].sum(axis=1), "weight": grouped["weight"].sum(axis=1)}

    def _queries(self, points: ArrayLike) -> torch.Tensor:
        if points.ndim != 2 or points.shape[1] != self.dim:
            raise ValueError(f"queries must be an (n, {self.dim}) array, got {tuple(points.shape)}")
        if isinstance(points, np.ndarray):
            return torch.as_tensor(np.asarray(points, dtype=np.float64) - self.origin, dtype=self.dtype,
                                   device=self.device)
        origin = torch.as_tensor(self.origin, device=self.device)
        return points.to(self.device, torch.float64).sub(origin).to(self.dtype)

    def _children(self, pairs: torch.Tensor, width: int) -> torch.Tensor:
        """(query, node) pairs expanded to (query, child) pairs, ``width`` children a node."""
        offsets = torch.arange(width, device=self.device)
        return torch.stack([pairs[0].repeat_interleave(width), (pairs[1, :, None] * width + offsets).flatten()])

    @torch.no_grad()
    def unsigned_distance(self, points: ArrayLike) -> torch.Tensor:
        """Exact distance from each point to the nearest primitive."""
        points = self._queries(points)
        return torch.cat([self._distance_chunk(points[start:start + QUERY_CHUNK])
                          for start in range(0, len(points), QUERY_CHUNK)]) if len(points) else points[:, 0]

    def _distance_chunk(self, points: torch.Tensor) -> torch.Tensor:
        n = len(points)
        reached = torch.full((n,), torch.inf, dtype=self.dtype, device=self.device)
        pairs = torch.stack([torch.arange(n, device=self.device), torch.zeros(n, dtype=torch.long, device=self.device)])
        for depth, level in enumerate(reversed(self.levels)):
            if depth:
                pairs = self._children(pairs, self.branching)
            q, node = points[pairs[0]], pairs[1]
            gap = torch.clamp(level["lo"][node] - q, min=0) + torch.clamp(q - level["hi"][node], min=0)
            bound = torch.linalg.vector_norm(gap, dim=-1)
            vertex = torch.linalg.vector_norm(q - level["vertex"][node], dim=-1)
            reached.scatter_reduce_(0, pairs[0], vertex, "amin")
            keep = self._within(bound, reached, pairs[0])
            pairs, bound = pairs[:, keep], bound[keep]
        # each query's nearest leaf box first: its primitives tighten the bound that prunes the other leaves
        nearest = torch.full_like(reached, torch.inf).scatter_reduce_(0, pairs[0], bound, "amin")
        first = bound <= nearest[pairs[0]]
        self._leaf_distances(points, pairs[:, first], reached)
        rest = pairs[:, ~first]
        self._leaf_distances(points, rest[:, self._within(bound[~first], reached, rest[0])], reached)
        return reached

    def _within(self, bound: torch.Tensor, reached: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        # a margin of a few roundings, so that rounding never drops the node that holds the nearest point
        return bound <= reached[query] * (1 + 4 * torch.finfo(self.dtype).eps)

    def _leaf_distances(self, points: torch.Tensor, leaf_pairs: torch.Tensor, reached: torch.Tensor) -> None:
        """Lower ``reached`` to the exact distance from each pair's query to its leaf's primitives."""
        pairs = self._children(leaf_pairs, self.leaf_size)
        for start in range(0, pairs.shape[1], PAIR_SLICE):
            query, primitive = pairs[:, start:start + PAIR_SLICE]
            corners = self.corners[primitive]
            if self.arity == 3:
                d = triangle_distance(points[query], corners[:, 0], corners[:, 1], corners[:, 2])
            else:
                d = segment_distance(points[query], corners[:, 0], corners[:, 1])
            reached.scatter_reduce_(0, query, d, "amin")

    @torch.no_grad()
    def winding_number(self, points: ArrayLike, beta: float = BETA) -> torch.Tensor:
        """Generalized winding number of each point: about 1 inside, 0 outside."""
        if self.dim == 3 and self.arity == 2:
            raise ValueError("3D segments have no winding number")
        points = self._queries(points)
        return torch.cat([self._winding_chunk(points[start:start + QUERY_CHUNK], beta)
                          for start in range(0, len(points), QUERY_CHUNK)]) if len(points) else points[:, 0]

    def _winding_chunk(self, points: torch.Tensor, beta: float) -> torch.Tensor:
        n = len(points)
        winding = torch.zeros(n, dtype=self.dtype, device=self.device)
        pairs = torch.stack([torch.arange(n, device=self.device), torch.zeros(n, dtype=torch.long, device=self.device)])
        # a dipole p seen from offset r adds p.r / (4 pi |r|^3) in 3D, p.r / (2 pi |r|^2) in 2D
        power, scale = (3, 4 * math.pi) if self.dim == 3 else (2, 2 * math.pi)
        for depth, level in enumerate(reversed(self.levels)):
            if depth:
                pairs = self._children(pairs, self.branching)
            offset = level["centre"][pairs[1]] - points[pairs[0]]
            distance = torch.linalg.vector_norm(offset, dim=-1)
            far = distance > beta * level["radius"][pairs[1]]
            term = (level["dipole"][pairs[1]] * offset).sum(-1) / (scale * distance.clamp_min(1e-30) ** power)
            winding.index_add_(0, pairs[0][far], term[far])
            pairs = pairs[:, ~far]
        pairs = self._children(pairs, self.leaf_size)
        for start in range(0, pairs.shape[1], PAIR_SLICE):
            query, primitive = pairs[:, start:start + PAIR_SLICE]
            corners, q = self.corners[primitive], points[query]
            if self.arity == 3:
                term = solid_angle_winding(q, corners[:, 0], corners[:, 1], corners[:, 2])
            else:
                term = angle_winding(q, corners[:, 0], corners[:, 1])
            winding.index_add_(0, query, term * self.weights[primitive])
        return winding


def _weighted_centre(weights: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Rows of ``centres`` (m, k, d) averaged with ``weights`` (m, k); plainly where the weights are all 0."""
    total = weights.sum(axis=1)
    weighted = (weights[..., None] * centres).sum(axis=1) / np.where(total > 0, total, 1.0)[:, None]
    return np.where(total[:, None] > 0, weighted, centres.mean(axis=1))
