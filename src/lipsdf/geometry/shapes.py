"""Shape dataclasses: :class:`Polyline` (2D or 3D), :class:`TriangleMesh`, :class:`PointCloud`.

Constructors validate their input (finite coordinates, indices in range, not
degenerate) and raise :class:`~lipsdf.errors.GeometryError` with a message
that says what is wrong. Shapes are immutable; transformations return new
shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Optional, Union

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components, depth_first_order

from lipsdf.errors import GeometryError
from lipsdf.geometry.winding import polyline_winding_number

KINDS = ("polyline2d", "polyline3d", "mesh", "pointcloud")


def _as_coordinates(values: np.ndarray, name: str, dims: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] not in dims:
        want = " or ".join(str(d) for d in dims)
        raise GeometryError(f"{name} must be an (n, {want}) array, got shape {array.shape}")
    if len(array) == 0:
        raise GeometryError(f"the shape has no {name}: nothing to compute a distance to")
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise GeometryError(f"{bad} of the {name} have NaN or infinite coordinates; clean the file first")
    if np.ptp(array, axis=0).max() <= 0.0:
        raise GeometryError(f"all {name} are equal: the shape is a single point")
    return np.ascontiguousarray(array)


def as_index_array(values: np.ndarray, name: str, width: int, n_vertices: int) -> np.ndarray:
    cells = np.asarray(values)
    if cells.size == 0:
        return np.zeros((0, width), dtype=np.int64)
    if cells.ndim != 2 or cells.shape[1] != width:
        raise GeometryError(f"{name} must be an (m, {width}) index array, got shape {cells.shape}")
    if not np.issubdtype(cells.dtype, np.integer):
        if not (np.isfinite(cells).all() and np.all(np.equal(np.mod(cells, 1), 0))):
            raise GeometryError(f"{name} must hold integer vertex indices")
    cells = cells.astype(np.int64)
    if cells.min() < 0 or cells.max() >= n_vertices:
        raise GeometryError(
            f"{name} refer to vertex {int(cells.max()) if cells.max() >= n_vertices else int(cells.min())}"
            f" but there are only {n_vertices} vertices"
        )
    return np.ascontiguousarray(cells)


def _compact(vertices: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop vertices that no cell references, renumbering the cells (in linear time: no sort)."""
    referenced = np.zeros(len(vertices), dtype=bool)
    referenced[cells.ravel()] = True
    if referenced.all():
        return vertices, cells
    remap = np.cumsum(referenced) - 1
    return vertices[referenced], remap[cells]


@dataclass(frozen=True)
class Polyline:
    """A set of segments in 2D or 3D: open curves, closed loops, or networks.

    Parameters
    ----------
    vertices : (n, 2) or (n, 3) float array
    edges : (m, 2) int array of vertex indices. Zero-length edges are dropped.

    Closed 2D polylines (every vertex of degree 2) have their loops oriented
    on construction so that the winding number is 1 inside and 0 outside,
    whatever the directions in the file: outer loops counter-clockwise, holes
    clockwise, by nesting depth.

    Examples
    --------
    >>> square = Polyline(np.array([[0, 0], [1, 0], [1, 1], [0, 1.]]),
    ...                   np.array([[0, 1], [1, 2], [2, 3], [3, 0]]))
    >>> square.kind, square.is_closed
    ('polyline2d', True)
    """

    vertices: np.ndarray
    edges: np.ndarray

    def __post_init__(self) -> None:
        vertices = _as_coordinates(self.vertices, "vertices", (2, 3))
        edges = as_index_array(self.edges, "edges", 2, len(vertices))
        if len(edges):
            lengths = np.linalg.norm(vertices[edges[:, 1]] - vertices[edges[:, 0]], axis=1)
            edges = edges[lengths > 0]
        if len(edges) == 0:
            raise GeometryError("the polyline has no segment of non-zero length")
        vertices, edges = _compact(vertices, edges)
        if vertices.shape[1] == 2 and _all_vertices_degree_two(edges, len(vertices)):
            edges = _orient_loops(vertices, edges)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "edges", edges)

    @property
    def dim(self) -> int:
        return self.vertices.shape[1]

    @property
    def kind(self) -> str:
        return f"polyline{self.dim}d"

    @cached_property
    def is_closed(self) -> bool:
        """True when every component is a loop (each vertex has exactly two edges)."""
        return _all_vertices_degree_two(self.edges, len(self.vertices))

    @property
    def has_inside(self) -> bool:
        """Whether inside/outside is defined: closed 2D polylines only."""
        return self.dim == 2 and self.is_closed

    @cached_property
    def n_components(self) -> int:
        return connected_components(_adjacency(self.edges, len(self.vertices)), directed=False)[0]

    def describe(self) -> str:
        """One line for people: kind, open or closed, counts."""
        closed = "closed" if self.is_closed else "open"
        return (f"{self.dim}D polyline ({closed}), {len(self.vertices)} vertices, {len(self.edges)} segments, "
                f"{self.n_components} component(s)")

    def segment_lengths(self) -> np.ndarray:
        return np.linalg.norm(self.vertices[self.edges[:, 1]] - self.vertices[self.edges[:, 0]], axis=1)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def transformed(self, fn: Callable[[np.ndarray], np.ndarray]) -> "Polyline":
        return Polyline(fn(self.vertices), self.edges)


