"""A field's network as a flat program: a few kinds of operation on one vector, and one array of weights.

Every architecture lipsdf trains is a chain of the same few steps on a vector of at most ``width``
numbers: affine maps, element-wise activations, GroupSort, and SLL's residual step
``x + act(x W + b) B``. :func:`field_program` writes a frozen field that way, with the world-to-unit
normalisation and the output's scale, offset and absolute value around it; the ONNX, GLSL and WGSL
exports and the browser view are generated from it, so every network size and architecture exports the
same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from lipsdf.errors import LipsdfError
from lipsdf.field import NeuralField
from lipsdf.nn.layers import DEFAULT_BETA, GroupSort, OrthogonalLinear, SLLBlock
from lipsdf.nn.models import MLP, SIREN, LipschitzMLP, Sine
from lipsdf.version import __version__


@dataclass(frozen=True)
class Step:
    """One operation on the vector ``x`` (``size`` numbers in, ``out`` numbers out).

    ``kind``: ``affine`` (``x <- A x + b``, ``A`` stored ``out x size`` row by row at ``offset``, then
    ``b``), ``sll`` (``x <- x + B^T act(W^T x + b)``: ``W`` then ``b`` then ``B``, each ``size x size`` row
    by row), ``relu``, ``softplus`` (``param``: its sharpness), ``sine`` (``param``: omega), ``groupsort``
    (``param``: the group size, 0 for the whole vector).
    """

    kind: str
    size: int
    out: int
    offset: int = 0
    param: float = 0.0
    activation: str = "relu"


@dataclass
class Program:
    """A network as :class:`Step` s over one float32 weight array, in unit-box coordinates, and what
    turns it into the world field: ``value = scale * post(net((p - center) / scale) + offset)``."""

    dim: int
    width: int
    steps: list[Step]
    weights: np.ndarray
    center: np.ndarray
    scale: float
    offset: float
    unsigned: bool
    description: dict[str, Any] = field(default_factory=dict)

    def arrays(self, step: Step) -> tuple[np.ndarray, ...]:
        """A step's weights in float64: ``(A, b)`` of an affine step, ``(W, b, B)`` of an SLL step."""
        n, m, start = step.size, step.out, step.offset
        if step.kind == "affine":
            flat = self.weights[start:start + m * n + m].astype(np.float64)
            return flat[:m * n].reshape(m, n), flat[m * n:]
        if step.kind == "sll":
            flat = self.weights[start:start + 2 * n * n + n].astype(np.float64)
            return flat[:n * n].reshape(n, n), flat[n * n:n * n + n], flat[n * n + n:].reshape(n, n)
        return ()

    def evaluate(self, points: np.ndarray) -> np.ndarray:
        """The program run in NumPy (float64): the reference the generated code is tested against."""
        x = (np.asarray(points, dtype=np.float64) - self.center) / self.scale
        x = np.pad(x, ((0, 0), (0, self.width - self.dim)))
        for step in self.steps:
            n, m = step.size, step.out
            if step.kind == "affine":
                a, b = self.arrays(step)
                x = np.pad(x[:, :n] @ a.T + b, ((0, 0), (0, self.width - m)))
            elif step.kind == "sll":
                weight, bias, back = self.arrays(step)
                x = x + _activation(x @ weight + bias, step.activation, step.param) @ back
            elif step.kind in ("relu", "softplus"):
                x = _activation(x, step.kind, step.param)
            elif step.kind == "sine":
                x = np.sin(step.param * x)
            else:
                group = int(step.param) or n
                x = np.concatenate([np.sort(x[:, :n].reshape(len(x), -1, group), axis=2).reshape(len(x), n),
                                    x[:, n:]], axis=1)
        value = x[:, 0] + self.offset
        return self.scale * (np.abs(value) if self.unsigned else value)


def _activation(x: np.ndarray, kind: str, beta: float) -> np.ndarray:
    if kind == "relu":
        return np.maximum(x, 0.0)
    return np.maximum(x, 0.0) + np.log1p(np.exp(-beta * np.abs(x))) / beta


ALIGNMENT = 4  # every step's weights start at a multiple of 4: a shader reads them four at a time


