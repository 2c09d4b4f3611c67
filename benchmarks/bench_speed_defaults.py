"""Defaults that pay (issue 35): the break-even of --compile / --channels-last, and the batch size.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_speed_defaults.py [--checkpoint runs/demo/k45/model] [--rounds 9]

Two workloads: ``certify`` (images sampled together by ``SmoothedClassifier.sample_many`` in
passes of ``--batch-size`` and a last partial one, as the runner makes them) and ``attack`` (small
forward passes of ~57 ablated copies, as a fixed-ablation attack oracle makes them).

1. Setup cost: for each variant (eager, channels-last, compile, compile + channels-last) a fresh
   process runs the workload once cold, then repeats it; the first run's excess over the median
   repeat is the variant's setup (compilation, including the recompile for a second batch size).
   Cold: a fresh inductor cache; warm: the same cache again.
2. Throughput: evaluations/s of the workload, variants alternating in one process, medians over
   ``--rounds`` rounds; and of the certify workload at several batch sizes.
3. Break-even: the evaluations E at which a variant's setup is repaid,
   E = (setup_v - setup_ref) / (1 / rate_ref - 1 / rate_v), against eager and against channels-last.
4. With ``--cli certify|predict|attack``: that subcommand end to end, old defaults (eager, batch
   1,000) against the new ones, alternating; the rows must agree up to the ``time`` column.
Without ``--checkpoint`` a randomly initialised ``mnist_cnn`` with the demo's ablation (k = 45,
2 x 28 x 28 inputs) is used: the same architecture, so the same speed as the trained demo model.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import smoothcert
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.models import build_model
from smoothcert.noises import make_noise
from smoothcert.runtime.seeding import generator
from smoothcert.runtime.speed import accelerate

SRC = str(Path(smoothcert.__file__).resolve().parents[1])
VARIANTS = {"eager": {}, "channels-last": {"channels_last": True}, "compile": {"compile": True},
            "compile + channels-last": {"compile": True, "channels_last": True}}
REQUESTS = (1000, 200, 400, 800, 100, 1600, 300)
"""Samples per image of one packed certify workload: 4,400 evaluations in full passes and a last partial one."""
ATTACK_PASSES = 60
"""Forward passes of one attack workload, each of Binomial(1000, 45/784) ablations (~57): the draws of
n = 1,000 fixed ablations that keep the pixel a Pointwise query changes, which its oracle re-evaluates."""


EAGER = {"compile": "off", "channels_last": "off"}
"""The variants are applied to the eager model, so the classifier is built without its speed defaults."""


def classifier(checkpoint: str | None, batch_size: int) -> SmoothedClassifier:
    if checkpoint:
        return SmoothedClassifier.from_checkpoint(checkpoint, batch_size=batch_size, device="cpu", **EAGER)
    torch.manual_seed(0)
    return SmoothedClassifier(build_model("mnist_cnn", 2, 10), make_noise("ablation", k=45), 10,
                              batch_size=batch_size, device="cpu", **EAGER)


def certify_workload(smoothed: SmoothedClassifier) -> tuple[float, int]:
    """(seconds, evaluations) of one packed workload (``REQUESTS``) on fixed test images."""
    images = torch.rand(len(REQUESTS), 1, 28, 28, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    smoothed.sample_many([(x, num, generator(0, i)) for i, (x, num) in enumerate(zip(images, REQUESTS))])
    return time.perf_counter() - start, sum(REQUESTS)


@torch.inference_mode()
def attack_workload(smoothed: SmoothedClassifier) -> tuple[float, int]:
    """(seconds, evaluations) of ``ATTACK_PASSES`` small forward passes of ablated copies, as a fixed-ablation
    oracle makes them (sizes drawn once, fixed seed)."""
    g = torch.Generator().manual_seed(2)
    sizes = (torch.rand(ATTACK_PASSES, 1000, generator=g) < 45 / 784).sum(1).tolist()
    x = torch.rand(1, 28, 28, generator=g)
    copies = smoothed.noise(x.expand(max(sizes), 1, 28, 28), g)
    start = time.perf_counter()
    for size in sizes:
        smoothed.base(copies[:size]).argmax(1)
    return time.perf_counter() - start, sum(sizes)


WORKLOADS = {"certify": certify_workload, "attack": attack_workload}


def setup_child(args: argparse.Namespace) -> None:
    """(in a fresh process) the first workload's seconds and the median of ``--repeats`` more, as JSON."""
    torch.set_num_threads(args.threads)
    smoothed = classifier(args.checkpoint, args.batch_size)
    run = WORKLOADS[args.workload]
    start = time.perf_counter()
    smoothed.base = accelerate(smoothed.base, **VARIANTS[args.variant])
    first = time.perf_counter() - start + run(smoothed)[0]
    steady = statistics.median(run(smoothed)[0] for _ in range(args.repeats))
    print(json.dumps({"first": first, "steady": steady}))


