"""Shape file formats, read into :class:`RawGeometry` (vertices, faces, lines, normals).

OBJ (``v``, ``f``, ``l``), MEDIT ``.mesh`` (vertices, edges, triangles), PLY / OFF / STL (through trimesh;
vertex-only PLY gives bare vertices, with normals when it has ``nx ny nz``), ``.xyz`` / ``.txt`` point sets
(3 or 6 columns, ``#`` comments), ``.npz`` point sets (``points``, optional ``normals``) and GeoJSON
outlines (Polygon / MultiPolygon / LineString). :mod:`lipsdf.geometry.io` turns them into shapes.
"""

from __future__ import annotations

import collections
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from lipsdf.errors import GeometryError, InputFileError
from lipsdf.files import load_npz


@dataclass
class RawGeometry:
    """What a file holds, before deciding which kind of shape it is."""

    vertices: np.ndarray
    faces: np.ndarray
    edges: np.ndarray
    normals: Optional[np.ndarray] = None


def _empty_cells(width: int) -> np.ndarray:
    return np.zeros((0, width), dtype=np.int64)


def _obj_index(token: str, n_vertices: int) -> int:
    index = int(token.split("/")[0])
    return index - 1 if index > 0 else n_vertices + index


_OBJ_VERTEX = re.compile(rb"^v[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)[ \t]*\r?$", re.M)
_OBJ_TRIANGLE = re.compile(rb"^f[ \t]+([1-9]\d*)\S*[ \t]+([1-9]\d*)\S*[ \t]+([1-9]\d*)\S*[ \t]*\r?$", re.M)
_OBJ_PLAIN_TRIANGLE = re.compile(rb"^f[ \t]+([1-9]\d*[ \t]+[1-9]\d*[ \t]+[1-9]\d*)[ \t]*\r?$", re.M)  # "f 1 2 3"
_OBJ_TAGS = re.compile(rb"^[ \t]*(v|f|l)[ \t]", re.M)


def _obj_tag_counts(data: bytes) -> dict[bytes, int]:
    """How many lines of ``data`` are of each tag, ``v``, ``f`` and ``l``. Where no line starts with blanks,
    every tag is at the start of a line, and counting the byte strings is several times faster than the
    regular expression."""
    if data[:1] in (b" ", b"\t") or b"\n " in data or b"\n\t" in data:
        return collections.Counter(_OBJ_TAGS.findall(data))
    return {tag: sum(data.count(b"\n" + tag + blank) + data.startswith(tag + blank) for blank in (b" ", b"\t"))
            for tag in (b"v", b"f", b"l")}


def _obj_triangles(data: bytes, count: int) -> Optional[np.ndarray]:
    """The ``count`` triangles of ``data``, 0-based; None where some are not ``f`` lines of three positive
    indices (with or without texture and normal indices)."""
    plain = _OBJ_PLAIN_TRIANGLE.findall(data)
    if len(plain) == count:  # no "/": one string of integers, read at once
        indices = np.fromstring(b" ".join(plain), dtype=np.int64, sep=" ")
    else:
        triangles = _OBJ_TRIANGLE.findall(data)
        if len(triangles) != count:
            return None
        indices = np.array(triangles, dtype=np.int64)
    return indices.reshape(-1, 3) - 1


def _read_obj_fast(data: bytes) -> Optional[RawGeometry]:
    """The common OBJ (3D vertices, triangles with positive indices, no lines), parsed by regular
    expressions in C: tens of times faster than line by line on a mesh of millions of triangles. None
    where the file holds anything else, which the line-by-line reader handles (and judges)."""
    tags = _obj_tag_counts(data)
    if tags[b"l"] or not tags[b"v"]:
        return None
    vertices = _OBJ_VERTEX.findall(data)
    if len(vertices) != tags[b"v"]:
        return None
    try:
        faces = _obj_triangles(data, tags[b"f"])
        coordinates = np.array(vertices, dtype=np.float64)
    except ValueError:
        return None
    if faces is None or (len(faces) and faces.max() >= len(coordinates)):
        return None
    return RawGeometry(coordinates, faces, _empty_cells(2))


