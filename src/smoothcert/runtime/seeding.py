"""Devices and reproducible random streams.

Every random stream is derived from a tuple of integers, e.g. (seed, image index) for
certification or (seed, epoch) for training, so each image's certificate is independent of
which other images are certified, in what order, or on which worker (sharded runs stay exact),
and an interrupted training run resumes with exactly the randomness it would have had.
"""

from __future__ import annotations

import numpy as np
import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA device is available; use --device cpu or auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; choose one of {DEVICES}")
    return torch.device(device)


def check_seed(seed: int) -> int:
    """``seed``; ValueError unless it is a non-negative integer (the streams are keyed by it)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return seed


def stream_seed(*key: int) -> int:
    """A 63-bit seed mixed from integer ``key`` by numpy's SeedSequence (well spread, stable)."""
    if any(int(k) < 0 for k in key):
        raise ValueError(f"seed components must be non-negative integers, got {key}")
    return int(np.random.SeedSequence([int(k) for k in key]).generate_state(1, np.uint64)[0] >> 1)


def generator(*key: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded from ``key`` (see ``stream_seed``)."""
    return torch.Generator(device=device).manual_seed(stream_seed(*key))
