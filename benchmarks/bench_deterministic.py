"""Deterministic certificates against randomized ablation: seconds and forward passes per image (issue 10).

Run: python benchmarks/bench_deterministic.py [--ablation runs/demo/k45/model] [--partition DIR] [--columns DIR]
     [--threads 1] [--images 5] [--rounds 3]

Certifies the same mnist5k test digits with randomized ablation (n0 = 1,000, n = 10,000, Corollary 1) and with
the deterministic classifiers (partition voting: T forward passes; column smoothing: 28), interleaved round by
round so that a busy machine slows both alike; prints the median time per image and the ratio. Without
checkpoints the MNIST CNN at random initialisation is used (the speed is the same).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from smoothcert.data import load_dataset
from smoothcert.classifiers.deterministic import DeterministicClassifier
from smoothcert.models import build_model
from smoothcert.noises import Ablation, Bands, Partition
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import SmoothedClassifier


def seconds_per_image(certify, images) -> float:
    start = time.perf_counter()
    for x in images:
        certify(x)
    return (time.perf_counter() - start) / len(images)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ablation", default=None, help="a k=45 ablation checkpoint (default: random init)")
    parser.add_argument("--partition", default=None, help="a --noise partition checkpoint (default: random init, T=60)")
    parser.add_argument("--columns", default=None, help="a --noise columns checkpoint (default: random init, s=4)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build_model("mnist_cnn", 2, 10)
    ablation = (SmoothedClassifier.from_checkpoint(args.ablation, device="cpu") if args.ablation
                else SmoothedClassifier(net, Ablation(45), 10, device="cpu"))
    partition = (DeterministicClassifier.from_checkpoint(args.partition, device="cpu") if args.partition
                 else DeterministicClassifier(net, Partition.create(60, (28, 28)), 10, (28, 28), device="cpu"))
    columns = (DeterministicClassifier.from_checkpoint(args.columns, device="cpu") if args.columns
               else DeterministicClassifier(net, Bands("columns", 4), 10, (28, 28), device="cpu"))
    images = load_dataset("mnist5k", "test").x[:args.images]
    runs = {
        "randomized ablation k=45 (n0=1000, n=10000)":
            (lambda x: ablation.certify(x, 1000, 10_000, 0.05, generator(0, 0)), 11_000),
        f"partition T={partition.copies}": (partition.certify, partition.copies),
        f"columns s={columns.noise.band}": (columns.certify, columns.copies),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (certify, _) in runs.items():
            times[name].append(seconds_per_image(certify, images))
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.images} mnist5k test digits, "
          f"{args.rounds} interleaved rounds, median seconds per image")
    base = statistics.median(times[next(iter(runs))])
    for name, (_, passes) in runs.items():
        t = statistics.median(times[name])
        print(f"{name:45s} {passes:7,d} forward passes  {t:8.4f} s/image  {base / t:8.1f}x faster than ablation")


if __name__ == "__main__":
    main()
