"""A field as WGSL (WebGPU) source: ``fn lipsdf_distance(p: vec3f) -> f32`` (``vec2f`` in 2D), world units.

WebGPU has storage buffers, so the weights travel as one: the same float32 file as the GLSL export's
(``NAME.weights.bin``), bound as ``var<storage, read> lipsdf_weights: array<f32>`` at the group and
binding the source declares (0 and 0 unless asked otherwise). :func:`wgsl_source` writes the source for a
:class:`~lipsdf.export.program.Program` of any size and architecture, its constants (offsets, sizes, the
normalisation) written in, so the only inputs are that buffer and the point. The vector the network runs
on is a function-scope array, passed to each step by pointer.
"""

from __future__ import annotations

import numpy as np

from lipsdf.export.glsl import described, distance_body, float_literal
from lipsdf.export.program import Program

_HELPERS = """\
alias lipsdf_vector = array<f32, LIPSDF_WIDTH>;

fn lipsdf_act(s: f32, kind: i32, beta: f32) -> f32 {
  if (kind == 0) { return max(s, 0.0); }
  return max(s, 0.0) + log(1.0 + exp(-beta * abs(s))) / beta;
}

// x <- x + B^T act(W^T x + b), W, b, B from offset o (SLL's residual step)
fn lipsdf_sll(x: ptr<function, lipsdf_vector>, n: i32, o: i32, kind: i32, beta: f32) {
  var h: lipsdf_vector;
  for (var j = 0; j < n; j++) {
    var s = lipsdf_weights[o + n * n + j];
    for (var i = 0; i < n; i++) { s += (*x)[i] * lipsdf_weights[o + i * n + j]; }
    h[j] = lipsdf_act(s, kind, beta);
  }
  let back = o + n * n + n;
  for (var k = 0; k < n; k++) {
    var s = 0.0;
    for (var j = 0; j < n; j++) { s += h[j] * lipsdf_weights[back + j * n + k]; }
    (*x)[k] += s;
  }
}

// x <- A x + b, A (m x n) and b from offset o; the rest of x becomes 0
fn lipsdf_affine(x: ptr<function, lipsdf_vector>, n: i32, m: i32, o: i32) {
  var y: lipsdf_vector;
  for (var r = 0; r < m; r++) {
    var s = lipsdf_weights[o + m * n + r];
    for (var c = 0; c < n; c++) { s += lipsdf_weights[o + r * n + c] * (*x)[c]; }
    y[r] = s;
  }
  *x = y;
}

fn lipsdf_activate(x: ptr<function, lipsdf_vector>, n: i32, kind: i32, param: f32) {
  for (var i = 0; i < n; i++) {
    if (kind == 2) { (*x)[i] = sin(param * (*x)[i]); } else { (*x)[i] = lipsdf_act((*x)[i], kind, param); }
  }
}

// GroupSort: each group of g numbers sorted ascending (g = n: the whole vector)
fn lipsdf_groupsort(x: ptr<function, lipsdf_vector>, n: i32, g: i32) {
  for (var start = 0; start < n; start += g) {
    for (var i = start + 1; i < start + g; i++) {
      let v = (*x)[i];
      var j = i - 1;
      while (j >= start && (*x)[j] > v) { (*x)[j + 1] = (*x)[j]; j--; }
      (*x)[j + 1] = v;
    }
  }
}
"""


def _call(step) -> str:
    if step.kind == "sll":
        kind = 0 if step.activation == "relu" else 1
        return f"lipsdf_sll(&x, {step.size}, {step.offset}, {kind}, {float_literal(step.param or 1.0)});"
    if step.kind == "affine":
        return f"lipsdf_affine(&x, {step.size}, {step.out}, {step.offset});"
    if step.kind == "groupsort":
        return f"lipsdf_groupsort(&x, {step.size}, {int(step.param) or step.size});"
    kind = {"relu": 0, "softplus": 1, "sine": 2}[step.kind]
    return f"lipsdf_activate(&x, {step.size}, {kind}, {float_literal(step.param or 1.0)});"


def wgsl_source(program: Program, weights_name: str = "the weights file", group: int = 0, binding: int = 0) -> str:
    """WGSL source of ``fn lipsdf_distance(p: vecDf) -> f32`` for ``program``, reading its weights from the
    storage buffer at ``@group(group) @binding(binding)``.

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.field import NeuralField
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.export.program import field_program
    >>> config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    >>> source = wgsl_source(field_program(NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config)))
    >>> "fn lipsdf_distance(p: vec3f) -> f32" in source, source.count("lipsdf_sll(&x,")
    (True, 2)
    """
    vec = f"vec{program.dim}f"
    center = ", ".join(float_literal(c) for c in program.center)
    lines = [*described(program, "WGSL (WebGPU)"),
             f"// weights: {weights_name}, float32 numbers (little-endian), in a storage buffer bound at",
             f"// @group({group}) @binding({binding}) (the file is padded with zeros; bind it whole).", "",
             f"@group({group}) @binding({binding}) var<storage, read> lipsdf_weights: array<f32>;",
             f"const LIPSDF_WIDTH = {program.width};",
             f"const LIPSDF_IS_LIPSCHITZ = {'true' if program.description['lipschitz_bound'] else 'false'};",
             "", _HELPERS,
             f"fn lipsdf_distance(p: {vec}) -> f32 {{",
             f"  let u = (p - {vec}({center})) / {float_literal(program.scale)};",
             "  var x: lipsdf_vector;",
             *distance_body(program, _call, "let")]
    return "\n".join(lines)
