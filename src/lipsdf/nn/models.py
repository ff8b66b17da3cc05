"""Networks: the 1-Lipschitz :class:`LipschitzMLP` and the baselines :class:`MLP` and :class:`SIREN`.

Every model maps ``(n, dim)`` points to ``(n,)`` values and is built from a
plain config dict by :func:`build_model` (the dict a field file stores).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from lipsdf.errors import LipsdfError
from lipsdf.nn.layers import (DEFAULT_BETA, GroupSort, OrthogonalLinear, SLLBlock, UnitNormLinear, _Freezable,
                              activation_function, full_precision, sll_weights)

ARCHITECTURES = ("sll", "ortho", "mlp", "siren")
LIPSCHITZ_ARCHITECTURES = ("sll", "ortho")


class LipschitzMLP(nn.Module):
    """A network that is 1-Lipschitz by construction.

    ``arch="sll"``: the input is zero-padded to ``width``, then ``layers`` SLL
    residual blocks and a unit-norm affine output (the paper's default,
    20 x 128), with ``activation`` ``relu`` (the paper's) or ``softplus``
    (sharpness ``beta``). ``arch="ortho"``: Björck-orthonormal linear layers with
    GroupSort activations (``group_size`` 2 = MaxMin, ``None`` = FullSort).

    Examples
    --------
    >>> net = LipschitzMLP(dim=3, arch="sll", layers=4, width=16)
    >>> net(torch.randn(10, 3)).shape
    torch.Size([10])
    """

    def __init__(self, dim: int, arch: str = "sll", layers: int = 20, width: int = 128,
                 group_size: int | None = 2, activation: str = "relu", beta: float = DEFAULT_BETA) -> None:
        super().__init__()
        if arch not in LIPSCHITZ_ARCHITECTURES:
            raise LipsdfError(f"unknown Lipschitz architecture {arch!r}; choose sll or ortho")
        if width < dim:
            raise LipsdfError(f"width ({width}) must be at least the input dimension ({dim})")
        if group_size is not None and width % group_size:
            raise LipsdfError(f"width ({width}) must be a multiple of the GroupSort group size ({group_size})")
        if arch == "ortho" and activation != "relu":
            raise LipsdfError("the ortho architecture's activation is GroupSort; the activation option is for sll")
        try:
            activation_function(activation, beta)
        except ValueError as error:  # the layers' own check (for plain torch use), said in lipsdf's terms
            raise LipsdfError(str(error)) from None
        self.dim, self.arch, self.width = dim, arch, width
        if arch == "sll":
            self.body = nn.Sequential(*[SLLBlock(width, activation, beta) for _ in range(layers)])
        else:
            modules: list[nn.Module] = [OrthogonalLinear(dim, width), GroupSort(group_size)]
            for _ in range(max(layers - 1, 0)):
                modules += [OrthogonalLinear(width, width), GroupSort(group_size)]
            self.body = nn.Sequential(*modules)
        self.head = UnitNormLinear(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.arch != "sll":
            return self.head(self.body(x))  # UnitNormLinear already gives shape (n,)
        x = nn.functional.pad(x, (0, self.width - self.dim))
        blocks = list(self.body)
        if blocks[0].frozen:
            weights = [block.weights() for block in blocks]
        else:  # training: every layer's effective weights in one batched computation
            with full_precision(x.device):
                w, back = sll_weights(torch.stack([block.weight for block in blocks]),
                                      torch.stack([block.log_q for block in blocks]))
            weights = list(zip(w.unbind(0), back.unbind(0)))
        for block, (w, back) in zip(blocks, weights):
            x = block.apply_weights(x, w, back)
        return self.head(x)

    def freeze(self) -> "LipschitzMLP":
        """Compute every layer's normalised weights once; for inference. Returns self."""
        for module in self.modules():
            if isinstance(module, _Freezable):
                module.freeze()
        return self

    def unfreeze(self) -> "LipschitzMLP":
        for module in self.modules():
            if isinstance(module, _Freezable):
                module.unfreeze()
        return self


class MLP(nn.Module):
    """Plain multilayer perceptron (ReLU or Softplus), a baseline with no Lipschitz bound.

    ``init="geometric"`` starts it as the signed distance of a sphere of
    ``radius`` (the initialisation SAL needs to learn a signed field from
    unsigned data).

    Examples
    --------
    >>> MLP(dim=2, layers=3, width=8)(torch.randn(4, 2)).shape
    torch.Size([4])
    """

    def __init__(self, dim: int, layers: int = 8, width: int = 256, activation: str = "relu",
                 init: str = "default", radius: float = 0.5) -> None:
        super().__init__()
        activations = {"relu": nn.ReLU, "softplus": lambda: nn.Softplus(beta=100)}
        if activation not in activations:
            raise LipsdfError(f"unknown activation {activation!r}; choose relu or softplus")
        if init not in ("default", "geometric"):
            raise LipsdfError(f"unknown MLP init {init!r}; choose default or geometric")
        sizes = [dim] + [width] * layers
        modules: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            modules += [nn.Linear(a, b), activations[activation]()]
        self.net = nn.Sequential(*modules, nn.Linear(sizes[-1], 1))
        if init == "geometric":
            self._geometric_init(radius)

    def _geometric_init(self, radius: float) -> None:
        """Start close to the signed distance of a sphere of ``radius`` (Atzmon and Lipman 2020), as SAL needs."""
        linears = [m for m in self.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for layer in linears[:-1]:
                nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0) / math.sqrt(layer.out_features))
                nn.init.zeros_(layer.bias)
            last = linears[-1]
            nn.init.normal_(last.weight, math.sqrt(math.pi) / math.sqrt(last.in_features), 1e-5)
            last.bias.fill_(-radius)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)


