"""Everything asked of a trained field, in world units: contours, projection, skeleton, sphere tracing."""

from lipsdf.query.contour import Contour, ContourResult, contour, default_level, sample_grid
from lipsdf.query.grid import Grid, field_grid
from lipsdf.query.project import Projection, SurfaceSamples, project, sample_surface
from lipsdf.query.skeleton import Skeleton, skeleton
from lipsdf.query.trace import Camera, TraceResult, orbit_camera, sphere_trace, trace_image

__all__ = [
    "Camera", "Contour", "ContourResult", "Grid", "Projection", "Skeleton", "SurfaceSamples", "TraceResult",
    "contour", "default_level", "field_grid", "orbit_camera", "project", "sample_grid", "sample_surface", "skeleton",
    "sphere_trace", "trace_image",
]
