"""Layers that are 1-Lipschitz by construction.

* :class:`SLLBlock`: the SDP-based Lipschitz residual layer of Araujo et al.
  (ICLR 2023), ``x -> x - 2 W diag(t)^-1 relu(W^T x + b)`` with
  ``t_i = sum_j |W^T W|_ij q_j / q_i`` and ``q = exp(log_q)``;
  :func:`sll_weights` computes the effective weights of a whole stack of
  them at once (what a GPU training step wants: few, larger kernels).
* :class:`OrthogonalLinear`: a linear layer whose weight is made orthonormal
  (rows or columns, whichever is fewer) by Björck iterations after dividing by
  an upper bound of its spectral norm, so every singular value stays <= 1
  whether or not the iterations have converged.
* :class:`GroupSort`: sorts features in groups (group size 2 is MaxMin, the
  whole width is FullSort); a permutation on each piece, so norm-preserving.
* :class:`UnitNormLinear`: the scalar output layer ``w . x / |w| + b``.
* :data:`ACTIVATIONS`: the activations an SLL block may use. The SLL bound
  holds for any activation whose slope lies in ``[0, 1]`` (Araujo et al. 2023,
  Theorem 3): ReLU (the paper's, piecewise linear, so faceted normals) and
  Softplus ``log(1 + exp(beta x)) / beta`` (slope ``sigmoid(beta x)``; smooth,
  so smooth normals).

Each layer can :meth:`freeze` its effective weights, so inference costs no
more than a plain layer of the same size; training (``unfreeze``) recomputes
them from the parameters at every call.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

_EPS = 1e-12
DEFAULT_BETA = 100.0


def softplus(beta: float):
    """``x -> log(1 + exp(beta x)) / beta``: smooth, slope ``sigmoid(beta x)`` in (0, 1), ReLU as beta grows."""
    return lambda x: torch.nn.functional.softplus(x, beta=beta)


ACTIVATIONS = {"relu": lambda beta: torch.relu, "softplus": softplus}


def activation_function(name: str, beta: float = DEFAULT_BETA):
    """The activation ``name`` of :data:`ACTIVATIONS` (``beta``: Softplus's sharpness); ValueError otherwise.

    Examples
    --------
    >>> float(activation_function("relu")(torch.tensor(-1.0)))
    0.0
    """
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown SLL activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    if not beta > 0:
        raise ValueError(f"the Softplus sharpness beta must be positive, got {beta}")
    return ACTIVATIONS[name](beta)


def full_precision(device: torch.device):
    """A block where autocast is off: the effective weights (normalisations, Björck iterations) are computed
    in float32 even in a mixed-precision training step, so the network trained is the one evaluated, up to
    the rounding of its matrix products."""
    return torch.autocast(device.type, enabled=False)


class _Freezable(nn.Module):
    """A layer whose effective weights can be computed once for inference."""

    def effective(self) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def freeze(self) -> None:
        with torch.no_grad():
            self._frozen = tuple(t.detach().clone() for t in self.effective())

    def unfreeze(self) -> None:
        self._frozen = None

    @property
    def frozen(self) -> bool:
        return getattr(self, "_frozen", None) is not None

    def weights(self) -> tuple[torch.Tensor, ...]:
        frozen: Optional[tuple[torch.Tensor, ...]] = getattr(self, "_frozen", None)
        if frozen is not None:
            return frozen
        with full_precision(next(self.parameters()).device):
            return self.effective()

    def _apply(self, fn, *args, **kwargs):  # keep frozen weights on the module's device and dtype
        module = super()._apply(fn, *args, **kwargs)
        if getattr(self, "_frozen", None) is not None:
            self._frozen = tuple(fn(t) for t in self._frozen)
        return module


class SLLBlock(_Freezable):
    """SDP-based Lipschitz residual layer of width ``width``, with a ReLU or Softplus activation.

    Examples
    --------
    >>> layer = SLLBlock(8)
    >>> x, y = torch.randn(100, 8), torch.randn(100, 8)
    >>> bool(((layer(x) - layer(y)).norm(dim=1) <= (x - y).norm(dim=1) * (1 + 1e-6)).all())
    True
    """

    def __init__(self, width: int, activation: str = "relu", beta: float = DEFAULT_BETA) -> None:
        super().__init__()
        self.activation = activation_function(activation, beta)
        self.weight = nn.Parameter(torch.empty(width, width))
        self.bias = nn.Parameter(torch.empty(width))
        self.log_q = nn.Parameter(torch.zeros(width))
        nn.init.xavier_normal_(self.weight)
        bound = 1.0 / math.sqrt(width)
        nn.init.uniform_(self.bias, -bound, bound)
        self._frozen = None

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W, B)`` such that the layer is ``x + act(x W + b) B``, with ``B = -2 diag(1/t) W^T``."""
        return sll_weights(self.weight, self.log_q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.apply_weights(x, *self.weights())

    def apply_weights(self, x: torch.Tensor, w: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
        """The layer with given effective weights (see :func:`sll_weights`): three kernels, bias and
        residual fused into the two matrix products."""
        return torch.addmm(x, self.activation(torch.addmm(self.bias, x, w)), back)


def sll_weights(weight: torch.Tensor, log_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Effective weights ``(W, B)`` of SLL layers, ``B = -2 diag(1/t) W^T``: of one layer (``(n, n)`` and
    ``(n,)`` parameters) or of a stack of layers at once (``(L, n, n)`` and ``(L, n)``), which is a handful
    of kernels for the whole network instead of a dozen per layer.

    Examples
    --------
    >>> w, log_q = torch.randn(3, 8, 8), torch.randn(3, 8)
    >>> stacked = sll_weights(w, log_q)[1]
    >>> torch.allclose(stacked[1], sll_weights(w[1], log_q[1])[1], atol=1e-6)
    True
    """
    q = torch.exp(log_q)
    t = (torch.abs(weight.transpose(-1, -2) @ weight) * q.unsqueeze(-2)).sum(dim=-1) / q
    return weight, (-2.0 / (t + _EPS)).unsqueeze(-1) * weight.transpose(-1, -2)


def bjorck(weight: torch.Tensor, iterations: int = 15) -> torch.Tensor:
    """Nearest orthonormal matrix (rows or columns) by first-order Björck iterations.

    The input is first divided by ``sqrt(|W|_1 |W|_inf)``, an upper bound of
    its spectral norm, so all singular values start in (0, 1]; the iteration
    ``W <- W (3/2 I - 1/2 W^T W)`` keeps them there and drives them to 1.

    Examples
    --------
    >>> w = bjorck(torch.randn(6, 4, dtype=torch.float64), iterations=40)
    >>> torch.allclose(w.T @ w, torch.eye(4, dtype=torch.float64), atol=1e-8)
    True
    """
    tall = weight.shape[0] >= weight.shape[1]
    w = weight if tall else weight.T
    bound = torch.sqrt(w.abs().sum(dim=0).max() * w.abs().sum(dim=1).max())
    w = w / (bound + _EPS)
    eye = torch.eye(w.shape[1], dtype=w.dtype, device=w.device)
    for _ in range(iterations):
        w = w @ (1.5 * eye - 0.5 * (w.T @ w))
    return w if tall else w.T


class OrthogonalLinear(_Freezable):
    """``x -> x W^T + b`` with ``W`` (out x in) orthonormal by Björck iterations.

    Examples
    --------
    >>> layer = OrthogonalLinear(3, 16)
    >>> x = torch.randn(10, 3)
    >>> bool(((layer(x) - layer.bias).norm(dim=1) <= x.norm(dim=1) * (1 + 1e-5)).all())
    True
    """

    def __init__(self, in_features: int, out_features: int, iterations: int = 15) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.iterations = iterations
        nn.init.orthogonal_(self.weight)
        self._frozen = None

    def effective(self) -> tuple[torch.Tensor]:
        return (bjorck(self.weight, self.iterations),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (w,) = self.weights()
        return x @ w.T + self.bias


class GroupSort(nn.Module):
    """Sort features in groups of ``group_size`` (2: MaxMin; ``None``: FullSort over all features)."""

    def __init__(self, group_size: Optional[int] = 2) -> None:
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.group_size is None:
            return torch.sort(x, dim=-1).values
        if self.group_size == 2:
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack([torch.minimum(a, b), torch.maximum(a, b)], dim=-1).flatten(-2)
        shape = x.shape
        grouped = x.reshape(*shape[:-1], shape[-1] // self.group_size, self.group_size)
        return torch.sort(grouped, dim=-1).values.reshape(shape)


class UnitNormLinear(_Freezable):
    """Scalar output ``x . w / |w| + b``: 1-Lipschitz, with gradient norm exactly 1.

    Examples
    --------
    >>> layer = UnitNormLinear(4)
    >>> x = torch.randn(5, 4, requires_grad=True)
    >>> g, = torch.autograd.grad(layer(x).sum(), x)
    >>> torch.allclose(g.norm(dim=1), torch.ones(5))
    True
    """

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(in_features) / math.sqrt(in_features))
        self.bias = nn.Parameter(torch.zeros(1))
        self._frozen = None

    def effective(self) -> tuple[torch.Tensor]:
        return (self.weight / (self.weight.norm() + _EPS),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (w,) = self.weights()
        return x @ w + self.bias