def setup_costs(args: argparse.Namespace, workload: str) -> dict[str, dict[str, float]]:
    """Setup seconds of every variant on ``workload``, cold (fresh inductor cache) and warm (that cache again)."""
    costs: dict[str, dict[str, float]] = {}
    for name in VARIANTS:
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache,
                   "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
            runs = {}
            for state in ("cold", "warm"):
                command = [sys.executable, __file__, "--setup-child", "--variant", name, "--threads", str(args.threads),
                           "--workload", workload, "--batch-size", str(args.batch_size), "--repeats", "5",
                           *(["--checkpoint", args.checkpoint] if args.checkpoint else [])]
                out = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
                runs[state] = json.loads(out.strip().splitlines()[-1])
            costs[name] = {state: max(0.0, r["first"] - r["steady"]) for state, r in runs.items()}
            print(f"{workload} setup {name:24s} cold {costs[name]['cold']:6.1f} s   warm {costs[name]['warm']:6.1f} s",
                  flush=True)
    return costs


def throughput(args: argparse.Namespace, workload: str) -> dict[str, float]:
    """Median evaluations/s of ``workload`` per variant, variants alternating round by round."""
    smoothed = classifier(args.checkpoint, args.batch_size)
    run = WORKLOADS[workload]
    eager = smoothed.base
    models = {name: accelerate(copy.deepcopy(eager), **options) for name, options in VARIANTS.items()}
    seconds: dict[str, list[float]] = {name: [] for name in models}
    evaluations = 0
    for model in models.values():  # warm-up: compilation and recompilation happen here
        smoothed.base = model
        run(smoothed), run(smoothed)
    for _ in range(args.rounds):
        for name, model in models.items():
            smoothed.base = model
            elapsed, evaluations = run(smoothed)
            seconds[name].append(elapsed)
    rates = {name: evaluations / statistics.median(s) for name, s in seconds.items()}
    for name, rate in rates.items():
        print(f"{workload} rate  {name:24s} {rate:8,.0f} evaluations/s ({rate / rates['eager']:.2f}x eager)", flush=True)
    return rates


def batch_sizes(args: argparse.Namespace) -> None:
    """Median evaluations/s of the workload at several batch sizes for ``--variants`` (one model per
    variant, so a compiled one has seen every size: dynamic shapes, as in a long run), all (variant,
    size) pairs alternating round by round; ratios to eager at batch 1,000."""
    sizes = tuple(int(b) for b in args.batch_sizes.split(","))
    smoothed = classifier(args.checkpoint, 1000)
    eager = smoothed.base
    models = {name: accelerate(copy.deepcopy(eager), **VARIANTS[name]) for name in args.variants.split(",")}
    for model in models.values():  # warm-up: every size once, compiling as needed
        for b in sizes:
            smoothed.base, smoothed.batch_size = model, b
            certify_workload(smoothed)
    seconds: dict[tuple[str, int], list[float]] = {(name, b): [] for name in models for b in sizes}
    for _ in range(args.rounds):
        for (name, b), times in seconds.items():
            smoothed.base, smoothed.batch_size = models[name], b
            times.append(certify_workload(smoothed)[0])
    eager_1000 = sum(REQUESTS) / statistics.median(seconds["eager", 1000]) if 1000 in sizes else None
    for name in models:
        rates = {b: sum(REQUESTS) / statistics.median(seconds[name, b]) for b in sizes}
        print(f"batch {name:24s} " + "  ".join(
            f"{b}: {r:,.0f}/s" + (f" ({r / eager_1000:.2f}x)" if eager_1000 else "") for b, r in rates.items()), flush=True)