@dataclass(frozen=True)
class TriangleMesh:
    """A triangle soup in 3D: open, non-manifold and multi-component meshes are fine.

    Inside/outside comes from the generalized winding number, which needs no
    watertightness. Degenerate (zero-area) triangles are dropped.

    Examples
    --------
    >>> tet = TriangleMesh(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1.]]),
    ...                    np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]]))
    >>> tet.kind, len(tet.faces)
    ('mesh', 4)
    """

    vertices: np.ndarray
    faces: np.ndarray

    def __post_init__(self) -> None:
        vertices = _as_coordinates(self.vertices, "vertices", (3,))
        faces = as_index_array(self.faces, "faces", 3, len(vertices))
        areas = triangle_areas(vertices, faces)
        keep = areas > 0
        if not keep.any():
            raise GeometryError("the mesh has no triangle of non-zero area")
        faces, areas = (faces, areas) if keep.all() else (faces[keep], areas[keep])
        vertices, faces = _compact(vertices, faces)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        self._keep("_face_areas", areas)

    @classmethod
    def _checked(cls, vertices: np.ndarray, faces: np.ndarray, areas: Optional[np.ndarray]) -> "TriangleMesh":
        """A mesh of arrays that another mesh's checks passed (moved by a similarity, or with faces turned),
        not checked again: on millions of triangles each check costs a second. ``areas``: the faces' areas
        when they are unchanged, None to compute them when asked for."""
        mesh = object.__new__(cls)
        object.__setattr__(mesh, "vertices", vertices)
        object.__setattr__(mesh, "faces", faces)
        if areas is not None:
            mesh._keep("_face_areas", areas)
        return mesh

    def _keep(self, name: str, value: np.ndarray) -> np.ndarray:
        """Keep a derived array, read-only: a shape's arrays are not changed once it is made, and on meshes
        of millions of triangles sampling asks for the areas and normals several times."""
        value.setflags(write=False)
        object.__setattr__(self, name, value)
        return value

    dim = 3
    kind = "mesh"
    has_inside = True

    def describe(self) -> str:
        """One line for people: kind and counts."""
        return f"mesh, {len(self.vertices)} vertices, {len(self.faces)} triangles"

    def face_areas(self) -> np.ndarray:
        """Each triangle's area (read-only, computed once)."""
        if "_face_areas" not in self.__dict__:
            self._faces_measured()
        return self._face_areas

    def face_normals(self) -> np.ndarray:
        """Each triangle's unit normal, by the right-hand rule on its vertex order, or 0 for a triangle whose
        area rounds to 0 (read-only, computed once)."""
        if "_face_normals" not in self.__dict__:
            self._faces_measured()
        return self._face_normals

    def _faces_measured(self) -> None:
        """Keep the faces' areas and unit normals, from one cross product a face (the areas as
        :func:`triangle_areas` gives them, where not known yet)."""
        cross = _face_cross(self.vertices, self.faces)
        doubled = np.sqrt(np.square(cross).sum(axis=0))
        if "_face_areas" not in self.__dict__:
            self._keep("_face_areas", 0.5 * doubled)
        self._keep("_face_normals", np.ascontiguousarray((cross / np.maximum(doubled, np.finfo(np.float64).tiny)).T))

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)

    def transformed(self, fn: Callable[[np.ndarray], np.ndarray]) -> "TriangleMesh":
        """The mesh moved by ``fn``, a similarity (scale and shift, as a normalisation is)."""
        return TriangleMesh._checked(_as_coordinates(fn(self.vertices), "vertices", (3,)), self.faces, None)

    def with_faces(self, faces: np.ndarray) -> "TriangleMesh":
        """The mesh with ``faces``, the same triangles with some turned (their areas unchanged)."""
        return TriangleMesh._checked(self.vertices, np.ascontiguousarray(faces), self.face_areas())