def _read_obj(path: Path) -> RawGeometry:
    fast = _read_obj_fast(path.read_bytes())
    if fast is not None:
        return fast
    vertices: list[list[float]] = []
    faces: list[list[int]] = []
    edges: list[list[int]] = []
    with open(path, "r", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                tag = parts[0]
                if tag == "v":
                    vertices.append([float(x) for x in parts[1:4]])
                elif tag == "f":
                    ids = [_obj_index(t, len(vertices)) for t in parts[1:]]
                    faces.extend([ids[0], ids[i], ids[i + 1]] for i in range(1, len(ids) - 1))
                elif tag == "l":
                    ids = [_obj_index(t, len(vertices)) for t in parts[1:]]
                    edges.extend([ids[i], ids[i + 1]] for i in range(len(ids) - 1))
            except ValueError:
                raise InputFileError(f"{path}: line {number} is not valid OBJ: {line.strip()[:60]!r}") from None
    if not vertices:
        raise GeometryError(f"{path} has no vertices ('v' lines)")
    widths = {len(v) for v in vertices}
    if len(widths) != 1 or widths.pop() not in (2, 3):
        raise InputFileError(f"{path}: vertices must all have 2 or 3 coordinates")
    return RawGeometry(
        np.array(vertices, dtype=np.float64),
        np.array(faces, dtype=np.int64).reshape(-1, 3),
        np.array(edges, dtype=np.int64).reshape(-1, 2),
    )


def _read_medit(path: Path) -> RawGeometry:
    tokens = []
    with open(path, "r", errors="replace") as handle:
        for line in handle:
            tokens.extend(line.split("#", 1)[0].split())
    sections: dict[str, np.ndarray] = {}
    widths = {"vertices": None, "edges": 3, "triangles": 4}
    dimension = 3
    i = 0
    try:
        while i < len(tokens):
            keyword = tokens[i].lower()
            if keyword == "dimension":
                dimension = int(tokens[i + 1])
                i += 2
            elif keyword in widths:
                count = int(tokens[i + 1])
                width = widths[keyword] or dimension + 1
                block = np.array(tokens[i + 2: i + 2 + count * width], dtype=np.float64)
                if len(block) != count * width:
                    raise ValueError(f"section {tokens[i]} is truncated")
                sections[keyword] = block.reshape(count, width)[:, :-1]  # drop reference ids
                i += 2 + count * width
            else:
                i += 1
    except (ValueError, IndexError) as exc:
        raise InputFileError(f"{path}: not a valid MEDIT .mesh file ({exc})") from None
    if "vertices" not in sections:
        raise GeometryError(f"{path} has no Vertices section")
    return RawGeometry(
        sections["vertices"],
        sections.get("triangles", _empty_cells(3)) - 1,  # indices are checked (whole, in range) by the shape
        sections.get("edges", _empty_cells(2)) - 1,
    )


def _read_stl(path: Path) -> RawGeometry:
    """Binary or ASCII STL. Binary when the size is exactly 84 + 50 bytes per promised triangle; a file that
    is neither complete binary nor ASCII (``solid ... vertex x y z ...``) is refused."""
    data = path.read_bytes()
    count = int.from_bytes(data[80:84], "little") if len(data) >= 84 else -1
    if count >= 0 and len(data) == 84 + 50 * count:
        records = np.frombuffer(data, dtype=np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)),
                                                      ("attribute", "<u2")]), count=count, offset=84)
        corners = records["corners"].astype(np.float64).reshape(-1, 3)
    elif data.lstrip()[:5].lower() == b"solid":
        numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
        try:
            corners = np.array(numbers, dtype=np.float64).reshape(-1, 3)
        except ValueError:
            raise InputFileError(f"{path}: an ASCII STL vertex is not three numbers") from None
        if len(corners) % 3:
            raise InputFileError(f"{path}: ASCII STL with {len(corners)} vertices, not whole triangles (truncated?)")
    elif count >= 0:
        raise InputFileError(f"{path}: binary STL header promises {count} triangles ({84 + 50 * count} bytes), "
                             f"but the file has {len(data)} bytes (truncated or not an STL)")
    else:
        raise InputFileError(f"{path} is too short to be an STL file ({len(data)} bytes)")
    if len(corners) == 0:
        raise GeometryError(f"{path} has no triangles")
    vertices, index = np.unique(corners, axis=0, return_inverse=True)  # corners shared by triangles: one vertex
    return RawGeometry(vertices, index.reshape(-1, 3).astype(np.int64), _empty_cells(2))


