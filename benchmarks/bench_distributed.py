"""Scaling out (issue 16): sharded certification, compiled forward passes, log checks.

Run: python benchmarks/bench_distributed.py [--checkpoint runs/demo/k45/model] [--images 24] [--rounds 3]

1. Certify throughput (images/s) of one process with 2 threads against ``torchrun`` with 2 ranks
   of 1 thread each, on the same images and seed; rounds interleaved, medians reported. End to
   end (wall clock of the whole command, start-up included) and compute only (images over the
   summed ``time`` column, for torchrun over the slower rank's sum). Target: torchrun >= 0.9x.
2. Evaluations/s of the base classifier at batch 1,000 (bare forward on ablated inputs, and the
   whole ``SmoothedClassifier.sample``): eager, channels-last, torch.compile, both; interleaved
   rounds, medians. Target: compiled >= 1.3x eager.
3. Checks: the torchrun log equals the single-process log up to the ``time`` column (and its
   settings file byte for byte); of two identical certify commands started half a second apart
   on one log, the second is refused naming the first's pid, and the log ends with every row once.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import smoothcert
from smoothcert.runner.shards import Shard
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.runtime.speed import Accelerated

SRC = str(Path(smoothcert.__file__).resolve().parents[1])


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}


def _certify_args(args: argparse.Namespace, out: Path) -> list[str]:
    return ["certify", "--checkpoint", args.checkpoint, "--n0", str(args.n0), "--n", str(args.n), "--max", str(args.images),
            "--device", "cpu", "--quiet", "--out", str(out)]


def _single(args: argparse.Namespace, out: Path) -> list[str]:
    return [sys.executable, "-m", "smoothcert", *_certify_args(args, out)]


def _torchrun(args: argparse.Namespace, out: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "smoothcert", "--",
            *_certify_args(args, out)]


def _rows(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()[1:]]


def _timed(command: list[str], threads: int) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=_env(threads), check=True, capture_output=True)
    return time.perf_counter() - start


def throughput(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    results: dict[str, dict[str, list[float]]] = {"1 process x 2 threads": {"wall": [], "compute": []},
                                                 "torchrun 2 ranks x 1 thread": {"wall": [], "compute": []}}
    logs = {}
    for r in range(args.rounds):
        for name, command, threads in (("1 process x 2 threads", _single, 2), ("torchrun 2 ranks x 1 thread", _torchrun, 1)):
            out = work / f"r{r}-{'single' if threads == 2 else 'torchrun'}.tsv"
            wall = _timed(command(args, out), threads)
            rows = _rows(out)
            times = {int(row[0]): float(row[-1]) for row in rows}
            order = sorted(times)
            if threads == 2:
                compute = sum(times.values())
            else:  # the ranks work side by side: the slower one sets the pace
                compute = max(sum(times[i] for i in Shard(rank, 2).select(order)) for rank in range(2))
            results[name]["wall"].append(len(rows) / wall)
            results[name]["compute"].append(len(rows) / compute)
            logs[threads] = out
            print(f"round {r + 1} {name}: {len(rows) / wall:.3f} images/s end to end, {len(rows) / compute:.3f} compute only",
                  flush=True)
    medians = {name: {k: statistics.median(v) for k, v in res.items()} for name, res in results.items()}
    for name, m in medians.items():
        print(f"{name}: median {m['wall']:.3f} images/s end to end, {m['compute']:.3f} images/s compute only")
    single, sharded = medians["1 process x 2 threads"], medians["torchrun 2 ranks x 1 thread"]
    print(f"torchrun / single: {sharded['wall'] / single['wall']:.2f}x end to end, "
          f"{sharded['compute'] / single['compute']:.2f}x compute only (target >= 0.9x)")
    return logs[2], logs[1]


def compiled_speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, batch_size=1000, device="cpu",
                                                  compile="off", channels_last="off")  # the variants wrap the eager model
    eager = smoothed.base
    variants = {"eager": eager, "channels-last": Accelerated(copy.deepcopy(eager), channels_last=True),
                "compile": Accelerated(copy.deepcopy(eager), compile=True),
                "compile + channels-last": Accelerated(copy.deepcopy(eager), compile=True, channels_last=True)}
    x = torch.rand(1, 28, 28)
    ablated = smoothed.noise(x.expand(1000, 1, 28, 28), generator(0, 0))
    rates: dict[str, dict[str, list[float]]] = {name: {"forward": [], "sample": []} for name in variants}
    with torch.inference_mode():
        for name, model in variants.items():  # warm-up: compilation happens here
            start = time.perf_counter()
            model(ablated)
            print(f"{name}: first call {time.perf_counter() - start:.1f} s", flush=True)
        for _ in range(args.rounds * 3):
            for name, model in variants.items():
                start = time.perf_counter()
                model(ablated).argmax(1)
                rates[name]["forward"].append(1000 / (time.perf_counter() - start))
                smoothed.base = model
                start = time.perf_counter()
                smoothed.sample(x, 1000, generator(0, 1))
                rates[name]["sample"].append(1000 / (time.perf_counter() - start))
    base = {k: statistics.median(v) for k, v in rates["eager"].items()}
    print(f"torch {torch.__version__}, {args.threads} threads, batch 1000, {args.rounds * 3} interleaved rounds, medians:")
    for name, r in rates.items():
        forward, sample = statistics.median(r["forward"]), statistics.median(r["sample"])
        print(f"  {name:24s} forward {forward:8,.0f} evaluations/s ({forward / base['forward']:.2f}x)   "
              f"sample {sample:8,.0f} evaluations/s ({sample / base['sample']:.2f}x)")


def checks(args: argparse.Namespace, single: Path, sharded: Path, work: Path) -> None:
    same = [r[:-1] for r in _rows(single)] == [r[:-1] for r in _rows(sharded)]
    same_settings = Path(f"{single}.json").read_bytes() == Path(f"{sharded}.json").read_bytes()
    print(f"identical log (up to time): {same}; identical settings file: {same_settings}")
    # two identical certify commands started half a second apart on one --out (long enough to overlap)
    locked = argparse.Namespace(**{**vars(args), "n": args.lock_n})
    out = work / "locked.tsv"
    first = subprocess.Popen(_single(locked, out), env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)
    started = time.perf_counter()
    second = subprocess.Popen(_single(locked, out), env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, run in (("second", second), ("first", first)):
        _, err = run.communicate()
        last = err.strip().splitlines()[-1] if err.strip() else ""
        print(f"{name} command (pid {run.pid}): exit {run.returncode} after {time.perf_counter() - started:.1f} s  {last}")
    idx = [int(r[0]) for r in _rows(out)]
    print(f"log: {len(idx)} rows, {len(set(idx))} distinct idx (expected {args.images})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", default="runs/demo/k45/model")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for the compile benchmark")
    parser.add_argument("--lock-n", type=int, default=5000, help="n of the lock check's runs (long enough to overlap)")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if not args.skip_throughput:
            single, sharded = throughput(args, work)
        compiled_speed(args)
        if not args.skip_throughput:
            checks(args, single, sharded, work)


if __name__ == "__main__":
    main()
