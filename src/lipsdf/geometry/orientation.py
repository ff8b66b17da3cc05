"""Which way a triangle mesh's faces point, and turning them so that winding numbers find its inside.

Generalized winding numbers are robust to holes, overlaps and duplicated faces, but not to faces that
point the wrong way: an inverted mesh has winding number -1 inside, and a mesh whose faces disagree has
no clean inside at all. :func:`orient_mesh` makes the faces of every orientable patch agree (libigl's
``bfs_orient``, keeping the turn most of the patch's area had), then turns outward each outermost patch
that encloses a volume facing inward. A patch inside another keeps its turn relative to it: facing inward
it is a cavity, facing outward a part inside the solid (eyes in a head), which only its author can tell;
when every outermost patch faced inward the whole mesh was inverted and everything turns. Sheets that
enclose nothing keep their turn. :class:`MeshReport` says what the mesh is and what was done.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

import igl
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lipsdf.geometry.shapes import triangle_areas
from lipsdf.geometry.winding import mesh_winding_kernel

# A patch whose enclosed volume is below this share of (its area)^(3/2) encloses nothing (a flat or open
# sheet): it keeps the orientation most of its input faces had. A closed sphere's share is 0.094.
FLAT_VOLUME_SHARE = 1e-4
REPRESENTATIVE_FACES = 16  # per patch, where its nesting in the others is read
NESTING_OFFSET = 1e-4  # how far outside a face its nesting is read, in bounding-box diagonals


@dataclass(frozen=True)
class MeshReport:
    """What a mesh is and what orienting it did.

    Attributes
    ----------
    components : connected patches of faces joined by manifold edges.
    boundary_edges : edges of one face (0: closed).
    non_manifold_edges : edges of three faces or more.
    inconsistent_edges : edges of two faces that still disagree after orienting (a non-orientable patch).
    turned_faces : faces turned relative to the input.
    inverted_components : patches that faced inward as a whole and were turned.
    mixed_components : patches some of whose faces disagreed with the others (turned to agree).
    nested_components : closed patches inside another one (cavities, or parts inside the solid).
    """

    components: int
    faces: int
    boundary_edges: int
    non_manifold_edges: int
    inconsistent_edges: int
    turned_faces: int
    inverted_components: int
    mixed_components: int
    nested_components: int

    @property
    def orientable(self) -> bool:
        return self.inconsistent_edges == 0

    def lines(self) -> list[str]:
        """A short block for people: what the mesh is, then what was done about its orientation.

        Examples
        --------
        >>> from lipsdf.geometry.primitives import sphere
        >>> mesh = sphere()
        >>> print("\\n".join(orient_mesh(mesh.vertices, mesh.faces[:, ::-1])[1].lines()))
        mesh: 1 component, closed, 0 non-manifold edges
        orientation: inverted (faces pointing inward); turned all 3,968 faces outward
        """
        plural = "" if self.components == 1 else "s"
        if self.nested_components:
            plural += f" ({self.nested_components:,} inside another)"
        boundary = "closed" if not self.boundary_edges else f"open ({self.boundary_edges:,} boundary edges)"
        first = f"mesh: {self.components:,} component{plural}, {boundary}, {self.non_manifold_edges:,} non-manifold edges"
        if not self.orientable:
            return [first, f"orientation: not orientable ({self.inconsistent_edges:,} edge"
                           f"{' joins' if self.inconsistent_edges == 1 else 's join'} faces that cannot agree)"]
        if not self.turned_faces:
            return [first, "orientation: consistent, outward"]
        if self.inverted_components and self.turned_faces == self.faces:
            return [first, f"orientation: inverted (faces pointing inward); turned all {self.faces:,} faces outward"]
        what = [f"{count:,} {name} component{'s' * (count > 1)}" for count, name in (
            (self.mixed_components, "inconsistently oriented"), (self.inverted_components, "inverted")) if count]
        return [first, f"orientation: {', '.join(what)}; turned {self.turned_faces:,} of {self.faces:,} faces "
                       "to agree and face outward"]

    def to_dict(self) -> dict[str, Any]:
        return dict(asdict(self), orientable=self.orientable)


def edge_counts(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many faces each undirected edge of ``faces`` has, and for each of the ``3 * len(faces)``
    directed edges (``[0, 1], [1, 2], [2, 0]`` of every face, face by face) the index of its undirected
    edge."""
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    keys = directed.min(axis=1) * (int(faces.max()) + 1) + directed.max(axis=1)
    # np.unique's inverse costs a stable sort, and equal keys need no order among themselves
    order = np.argsort(keys)
    ordered = keys[order]
    first = np.ones(len(keys), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    inverse = np.empty(len(keys), dtype=np.int64)
    inverse[order] = np.cumsum(first) - 1
    return np.diff(np.append(np.flatnonzero(first), len(keys))), inverse


def _inconsistent_edges(faces: np.ndarray, counts: Optional[np.ndarray] = None,
                        inverse: Optional[np.ndarray] = None) -> int:
    """Edges of exactly two faces that run the same way in both (the faces disagree); ``counts`` and
    ``inverse`` are :func:`edge_counts` of these ``faces``, when known."""
    if counts is None or inverse is None:
        counts, inverse = edge_counts(faces)
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    forward = (directed[:, 0] < directed[:, 1]).astype(np.int64)
    forward_count = np.bincount(inverse, weights=forward, minlength=len(counts))
    return int(np.sum((counts == 2) & (forward_count != 1)))


def _same_turn(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether faces ``a`` and ``b`` (rows) list the same corners in the same cyclic order."""
    return np.any([np.all(np.roll(a, shift, axis=1) == b, axis=1) for shift in range(3)], axis=0)


def _patch_volumes(vertices: np.ndarray, faces: np.ndarray, areas: np.ndarray, patch: np.ndarray, n: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Each patch's signed enclosed volume (about its own centroid) and its area."""
    corners = vertices[faces]
    centroid_sum = np.stack([np.bincount(patch, corners[:, :, axis].mean(axis=1), n) for axis in range(3)], axis=1)
    centroids = centroid_sum / np.bincount(patch, minlength=n)[:, None]
    local = corners - centroids[patch][:, None, :]
    volume = np.einsum("ij,ij->i", local[:, 0], np.cross(local[:, 1], local[:, 2])) / 6.0
    return np.bincount(patch, volume, n), np.bincount(patch, areas, n)


def _nesting_depths(vertices: np.ndarray, faces: np.ndarray, patch: np.ndarray, solid: np.ndarray) -> np.ndarray:
    """How many solid patches (outward-facing ``faces``) wholly contain each patch: the least winding
    number of the solid patches just outside a few of the patch's faces (a point on a face itself has an
    ill-defined winding number)."""
    n = len(solid)
    order = np.argsort(patch, kind="stable")
    sizes = np.bincount(patch, minlength=n)
    starts = np.cumsum(sizes) - sizes
    # up to REPRESENTATIVE_FACES faces of each patch, spread over its faces
    picked = np.minimum(sizes, REPRESENTATIVE_FACES)
    owner = np.repeat(np.arange(n), picked)
    rank = np.arange(len(owner)) - np.repeat(np.cumsum(picked) - picked, picked)
    chosen = order[starts[owner] + rank * (sizes[owner] - 1) // np.maximum(picked[owner] - 1, 1)]
    corners = vertices[faces[chosen]]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    step = NESTING_OFFSET * np.linalg.norm(np.ptp(vertices, axis=0))
    outside = corners.mean(axis=1) + step * normals
    winding = mesh_winding_kernel(vertices, faces[solid[patch]])(outside)
    least = np.full(n, np.inf)
    np.minimum.at(least, owner, winding)
    return np.maximum(np.rint(least), 0).astype(int)


def _face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """The connected component (through shared vertices) of each face, numbered from 0."""
    rows = np.repeat(faces[:, 0], 2)
    graph = coo_matrix((np.ones(len(rows)), (rows, faces[:, 1:].ravel())), shape=(n_vertices, n_vertices))
    count, labels = connected_components(graph, directed=False)
    used = np.zeros(count, dtype=bool)  # components of vertices only (no face) take no number
    used[labels[faces[:, 0]]] = True
    return (np.cumsum(used) - 1)[labels[faces[:, 0]]]


def orient_mesh(vertices: np.ndarray, faces: np.ndarray, areas: Optional[np.ndarray] = None
                ) -> tuple[np.ndarray, MeshReport]:
    """``faces`` turned so that every orientable patch agrees with itself and every outermost solid faces
    outward (see the module docstring), with a report of what the mesh is and what was turned. ``areas``:
    the faces' areas, when known.

    Examples
    --------
    >>> from lipsdf.geometry.primitives import sphere
    >>> mesh = sphere()
    >>> half = mesh.faces.copy(); half[::2] = half[::2, ::-1]   # every other face flipped
    >>> faces, report = orient_mesh(mesh.vertices, half)
    >>> report.turned_faces == len(faces) // 2, bool(np.all(faces == mesh.faces))
    (True, True)
    """
    vertices = np.ascontiguousarray(vertices, dtype=np.float64)
    faces = np.ascontiguousarray(faces, dtype=np.int64)
    areas = triangle_areas(vertices, faces) if areas is None else areas
    counts, inverse = edge_counts(faces)
    consistent = not _inconsistent_edges(faces, counts, inverse)
    if consistent:  # every patch agrees already (the common case, inverted meshes too): its parts are its patches
        patch = _face_components(faces, len(vertices))
        n = int(patch.max()) + 1
        given, given_turned = faces, np.zeros(len(faces), dtype=bool)
    else:
        agreed, patch = igl.bfs_orient(faces)
        patch = np.unique(patch, return_inverse=True)[1].ravel()
        n = int(patch.max()) + 1
        # each patch as most of its input area turned, its faces agreeing with each other
        same = _same_turn(faces, agreed)
        flip = (np.bincount(patch, np.where(same, 1.0, -1.0) * areas, n) < 0)[patch]
        given, given_turned = np.where(flip[:, None], agreed[:, ::-1], agreed), ~(same ^ flip)
    volume, area = _patch_volumes(vertices, given, areas, patch, n)
    solid = np.abs(volume) > FLAT_VOLUME_SHARE * area ** 1.5
    outward = np.where((volume >= 0)[patch][:, None], given, given[:, ::-1])
    # one patch, or no solid: nothing to nest in (and no winding-number tree to build over millions of faces)
    depth = _nesting_depths(vertices, outward, patch, solid) if n > 1 and solid.any() else np.zeros(n, dtype=int)
    outermost = solid & (depth == 0)
    reverse = outermost & (volume < 0)  # by patch
    if outermost.any() and np.all(reverse[outermost]):  # the whole mesh inverted: nested shells turn with it
        reverse = np.ones(n, dtype=bool)
    if not solid.any():  # a soup of unconnected faces (no shared vertices) can still enclose a volume
        whole, whole_area = _patch_volumes(vertices, given, areas, np.zeros(len(faces), dtype=np.int64), 1)
        reverse[:] = whole[0] < -FLAT_VOLUME_SHARE * whole_area[0] ** 1.5
    oriented = np.where(reverse[patch][:, None], given[:, ::-1], given)
    turned = given_turned ^ reverse[patch]
    turned_patches = np.bincount(patch, turned, n)
    sizes = np.bincount(patch, minlength=n)
    inverted = turned_patches == sizes
    report = MeshReport(components=n, faces=len(faces), boundary_edges=int(np.sum(counts == 1)),
                        non_manifold_edges=int(np.sum(counts > 2)),
                        inconsistent_edges=0 if consistent else _inconsistent_edges(oriented),
                        turned_faces=int(turned.sum()), inverted_components=int(inverted.sum()),
                        mixed_components=int(np.sum((turned_patches > 0) & (turned_patches < sizes))),
                        nested_components=int(np.sum(solid & (depth > 0))))
    return np.ascontiguousarray(oriented), report

