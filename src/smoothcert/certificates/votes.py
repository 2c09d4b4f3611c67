"""Exact certificates of a deterministic vote over finitely many ablated copies.

A copy whose kept pixels are untouched by the attacker votes as before, and a changed copy moves
the gap n_c - n_c' between two classes by at most 2 (it can lose one vote for c and give one to
c'). If at most Delta copies can change, the prediction y is certified iff for its runner-up y'
(most votes, then smallest index) n_y - n_y' > 2 Delta, or n_y - n_y' = 2 Delta and y < y'
(Levine & Feizi, NeurIPS 2020, Section 3; Hammoudeh & Lowd, AAAI 2024). The threat
models fix Delta: `bands` for patches, `partition` for L0.
"""

from __future__ import annotations

import math

import numpy as np


def top_two(counts: np.ndarray) -> tuple[int, int]:
    """(prediction y, runner-up y'): most votes, ties to the smaller class index, for both."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or len(counts) < 2:
        raise ValueError(f"vote counts must be a 1-D array over at least two classes, got shape {counts.shape}")
    top = int(np.argmax(counts))  # argmax returns the first (smallest) index among ties
    others = counts.astype(float)
    others[top] = -math.inf
    return top, int(np.argmax(others))


def certified_against(counts: np.ndarray, delta: int) -> bool:
    """Whether the vote prediction survives any change of at most ``delta`` copies:
    n_y - n_y' > 2 delta, or = 2 delta and y < y' (the tie-break keeps y).

    Args:
        counts: Vote counts (num_classes,) over the copies.
        delta: How many copies an adversary may change.
    """
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    y, runner_up = top_two(counts)
    gap = int(counts[y]) - int(counts[runner_up])
    return gap > 2 * delta or (gap == 2 * delta and y < runner_up)
