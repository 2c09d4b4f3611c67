"""Patch certificates of column and block smoothing (Levine & Feizi, NeurIPS 2020, Section 3).

An m x m patch intersects at most Delta = min(m + s - 1, W) of the W bands of width s, or
min(m + s - 1, H) * min(m + s - 1, W) of the H*W s x s blocks (bands and blocks wrap around the
image edge); the vote is certified against the patch iff it survives Delta changed copies
(`votes.certified_against`).
"""

from __future__ import annotations

import numpy as np

from .votes import certified_against

SHAPES = ("columns", "blocks")


def patch_delta(m: int, band: int, shape: str, image_size: tuple[int, int]) -> int:
    """Delta: the most ablation sets of ``shape`` (columns or blocks) with band size ``band`` that
    an m x m patch can intersect (0 for m = 0)."""
    if shape not in SHAPES:
        raise ValueError(f"unknown band shape {shape!r}; choose one of {SHAPES}")
    if m == 0:
        return 0
    h, w = image_size
    span = m + band - 1
    return min(span, w) if shape == "columns" else min(span, h) * min(span, w)


def largest_certified_patch(counts: np.ndarray, band: int, shape: str, image_size: tuple[int, int]) -> int:
    """The largest patch side m <= min(H, W) certified by the vote ``counts`` (0 if none).
    Delta is non-decreasing in m, so the certified sides are 0..m."""
    m = 0
    while m < min(image_size) and certified_against(counts, patch_delta(m + 1, band, shape, image_size)):
        m += 1
    return m


def patch_certified(counts: np.ndarray, m: int, band: int, shape: str, image_size: tuple[int, int]) -> bool:
    """Whether the vote ``counts`` is certified against every m x m patch."""
    return certified_against(counts, patch_delta(m, band, shape, image_size))
