"""Fixed vs adaptive sampling on the same digits: samples, seconds and certificates per image.

Runs every configuration through ``run_dataset`` into resumable logs under ``--out`` (re-running
the command finishes what is missing and re-prints the tables), then compares them with the first
fixed run (same digits, paired):

* CERTIFY, largest radius: fixed n (two seeds: the noise floor), adaptive with group-sequential
  Clopper-Pearson (``looks``) and with the mixture confidence sequence (``anytime``);
* CERTIFY, one target radius R (``--targets``): certified accuracy at R;
* PREDICT: fixed n vs sequential, agreement and samples.

Run: python benchmarks/bench_adaptive.py --checkpoint runs/demo/k45/model --max 120 --out runs/bench-adaptive
     python benchmarks/bench_adaptive.py --checkpoint runs/gauss/model --max 40 --n 100000 --radii 0,0.25,0.5,0.75 \
         --targets 0.25,0.5 --out runs/bench-adaptive-gauss
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from smoothcert.data import load_dataset
from smoothcert.reports import average_certified_radius, certified_accuracy, read_log
from smoothcert.runner import run_dataset
from smoothcert.certificates.sequential import Adaptive
from smoothcert.classifiers.smoothed import SmoothedClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--max", type=int, default=120, help="the first N test images")
    parser.add_argument("--n", type=int, default=10_000, help="fixed n and adaptive n_max")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--radii", default=",".join(map(str, range(12))), help="certified accuracy at these radii")
    parser.add_argument("--targets", default="2,4,8", help="target radii of the one-radius question")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--only", default=None, help="comma-separated run names to compute (several processes "
                        "can share the work); the tables need every run")
    args = parser.parse_args()

    smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, batch_size=args.batch_size, device="cpu")
    data = load_dataset(args.dataset, "test")
    indices = list(range(min(args.max, len(data))))
    settings = {"checkpoint": str(args.checkpoint.resolve()), "dataset": args.dataset, "split": "test"}
    radii = [float(r) for r in args.radii.split(",")]
    targets = [float(r) for r in args.targets.split(",")]
    adaptive = {"exact": Adaptive(), "looks": Adaptive(bound="looks"), "anytime": Adaptive(bound="anytime")}
    runs: dict[str, dict] = {  # cheap runs first, so an interrupted benchmark has them
        **{f"target R={r:g}": dict(n0=None, sampling=Adaptive(radius=r)) for r in targets},  # the defaults' n0
        **{f"adaptive ({name})": dict(n0=None, sampling=options) for name, options in adaptive.items()},
        "predict adaptive": dict(mode="predict", sampling=Adaptive()),
        "fixed seed 0": dict(n0=1000, sampling="fixed"),
        "fixed seed 1": dict(n0=1000, sampling="fixed", seed=1),
        "predict fixed": dict(mode="predict", sampling="fixed"),
    }
    logs = {}
    only = None if args.only is None else set(args.only.split(","))
    for name, run in runs.items():
        path = args.out / (name.replace(" ", "-").replace("(", "").replace(")", "").replace("=", "") + ".tsv")
        if only is not None and name not in only:
            continue
        print(f"== {name} -> {path}", flush=True)
        run_dataset(smoothed, data, path, n=args.n, alpha=args.alpha, indices=indices, settings=settings, **run)
        logs[name] = read_log(path, name=name)
    if only is not None:
        return

    reference = logs["fixed seed 0"]
    robust = lambda log: np.where(log.correct & ~np.isnan(log.radius), log.radius, -1.0)  # noqa: E731
    header = ["run", "samples mean", "samples median", "s/image", "ACR",
              *(f"r={r:g}" for r in radii), "radius differs (by: count)"]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, log in logs.items():
        if log.radius is None:
            continue
        differs = robust(log) - robust(reference)
        moved = ", ".join(f"{d:+g}: {c}" for d, c in zip(*np.unique(differs[differs != 0], return_counts=True)))
        cells = [name, f"{log.samples.mean():,.0f}", f"{np.median(log.samples):,.0f}", f"{log.time.mean():.3f}",
                 f"{average_certified_radius(log.radius, log.correct):.3f}",
                 *(f"{100 * a:.1f}" for a in certified_accuracy(log.radius, log.correct, np.array(radii))),
                 f"{int((differs != 0).sum())} ({moved or '-'})"]
        print("| " + " | ".join(cells) + " |")
    print(f"\nwall clock: fixed seed 0 {reference.time.sum():.1f} s; " + "; ".join(
        f"{name} {log.time.sum():.1f} s ({reference.time.sum() / log.time.sum():.1f}x faster)"
        for name, log in logs.items() if log.radius is not None and name != "fixed seed 0"))
    fixed, sequential = logs["predict fixed"], logs["predict adaptive"]
    print(f"PREDICT: fixed samples {fixed.samples.mean():,.0f}, sequential mean {sequential.samples.mean():,.0f} "
          f"median {np.median(sequential.samples):,.0f}; agreement {100 * np.mean(fixed.predict == sequential.predict):.1f}%; "
          f"accuracy (abstained) fixed {100 * fixed.correct.mean():.1f}% ({100 * np.mean(fixed.predict == -1):.1f}%), "
          f"sequential {100 * sequential.correct.mean():.1f}% ({100 * np.mean(sequential.predict == -1):.1f}%); "
          f"wall clock {fixed.time.sum():.1f} s vs {sequential.time.sum():.1f} s")


if __name__ == "__main__":
    main()
