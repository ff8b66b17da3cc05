"""Muon for a stack of same-shape matrices: momentum, then the update orthogonalised by Newton-Schulz
iterations, all the matrices of a shape in one batched computation.

Muon (Jordan et al., 2024) replaces a matrix's momentum ``M`` by the nearest semi-orthogonal matrix (all its
singular values near 1), so every direction of the matrix moves at the same rate; an SLL network's
20 square weight matrices are what it is for. ``torch.optim.Muon`` treats one matrix at a time, in
bfloat16, and reads its learning rate back to the host; this one orthogonalises the whole stack with
batched products in float32 (a 64 x 64 stack costs a fraction of a training step, on any CPU), and takes
its learning rate as a device tensor, so the step never synchronises with the host. What it changes is how
the weights move, not what they are: an SLL network is 1-Lipschitz for any weights.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Union

import torch

# The quintic Newton-Schulz coefficients of Muon's reference implementation: they push every singular value
# into about [0.7, 1.2] in 5 steps, from any start below 1.
NEWTON_SCHULZ = (3.4445, -4.7750, 2.0315)
NS_STEPS = 5


def orthogonalised(stack: torch.Tensor, steps: int = NS_STEPS, eps: float = 1e-7) -> torch.Tensor:
    """The matrices of ``stack`` ``(k, m, n)`` with their singular values brought near 1 (their singular
    vectors kept), by quintic Newton-Schulz iterations.

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> singular = torch.linalg.svdvals(orthogonalised(torch.randn(3, 16, 16)))
    >>> bool((singular > 0.6).all() and (singular < 1.3).all())
    True
    """
    a, b, c = NEWTON_SCHULZ
    tall = stack.shape[-2] > stack.shape[-1]  # iterate on the wide side: the smaller Gram matrix
    x = stack.mT if tall else stack
    x = x / x.norm(dim=(-2, -1), keepdim=True).clamp(min=eps)  # spectral norm <= Frobenius norm <= 1
    for _ in range(steps):
        gram = x @ x.mT
        x = a * x + torch.baddbmm(gram, gram, gram, beta=b, alpha=c) @ x
    return x.mT if tall else x


class StackedMuon(torch.optim.Optimizer):
    """Muon for matrices: Nesterov momentum ``momentum``, then each shape's updates orthogonalised together,
    scaled by ``0.2 sqrt(max(m, n))`` so that their size matches what Adam's would be (the scaling of Liu
    et al., 2025, which lets Muon share an Adam learning rate).

    Parameters
    ----------
    params : matrices (2D parameters), or stacks of matrices (the last two dimensions; each orthogonalised
        alone, as when stacked networks train together).
    lr : the learning rate: a number, or a one-element tensor that the caller updates in place.
    scale : a constant factor on ``lr`` (how a run gives Muon its own rate on Adam's schedule tensor).

    Examples
    --------
    >>> weight = torch.nn.Parameter(torch.eye(4))
    >>> optimiser = StackedMuon([weight], lr=0.1)
    >>> weight.grad = torch.ones(4, 4)
    >>> optimiser.step()
    >>> bool(weight[0, 1] < 0)   # moved against the gradient
    True
    """

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: Union[float, torch.Tensor] = 0.02,
                 momentum: float = 0.95, scale: float = 1.0) -> None:
        params = list(params)
        if any(p.ndim < 2 for p in params):
            raise ValueError("StackedMuon optimises matrices (parameters of 2 dimensions or more) only")
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "scale": scale})

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D401 - torch's signature
        for group in self.param_groups:
            by_shape: dict[tuple[int, ...], list[torch.nn.Parameter]] = defaultdict(list)
            for p in group["params"]:
                if p.grad is not None:
                    by_shape[tuple(p.shape)].append(p)
            for shape, params in by_shape.items():
                self._update(params, group, shape)
        return None

    def _update(self, params: list[torch.nn.Parameter], group: dict, shape: tuple[int, ...]) -> None:
        grads = [p.grad for p in params]
        buffers = []
        for p in params:
            state = self.state[p]
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = torch.zeros_like(p)
            buffers.append(state["momentum_buffer"])
        momentum = group["momentum"]
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
        nesterov = torch.stack(grads).add_(torch.stack(buffers), alpha=momentum)
        update = orthogonalised(nesterov.reshape(-1, *shape[-2:])).reshape(nesterov.shape)
        update.mul_(group["lr"] * (-group["scale"] * 0.2 * math.sqrt(max(shape[-2:]))))
        torch._foreach_add_(params, list(update.unbind(0)))


class Optimisers:
    """Several optimisers stepped as one, each over its own parameters (Muon for the matrices, Adam for the
    rest): the interface of ``torch.optim.Optimizer`` that training and checkpoints use."""

    def __init__(self, *optimisers: torch.optim.Optimizer) -> None:
        self.optimisers = optimisers

    @property
    def param_groups(self) -> list[dict]:
        return [group for optimiser in self.optimisers for group in optimiser.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimiser in self.optimisers:
            optimiser.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimiser in self.optimisers:
            optimiser.step()

    def state_dict(self) -> dict:
        return {"optimisers": [optimiser.state_dict() for optimiser in self.optimisers]}

    def load_state_dict(self, saved: dict) -> None:
        for optimiser, state in zip(self.optimisers, saved["optimisers"], strict=True):
            optimiser.load_state_dict(state)
