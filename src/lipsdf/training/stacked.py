"""Several shapes' networks trained in one batched step: :class:`StackedNetworks` and :func:`train_stacked`.

On a GPU one 20 x 64 network uses a small part of the device, however large its batch. Stacking the
parameters of K networks of one architecture (``torch.func.stack_module_state``) and evaluating them with
``torch.func.vmap`` turns each layer's K matrix products into one batched product, so K shapes train in
little more than the time of one. Nothing is shared between the networks: each has its own parameters,
data, shuffled order, loss and optimiser state (Adam's moments are per element, Muon orthogonalises each
matrix alone), so each network's steps are those it would take trained alone, and each stays 1-Lipschitz
by its own construction. ``tests/test_stacked.py`` checks both on the CPU.

The K runs are ordinary :class:`~lipsdf.training.trainer.Trainer` runs, minus their step: each trainer
starts its own state (seeded as alone), and at every epoch's end it logs, measures and writes its own field
from its slice of the stack.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Optional, Sequence

import torch
from torch import nn

from lipsdf.errors import LipsdfError
from lipsdf.field import NeuralField
from lipsdf.losses import Batch
from lipsdf.progress import progress_bar
from lipsdf.training.step import TrainingState, build_optimiser, uses_bf16, using_matmul_precision
from lipsdf.training.trainer import Trainer


class StackedNetworks(nn.Module):
    """K networks of one architecture as one module: ``(K, n, dim)`` points to ``(K, n)`` values, network k
    on row k.

    Parameters
    ----------
    models : the networks (same class and configuration); their parameters are copied into the stack.

    Examples
    --------
    >>> from lipsdf.nn import build_model
    >>> models = [build_model({"arch": "sll", "dim": 2, "layers": 2, "width": 8}) for _ in range(3)]
    >>> stack = StackedNetworks(models)
    >>> x = torch.randn(3, 5, 2)
    >>> bool(torch.allclose(stack(x)[1], models[1](x[1]), atol=1e-6))
    True
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("a stack needs at least one network")
        names = [name for name, _ in models[0].named_parameters()]
        if any([name for name, _ in model.named_parameters()] != names or type(model) is not type(models[0])
               for model in models):
            raise ValueError("stacked networks must share one architecture")
        params, buffers = torch.func.stack_module_state(list(models))
        self.count = len(models)
        self.names = names
        # registered flat, in the networks' order, so an optimiser sees the same parameters in the same order
        self.stacked = nn.ParameterList([nn.Parameter(params[name].detach().clone()) for name in names])
        self.buffers_ = buffers
        self.base = copy.deepcopy(models[0])

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        def one(params: tuple[torch.Tensor, ...], buffers: dict, x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.base, ({**dict(zip(self.names, params)), **buffers},), (x,))

        return torch.func.vmap(one)(tuple(self.stacked), self.buffers_, points)

    def copy_into(self, index: int, model: nn.Module) -> nn.Module:
        """Network ``index``'s current parameters, written into ``model`` (returned)."""
        with torch.no_grad():
            for name, value in zip(self.names, self.stacked):
                model.get_parameter(name).copy_(value[index])
        return model


def train_stacked(trainers: Sequence[Trainer], quiet: bool = True) -> list[NeuralField]:
    """Train the runs of ``trainers`` together, one batched step for all (see the module's docstring).

    The trainers must share a model configuration and a training configuration, and their datasets must
    have as many points each (so their epochs have as many steps); their losses must be first-order
    (every 1-Lipschitz default is: ``fit-hinge``, ``hkr``). Each trainer writes its own log and field, as
    alone; the run writes no checkpoint before the last epoch, and a callback's stop is not honoured.

    Returns
    -------
    The fields, in the trainers' order.
    """
    first = trainers[0]
    config = replace(first.config, checkpoint_every=0)
    for trainer in trainers:
        if (trainer.model_config, trainer.loss_name) != (first.model_config, first.loss_name) or \
                replace(trainer.config, checkpoint_every=0) != config or \
                len(trainer.dataset.points) != len(first.dataset.points):
            raise LipsdfError("stacked runs need one model, one training configuration and datasets of one size")
        if trainer.loss_name == "sald" or trainer.loss.second_order(config.eikonal):
            raise LipsdfError(f"the {trainer.loss_name} loss differentiates the input gradient: train it alone")
        trainer.config = config
    device = first.device
    states = [trainer.start() for trainer in trainers]
    stack = StackedNetworks([state.model for state in states])
    lr = states[0].lr
    optimiser = build_optimiser(stack, config, device, lr, stacked=True)
    precision = config.matmul_precision if device.type == "cuda" else "float32"
    fields: list[Optional[NeuralField]] = [None] * len(trainers)
    with progress_bar(config.epochs, f"training {len(trainers)} stacked", quiet=quiet, unit="epoch") as bar, \
            using_matmul_precision(precision):
        for epoch in range(config.epochs):
            for state in states:
                state.shuffle(device)
            for _ in range(states[0].steps_per_epoch):
                _stacked_step(stack, optimiser, trainers, states)
            for index, (trainer, state) in enumerate(zip(trainers, states)):
                stack.copy_into(index, state.model)
                fields[index], _ = trainer.end_epoch(state, epoch, float(state.loss_sum) / state.steps_per_epoch)
            bar.update(1)
    return fields


def _stacked_step(stack: StackedNetworks, optimiser, trainers: Sequence[Trainer],
                  states: Sequence[TrainingState]) -> None:
    """One step of every run: each its own batch and loss, the networks evaluated in one batched call, the
    summed loss differentiated (network k's gradient is its own loss's) and one optimiser step."""
    lead, config = states[0], trainers[0].config
    device = trainers[0].device
    row = torch.remainder(lead.step_count, lead.steps_per_epoch).long().reshape(1)
    indices = [state.order.view(state.steps_per_epoch, state.batch).index_select(0, row)[0] for state in states]
    points = torch.stack([state.data.points.index_select(0, index) for state, index in zip(states, indices)])
    lead.lr.copy_(config.learning_rate * lead.schedule.lr_factor(lead.step_count))
    optimiser.zero_grad(set_to_none=True)
    margin, lam = lead.schedule.margin(lead.step_count), lead.schedule.lam(lead.step_count)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(config, lead)):
        values = stack(points)
        losses = []
        for k, (trainer, state, index) in enumerate(zip(trainers, states, indices)):
            batch = Batch(points[k], state.data.targets.index_select(0, index), margin, lam, config.fit_norm,
                          config.eikonal, config.sald_weight)
            losses.append(trainer.loss.objective(lambda _, k=k: values[k], batch))
            state.record_errors(trainer.loss, index, values[k])
    losses = torch.stack(losses)
    losses.sum().backward()
    optimiser.step()
    for state, loss in zip(states, losses.detach().unbind(0)):
        state.loss_sum.add_(loss)
        state.step_count.add_(1)
        state.step += 1
