"""NeuralField: a trained network with its normalisation, answering in world units.

A field file (``.pt``) holds the model config, the weights, the
:class:`~lipsdf.geometry.normalize.Normalization`, the dataset's metadata and
a training summary; it is read with ``torch.load(weights_only=True)``, so
loading one never runs arbitrary code.

In world coordinates the field is ``f(x) = scale * g((x - center) / scale)``
where ``g`` is the network; a uniform scale keeps the Lipschitz constant, so a
1-Lipschitz network gives a 1-Lipschitz world field, and gradients are the
same in both coordinates. A signed field is ``g + offset``, where the offset
(``lipsdf`` recipe) puts the network's median on the shape's surface samples
at zero. An unsigned field is ``|g + offset|``: the hKR loss
on surface/other labels leaves the surface at about ``-margin``, and the
offset (the final margin) moves it back to zero; a field fitted to unsigned
distances rounds its crease on the shape off a little above zero, and the
offset (minus the network's median on the shape's surface samples) moves that
back to zero. The absolute value (still 1-Lipschitz) also makes sign-agnostic
fits of open shapes non-negative.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from lipsdf.version import __version__
from lipsdf.errors import InputFileError, LipsdfError
from lipsdf.files import PathLike, atomic_output
from lipsdf.geometry.normalize import Normalization
from lipsdf.nn.models import LIPSCHITZ_ARCHITECTURES, build_model

FORMAT = "lipsdf-field"
FORMAT_VERSION = 1
FIELD_KINDS = ("signed", "unsigned")
DEFAULT_BATCH_SIZE = 8192  # on CPU, larger batches fall out of cache: 65536 measured 3x slower (SLL 20x128)
# What the default batch size means on a GPU, where small batches leave it idle between launches.
CUDA_BATCH_SIZE = 1 << 18


def resolve_device(device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when present, else CPU. A CUDA request without CUDA is a clear error."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise LipsdfError(f"unknown device {device!r}; use cpu, cuda or cuda:N", option="device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise LipsdfError("a CUDA device was asked for, but this machine has no usable CUDA GPU; use the CPU",
                          option="device")
    return device


class WorldField(nn.Module):
    """The network as a torch function of world coordinates (differentiable, on any device)."""

    def __init__(self, model: nn.Module, normalization: Normalization, kind: str, offset: float) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("center", torch.as_tensor(normalization.center, dtype=torch.float32))
        self.scale = float(normalization.scale)
        self.unsigned = kind == "unsigned"
        self.offset = float(offset)

    def unit(self, unit_points: torch.Tensor) -> torch.Tensor:
        """Value in unit-box units at unit-box points (what the network was trained on)."""
        values = self.model(unit_points) + self.offset
        return values.abs() if self.unsigned else values

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.scale * self.unit((points - self.center) / self.scale)


class NeuralField:
    """A trained distance field in world units.

    Parameters
    ----------
    model : the network, a function of unit-box points; the field takes it over (moves and freezes it).
    normalization : world <-> unit box.
    model_config : the dict :func:`~lipsdf.nn.models.build_model` rebuilds the model from.
    kind : ``signed`` (negative inside) or ``unsigned`` (>= 0, zero on the shape).
    offset : added to the network's value (unit-box units), see the module docstring.
    metadata : the dataset's metadata (shape kind, source file, sampling).
    summary : training summary (loss, epochs, final test errors, time).

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 10.0), config)
    >>> field(np.array([[1.0, 2.0], [3.0, 4.0]])).shape, field.gradient(np.zeros((5, 2))).shape
    ((2,), (5, 2))
    """

    def __init__(self, model: nn.Module, normalization: Normalization, model_config: dict[str, Any],
                 kind: str = "signed", offset: float = 0.0, metadata: Optional[dict] = None,
                 summary: Optional[dict] = None, device: Optional[Union[str, torch.device]] = "cpu") -> None:
        if kind not in FIELD_KINDS:
            raise LipsdfError(f"unknown field kind {kind!r}; expected signed or unsigned")
        self.model_config = dict(model_config)
        self.normalization = normalization
        self.kind = kind
        self.offset = float(offset)
        self.metadata = dict(metadata or {})
        self.summary = dict(summary or {})
        self.device = resolve_device(device)
        model = model.to(self.device).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        if self.is_lipschitz:
            model.freeze()
        self.module = WorldField(model, normalization, kind, offset).to(self.device)

    # ------------------------------------------------------------------ properties

    @property
    def dim(self) -> int:
        return self.normalization.dim

    @property
    def arch(self) -> str:
        return self.model_config.get("arch", "sll")

    @property
    def is_lipschitz(self) -> bool:
        """True when the network is 1-Lipschitz by construction (sll, ortho)."""
        return self.arch in LIPSCHITZ_ARCHITECTURES

    def to(self, device: Union[str, torch.device]) -> "NeuralField":
        """Move the field to ``device``; returns self."""
        self.device = resolve_device(device)
        self.module.to(self.device)
        return self

    def double(self) -> "NeuralField":
        """A float64 copy of the field (the same network, its weights converted), e.g. to measure slopes
        without float32 rounding posing as one."""
        twin = copy.copy(self)
        twin.module = copy.deepcopy(self.module).double()
        return twin

    # ------------------------------------------------------------------ queries on tensors (unit box, on device)

    def batch_size(self, requested: int = DEFAULT_BATCH_SIZE) -> int:
        """Points per network call: ``requested``, except that the default means ``CUDA_BATCH_SIZE`` on a GPU.

        Examples
        --------
        >>> from lipsdf.nn import build_model
        >>> from lipsdf.geometry.normalize import Normalization
        >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
        >>> NeuralField(build_model(config), Normalization(np.zeros(2), 1.0), config, device="cpu").batch_size()
        8192
        """
        return CUDA_BATCH_SIZE if self.device.type == "cuda" and requested == DEFAULT_BATCH_SIZE else requested

    def unit_values(self, unit_points: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE) -> torch.Tensor:
        """Values in unit-box units at unit-box points ``(n, d)`` (a tensor on the field's device), in batches."""
        with torch.no_grad():
            parts = [self.module.unit(batch) for batch in unit_points.split(self.batch_size(batch_size))]
        return torch.cat(parts) if parts else unit_points.new_zeros(0)

    def unit_values_and_gradients(self, unit_points: torch.Tensor, batch_size: int = DEFAULT_BATCH_SIZE
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Values (unit-box units) and gradients at unit-box points, in batches."""
        values, gradients = [], []
        for batch in unit_points.split(self.batch_size(batch_size)):
            batch = batch.detach().requires_grad_(True)
            with torch.enable_grad():
                value = self.module.unit(batch)
                (gradient,) = torch.autograd.grad(value.sum(), batch)
            values.append(value.detach())
            gradients.append(gradient)
        if not values:
            return unit_points.new_zeros(0), unit_points.new_zeros((0, unit_points.shape[1]))
        return torch.cat(values), torch.cat(gradients)

    # ------------------------------------------------------------------ queries on arrays (world or unit box)

    def unit_tensor(self, points: np.ndarray, unit: bool = False) -> torch.Tensor:
        """``(n, d)`` points (world units, or unit-box ones with ``unit``) as float32 unit-box points on the device.

        The shift happens in float64, then the values are rounded to the network's float32."""
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self.dim:
            raise LipsdfError(f"expected points of shape (n, {self.dim}), got {points.shape}")
        unit_points = points if unit else self.normalization.to_unit(points)
        return torch.from_numpy(unit_points.astype(np.float32)).to(self.device)

    def __call__(self, points: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, unit: bool = False) -> np.ndarray:
        """Field values at ``(n, d)`` points: world distances at world points, or with ``unit`` unit-box values
        at unit-box points."""
        values = self.unit_values(self.unit_tensor(points, unit), batch_size).double().cpu().numpy()
        return values if unit else values * self.normalization.scale

    def gradient(self, points: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, unit: bool = False) -> np.ndarray:
        """Gradient ``(n, d)`` of the field at world (or, with ``unit``, unit-box) points; the same in both."""
        _, gradients = self.unit_values_and_gradients(self.unit_tensor(points, unit), batch_size)
        return gradients.double().cpu().numpy()

    def normals(self, points: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE, unit: bool = False) -> np.ndarray:
        """Unit normals ``(n, d)``: the normalised gradient (zero where the gradient vanishes)."""
        return unit_vectors(self.gradient(points, batch_size, unit))

    # ------------------------------------------------------------------ files

    def state(self) -> dict[str, Any]:
        """Everything a field file holds, as tensors and plain values (safe for ``weights_only`` loading)."""
        model = self.module.model
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "lipsdf_version": __version__,
            "kind": self.kind,
            "offset": self.offset,
            "model_config": json.dumps(self.model_config),
            "normalization": json.dumps(self.normalization.to_dict()),
            "metadata": json.dumps(self.metadata),
            "summary": json.dumps(self.summary),
            "weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        }

    def save(self, path: PathLike, training: Optional[dict[str, Any]] = None) -> Path:
        """Write the field to one ``.pt`` file, atomically; returns the path. ``training``: the state a
        checkpoint carries for resuming (see :func:`lipsdf.training.read_checkpoint`)."""
        path = Path(path)
        if path.suffix.lower() != ".pt":
            raise InputFileError(f"field files end in .pt, got {path.name}")
        state = self.state() if training is None else dict(self.state(), training=training)
        with atomic_output(path) as tmp:
            torch.save(state, tmp)
        return path

    @classmethod
    def load(cls, path: PathLike, device: Optional[Union[str, torch.device]] = "cpu") -> "NeuralField":
        """Read a field written by :meth:`save` (``weights_only=True``: no arbitrary unpickling)."""
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"no such field file: {path}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols: the error says it
                state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for foreign or damaged files
            raise InputFileError(f"{path} is not a readable lipsdf field file ({type(exc).__name__}); "
                                 "make one with `lipsdf train`") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise InputFileError(f"{path} is not a lipsdf field file; make one with `lipsdf train`")
        if state.get("format_version") != FORMAT_VERSION:
            raise InputFileError(f"{path} has field format version {state.get('format_version')}, "
                                 f"this lipsdf reads version {FORMAT_VERSION}; train it again")
        model, normalization, model_config, entries = _checked_contents(path, state)
        return cls(model, normalization, model_config, device=device, **entries)



def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero.

    Examples
    --------
    >>> unit_vectors(np.array([[3.0, 4.0], [0.0, 0.0]])).tolist()
    [[0.6, 0.8], [0.0, 0.0]]
    """
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _checked_contents(path: Path, state: dict[str, Any]):
    """The model, normalisation, model config and other entries of a field file, each checked against the
    others before anything is built from them: a file from anywhere cannot make lipsdf allocate or run more
    than it holds."""
    def refuse(what: str) -> InputFileError:
        return InputFileError(f"{path} is not a valid lipsdf field: {what}")

    try:
        model_config, normalization_data, metadata, summary = (
            json.loads(state[key]) for key in ("model_config", "normalization", "metadata", "summary"))
        weights, kind, offset = state["weights"], state["kind"], float(state["offset"])
    except (KeyError, TypeError, ValueError) as exc:
        raise refuse(f"missing or malformed entry ({type(exc).__name__}: {exc})") from None
    if not isinstance(model_config, dict) or not isinstance(weights, dict):
        raise refuse("the model config or the weights are not tables")
    if kind not in FIELD_KINDS or not np.isfinite(offset):
        raise refuse(f"kind {kind!r} and offset {offset} are not a signed or unsigned field")
    try:
        normalization = Normalization.from_dict(normalization_data)
        if model_config.get("dim") != normalization.dim:
            raise refuse(f"the model takes {model_config.get('dim')}D input but the normalisation is "
                         f"{normalization.dim}D")
        stored_size = sum(t.numel() for t in weights.values() if isinstance(t, torch.Tensor))
        implied_size = int(model_config.get("layers", 1)) * int(model_config.get("width", 1)) ** 2
        if implied_size > 4 * stored_size + 100_000:  # every network here holds about layers x width^2 numbers
            raise refuse(f"its weights do not match its model config ({stored_size} numbers stored for "
                         f"{model_config.get('layers')} layers of width {model_config.get('width')})")
        model = build_model(model_config)
    except InputFileError:
        raise
    except (LipsdfError, KeyError, TypeError, ValueError) as exc:
        raise refuse(f"{exc}") from None
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    stored = {name: tuple(t.shape) if isinstance(t, torch.Tensor) else None for name, t in weights.items()}
    if stored != expected:
        differ = sorted(set(stored.items()) ^ set(expected.items()))[:3]
        raise refuse(f"its weights do not match its model config ({model_config.get('arch')} "
                     f"{model_config.get('layers')} x {model_config.get('width')}; first differences: {differ})")
    if not all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point()):
        raise refuse("its weights hold NaN or infinite values")
    model.load_state_dict(weights)
    entries = {"kind": kind, "offset": offset, "metadata": metadata if isinstance(metadata, dict) else {},
               "summary": summary if isinstance(summary, dict) else {}}
    return model, normalization, model_config, entries