class _Writer:
    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, *arrays: torch.Tensor) -> int:
        if self.size % ALIGNMENT:
            self.parts.append(np.zeros(ALIGNMENT - self.size % ALIGNMENT))
            self.size += len(self.parts[-1])
        offset = self.size
        for array in arrays:
            flat = array.detach().double().cpu().numpy().reshape(-1)
            self.parts.append(flat)
            self.size += len(flat)
        return offset


def _affine(writer: _Writer, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Step:
    out, size = weight.shape
    bias = torch.zeros(out) if bias is None else bias.reshape(-1)
    return Step("affine", size, out, writer.add(weight, bias))


def _steps(model: nn.Module, writer: _Writer, beta: float) -> list[Step]:
    if isinstance(model, LipschitzMLP):
        steps = []
        for layer in model.body:
            if isinstance(layer, SLLBlock):
                w, back = layer.weights()
                activation = "relu" if layer.activation is torch.relu else "softplus"
                steps.append(Step("sll", model.width, model.width, writer.add(w, layer.bias, back), beta,
                                  activation))
            elif isinstance(layer, OrthogonalLinear):
                steps.append(_affine(writer, layer.weights()[0], layer.bias))
            elif isinstance(layer, GroupSort):
                steps.append(Step("groupsort", model.width, model.width, param=float(layer.group_size or 0)))
        (head,) = model.head.weights()
        return steps + [_affine(writer, head.reshape(1, -1), model.head.bias)]
    if isinstance(model, MLP):
        steps = []
        for layer in model.net:
            if isinstance(layer, nn.Linear):
                steps.append(_affine(writer, layer.weight, layer.bias))
            elif isinstance(layer, nn.ReLU):
                steps.append(Step("relu", steps[-1].out, steps[-1].out))
            else:
                steps.append(Step("softplus", steps[-1].out, steps[-1].out, param=float(layer.beta)))
        return steps
    if isinstance(model, SIREN):
        steps = []
        for layer in model.net:
            assert isinstance(layer, Sine)
            steps.append(_affine(writer, layer.linear.weight, layer.linear.bias))
            steps.append(Step("sine", steps[-1].out, steps[-1].out, param=float(layer.omega)))
        return steps + [_affine(writer, model.head.weight, model.head.bias)]
    raise LipsdfError(f"cannot export a {type(model).__name__} network")


def describe(field: NeuralField) -> dict[str, Any]:
    """What an exported field says about itself: lipsdf's version, the dimension, signed or unsigned, the
    architecture, the Lipschitz bound (1, or None for networks without one) and the world box it was
    trained in."""
    center, scale = np.asarray(field.normalization.center, dtype=float), float(field.normalization.scale)
    config = field.model_config
    return {"lipsdf_version": __version__, "dim": field.dim, "kind": field.kind, "arch": field.arch,
            "layers": config.get("layers"), "width": config.get("width"),
            "lipschitz_bound": 1.0 if field.is_lipschitz else None,
            "box_min": (center - scale).tolist(), "box_max": (center + scale).tolist()}


def field_program(field: NeuralField) -> Program:
    """The field as a :class:`Program` (its frozen weights, in float32).

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.geometry.normalize import Normalization
    >>> config = {"arch": "sll", "dim": 2, "layers": 2, "width": 8}
    >>> field = NeuralField(build_model(config), Normalization(np.zeros(2), 2.0), config)
    >>> program = field_program(field)
    >>> points = np.random.default_rng(0).normal(size=(5, 2))
    >>> bool(np.allclose(program.evaluate(points), field(points), atol=1e-5))
    True
    """
    model = field.module.model
    writer = _Writer()
    with torch.no_grad():
        steps = _steps(model, writer, float(field.model_config.get("beta", DEFAULT_BETA)))
    width = max([field.dim] + [max(s.size, s.out) for s in steps])
    weights = np.concatenate(writer.parts).astype(np.float32) if writer.parts else np.zeros(0, np.float32)
    return Program(field.dim, width, steps, weights, np.asarray(field.normalization.center, dtype=np.float64),
                   float(field.normalization.scale), float(field.offset), field.kind == "unsigned",
                   describe(field))