def cli_defaults(args: argparse.Namespace) -> None:
    """Wall seconds of ``smoothcert SUBCOMMAND`` (``--cli``: certify, predict or attack, with ``--cli-args``)
    on ``--checkpoint`` with the old defaults (eager, batch 1,000) and the new ones (auto), alternating
    ``--cli-rounds`` times; the logs must agree row by row up to the time column."""
    old = ["--compile", "off", "--channels-last", "off", "--batch-size", "1000"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    seconds: dict[str, list[float]] = {"old defaults": [], "new defaults": []}
    with tempfile.TemporaryDirectory() as work:
        logs = {}
        for r in range(args.cli_rounds):
            for name, extra in (("old defaults", old), ("new defaults", [])):
                logs[name] = Path(work) / f"{r}-{name.split()[0]}.tsv"
                command = [sys.executable, "-m", "smoothcert", args.cli, "--checkpoint", args.checkpoint, "--max",
                           str(args.cli_images), "--device", "cpu", "--quiet", "--out", str(logs[name]),
                           *shlex.split(args.cli_args), *extra]
                start = time.perf_counter()
                subprocess.run(command, env=env, check=True, capture_output=True)
                seconds[name].append(time.perf_counter() - start)
                print(f"cli {name}: {seconds[name][-1]:.1f} s", flush=True)
        rows = {name: [line.split("\t")[:-1] for line in log.read_text().splitlines()] for name, log in logs.items()}
    old_s, new_s = (statistics.median(s) for s in seconds.values())
    print(f"cli {args.cli} {args.cli_images} images {args.cli_args}: old defaults {old_s:.1f} s, "
          f"new defaults {new_s:.1f} s (medians of {args.cli_rounds}): {old_s / new_s:.2f}x; "
          f"rows equal up to time: {rows['old defaults'] == rows['new defaults']}", flush=True)


def break_even(workload: str, costs: dict[str, dict[str, float]], rates: dict[str, float]) -> None:
    for reference in ("eager", "channels-last"):
        for name in VARIANTS:
            gain = 1 / rates[reference] - 1 / rates[name]
            if name == reference or gain <= 0:
                continue
            for state in ("cold", "warm"):
                extra = costs[name][state] - costs[reference][state]
                evaluations = max(0.0, extra) / gain
                print(f"{workload} break-even {name} vs {reference} ({state}): {evaluations:,.0f} evaluations "
                      f"= {evaluations / rates[reference]:,.1f} s of {reference}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="default: a randomly initialised mnist_cnn, k = 45")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--skip-batch", action="store_true", help="skip the batch-size sweep")
    parser.add_argument("--only-batch", action="store_true", help="only the batch-size sweep")
    parser.add_argument("--batch-sizes", default="64,128,256,512,1000", help="the sweep's batch sizes")
    parser.add_argument("--variants", default="eager,channels-last,compile + channels-last",
                        help="the sweep's variants, comma-separated")
    parser.add_argument("--cli", choices=("certify", "predict", "attack"), default=None,
                        help="also time this subcommand end to end, old vs new defaults (needs --checkpoint)")
    parser.add_argument("--cli-images", type=int, default=10)
    parser.add_argument("--cli-args", default="--sampling fixed --n 2000", help="more arguments of the subcommand")
    parser.add_argument("--cli-rounds", type=int, default=3)
    parser.add_argument("--setup-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workloads", default="certify,attack", help="certify (packed sampling) and/or attack "
                        "(small passes of a fixed-ablation oracle)")
    parser.add_argument("--batch-size", type=int, default=512, help="the certify workload's batch size")
    parser.add_argument("--variant", default="eager", help=argparse.SUPPRESS)
    parser.add_argument("--workload", default="certify", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_child:
        setup_child(args)
        return
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    for workload in [] if args.only_batch else [w for w in args.workloads.split(",") if w]:
        costs = setup_costs(args, workload)
        break_even(workload, costs, throughput(args, workload))
    if not args.skip_batch:
        batch_sizes(args)
    if args.cli:
        cli_defaults(args)


if __name__ == "__main__":
    main()
