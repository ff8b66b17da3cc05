"""A field as GLSL ES 3.00 (WebGL2) source: ``float lipsdf_distance(vec3 p)`` (``vec2`` in 2D), world units.

The default network holds about 85,000 numbers, far more than WebGL2 allows in uniforms, so the weights
travel as a float texture: one ``RGBA32F`` texture :data:`TEXTURE_WIDTH` texels wide, four weights a
texel, in order, row after row (the last row padded with zeros), read with ``texelFetch``. Every step's
weights start at a multiple of four, so layers whose width is a multiple of four read four weights a
fetch and multiply them as a ``vec4``. :func:`glsl_source` writes the
source for a :class:`~lipsdf.export.program.Program` of any size and architecture; the constants
(offsets into the texture, sizes, the normalisation) are written into it, so the only inputs are the
sampler ``lipsdf_weights`` and the point.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lipsdf.export.program import Program, Step

TEXTURE_WIDTH = 1024  # texels a row (4 weights each); WebGL2 guarantees textures of 2048 at least
PER_TEXEL = 4

_HELPERS = """\
vec4 lipsdf_w4(int i) {  // weights i .. i + 3, i a multiple of 4
  int t = i >> 2;
  return texelFetch(lipsdf_weights, ivec2(t % LIPSDF_TEXTURE_WIDTH, t / LIPSDF_TEXTURE_WIDTH), 0);
}
float lipsdf_w(int i) { return lipsdf_w4(i & ~3)[i & 3]; }

vec4 lipsdf_act4(vec4 s, int kind, float beta) {
  if (kind == 0) return max(s, 0.0);
  return max(s, 0.0) + log(1.0 + exp(-beta * abs(s))) / beta;
}

float lipsdf_act(float s, int kind, float beta) {
  if (kind == 0) return max(s, 0.0);
  return max(s, 0.0) + log(1.0 + exp(-beta * abs(s))) / beta;
}

// x <- x + B^T act(W^T x + b), W, b, B from offset o (SLL's residual step)
void lipsdf_sll(inout float x[LIPSDF_WIDTH], int n, int o, int kind, float beta) {
  float h[LIPSDF_WIDTH];
  for (int j = 0; j < n; j++) {
    float s = lipsdf_w(o + n * n + j);
    for (int i = 0; i < n; i++) s += x[i] * lipsdf_w(o + i * n + j);
    h[j] = lipsdf_act(s, kind, beta);
  }
  int back = o + n * n + n;
  for (int k = 0; k < n; k++) {
    float s = 0.0;
    for (int j = 0; j < n; j++) s += h[j] * lipsdf_w(back + j * n + k);
    x[k] += s;
  }
}

// the same, four outputs a fetch (n a multiple of 4)
void lipsdf_sll4(inout float x[LIPSDF_WIDTH], int n, int o, int kind, float beta) {
  float h[LIPSDF_WIDTH];
  for (int j = 0; j < n; j += 4) {
    vec4 s = lipsdf_w4(o + n * n + j);
    for (int i = 0; i < n; i++) s += x[i] * lipsdf_w4(o + i * n + j);
    s = lipsdf_act4(s, kind, beta);
    h[j] = s.x; h[j + 1] = s.y; h[j + 2] = s.z; h[j + 3] = s.w;
  }
  int back = o + n * n + n;
  for (int k = 0; k < n; k += 4) {
    vec4 s = vec4(0.0);
    for (int j = 0; j < n; j++) s += h[j] * lipsdf_w4(back + j * n + k);
    x[k] += s.x; x[k + 1] += s.y; x[k + 2] += s.z; x[k + 3] += s.w;
  }
}

// x <- A x + b, A (m x n) and b from offset o; the rest of x becomes 0
void lipsdf_affine(inout float x[LIPSDF_WIDTH], int n, int m, int o) {
  float y[LIPSDF_WIDTH];
  for (int r = 0; r < LIPSDF_WIDTH; r++) y[r] = 0.0;
  for (int r = 0; r < m; r++) {
    float s = lipsdf_w(o + m * n + r);
    for (int c = 0; c < n; c++) s += lipsdf_w(o + r * n + c) * x[c];
    y[r] = s;
  }
  for (int r = 0; r < LIPSDF_WIDTH; r++) x[r] = y[r];
}

void lipsdf_activate(inout float x[LIPSDF_WIDTH], int n, int kind, float param) {
  for (int i = 0; i < n; i++) x[i] = kind == 2 ? sin(param * x[i]) : lipsdf_act(x[i], kind, param);
}