class Sine(nn.Module):
    def __init__(self, in_features: int, out_features: int, omega: float, first: bool) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.omega = omega
        bound = 1.0 / in_features if first else math.sqrt(6.0 / in_features) / omega
        nn.init.uniform_(self.linear.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * self.linear(x))


class SIREN(nn.Module):
    """Sinusoidal representation network (Sitzmann et al. 2020) with its initialisation.

    Examples
    --------
    >>> SIREN(dim=3, layers=3, width=16)(torch.randn(4, 3)).shape
    torch.Size([4])
    """

    def __init__(self, dim: int, layers: int = 5, width: int = 256, omega: float = 30.0) -> None:
        super().__init__()
        sizes = [dim] + [width] * layers
        self.net = nn.Sequential(*[Sine(a, b, omega, first=i == 0)
                                   for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))])
        self.head = nn.Linear(width, 1)
        bound = math.sqrt(6.0 / width) / omega
        nn.init.uniform_(self.head.weight, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.net(x)).squeeze(-1)


def build_model(config: dict[str, Any]) -> nn.Module:
    """Build a model from a plain dict such as ``{"arch": "sll", "dim": 3, "layers": 20, "width": 128}``.

    Keys: ``arch`` (sll, ortho, mlp, siren), ``dim``, ``layers``, ``width``;
    ``activation`` (sll: relu or softplus; mlp: relu or softplus) and ``beta`` (sll's Softplus),
    ``group_size`` (ortho), ``init`` and ``radius`` (mlp), ``omega`` (siren).

    Examples
    --------
    >>> build_model({"arch": "ortho", "dim": 2, "layers": 3, "width": 8})(torch.zeros(1, 2)).shape
    torch.Size([1])
    """
    config = dict(config)
    arch = config.pop("arch", "sll")
    if arch not in ARCHITECTURES:
        raise LipsdfError(f"unknown architecture {arch!r}; choose one of: {', '.join(ARCHITECTURES)}")
    if "dim" not in config:
        raise LipsdfError("a model config needs the input dimension 'dim'")
    try:
        if arch in LIPSCHITZ_ARCHITECTURES:
            return LipschitzMLP(arch=arch, **config)
        return {"mlp": MLP, "siren": SIREN}[arch](**config)
    except TypeError as exc:
        raise LipsdfError(f"bad option for a {arch} model: {exc}") from None
