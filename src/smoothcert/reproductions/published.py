"""The published numbers the reproductions print beside ours, each with its source (paper and table).

Levine & Feizi 2020 is "Robustness Certificates for Sparse Adversarial Attacks by Randomized
Ablation" (AAAI 2020), the paper smoothcert implements.
"""

from __future__ import annotations

# Levine & Feizi 2020, Table 1 (MNIST, k sweep): k -> (classification accuracy %, percent abstained, median
# certified robustness; None = N/A)
TABLE1: dict[int, tuple[float, float, int | None]] = {
    5: (32.32, 5.65, None), 10: (74.90, 5.08, 0), 15: (86.09, 2.82, 0), 20: (90.29, 1.81, 3),
    25: (93.05, 1.02, 5), 30: (94.68, 0.77, 7), 35: (95.40, 0.66, 7), 40: (96.27, 0.52, 8),
    45: (96.72, 0.45, 8), 50: (97.16, 0.32, 7), 55: (97.41, 0.34, 7), 60: (97.78, 0.18, 7),
    65: (98.05, 0.15, 6), 70: (98.18, 0.20, 6), 75: (98.28, 0.20, 6), 80: (98.37, 0.12, 5),
    85: (98.57, 0.12, 5), 90: (98.58, 0.16, 5), 95: (98.73, 0.11, 5), 100: (98.75, 0.16, 4),
}
# Levine & Feizi 2020, Table 8 (MNIST, k = 45, NULL encodings): encoding -> same triple
TABLE8: dict[str, tuple[float, float, int | None]] = {"multichannel": (96.72, 0.45, 8), "mean": (96.27, 0.43, 7)}
# Levine & Feizi 2020, Table 7 (Discussion): median certified L0 robustness (pixels; ImageNet: Lee et al. count
# channel values) -> the noise (Lee et al. 2019's "lee", randomized "ablation") -> its median, each with the best
# hyperparameters its paper tested.
TABLE7: dict[str, dict[str, int]] = {"MNIST": {"lee": 4, "ablation": 8}, "ImageNet": {"lee": 1, "ablation": 16}}

# Jeong & Shin 2020, supplement Table 2 (MNIST, full test set, n = 100,000, alpha = 0.001):
# sigma -> method -> (ACR, certified accuracy % at r = 0, 0.25, 0.5, 0.75, 1.0)
CONSISTENCY_RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
CONSISTENCY_MNIST: dict[float, dict[str, tuple[float, tuple[float, ...]]]] = {
    0.25: {
        "noise": (0.911, (99.2, 98.5, 96.7, 93.3, 0.0)),
        "consistency": (0.928, (99.5, 98.9, 98.0, 96.0, 0.0)),
        "smoothadv": (0.932, (99.4, 99.0, 98.2, 96.8, 0.0)),
        "stability": (0.915, (99.3, 98.6, 97.1, 93.8, 0.0)),
        "macer": (0.920, (99.3, 98.7, 97.5, 94.8, 0.0)),
    },
    0.5: {
        "noise": (1.553, (99.2, 98.3, 96.8, 94.3, 89.7)),
        "consistency": (1.657, (99.2, 98.6, 97.6, 95.9, 93.0)),
        "smoothadv": (1.687, (99.0, 98.3, 97.3, 95.8, 93.2)),
        "stability": (1.570, (99.2, 98.5, 97.1, 94.8, 90.7)),
        "macer": (1.594, (98.5, 97.5, 96.2, 93.7, 90.0)),
    },
}

# DE-CROP supplement Table 1 (CIFAR-10, 1% of the training data, sigma = 0.25): certified accuracy %
# at r = 0, 0.25, 0.5, 0.75; "baseline" is Salman et al.'s denoiser trained on the same 1%.
DENOISED_RADII = (0.0, 0.25, 0.5, 0.75)
DECROP_TABLE1: dict[str, tuple[float, ...]] = {"baseline": (29.8, 9.2, 1.4, 0.0), "decrop": (57.6, 27.2, 9.2, 2.2)}
# Salman et al. 2020 (CIFAR-10, ResNet-110, full data, best sigma per radius): r = 0.25, 0.5, 0.75; r = 0 not given.
SALMAN_CIFAR10: dict[str, tuple[float, ...]] = {"none": (7.0, 3.0, 0.0), "white-box": (56.0, 41.0, 28.0)}

# Levine & Feizi (NeurIPS 2020), abstract and Section 4 as summarised in shared/notes: CIFAR-10, column smoothing
# s = 4 against 5 x 5 patches; IBP (Chiang et al. 2020) for comparison. (clean accuracy %, certified accuracy %)
PATCH_CIFAR10: dict[str, tuple[float, float]] = {"column smoothing s=4": (83.8, 57.6), "IBP (Chiang et al.)": (47.8, 30.3)}
# Hammoudeh & Lowd (AAAI 2024), abstract: median certified L0 radius on MNIST, FPA vs the previous best.
FPA_MNIST_MEDIAN = {"feature partition aggregation": 12, "previous best": 10}
