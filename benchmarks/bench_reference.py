"""SmoothedClassifier.certify against the reference randomized-ablation code, same model, same digits.

The reference is Levine & Feizi's own MNIST CERTIFY (github.com/alevine0/randomizedAblation,
``mnist_certify.py`` with ``utils.certify``): each DataLoader batch of 10 digits is expanded to
``predsamples`` = 1,000 ablated copies per digit for selection and ``boundsamples`` = 10,000 for
the bound, each expansion through the network in one forward pass; the bound is statsmodels'
Clopper-Pearson interval at ``2 alpha`` and the radius the largest r with
``1.5 - p_lower < C(d - r, k) / C(d, k)``. Its licence forbids copying the code, so the functions
below re-implement that procedure step by step (mask drawing included), on the CPU, and the
benchmark feeds them this project's model: its input encoding (x, 1 - x on kept pixels, 0
elsewhere) is the reference's.

One run alternates blocks of 10 digits (the order of the arms rotates per block, so load from
other jobs falls on every arm alike) and compares, per digit:

* (a) largest radius: reference (n0 = 1,000, n = 10,000) vs ``certify(..., sampling="adaptive")``
  called per digit on ``SmoothedClassifier.from_checkpoint``, whose defaults are the command
  line's speed defaults (the measured batch size, channels-last and compile ``"auto"``);
* (b) target radius R: the same reference run vs ``Adaptive(radius=R)``;
* with ``--compile``, (a) and (b) again with compilation on (``compile="on"``, compiled on
  warm-up batches first, its time reported apart);
* ``packed``: (a) and (b) with each block of 10 digits certified in one packed call
  (``certify(images, ..., seed=0, indices=...)``), which gives the same certificates per digit.

The reference runs the checkpoint's model as it is (eager, float32, its own batches).

Radii are compared in one convention: -1 where the digit is not certified correctly (wrong class
or abstain, p_lower <= 1/2), else the certified L0 radius.

Run: OMP_NUM_THREADS=1 python benchmarks/bench_reference.py --checkpoint runs/demo/k45/model --images 40 --compile
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon
from statsmodels.stats.proportion import proportion_confint
from torch import nn

from smoothcert.certificates.sequential import Adaptive
from smoothcert.checkpoint import load_checkpoint
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.data import load_dataset
from smoothcert.runtime.seeding import generator

BLOCK = 10  # the reference's DataLoader batch


# ----------------------------------------------------------------------------- the reference procedure


def reference_choose(d: int, k: int, rows: int) -> torch.Tensor:
    """``k`` distinct positions of ``d`` per row, drawn as the reference does: the i-th is uniform
    among the ``d - i`` positions left, mapped to a position by adding how many earlier picks lie
    at or below it (iterated to a fixed point)."""
    picks = torch.zeros(rows, k, dtype=torch.long)
    for i in range(k):
        picks[:, i] = torch.randint(0, d - i, (rows,))
        if i:
            last = torch.zeros(rows, dtype=torch.long)
            shift = (picks[:, :i] <= (picks[:, i] + last).unsqueeze(1)).sum(1)
            while not torch.equal(shift, last):
                last = shift
                shift = (picks[:, :i] <= (picks[:, i] + last).unsqueeze(1)).sum(1)
            picks[:, i] += shift
    return picks


def reference_ablate(batch: torch.Tensor, k: int) -> torch.Tensor:
    """Two channels (x, 1 - x) at ``k`` positions per image drawn by :func:`reference_choose`, 0 elsewhere."""
    flat = batch.reshape(len(batch), -1)
    kept, inverse = torch.zeros(flat.shape), torch.zeros(flat.shape)
    where = (torch.arange(len(flat)).unsqueeze(1), reference_choose(flat.shape[1], k, len(flat)))
    kept[where], inverse[where] = flat[where], 1.0 - flat[where]
    return torch.stack([kept.reshape(batch.shape), inverse.reshape(batch.shape)], dim=1).squeeze(2)


def reference_shares(batch: torch.Tensor, net: nn.Module, num: int, k: int) -> torch.Tensor:
    """Vote shares (images, classes) of ``num`` ablations per image, all in one forward pass."""
    logits = net(reference_ablate(batch.repeat_interleave(num, 0), k))
    votes = torch.zeros(logits.shape).scatter_(1, logits.max(1)[1].unsqueeze(1), 1)
    return votes.reshape(len(batch), num, -1).mean(1)


def reference_radius(p_lower: np.ndarray, d: int, k: int) -> np.ndarray:
    """The largest r with ``1.5 - p_lower < (d - r)! (d - k)! / (d! (d - k - r)!)`` (0 when none)."""
    lhs = 1.5 - p_lower
    radii, done, r = np.zeros(len(lhs), dtype=np.int64), np.zeros(len(lhs), dtype=bool), 0
    while not done.all():
        rhs = math.factorial(d - r) * math.factorial(d - k) / (math.factorial(d) * math.factorial(d - k - r))
        done |= lhs >= rhs
        radii[lhs < rhs] = r
        r += 1
    return radii


@torch.no_grad()
def reference_certify(batch: torch.Tensor, labels: torch.Tensor, net: nn.Module, alpha: float, k: int,
                      n0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's radii (-1 wrong class, 0 also for no certificate) and its p_lower."""
    guesses = reference_shares(batch, net, n0, k).max(1)[1]
    shares = torch.gather(reference_shares(batch, net, n, k), 1, guesses.unsqueeze(1))
    p_lower = proportion_confint((shares * n).numpy(), n, alpha=2 * alpha, method="beta")[0].ravel()
    radii = reference_radius(p_lower, batch[0].nelement(), k)
    radii[(guesses != labels).numpy()] = -1
    return radii, p_lower


