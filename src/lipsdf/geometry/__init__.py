"""Shapes and exact geometry (no torch): loading, normalising, ground-truth distances, normals."""

from lipsdf.geometry.distance import GroundTruth, signed_distance, unsigned_distance, winding_number
from lipsdf.geometry.io import load_shape, save_points, save_shape
from lipsdf.geometry.normalize import Normalization
from lipsdf.geometry.shapes import PointCloud, Polyline, Shape, TriangleMesh

__all__ = [
    "GroundTruth",
    "Normalization",
    "PointCloud",
    "Polyline",
    "Shape",
    "TriangleMesh",
    "load_shape",
    "save_points",
    "save_shape",
    "signed_distance",
    "unsigned_distance",
    "winding_number",
]
