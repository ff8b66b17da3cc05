"""Every picture, as PNG in world coordinates: a dataset's samples, a field's values and level sets, and
sphere-traced images of 3D fields (shaded, depth and normal maps)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from lipsdf.dataset import PointDataset
from lipsdf.errors import LipsdfError
from lipsdf.field import DEFAULT_BATCH_SIZE, NeuralField
from lipsdf.files import PathLike, atomic_output
from lipsdf.query.contour import default_level
from lipsdf.query.grid import field_grid
from lipsdf.query.trace import DEFAULT_MAX_STEPS, SHADING_SMOOTHING, Camera, TraceResult, orbit_camera, shape_framing, trace_image
from lipsdf.training import Callback

_MAX_POINTS = 20_000


def _figure(n_panels: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n_panels, figsize=(5 * n_panels + 1.5, 5.5), squeeze=False, layout="constrained")
    return plt, fig, axes[0]


def _save(plt, fig, path: PathLike) -> Path:
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def _field_norm(values: np.ndarray, signed: bool):
    from matplotlib.colors import Normalize, TwoSlopeNorm

    low, high = float(values.min()), float(values.max())
    if signed and low < 0 < high:  # blue inside, red outside, white on the zero level, each side on its own scale
        return "coolwarm", TwoSlopeNorm(0.0, low, high)
    return "viridis", Normalize(low, max(high, low + 1e-12))


def _colouring(dataset: PointDataset, index: np.ndarray) -> tuple[np.ndarray, dict, str, dict]:
    """Values to colour by, scatter colour options, colour-bar label and colour-bar options."""
    if "labels" in dataset.arrays:
        from matplotlib.colors import ListedColormap

        names = {"signed": ("inside", "outside"), "unsigned": ("surface", "elsewhere")}[dataset.mode]
        cmap = ListedColormap(["#3b4cc0", "#d6604d"])
        return dataset.labels[index], dict(cmap=cmap, vmin=-2, vmax=2), "label", dict(ticks=[-1, 1], labels=names)
    distances = dataset.world("distances")[index]
    cmap, norm = _field_norm(distances, signed=True)
    return distances, dict(cmap=cmap, norm=norm), "signed distance" if distances.min() < 0 else "distance", {}


def plot_dataset(dataset: PointDataset, path: PathLike, seed: int = 0) -> Path:
    """Write a PNG of the training samples, in world coordinates.

    2D: all samples coloured by label or distance, surface samples in black.
    3D: three axis-aligned slabs through the centre of the box (a tenth of its
    width thick), one panel each.
    """
    rng = np.random.default_rng(seed)
    points = dataset.world("points")
    index = rng.permutation(len(points))[:_MAX_POINTS] if len(points) > _MAX_POINTS else np.arange(len(points))
    values, colour, legend, bar = _colouring(dataset, index)
    points = points[index]
    surface = dataset.world("surface_points")
    lower, upper = dataset.normalization.world_bounds()
    if dataset.dim == 2:
        plt, fig, axes = _figure(1)
        panels = [((0, 1), np.ones(len(points), bool), np.ones(len(surface), bool), "")]
    else:
        plt, fig, axes = _figure(3)
        half_width = 0.05 * dataset.normalization.scale
        panels = []
        for axis, (i, j) in zip(range(3)[::-1], ((0, 1), (0, 2), (1, 2))):
            centre = dataset.normalization.center[axis]
            panels.append(((i, j), np.abs(points[:, axis] - centre) < half_width,
                           np.abs(surface[:, axis] - centre) < half_width, f"slice {'xyz'[axis]} = {centre:.3g} ± {half_width:.2g}"))
    for ax, ((i, j), mask, surface_mask, title) in zip(axes, panels):
        scatter = ax.scatter(points[mask, i], points[mask, j], c=values[mask], s=2, linewidths=0, **colour)
        ax.scatter(surface[surface_mask, i], surface[surface_mask, j], c="k", s=0.5, linewidths=0)
        ax.set_xlim(lower[i], upper[i])
        ax.set_ylim(lower[j], upper[j])
        ax.set_aspect("equal")
        ax.set_xlabel("xyz"[i])
        ax.set_ylabel("xyz"[j])
        ax.set_title(title)
    colorbar = fig.colorbar(scatter, ax=list(axes), shrink=0.8, label=legend)
    if bar:
        colorbar.set_ticks(bar["ticks"], labels=bar["labels"])
    fig.suptitle(f"{dataset.mode} dataset, {len(dataset.points)} points ({dataset.kind}); black: surface samples")
    return _save(plt, fig, path)


def plot_field(field: NeuralField, path: PathLike, resolution: int = 256, title: str = "") -> Path:
    """Write a PNG of a :class:`~lipsdf.field.NeuralField` over its box, with level sets.

    2D: the whole box. 3D: three axis-aligned slices through the box's centre.
    The zero level is drawn in black, ten other levels in grey.
    """
    lower, upper = field.normalization.world_bounds()
    centre = field.normalization.center
    axis_values = [np.linspace(lower[k], upper[k], resolution) for k in range(field.dim)]
    if field.dim == 2:
        plt, fig, axes = _figure(1)
        planes = [((0, 1), None)]
    else:
        plt, fig, axes = _figure(3)
        planes = [((0, 1), 2), ((0, 2), 1), ((1, 2), 0)]
    for ax, ((i, j), fixed) in zip(axes, planes):
        u, v = np.meshgrid(axis_values[i], axis_values[j], indexing="xy")
        points = np.tile(centre, (u.size, 1))
        points[:, i], points[:, j] = u.ravel(), v.ravel()
        values = field(points).reshape(u.shape)
        image = _draw_levels(ax, axis_values[i], axis_values[j], values, field.kind, None)
        ax.set_xlabel("xyz"[i])
        ax.set_ylabel("xyz"[j])
        if fixed is not None:
            ax.set_title(f"slice {'xyz'[fixed]} = {centre[fixed]:.3g}")
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=f"{field.kind} distance")
    fig.suptitle(f"{field.arch} field{', ' + title if title else ''}")
    return _save(plt, fig, path)


def _draw_levels(ax, x: np.ndarray, y: np.ndarray, values: np.ndarray, kind: str, levels) -> Any:
    """Values on the grid ``x`` by ``y`` (rows along y) with ``levels`` in black; without levels, ten grey
    ones on each side of zero and zero in black. Returns the image, for a colour bar."""
    cmap, norm = _field_norm(values, signed=kind == "signed")
    image = ax.imshow(values, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), cmap=cmap, norm=norm)
    if levels is None:
        span = float(np.abs(values).max()) or 1.0
        ax.contour(x, y, values, levels=np.linspace(-span, span, 21), colors="0.4", linewidths=0.4)
        levels = [0.0]
    drawn = [v for v in levels if values.min() < v < values.max()]
    if drawn:
        ax.contour(x, y, values, levels=sorted(drawn), colors="k", linewidths=1.0)
    return image


def plot_field_map(field: NeuralField, path: PathLike, resolution: int = 512, levels=None, bounds=None,
                   overlays=()) -> dict:
    """Write a PNG of a 2D field: its values with iso-contours, and its gradient norm.

    ``levels``: iso-levels to draw (world units; default: ten around zero plus
    zero in black). ``bounds``: ``xmin ymin xmax ymax`` (default: the field's
    box). ``overlays``: ``(n, 2)`` point sets drawn on the field (e.g. skeleton
    or surface samples), one colour each. Returns gradient-norm statistics over the picture (min, median, max:
    a 1-Lipschitz field stays at or below 1, a good distance field near 1).
    """
    if field.dim != 2:
        raise LipsdfError(f"a field map is for 2D fields; this one is {field.dim}D")
    grid = field_grid(field, resolution, bounds)
    points = grid.vertices(np.arange(grid.size))
    values = field(points).reshape(grid.shape).T  # rows along y for imshow
    gradient_norm = np.linalg.norm(field.gradient(points), axis=1).reshape(grid.shape).T
    lower, upper = grid.lower, grid.upper
    extent = (lower[0], upper[0], lower[1], upper[1])
    x, y = np.linspace(lower[0], upper[0], grid.shape[0]), np.linspace(lower[1], upper[1], grid.shape[1])
    plt, fig, (left, right) = _figure(2)
    image = _draw_levels(left, x, y, values, field.kind, levels)
    for points, colour in zip(overlays, ("#1a9850", "#762a83", "#e08214", "k")):
        left.scatter(points[:, 0], points[:, 1], s=3, c=colour, linewidths=0)
    left.set_xlim(extent[0], extent[1])
    left.set_ylim(extent[2], extent[3])
    fig.colorbar(image, ax=left, shrink=0.8, label=f"{field.kind} distance")
    left.set_title("field and iso-contours")
    shown = right.imshow(gradient_norm, origin="lower", extent=extent, cmap="magma",
                         vmin=0.0, vmax=max(1.0, float(gradient_norm.max())))
    fig.colorbar(shown, ax=right, shrink=0.8, label="|grad f|")
    right.set_title("gradient norm (1 for a true distance)")
    for ax in (left, right):
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.suptitle(f"{field.arch} field")
    _save(plt, fig, path)
    return {"gradient_norm_min": float(gradient_norm.min()), "gradient_norm_median": float(np.median(gradient_norm)),
            "gradient_norm_max": float(gradient_norm.max())}


def save_image(image: np.ndarray, path: PathLike) -> Path:
    """Write an RGB (h, w, 3) or grey (h, w) float image in [0, 1] as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_output(path) as tmp:
        plt.imsave(tmp, np.clip(image, 0.0, 1.0), format="png", cmap="gray" if image.ndim == 2 else None,
                   vmin=0.0, vmax=1.0)
    return path