def _check_ply_header(path: Path) -> None:
    """Refuse a PLY whose header promises more elements than its body can hold, before a reader allocates them."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise InputFileError(f"{path} is not a PLY file (no 'ply' ... 'end_header' header)")
    body = path.stat().st_size - end
    binary = b"binary" in head[:end]
    sizes = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
             "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
    needed, count, row = 0, 0, 0
    for line in head[:end].decode("ascii", "replace").splitlines() + ["element end 0"]:
        words = line.split()
        if words[:1] == ["element"] and len(words) >= 3:
            needed += count * (row if binary else 2)  # ASCII: at least a digit and a separator per element
            try:
                count, row = int(words[2]), 0
            except ValueError:
                raise InputFileError(f"{path}: PLY element count {words[2]!r} is not a number") from None
        elif words[:1] == ["property"] and len(words) >= 3:
            row += sizes.get(words[-2] if words[1] != "list" else words[2], 1)  # a list: at least its count
    if count < 0 or needed > body:
        raise InputFileError(f"{path}: PLY header promises {needed} bytes of elements, but the file holds {body} "
                             "(truncated or corrupt)")


def _read_with_trimesh(path: Path) -> RawGeometry:
    import trimesh

    if path.suffix.lower() == ".ply":
        _check_ply_header(path)
    try:
        loaded = trimesh.load(str(path), process=False, force=None)
    except Exception as exc:  # trimesh raises many types for malformed files
        message = " ".join(str(exc).split())[:100]
        raise InputFileError(f"{path}: not a valid {path.suffix[1:].upper()} file ({type(exc).__name__}: "
                             f"{message})") from None
    if not hasattr(loaded, "vertices") and not isinstance(loaded, trimesh.Scene):
        raise InputFileError(f"{path}: not a valid {path.suffix[1:].upper()} file (no geometry)")
    if isinstance(loaded, trimesh.Scene):
        geometries = list(loaded.geometry.values())
        if not geometries:
            raise GeometryError(f"{path} holds no geometry")
        loaded = trimesh.util.concatenate(geometries) if len(geometries) > 1 else geometries[0]
    vertices = np.asarray(loaded.vertices, dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", _empty_cells(3)), dtype=np.int64).reshape(-1, 3)
    normals = None
    raw = getattr(loaded, "metadata", {}).get("_ply_raw", {}).get("vertex", {}).get("data")
    if isinstance(raw, np.ndarray) and raw.dtype.names and {"nx", "ny", "nz"} <= set(raw.dtype.names):
        normals = np.column_stack([raw["nx"], raw["ny"], raw["nz"]]).astype(np.float64)
    if len(vertices) == 0:
        raise GeometryError(f"{path} has no vertices")
    return RawGeometry(vertices, faces, _empty_cells(2), normals)


def _read_xyz(path: Path) -> RawGeometry:
    data = None
    for delimiter in (None, ","):
        try:
            data = np.loadtxt(path, comments="#", delimiter=delimiter, ndmin=2)
            break
        except ValueError:
            continue
    if data is None:
        raise InputFileError(f"{path}: expected rows of 3 or 6 numbers (x y z [nx ny nz])")
    if data.size == 0:
        raise GeometryError(f"{path} has no points")
    if data.shape[1] not in (3, 6):
        raise InputFileError(f"{path}: expected 3 or 6 columns (x y z [nx ny nz]), found {data.shape[1]}")
    normals = data[:, 3:6] if data.shape[1] == 6 else None
    return RawGeometry(data[:, :3], _empty_cells(3), _empty_cells(2), normals)


def _read_npz(path: Path) -> RawGeometry:
    arrays = load_npz(path)
    if "metadata" in arrays:
        raise InputFileError(f"{path} is a lipsdf dataset, not a shape; give the shape file it was sampled from")
    if "points" not in arrays:
        raise InputFileError(f"{path}: a point-set .npz needs a 'points' array (found: {sorted(arrays)})")
    points, normals = arrays["points"], arrays.get("normals")
    for name, array in (("points", points), ("normals", normals)):
        if array is not None and (array.dtype.kind not in "fiu" or array.ndim != 2):
            raise InputFileError(f"{path}: {name!r} must be an (n, 3) array of numbers, got {array.dtype} "
                                 f"{array.shape}")
    return RawGeometry(points.astype(np.float64), _empty_cells(3), _empty_cells(2),
                        None if normals is None else normals.astype(np.float64))


def _read_geojson(path: Path) -> RawGeometry:
    try:
        document = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from None
    rings: list[tuple[np.ndarray, bool]] = []

    def visit(geometry: dict) -> None:
        kind, coords = geometry.get("type"), geometry.get("coordinates")
        if kind == "Polygon":
            rings.extend((np.asarray(r, dtype=float)[:, :2], True) for r in coords)
        elif kind == "MultiPolygon":
            rings.extend((np.asarray(r, dtype=float)[:, :2], True) for polygon in coords for r in polygon)
        elif kind == "LineString":
            rings.append((np.asarray(coords, dtype=float)[:, :2], False))
        elif kind == "MultiLineString":
            rings.extend((np.asarray(c, dtype=float)[:, :2], False) for c in coords)
        elif kind == "GeometryCollection":
            for g in geometry.get("geometries", []):
                visit(g)

    features = document.get("features", [document]) if isinstance(document, dict) else []
    try:
        for feature in features:
            visit(feature.get("geometry", feature) if feature.get("type") == "Feature" else feature)
    except (AttributeError, TypeError, ValueError, IndexError):
        raise InputFileError(f"{path}: not a valid GeoJSON document (malformed features or coordinates)") from None
    if not rings:
        raise GeometryError(f"{path} has no Polygon or LineString geometry")
    vertices, edges, offset = [], [], 0
    for ring, closed in rings:
        if closed and len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]  # GeoJSON repeats the first position at the end
        n = len(ring)
        i = np.arange(n - (0 if closed else 1))
        edges.append(np.column_stack([i, (i + 1) % n]) + offset)
        vertices.append(ring)
        offset += n
    return RawGeometry(np.vstack(vertices), _empty_cells(3), np.vstack(edges).astype(np.int64))


READERS = {
    ".obj": _read_obj,
    ".mesh": _read_medit,
    ".ply": _read_with_trimesh,
    ".off": _read_with_trimesh,
    ".stl": _read_stl,
    ".xyz": _read_xyz,
    ".txt": _read_xyz,
    ".npz": _read_npz,
    ".geojson": _read_geojson,
    ".json": _read_geojson,
}
