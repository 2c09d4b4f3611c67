"""Ablation sampling throughput (issue 2): masks per second for k of d pixels.

Run: python benchmarks/bench_ablation.py [--threads 2]
Compares smoothcert's topk-on-uniform-noise sampler with argsort, multinomial and numpy
argpartition, and times the whole Ablation call (mask + multichannel encoding) on MNIST images.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from smoothcert.noises import Ablation, sample_keep_mask


def rate(fn, items: int, repeats: int = 20) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    b = args.batch
    print(f"torch {torch.__version__}, {args.threads} threads, batch {b}; best of 20, masks (or images) per second")
    for d, k in [(784, 45), (1024, 75), (50176, 1000)]:
        n = b if d < 10_000 else max(b // 50, 1)
        results = {
            "smoothcert sample_keep_mask (topk)": rate(lambda: sample_keep_mask(n, d, k, g), n),
            "argsort of uniforms": rate(lambda: torch.rand(n, d, generator=g).argsort(1)[:, :k], n),
            "multinomial without replacement": rate(lambda: torch.multinomial(torch.ones(n, d), k, generator=g), n),
            "numpy argpartition": rate(lambda: np.argpartition(rng.random((n, d)), k, axis=1)[:, :k], n),
        }
        for name, value in results.items():
            print(f"d={d:6d} k={k:5d}  {name:38s} {value:12,.0f}")
    x = torch.rand(b, 1, 28, 28)
    noise = Ablation(45)
    print(f"Ablation(45) multichannel on {b} MNIST images (mask + encoding): {rate(lambda: noise(x, g), b):,.0f} images/s")


if __name__ == "__main__":
    main()