class PreviewWriter(Callback):
    """A :class:`~lipsdf.training.Trainer` callback that draws the field (:func:`plot_field`) at each
    checkpoint: at ``path`` at the end, and as ``NAME_eEPOCH.png`` beside it at each earlier checkpoint."""

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)

    def on_checkpoint(self, trainer, field: NeuralField, epoch: int, last: bool) -> None:
        target = self.path if last else self.path.with_name(f"{self.path.stem}_e{epoch:04d}{self.path.suffix}")
        plot_field(field, target, title=f"epoch {epoch}")


def shade(result: TraceResult, camera: Camera) -> np.ndarray:
    """An RGB image (floats in [0, 1]) of a traced picture: diffuse clay lit from above the camera."""
    forward, right, up = camera.frame()
    light = -forward + 0.6 * up + 0.4 * right
    light /= np.linalg.norm(light)
    normals = np.nan_to_num(result.normals)
    facing = np.where((normals * forward).sum(axis=-1, keepdims=True) > 0, -normals, normals)  # back faces
    diffuse = np.clip((facing * light).sum(axis=-1), 0.0, 1.0)
    fill = np.clip((facing * -forward).sum(axis=-1), 0.0, 1.0)
    intensity = 0.12 + 0.68 * diffuse + 0.2 * fill
    clay = np.array([0.85, 0.72, 0.58])
    rows = np.linspace(1.0, 0.82, camera.height)[:, None, None]
    background = np.broadcast_to(rows * np.array([1.0, 1.0, 1.0]), result.normals.shape)
    image = np.where(result.hit[..., None], intensity[..., None] * clay, background)
    return np.clip(image, 0.0, 1.0)