# ----------------------------------------------------------------------------- the comparison


def wilcoxon_p(a: np.ndarray, b: np.ndarray) -> str:
    """Two-sided Wilcoxon signed-rank p of paired ``a - b`` with the zero differences dropped (SciPy's
    default, a test of the digits that differ only) and split (Pratt-like, all digits), and how
    many digits ``b`` certifies lower / higher; p 1 when every difference is 0."""
    lower, higher = int(np.sum(b < a)), int(np.sum(b > a))
    if lower + higher == 0:
        return "1.000 / 1.000 (0 lower, 0 higher)"
    dropped, split = (float(wilcoxon(a, b, zero_method=method).pvalue) for method in ("wilcox", "zsplit"))
    return f"{dropped:.3f} / {split:.3f} ({lower} lower, {higher} higher)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--images", type=int, default=40, help="first N mnist5k test digits (a multiple of 10)")
    parser.add_argument("--n0", type=int, default=1000, help="the reference's predsamples")
    parser.add_argument("--n", type=int, default=10_000, help="the reference's boundsamples; adaptive n_max")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--adaptive-n0", type=int, default=None,
                        help="selection samples of adaptive CERTIFY (default: the question's, Adaptive.default_n0)")
    parser.add_argument("--target", type=float, default=4.0, help="the target radius of (b)")
    parser.add_argument("--compile", action="store_true", help="also time a compiled channels-last copy")
    args = parser.parse_args()
    if args.images % BLOCK:
        raise ValueError(f"--images must be a multiple of {BLOCK}, got {args.images}")

    torch.manual_seed(0)
    data = load_dataset("mnist5k", "test")
    smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, device="cpu")
    model = load_checkpoint(args.checkpoint)[0].eval()  # the reference's: the model as it is
    k = smoothed.noise.k
    arms: dict[str, Callable[[int], tuple[float, float]]] = {}

    def sequential(classifier: SmoothedClassifier, options: Adaptive) -> Callable[[int], tuple[float, float]]:
        n0 = options.default_n0() if args.adaptive_n0 is None else args.adaptive_n0

        def run(i: int) -> tuple[float, float]:
            cert = classifier.certify(data.x[i], n0, args.n, args.alpha, generator(0, i), sampling=options)
            certified = cert.predict == int(data.y[i]) and not math.isnan(cert.radius)
            return (cert.radius if certified else -1.0), cert.n + n0
        return run

    largest, target = Adaptive(), Adaptive(radius=args.target)
    arms["adaptive"], arms[f"R={args.target:g}"] = sequential(smoothed, largest), sequential(smoothed, target)
    if args.compile:
        fast = SmoothedClassifier.from_checkpoint(args.checkpoint, device="cpu", compile="on")
        start = time.perf_counter()
        with torch.inference_mode():  # compile a dynamic-shape graph and the batch-of-1 one before timing
            for size in (1000, 100, 37, 1):
                fast.base(torch.rand(size, fast.noise.channels(1), *data.x.shape[-2:]))
        print(f"compiled copy: warm-up (compilation) {time.perf_counter() - start:.1f} s")
        arms["adaptive+compile"] = sequential(fast, largest)
        arms[f"R={args.target:g}+compile"] = sequential(fast, target)
    blocks: dict[str, Callable[[list[int]], list[tuple[float, float]]]] = {}

    def packed_block(options: Adaptive) -> Callable[[list[int]], list[tuple[float, float]]]:
        n0 = options.default_n0() if args.adaptive_n0 is None else args.adaptive_n0

        def run(idx: list[int]) -> list[tuple[float, float]]:
            certs = smoothed.certify(data.x[idx], n0, args.n, args.alpha, sampling=options, seed=0, indices=idx)
            return [((c.radius if c.predict == int(data.y[i]) and not math.isnan(c.radius) else -1.0), c.n + n0)
                    for i, c in zip(idx, certs)]
        return run

    blocks["adaptive packed"], blocks[f"R={args.target:g} packed"] = packed_block(largest), packed_block(target)

    radii = {name: np.zeros(args.images) for name in ["reference", *arms, *blocks]}
    samples = {name: np.zeros(args.images) for name in [*arms, *blocks]}
    seconds = dict.fromkeys(radii, 0.0)
    names = list(radii)
    for block in range(args.images // BLOCK):
        idx = list(range(block * BLOCK, (block + 1) * BLOCK))
        shift = block % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            if name == "reference":
                got, p_lower = reference_certify(data.x[idx], data.y[idx], model, args.alpha, k, args.n0, args.n)
                radii[name][idx] = np.where((got >= 0) & (p_lower > 0.5), got, -1)
            elif name in blocks:
                results = blocks[name](idx)
                radii[name][idx] = [radius for radius, _ in results]
                samples[name][idx] = [used for _, used in results]
            else:
                for i in idx:
                    radii[name][i], samples[name][i] = arms[name](i)
            seconds[name] += time.perf_counter() - start
        print(f"block {block + 1}: " + ", ".join(f"{n} {seconds[n]:.1f} s" for n in names), flush=True)

    ref = radii["reference"]
    print(f"\n{args.images} mnist5k test digits, alpha {args.alpha}; reference n0={args.n0} n={args.n}; adaptive "
          f"{largest.settled()}, {target.settled()}, n <= {args.n}; radius -1 = not certified correctly")
    print("| run | s/image | speed-up | samples mean | median radius | mean radius | Wilcoxon p vs reference "
          "(zeros dropped / split) "
          f"| certified at {args.target:g} |\n|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in names:
        r = radii[name]
        used = args.n0 + args.n if name == "reference" else samples[name].mean()
        is_target = name.startswith("R=")
        same = wilcoxon_p((ref >= args.target) * 1, (r >= args.target) * 1) if is_target else wilcoxon_p(ref, r)
        median, mean = ("", "") if is_target else (f"{np.median(r):.1f}", f"{np.mean(r):.2f}")
        print(f"| {name} | {seconds[name] / args.images:.3f} | {seconds['reference'] / seconds[name]:.1f}x | "
              f"{used:,.0f} | {median} | {mean} | {same} | {int(np.sum(r >= args.target))} |")


if __name__ == "__main__":
    main()
