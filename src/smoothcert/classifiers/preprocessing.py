"""The input space a classifier is given images in, and what happens between the noise and the model.

A classifier takes images in its declared ``bounds`` (default [0, 1]: pixel values as stored); the
noise acts on them there, so a certificate holds in that space (an L2 radius of Gaussian smoothing
is measured in it; an L0 radius counts pixels and is the same in every space). ``preprocessing``
then maps each noisy copy to what the base model was trained on, inside the classifier, as
Foolbox's model wrappers do: a per-channel ``{"mean": ..., "std": ...}`` normalisation or any
callable on a batch. The model ``model(preprocessing(noise(x)))`` is the same as the hand-made
``nn.Sequential(Normalize(mean, std), model)`` smoothed with the default space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

Bounds = tuple[float, float]
Preprocessing = Mapping[str, Sequence[float] | float] | Callable[[torch.Tensor], torch.Tensor] | None
"""None, ``{"mean": m, "std": s}`` (per channel, or one number for all) or a callable on a batch."""


def check_bounds(bounds: Bounds) -> Bounds:
    """``bounds`` as two floats; ValueError unless they are finite with lower < upper."""
    try:
        lower, upper = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"bounds must be two numbers (lower, upper), got {bounds!r}") from None
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ValueError(f"bounds must be finite with lower < upper, got {bounds!r}")
    return lower, upper


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel of a batch (N, C, H, W); one number applies to every channel."""

    def __init__(self, mean: Sequence[float] | float, std: Sequence[float] | float) -> None:
        super().__init__()
        mean_t, std_t = (torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in (mean, std))
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all() and (std_t > 0).all()):
            raise ValueError(f"preprocessing needs finite means and positive stds, got mean {mean!r}, std {std!r}")
        self.register_buffer("mean", mean_t.reshape(1, -1, 1, 1))
        self.register_buffer("std", std_t.reshape(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("mean", "std"):
            size = getattr(self, name).shape[1]
            if size not in (1, x.shape[1]):
                raise ValueError(f"preprocessing {name} has {size} values for the {x.shape[1]} channels the base "
                                 "model is given (an encoding such as multichannel ablation doubles the channels)")
        return (x - self.mean) / self.std


class Preprocessed(nn.Module):
    """``model(preprocess(x))``: the base model behind the classifier's preprocessing."""

    def __init__(self, model: nn.Module, preprocess: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocess(x))


def preprocessed(model: nn.Module, preprocessing: Preprocessing, device: torch.device) -> nn.Module:
    """``model`` (already on ``device``, left as it is) behind ``preprocessing`` (``model`` itself for None)."""
    if preprocessing is None:
        return model
    if isinstance(preprocessing, Mapping):
        unknown = sorted(set(preprocessing) - {"mean", "std"})
        if unknown or not {"mean", "std"} <= set(preprocessing):
            raise ValueError(f"preprocessing as a mapping takes exactly the keys 'mean' and 'std', got "
                             f"{sorted(preprocessing)}")
        return Preprocessed(model, Normalize(preprocessing["mean"], preprocessing["std"]).to(device))
    if not callable(preprocessing):
        raise ValueError(f"preprocessing must be None, {{'mean': ..., 'std': ...}} or a callable, got "
                         f"{type(preprocessing).__name__}")
    return Preprocessed(model, preprocessing)