def depth_image(result: TraceResult) -> np.ndarray:
    """A grey image of a traced picture's depth: near is dark, far is light, misses are white."""
    depth = result.depth
    near, far = (np.nanmin(depth), np.nanmax(depth)) if result.hit.any() else (0.0, 1.0)
    image = np.where(result.hit, 0.1 + 0.8 * (depth - near) / max(far - near, 1e-12), 1.0)
    return np.nan_to_num(image, nan=1.0)


def normal_image(result: TraceResult) -> np.ndarray:
    """An RGB image of a traced picture's unit normals mapped from [-1, 1] to [0, 1]; misses are white."""
    return np.where(result.hit[..., None], 0.5 * (np.nan_to_num(result.normals) + 1.0), 1.0)


def render_traced(field: NeuralField, camera: Camera, path: PathLike, depth: Optional[PathLike] = None,
                  normal_map: Optional[PathLike] = None, max_steps: int = DEFAULT_MAX_STEPS,
                  batch_size: int = DEFAULT_BATCH_SIZE, smoothing: float = SHADING_SMOOTHING,
                  level: Optional[float] = None) -> TraceResult:
    """Sphere-trace ``field`` through ``camera`` and write the shaded image, and optionally the depth and
    normal maps; returns the trace (hits, steps, rays that stepped through). Shading normals are the
    gradient averaged over ``smoothing`` (unit-box units; 0: the exact gradient, which shows a ReLU
    network's linear pieces as facets). ``level``: the level set drawn, world units (default: the one that
    stands for the shape, :func:`~lipsdf.query.contour.default_level`: 0, or one grid cell for an
    unsigned field, whose zero set is the curve or surface itself, too thin to draw)."""
    level = default_level(field) if level is None else level
    result = trace_image(field, camera, max_steps=max_steps, batch_size=batch_size, smoothing=smoothing,
                         level=level)
    save_image(shade(result, camera), path)
    if depth is not None:
        save_image(depth_image(result), depth)
    if normal_map is not None:
        save_image(normal_image(result), normal_map)
    return result


def overview_picture(field: NeuralField, path: PathLike, image_size: int = 512, resolution: int = 512) -> Path:
    """The one picture of a field that ``lipsdf fit`` writes: 2D, the field map with its zero contour (at
    most 512 pixels a side); 3D, a sphere-traced image of ``image_size`` pixels from the default view."""
    if field.dim == 2:
        plot_field_map(field, path, resolution=min(resolution, 512))
        return Path(path)
    centre, radius = shape_framing(field)
    render_traced(field, orbit_camera(centre, radius, width=image_size, height=image_size), path)
    return Path(path)
