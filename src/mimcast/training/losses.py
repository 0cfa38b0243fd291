"""The frame losses of `train.loss`: what the trainer minimises between predictions and truth.

A model's own terms of its internal state (PredRNN-V2's decoupling loss) come through `aux`
(models/stack.py); a term that compares the prediction with the true frame, as MCNet's
gradient difference does, is a frame loss here, which any model may be trained with.
"""

from __future__ import annotations

import torch
from torch import Tensor


def frame_loss(preds: Tensor, target: Tensor, kind: str) -> Tensor:
    """The training loss of predictions against the true frames, both (B, T, C, H, W):
    "mse"; "mse+l1", the MSE plus the mean absolute error; "mse+gdl", the MSE plus the
    gradient difference loss (MCNet's L_p + L_gdl, p = 2, alpha = 1)."""
    err = preds - target
    mse = torch.mean(err**2)
    if kind == "mse+l1":
        return mse + torch.mean(err.abs())
    if kind == "mse+gdl":
        return mse + gradient_difference(preds, target)
    return mse


def gradient_difference(preds: Tensor, target: Tensor) -> Tensor:
    """The gradient difference loss of Mathieu et al. (2016) with alpha = 1, as MCNet trains
    with it: | |y_ij - y_i-1,j| - |p_ij - p_i-1,j| | averaged over the pairs of vertical
    neighbours, plus the same over horizontal neighbours. Only pairs inside the frame count
    (the official TensorFlow code's SAME padding adds a difference with a zero outside the
    frame at one edge; the PyTorch port's at both, and without the inner absolute values)."""
    total = preds.new_zeros(())
    for dim in (-2, -1):
        if preds.shape[dim] > 1:  # a frame one pixel high has no vertical neighbours
            grad_p, grad_y = preds.diff(dim=dim).abs(), target.diff(dim=dim).abs()
            total = total + (grad_y - grad_p).abs().mean()
    return total
