"""The recurrent-stack contract: what every model family provides to the shared rollout.

A stack computes one time step of its layers. The Forecaster (rollout.py) owns the time loop,
the patch folding, scheduled sampling and the output head, so a new model family is one file
with a RecurrentStack subclass and a `@register_model` builder.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

# probe(layer, name, value): receives gate activations when a caller asks for them (Figure 7).
LayerProbe = Callable[[int, str, Tensor], None]
# Each stack's state is its own NamedTuple of tensors (zero at the first step).
StackState = Any


class AuxTerms:
    """Terms of a model's auxiliary losses, collected over a rollout (PredRNN-V2's decoupling
    loss, say): `add` per step and layer, `means` once at the end. Created per forward call,
    so nothing is kept on a module between calls."""

    def __init__(self) -> None:
        self._terms: dict[str, list[Tensor]] = {}

    def add(self, name: str, value: Tensor) -> None:
        self._terms.setdefault(name, []).append(value)

    def means(self) -> dict[str, Tensor]:
        return {name: torch.stack(values).mean() for name, values in self._terms.items()}


class RecurrentStack(nn.Module, abc.ABC):
    """One time step of a stack of recurrent layers.

    Subclasses set `layers` (an nn.ModuleList whose first layer has the input convolution
    `conv_x`) and `out_channels` (channels of the top hidden state), and implement
    `initial_state` and `forward`. Stacks with auxiliary losses add their terms to `aux`;
    the others ignore it.
    """

    layers: nn.ModuleList
    out_channels: int
    # Whether a step fed the model's own prediction reads it (every family but FRNN). A stack
    # that does not gets x=None at those steps and runs from its states alone (the rollout
    # still gives the head the prediction as the frame read); a mask must then choose, per
    # sample and step, the true frame or none (Forecaster.forward).
    reads_predictions: bool = True
    # Groups of trailing channels of each frame that are known inputs, not forecasts: (name,
    # channels) in channel order, e.g. ST-ResNet's period and trend frames and its external
    # factors. The head predicts the other channels; the rollout takes these from the data at
    # every step. Empty for every model that forecasts whole frames.
    given_inputs: tuple[tuple[str, int], ...] = ()

    @property
    def given_channels(self) -> int:
        return sum(n for _, n in self.given_inputs)

    def build_head(self, config: Any) -> nn.Module:
        """The output head: a module called as head(h, x_in) -> the next folded frame
        (B, p*p*C, h, w), from the top hidden state h and the folded frame x_in this step read.
        The head of a stack with `given_inputs` predicts only the channels before them.
        The default is a 1x1 convolution of h alone (`ConvHead`); a family whose prediction
        transforms the frame it read (filters or kernels applied to it) returns its own head.
        A head used with `model.residual` has `zero_output_()`: its output is 0 at the start."""
        return ConvHead(self.out_channels, config.frame_channels)

    @property
    def input_conv(self) -> nn.Module:
        """The first layer's input convolution (or whatever part of a step reads x alone): the
        rollout may run it beforehand, batched over the steps whose input is known, and pass
        its output to forward as `x_gates`."""
        return self.layers[0].conv_x

    @abc.abstractmethod
    def initial_state(self, x: Tensor) -> StackState:
        """The zero state for a batch of folded frames x (B, C', h, w)."""

    @abc.abstractmethod
    def forward(
        self,
        x: Tensor | None,
        state: StackState | None,
        probe: LayerProbe | None = None,
        x_gates: Tensor | None = None,
        aux: AuxTerms | None = None,
    ) -> tuple[Tensor, StackState]:
        """One step: folded frame x (B, C', h, w) and the state (None at the first step) ->
        (top hidden state (B, out_channels, h, w), new state). `x_gates` is input_conv(x)
        when the rollout computed it beforehand. x is None at the steps fed the model's own
        prediction when `reads_predictions` is False (never at the first step). (Only the
        stack's own head reads the first output: a family with its own head may return more
        than one tensor, as CDNA does.)"""


class ConvHead(nn.Conv2d):
    """The default head: a 1x1 convolution (no bias) from the top hidden state to frame
    channels; the frame the step read is not used (its weight is the state dict's `head.weight`,
    OpenSTL's `conv_last`)."""

    def __init__(self, in_channels: int, frame_channels: int) -> None:
        super().__init__(in_channels, frame_channels, 1, bias=False)

    def forward(self, h: Tensor, x_in: Tensor | None = None) -> Tensor:  # noqa: ARG002
        return super().forward(h)

    def zero_output_(self) -> None:
        """Zero weights: the head outputs 0 until trained (a residual model starts as
        persistence). Gradients still reach the weights (they are h x the output's gradient)."""
        nn.init.zeros_(self.weight)
