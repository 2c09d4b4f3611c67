"""Certification speed (issue 3).

Run: python benchmarks/bench_certify.py [--checkpoint runs/demo/k45/model] [--threads 2]

1. Overhead of SmoothedClassifier.sample (noise + forward + bincount) against a bare forward pass
   of the same model on already-ablated batches of the same size: the ratio should be <= 1.15.
2. Seconds per MNIST image at the paper's settings (n0 = 1,000, n = 10,000).
3. Radius computation (Corollary 1, 2 and Jia et al.) for 1,000 ImageNet-size images
   (d = 224*224 = 50,176, k = 1,000) from vote counts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from smoothcert.certificates import certify_counts
from smoothcert.models import build_model
from smoothcert.noises import Ablation
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import SmoothedClassifier


def best_of(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None, help="a trained model (default: the MNIST CNN at random init; speed is the same)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, batch_size=args.batch_size, device="cpu")
    else:
        torch.manual_seed(0)
        smoothed = SmoothedClassifier(build_model("mnist_cnn", 2, 10), Ablation(45), 10, batch_size=args.batch_size, device="cpu")
    b = args.batch_size
    x = torch.rand(1, 28, 28)
    ablated = smoothed.noise(x.expand(b, 1, 28, 28), torch.Generator().manual_seed(0))
    # interleave the two measurements so that drift of the machine's speed hits both alike
    ratios, bare_rates = [], []
    for _ in range(args.rounds):
        with torch.inference_mode():
            bare = best_of(lambda: smoothed.base(ablated).argmax(1), 3)
        full = best_of(lambda: smoothed.sample(x, b, torch.Generator().manual_seed(1)), 3)
        ratios.append(full / bare)
        bare_rates.append(b / bare)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {b}, {args.rounds} interleaved rounds")
    print(f"bare forward: {np.median(bare_rates):,.0f} evaluations/s; SmoothedClassifier.sample: "
          f"{np.median(bare_rates) / np.median(ratios):,.0f} evaluations/s; overhead ratio {np.median(ratios):.3f} "
          f"(median; range {min(ratios):.3f}-{max(ratios):.3f})")

    from smoothcert.data import load_mnist5k

    test = load_mnist5k("test")
    seconds = []
    for idx in range(args.images):
        start = time.perf_counter()
        smoothed.certify(test.x[idx], 1000, 10_000, 0.05, generator(0, idx))
        seconds.append(time.perf_counter() - start)
    print(f"certify at n0=1000, n=10000: {np.mean(seconds):.3f} s per MNIST image (mean of {args.images})")

    rng = np.random.default_rng(0)
    n, classes = 10_000, 1000
    counts = rng.multinomial(n, np.r_[0.9, np.full(classes - 1, 0.1 / (classes - 1))], size=1000)
    for certificate in ("cor1", "cor2", "jia"):
        t = best_of(lambda: certify_counts(counts, n, 0.05, 50176, 1000, certificate, selected=np.zeros(1000, int)), 3)
        print(f"radius ({certificate}) for 1,000 ImageNet-size images (d=50176, k=1000, 1000 classes): {t:.3f} s")


if __name__ == "__main__":
    main()
