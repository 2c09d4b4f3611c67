"""The L0 certificate of feature partition voting (Hammoudeh & Lowd, AAAI 2024).

Each pixel lies in exactly one of the T groups, so changing r pixels changes at most r copies
(Delta = r in `votes`): the largest certified r is floor((n_y - n_y' - [y > y']) / 2).
"""

from __future__ import annotations

import numpy as np

from .votes import top_two


def partition_radius(counts: np.ndarray) -> int:
    """Certified L0 radius of partition voting: floor((n_y - n_y' - [y > y']) / 2).

    Args:
        counts: Vote counts (num_classes,) of the T groups, each voting once.
    """
    y, runner_up = top_two(counts)
    return (int(counts[y]) - int(counts[runner_up]) - int(y > runner_up)) // 2
