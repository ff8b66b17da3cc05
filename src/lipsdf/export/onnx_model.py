"""A field as an ONNX model: input ``points`` (float32 ``[N, dim]``, world units, N dynamic), output
``distance`` (float32 ``[N]``, world units), the weights frozen.

The graph is written from the field's :class:`~lipsdf.export.program.Program`, the same description the
GLSL and WGSL exports are generated from, with its constants folded where that saves a node a layer: the
world-to-unit scale goes into the first matrix (with an SLL network, the matrix that pads the input to the
network's width), the output's offset and scale into the last. PyTorch's exporter traced the torch
module instead, zero padding and all, and onnxruntime ran that graph at half the speed of this one on a
small network (``benchmarks/results/export.md``). Checked with ``onnx.checker``; the model's metadata
says what the field is (:func:`~lipsdf.export.program.describe`). Needs ``pip install 'lipsdf[export]'``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lipsdf.errors import LipsdfError
from lipsdf.export.program import Program, field_program
from lipsdf.field import NeuralField
from lipsdf.files import PathLike, atomic_output

OPSET = 17
IR_VERSION = 8  # the oldest that opset 17 allows, so that older onnxruntimes (1.17) load the model


def _onnx():
    try:
        import onnx
    except ImportError:
        raise LipsdfError("exporting to ONNX needs the onnx package: pip install 'lipsdf[export]'") from None
    return onnx


class _Graph:
    """Nodes and constants of the graph being written, each value named once."""

    def __init__(self, onnx: Any) -> None:
        self.onnx, self.nodes, self.constants = onnx, [], []

    def constant(self, value: np.ndarray, dtype=np.float32) -> str:
        name = f"c{len(self.constants)}"
        self.constants.append(self.onnx.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(self, op: str, *inputs: str, outputs: int = 1, **attributes: Any) -> str:
        """Add a node; returns the name of its first output."""
        names = [f"v{len(self.nodes)}_{k}" for k in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), names, **attributes))
        return names[0]

    def activation(self, x: str, kind: str, beta: float) -> str:
        if kind == "relu":
            return self.node("Relu", x)
        # softplus of sharpness beta, log(1 + exp(beta x)) / beta (onnxruntime's Softplus does not overflow)
        softplus = self.node("Softplus", self.node("Mul", x, self.constant(beta)))
        return self.node("Mul", softplus, self.constant(1.0 / beta))


def program_graph(program: Program, onnx: Any):
    """The ONNX graph of ``program``: ``scale * post(net((points - center) / scale) + offset)``."""
    graph = _Graph(onnx)
    x = graph.node("Sub", "points", graph.constant(program.center))
    columns, unscaled = program.dim, True  # x is shifted, and not yet divided by the scale
    last = len(program.steps) - 1
    for index, step in enumerate(program.steps):
        if step.kind == "affine":
            a, b = program.arrays(step)
            a = a[:, :columns] / (program.scale if unscaled else 1.0)  # columns beyond x's are its zero padding
            if index == last:  # the output: its offset and scale folded in
                a, b = a * program.scale, (b + program.offset) * program.scale
            x = graph.node("Gemm", x, graph.constant(a), graph.constant(b), transB=1)
            columns, unscaled = step.out, False
        elif step.kind == "sll":
            w, b, back = program.arrays(step)
            if columns < step.size or unscaled:  # pad x to the layer's width (and divide it by the scale)
                embed = np.eye(columns, step.size) / (program.scale if unscaled else 1.0)
                x = graph.node("MatMul", x, graph.constant(embed))
                columns, unscaled = step.size, False
            inner = graph.activation(graph.node("Gemm", x, graph.constant(w), graph.constant(b)), step.activation,
                                     step.param)
            x = graph.node("Gemm", inner, graph.constant(back), x)
        elif unscaled:
            raise LipsdfError(f"cannot export a network that starts with a {step.kind} step")
        elif step.kind in ("relu", "softplus"):
            x = graph.activation(x, step.kind, step.param)
        elif step.kind == "sine":
            x = graph.node("Sin", graph.node("Mul", x, graph.constant(step.param)))
        else:  # groupsort: ascending within groups of `group` numbers
            group = int(step.param) or step.size
            grouped = graph.node("Reshape", x, graph.constant([-1, step.size // group, group], np.int64))
            ordered = graph.node("TopK", grouped, graph.constant([group], np.int64), outputs=2, axis=-1, largest=0,
                                 sorted=1)  # its second output, the indices, goes unused
            x = graph.node("Reshape", ordered, graph.constant([-1, step.size], np.int64))
    if program.steps[last].kind != "affine" or program.steps[last].out != 1:
        raise LipsdfError("cannot export a network whose last step is not an affine map to one value")
    if program.unsigned:
        x = graph.node("Abs", x)
    graph.nodes.append(onnx.helper.make_node("Reshape", [x, graph.constant([-1], np.int64)], ["distance"]))
    floats = onnx.TensorProto.FLOAT
    return onnx.helper.make_graph(graph.nodes, "lipsdf_field",
                                  [onnx.helper.make_tensor_value_info("points", floats, ["n", program.dim])],
                                  [onnx.helper.make_tensor_value_info("distance", floats, ["n"])], graph.constants)


def write_onnx(field: NeuralField, path: PathLike) -> Path:
    """Write ``field`` to ``path`` as ONNX (atomically); returns the path."""
    onnx = _onnx()
    program = field_program(field)
    model = onnx.helper.make_model(program_graph(program, onnx), opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="lipsdf", ir_version=IR_VERSION)
    for key, value in program.description.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, json.dumps(value)
    model.doc_string = (f"lipsdf {field.dim}D {field.kind} distance field ({field.arch}); input points "
                        "[N, dim] in world units, output distance [N] in world units")
    onnx.checker.check_model(model)
    path = Path(path)
    with atomic_output(path) as tmp:
        onnx.save(model, str(tmp))
    return path