// GroupSort: each group of g numbers sorted ascending (g = n: the whole vector)
void lipsdf_groupsort(inout float x[LIPSDF_WIDTH], int n, int g) {
  for (int start = 0; start < n; start += g) {
    for (int i = start + 1; i < start + g; i++) {
      float v = x[i];
      int j = i - 1;
      while (j >= start && x[j] > v) { x[j + 1] = x[j]; j--; }
      x[j + 1] = v;
    }
  }
}
"""


def float_literal(value: float) -> str:
    """``value`` as a float32 literal that GLSL and WGSL read back exactly (``1.0``, ``0.1``, ``1e-05``)."""
    text = repr(float(np.float32(value)))
    return text if "e" in text or "." in text else text + ".0"


def _call(step) -> str:
    if step.kind == "sll":
        kind = 0 if step.activation == "relu" else 1
        name = "lipsdf_sll4" if step.size % PER_TEXEL == 0 else "lipsdf_sll"
        return f"{name}(x, {step.size}, {step.offset}, {kind}, {float_literal(step.param or 1.0)});"
    if step.kind == "affine":
        return f"lipsdf_affine(x, {step.size}, {step.out}, {step.offset});"
    if step.kind == "groupsort":
        return f"lipsdf_groupsort(x, {step.size}, {int(step.param) or step.size});"
    kind = {"relu": 0, "softplus": 1, "sine": 2}[step.kind]
    return f"lipsdf_activate(x, {step.size}, {kind}, {float_literal(step.param or 1.0)});"


def described(program: Program, language: str) -> list[str]:
    """The first lines of an exported source's header: what the field is (as the ONNX metadata says)."""
    d = program.description
    bound = "1 (1-Lipschitz by construction)" if d["lipschitz_bound"] else "none (not 1-Lipschitz)"
    return [f"// lipsdf {d['lipsdf_version']} distance field, {language}",
            f"// {d['dim']}D, {d['kind']}, {d['arch']} {d['layers']} x {d['width']}; Lipschitz bound: {bound}",
            f"// world box: {d['box_min']} to {d['box_max']}; values in world units"]


def header(program: Program, weights_name: str) -> str:
    """The comment at the top of the GLSL source: what the field is, and how its weights travel."""
    rows = texture_rows(program)
    return "\n".join([
        *described(program, "GLSL ES 3.00 (WebGL2)"),
        f"// weights: {weights_name}, {len(program.weights)} float32 numbers (little-endian), four a texel of an",
        f"// RGBA32F texture {TEXTURE_WIDTH} x {rows} (texImage2D(TEXTURE_2D, 0, RGBA32F, {TEXTURE_WIDTH}, {rows}, 0,",
        "// RGBA, FLOAT, data padded with zeros to a whole row)) bound to the sampler lipsdf_weights.",
    ])


def texture_rows(program: Program) -> int:
    return max(1, -(-len(program.weights) // (TEXTURE_WIDTH * PER_TEXEL)))


def texture_data(program: Program) -> np.ndarray:
    """The weights padded to the whole texture, float32."""
    data = np.zeros(texture_rows(program) * TEXTURE_WIDTH * PER_TEXEL, dtype="<f4")
    data[:len(program.weights)] = program.weights
    return data


def glsl_source(program: Program, weights_name: str = "the weights file") -> str:
    """GLSL ES 3.00 source of ``float lipsdf_distance(vecD p)`` for ``program`` (no ``#version`` line:
    the including shader has it).

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> from lipsdf.field import NeuralField
    >>> from lipsdf.geometry.normalize import Normalization
    >>> from lipsdf.export.program import field_program
    >>> config = {"arch": "sll", "dim": 3, "layers": 2, "width": 8}
    >>> source = glsl_source(field_program(NeuralField(build_model(config), Normalization(np.zeros(3), 1.0), config)))
    >>> "float lipsdf_distance(vec3 p)" in source, source.count("lipsdf_sll4(x,")
    (True, 2)
    """
    vec = f"vec{program.dim}"
    center = ", ".join(float_literal(c) for c in program.center)
    lines = [header(program, weights_name), "",
             "uniform highp sampler2D lipsdf_weights;",
             f"#define LIPSDF_WIDTH {program.width}",
             f"#define LIPSDF_TEXTURE_WIDTH {TEXTURE_WIDTH}",
             f"const bool LIPSDF_IS_LIPSCHITZ = {'true' if program.description['lipschitz_bound'] else 'false'};",
             "", _HELPERS,
             f"float lipsdf_distance({vec} p) {{",
             f"  {vec} u = (p - {vec}({center})) / {float_literal(program.scale)};",
             "  float x[LIPSDF_WIDTH];",
             "  for (int i = 0; i < LIPSDF_WIDTH; i++) x[i] = 0.0;",
             *distance_body(program, _call, "float")]
    return "\n".join(lines)


def distance_body(program: Program, call: Callable[[Step], str], declare: str) -> list[str]:
    """The end of ``lipsdf_distance`` in GLSL or WGSL, after the vector ``x`` and the unit point ``u`` are
    declared: the point copied in, a ``call`` a step, then the offset and the scale (``declare``: how the
    language declares the value, ``float`` or ``let``)."""
    return [*[f"  x[{i}] = u[{i}];" for i in range(program.dim)],
            *[f"  {call(step)}" for step in program.steps],
            f"  {declare} v = x[0] + {float_literal(program.offset)};",
            f"  return {float_literal(program.scale)} * {'abs(v)' if program.unsigned else 'v'};", "}", ""]
