"""Attack speed against a smoothed classifier (issue 5).

Run: python benchmarks/bench_attacks.py [--checkpoint runs/demo/k45/model] [--threads 1] [--images 3]
     [--start-steps 20]

``SmoothedOracle(fixed=True)`` reuses one set of n ablations per image and re-evaluates only the
draws that keep a changed pixel. For one Pointwise restart per image this reports the queries,
the base-classifier forward passes actually run (rows), the rows a full re-evaluation of every
query would need (queries x n), and the wall time against the time of that full re-evaluation
(queries x the measured time of one n-sample vote).
"""

from __future__ import annotations

import argparse
import time

import torch

from smoothcert.attacks import Pointwise, SmoothedOracle
from smoothcert.data import load_dataset
from smoothcert.models import build_model
from smoothcert.noises import Ablation
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import SmoothedClassifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default=None, help="a trained k=45 model (default: random init; "
                        "an untrained model is broken by far fewer pixels, so use a trained one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--start-steps", type=int, default=20,
                        help="salt-and-pepper draws of the Pointwise start (dense queries: few against a smoothed oracle)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, device="cpu")
    else:
        torch.manual_seed(0)
        smoothed = SmoothedClassifier(build_model("mnist_cnn", 2, 10), Ablation(45), 10, device="cpu")
    rows = 0

    def count_rows(module, inputs, output):
        nonlocal rows
        rows += len(inputs[0])

    smoothed.base.register_forward_hook(count_rows)
    data = load_dataset("mnist5k", "test")
    print(f"threads={args.threads} n={args.n}")
    print("image  queries  rows run  rows if full  saved  attack s  full s  speed-up")
    for idx in range(args.images):
        x, label = data.x[idx], int(data.y[idx])
        start = time.perf_counter()
        smoothed.sample(x, args.n, generator(0))
        one_vote = time.perf_counter() - start
        rows = 0
        oracle = SmoothedOracle(smoothed, args.n, key=(0, idx))
        start = time.perf_counter()
        Pointwise(restarts=1, steps=args.start_steps)(oracle, x, label, key=(0, idx))
        elapsed = time.perf_counter() - start
        full_rows, full_time = oracle.queries * args.n, oracle.queries * one_vote
        print(f"{idx:5d}  {oracle.queries:7d}  {rows:8d}  {full_rows:12d}  {1 - rows / full_rows:5.1%}  "
              f"{elapsed:8.1f}  {full_time:6.1f}  {full_time / elapsed:7.1f}x")


if __name__ == "__main__":
    main()