@dataclass(frozen=True)
class PointCloud:
    """Points in 3D, with optional per-point normals (need not be unit length).

    Without normals, :func:`lipsdf.geometry.normals.oriented_normals` estimates
    them when inside/outside is needed.

    Examples
    --------
    >>> cloud = PointCloud(np.random.default_rng(0).normal(size=(100, 3)))
    >>> cloud.kind, cloud.normals is None
    ('pointcloud', True)
    """

    points: np.ndarray
    normals: Union[np.ndarray, None] = field(default=None)

    def __post_init__(self) -> None:
        points = _as_coordinates(self.points, "points", (3,))
        object.__setattr__(self, "points", points)
        if self.normals is not None:
            normals = np.asarray(self.normals, dtype=np.float64)
            if normals.shape != points.shape:
                raise GeometryError(f"normals have shape {normals.shape} but points have shape {points.shape}")
            if not np.isfinite(normals).all():
                raise GeometryError("some normals are NaN or infinite; drop the normals to have them estimated")
            norms = np.linalg.norm(normals, axis=1, keepdims=True)
            if (norms == 0).any():
                raise GeometryError(
                    f"{int((norms == 0).sum())} normals are zero vectors; drop the normals to have them estimated"
                )
            object.__setattr__(self, "normals", np.ascontiguousarray(normals / norms))

    dim = 3
    kind = "pointcloud"
    has_inside = True

    @property
    def vertices(self) -> np.ndarray:
        return self.points

    def describe(self) -> str:
        """One line for people: kind, count, whether it has normals."""
        return f"point cloud, {len(self.points)} points, {'with' if self.normals is not None else 'without'} normals"

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.points.min(axis=0), self.points.max(axis=0)

    def transformed(self, fn: Callable[[np.ndarray], np.ndarray]) -> "PointCloud":
        # Uniform scale + shift leaves normals unchanged.
        return PointCloud(fn(self.points), self.normals)


Shape = Union[Polyline, TriangleMesh, PointCloud]


def _face_cross(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each triangle's ``(b - a) x (c - a)``, as 3 rows (x, y, z) of one value a face."""
    v = vertices[faces]
    a, b = (v[:, 1] - v[:, 0]).T, (v[:, 2] - v[:, 0]).T
    # by components: np.cross is several times slower on millions of triangles
    return np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return 0.5 * np.sqrt(np.square(_face_cross(vertices, faces)).sum(axis=0))


def _adjacency(edges: np.ndarray, n: int) -> coo_matrix:
    ones = np.ones(len(edges))
    return coo_matrix((ones, (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()


def _all_vertices_degree_two(edges: np.ndarray, n: int) -> bool:
    return bool(np.all(np.bincount(edges.ravel(), minlength=n) == 2))


def _signed_loop_area(vertices: np.ndarray, edges: np.ndarray) -> float:
    a, b = vertices[edges[:, 0]], vertices[edges[:, 1]]
    return 0.5 * float(np.sum(a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]))


def _orient_loops(vertices: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Direct every loop of a closed 2D polyline so its winding number is 1 inside.

    Each loop is walked in order (a depth-first walk of a cycle follows it),
    then oriented counter-clockwise at even nesting depth (outer boundaries,
    islands) and clockwise at odd depth (holes).
    """
    graph = _adjacency(edges, len(vertices))
    n_loops, labels = connected_components(graph, directed=False)
    loops = []
    for loop in range(n_loops):
        start = int(np.argmax(labels == loop))
        order = depth_first_order(graph, start, directed=False, return_predecessors=False)
        loops.append(np.column_stack([order, np.roll(order, -1)]))
    # Nesting depth of each loop: how many other loops contain its first vertex.
    # Loops of a valid polyline do not cross, so one vertex decides.
    depth = np.zeros(n_loops, dtype=int)
    if n_loops > 1:
        probes = vertices[[loop[0, 0] for loop in loops]]
        for j, loop in enumerate(loops):
            inside = np.abs(polyline_winding_number(probes, vertices, loop)) > 0.5
            inside[j] = False
            depth += inside
    oriented = []
    for loop, d in zip(loops, depth):
        ccw = _signed_loop_area(vertices, loop) > 0
        oriented.append(loop if ccw == (d % 2 == 0) else loop[:, ::-1])
    return np.concatenate(oriented)

