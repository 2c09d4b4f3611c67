"""Speed of Lee et al.'s noise and certificate (issue 11).

Run: python benchmarks/bench_lee.py [--threads 1]

1. Noisy MNIST images per second of ``Lee(kappa)`` against ``Ablation(45)`` (batch 1,000).
2. ``radius_lee`` for 10,000 p_lower values (uniform in [0.5, 1 - 1e-4]) at MNIST size
   (d = 784) and ImageNet size counted in channel values (d = 3*224*224), K = 256.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from bench_certify import (
    best_of,  # the same timing helper (benchmarks/ is on the path when run as a script)
)

from smoothcert.certificates.lee import radius_lee
from smoothcert.noises import Ablation, Lee


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), best of {args.repeats}")
    x = torch.rand(1, 1, 28, 28).expand(1000, 1, 28, 28)
    g = torch.Generator().manual_seed(0)
    for noise in (Lee(0.2), Ablation(45)):
        seconds = best_of(lambda noise=noise: noise(x, g), args.repeats)
        print(f"{noise!r:>60}: {1000 / seconds:10,.0f} noisy MNIST images/s")
    p = np.random.default_rng(0).uniform(0.5, 1 - 1e-4, 10_000)
    for d, kappa in ((784, 0.1), (784, 0.2), (3 * 224 * 224, 0.1)):
        seconds = best_of(lambda d=d, kappa=kappa: radius_lee(p, d, 256, kappa), args.repeats)
        largest = np.nanmax(radius_lee(p, d, 256, kappa))
        print(f"radius_lee, 10,000 images, d={d:>6}, K=256, kappa={kappa}: {1e3 * seconds:7.1f} ms "
              f"(largest radius {largest:g})")


if __name__ == "__main__":
    main()
