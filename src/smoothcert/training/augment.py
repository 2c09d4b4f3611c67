"""Data augmentation of clean training images, before the noise is drawn.

Every function maps a batch (B, C, H, W) in [0, 1] and a ``torch.Generator`` to a batch of the
same shape and range, one random transformation per image:

* ``crop-flip``: pad-and-crop plus horizontal flips (the papers' CIFAR-10 / ImageNet recipes);
* ``affine``: small rotations, shifts and scalings, which keep a digit a digit;
* ``elastic``: the elastic distortions of Simard et al. (2003), a smoothed random displacement
  field, the classic augmentation for MNIST with little data.

They only change what the classifier is trained on; the threat model (which pixels an attacker
may change) and every certificate are untouched. Names combine with ``+``, applied left to right:
``affine+elastic``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F

from ..models import gaussian_blur


def crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and random horizontal flip, per image."""
    b, c, h, w = x.shape
    dev = x.device
    shift_y, shift_x = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=g, device=dev)
    rows = (shift_y + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (shift_x + torch.arange(w, device=dev)).view(b, 1, 1, w)
    batch, chan = torch.arange(b, device=dev).view(b, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1)
    out = F.pad(x, (pad, pad, pad, pad))[batch, chan, rows, cols]
    flip = torch.rand(b, generator=g, device=dev) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


def _uniform(n: int, bound: float, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return (2 * torch.rand(n, generator=g, device=device) - 1) * bound


def affine(x: torch.Tensor, g: torch.Generator, degrees: float = 10.0, shift: float = 2.0,
           scale: float = 0.1) -> torch.Tensor:
    """Rotation by up to ``degrees``, shift by up to ``shift`` pixels along each axis and scaling
    by a factor within 1 +- ``scale``, uniform and independent per image (bilinear, zero fill)."""
    b, _, h, w = x.shape
    angle = _uniform(b, math.radians(degrees), g, x.device)
    factor = 1 + _uniform(b, scale, g, x.device)
    tx, ty = _uniform(b, 2 * shift / w, g, x.device), _uniform(b, 2 * shift / h, g, x.device)
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0, 1)


def elastic(x: torch.Tensor, g: torch.Generator, alpha: float = 34.0, sigma: float = 4.0) -> torch.Tensor:
    """Elastic distortion (Simard et al. 2003, Section 2): per-pixel displacements drawn uniformly
    from [-1, 1], smoothed by a Gaussian of ``sigma`` pixels and scaled by ``alpha`` pixels; the
    paper's MNIST values are the defaults."""
    b, _, h, w = x.shape
    field = gaussian_blur(2 * torch.rand(b * 2, 1, h, w, generator=g, device=x.device, dtype=x.dtype) - 1, sigma)
    dx, dy = (alpha * field).view(b, 2, h, w).unbind(1)
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    grid = torch.stack([(2 * (xs + dx) + 1) / w - 1, (2 * (ys + dy) + 1) / h - 1], -1)
    return F.grid_sample(x, grid, padding_mode="zeros", align_corners=False).clamp(0, 1)


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "crop-flip": crop_flip, "affine": affine, "elastic": elastic,
}


def check_augment(name: str) -> tuple[str, ...]:
    """The steps of the augmentation ``name`` ("none", one of ``AUGMENTATIONS`` or several joined
    by ``+``); a clear error for an unknown one."""
    if name == "none":
        return ()
    steps = tuple(name.split("+"))
    unknown = [s for s in steps if s not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r} in {name!r}; choose none or one or more of "
                         f"{sorted(AUGMENTATIONS)} joined by '+'")
    return steps


def augment(x: torch.Tensor, name: str, g: torch.Generator) -> torch.Tensor:
    """``x`` under the augmentation ``name`` (see ``check_augment``), randomness from ``g``."""
    for step in check_augment(name):
        x = AUGMENTATIONS[step](x, g)
    return x
