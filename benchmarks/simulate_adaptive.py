"""Choose the adaptive-certification defaults by simulation on a model's vote shares (no forward passes).

Each image's top-class share p is its ``count / n`` in a fixed-sampling certify log (the class the
fixed run selected); the other classes share 1 - p as in a measured sample of votes (``--votes``,
made by ``--measure``), or all of it goes to one runner-up (the worst case for selection).
Sequential CERTIFY (:func:`smoothcert.certificates.sequential.certify_steps`, Levine & Feizi 2020
Corollary 1 for d = 784, k = 45) is replayed with multinomial and binomial draws, vectorised over
images and repetitions: selection on ``n0`` votes, then group-sequential Clopper-Pearson looks
with a futility rule (``threshold`` or ``final``) at ``beta``, or the exact bound's boundaries;
with ``n0 = 0`` (one radius, exact bound) every class's votes are drawn and the class that leads at
each look is tested, at the library's folded level. The paper's fixed protocol (n0 =
1,000, n = 10,000) is replayed on the same shares as the yardstick. Printed per question (largest
radius, each target radius): the old and the current defaults (``DEFAULTS``) and the cheapest grid
settings that lose at most ``--tolerance`` more than the old ones against fixed n: expected
samples per image (selection included), ACR, certified accuracy, and for the largest radius how
often a digit certifies lower / higher than in a fixed-n run and how often a Wilcoxon test on
``--images`` digits tells the two apart. The grid spans n0, the first look, the growth, beta, the
futility rule and the last look's share of alpha (``--last``). PREDICT
(:func:`smoothcert.certificates.sequential.predict_steps`, the library's coroutine fed one vote
sequence per run and digit) is replayed at the looks and exact bounds' schedules, or at a grid of
first looks and growths (``--predict-step``, ``--predict-growth``): samples and looks per digit
(each look is a forward pass), accuracy and abstentions.

The statistical floor: an oracle that knows p and the radius to certify (the one fixed n gets at
the expected count) needs the smallest n whose Clopper-Pearson bound at alpha, at the expected
count p n, passes that radius's threshold tau_r; images fixed n does not certify cost it 0.

Run: python benchmarks/simulate_adaptive.py fixed.tsv --measure MODEL --samples 300 --votes votes.npy
     python benchmarks/simulate_adaptive.py fixed.tsv --votes votes.npy --shift 0.3 --no-grid  # a stronger model
     python benchmarks/simulate_adaptive.py fixed.tsv --votes votes.npy --no-grid --skip-largest --targets "" \
         --predict-reps 200 --predict-step 8,12,20 --predict-growth 1.2,1.3,1.5  # PREDICT's schedule
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from scipy.stats import beta as beta_dist
from scipy.stats import binom, binomtest, wilcoxon

from smoothcert.certificates import delta
from smoothcert.certificates.sequential import (ABSTAIN, DEFAULT_BOUND, DEFAULTS, Adaptive, ExactLooks,
                                                 GroupSequentialCP, exact_thresholds, folded_level, predict_steps,
                                                 spend)

D, K, ALPHA, N_MAX = 784, 45, 0.05, 10_000
TAU = 0.5 + delta(np.arange(13), D, K)  # radius r needs p_lower > tau_r; tau_12 > 1 caps it at 11


def radius(p: np.ndarray) -> np.ndarray:
    """Corollary 1 by table: the largest r with p > tau_r, -1 for abstain."""
    return np.searchsorted(TAU, p, side="left") - 1


@dataclass(frozen=True)
class Cor1:
    """Corollary 1 as the library's certify coroutine takes it (hashable, so its tables are cached)."""

    def __call__(self, p: float) -> float:
        r = int(radius(np.array(p)))
        return float("nan") if r < 0 else float(r)


def cp_lower(count: np.ndarray, n: np.ndarray | int, alpha: float | np.ndarray) -> np.ndarray:
    n = np.broadcast_to(n, np.shape(count))
    return np.where(count > 0, beta_dist.ppf(alpha, np.maximum(count, 1e-12), n - count + 1), 0.0)


def cp_upper(count: np.ndarray, n: np.ndarray | int, level: float) -> np.ndarray:
    n = np.broadcast_to(n, np.shape(count))
    return np.where(count < n, beta_dist.isf(level, count + 1, np.maximum(n - count, 1e-12)), 1.0)


def read_log(path: Path) -> dict[str, np.ndarray]:
    """``idx``, ``label``, ``predict`` and top-class share ``count / n`` of a fixed-sampling certify log."""
    settings = json.loads(path.with_name(path.name + ".json").read_text())
    if settings.get("sampling") != "fixed":
        raise ValueError(f"{path}: needs a fixed-sampling log (its counts are over all n samples)")
    with path.open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return {"idx": np.array([int(r["idx"]) for r in rows]), "label": np.array([int(r["label"]) for r in rows]),
            "predict": np.array([int(r["predict"]) for r in rows]),
            "p": np.array([int(r["count"]) / int(r["n"]) for r in rows])}


def class_probabilities(log: dict[str, np.ndarray], votes: np.ndarray | None, classes: int, shift: float) -> np.ndarray:
    """(images, classes): the logged class gets p, the rest 1 - p in proportion to the other classes'
    ``votes`` (a measured sample), or all of it on one runner-up without votes (the worst case for
    selection). ``shift`` > 0 simulates a stronger model: every other class's share times 1 - shift."""
    rows = np.arange(len(log["p"]))
    others = np.zeros((len(rows), classes))
    if votes is not None:
        others = votes.astype(float)
    others[rows, log["predict"]] = 0
    empty = others.sum(1) == 0
    others[rows[empty], (log["predict"][empty] + 1) % classes] = 1
    q = others / others.sum(1, keepdims=True) * ((1 - log["p"]) * (1 - shift))[:, None]
    q[rows, log["predict"]] = 1 - (1 - log["p"]) * (1 - shift)
    return q


def measure_votes(checkpoint: Path, log: dict[str, np.ndarray], samples: int) -> np.ndarray:
    """Votes (images, classes) of ``samples`` ablations of each logged mnist5k test digit (forward passes)."""
    from smoothcert.classifiers.smoothed import SmoothedClassifier
    from smoothcert.data import load_dataset
    from smoothcert.runtime.seeding import generator

    smoothed = SmoothedClassifier.from_checkpoint(checkpoint, device="cpu")
    data = load_dataset("mnist5k", "test")
    return np.stack([smoothed.sample(data.x[i], samples, generator(7, int(i))) for i in log["idx"]])


@dataclass(frozen=True)
class Setting:
    n0: int
    first: int
    growth: float
    beta: float
    futility: str = "threshold"
    last: float = 0.5  # the share of alpha kept for the last look (spend; looks bound)
    bound: str = "looks"
    rho: float = 1.0  # alpha spent by look j: (n_j / n)^rho (exact bound)

    @classmethod
    def default(cls, bound: str, question: str) -> "Setting":
        d = DEFAULTS[bound][question]
        return cls(d["n0"], d["step"], d["growth"], d["beta"], d["futility"], d.get("last", 0.5), bound,
                   d.get("rho", 1.0))


def select(q: np.ndarray, n0: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The class selected on ``n0`` votes drawn from ``q`` (..., classes), first on ties, and its share."""
    chosen = rng.multinomial(n0, q).argmax(-1)
    return chosen, np.take_along_axis(q, chosen[..., None], -1)[..., 0]


@cache
def certified_table(first: int, growth: float, last: float) -> tuple[np.ndarray, list[np.ndarray], int]:
    """Looks, the radius each look's lower bound certifies at every count, and the cap."""
    looks = GroupSequentialCP(first, growth).looks(N_MAX)
    alphas = spend(ALPHA, len(looks), last)
    tables = [radius(cp_lower(np.arange(m + 1.0), m, a)) for m, a in zip(looks, alphas)]
    return looks, tables, int(max(t[-1] for t in tables))


@cache
def reachable_table(first: int, growth: float, level: float, futility: str, last: float) -> list[np.ndarray]:
    """The radius still reachable after each look, at every count: the one its upper bound U at
    ``level`` passes (``threshold``) or the one the last look's bound would certify at the count
    U n_max (``final``)."""
    looks = GroupSequentialCP(first, growth).looks(N_MAX)
    final = spend(ALPHA, len(looks), last)[-1]
    uppers = [cp_upper(np.arange(m + 1.0), m, level) for m in looks]
    if futility == "threshold":
        return [radius(u) for u in uppers]
    return [radius(cp_lower(np.floor(u * N_MAX), N_MAX, final)) for u in uppers]


def exact_tables(s: Setting, target: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The library's own tables of the exact bound: looks, radii, crossing and futility counts."""
    grid = exact_thresholds(Cor1(), 1.0, target, ExactLooks(s.first, s.growth, s.rho), N_MAX, ALPHA, s.beta)
    return grid.looks, grid.radii.astype(int), grid.crossing, grid.futility


def sequential(q: np.ndarray, s: Setting, target: float | None,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Selected class, certified radius (-1: abstain) and samples (selection included) of
    sequential CERTIFY on images with class probabilities ``q`` (..., classes)."""
    if s.n0 == 0:
        return folded_replay(q, s, target, rng)
    chosen, p = select(q, s.n0, rng)
    if s.bound == "exact":
        return (chosen, *exact_replay(p, s, target, rng))
    looks, certifies, cap = certified_table(s.first, s.growth, s.last)
    reaches = reachable_table(s.first, s.growth, s.beta, s.futility, s.last)
    count = np.zeros(p.shape, dtype=np.int64)
    certified = np.full(p.shape, -1)
    used = np.zeros(p.shape, dtype=np.int64)
    alive = np.ones(p.shape, dtype=bool)
    previous = 0
    for m, certify, reach in zip(looks, certifies, reaches):
        count = count + np.where(alive, rng.binomial(m - previous, p), 0)
        used = np.where(alive, m, used)
        previous = m
        certified = np.where(alive, np.maximum(certified, certify[count]), certified)
        reachable = reach[count]
        if target is None:
            stop = (certified >= cap) | (reachable <= certified)
        else:
            stop = (certified >= target) | (reachable < target)
        alive &= ~stop
        if not alive.any():
            break
    return chosen, certified, used + s.n0


def exact_replay(p: np.ndarray, s: Setting, target: float | None,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Certified radius and samples (selection included) of the exact bound on top-class shares ``p``:
    :func:`smoothcert.certificates.sequential._exact_steps`, vectorised over images and runs."""
    looks, radii, crossing, futility = exact_tables(s, target)
    count = np.zeros(p.shape, dtype=np.int64)
    best = np.full(p.shape, -1)
    used = np.zeros(p.shape, dtype=np.int64)
    alive = np.ones(p.shape, dtype=bool)
    previous = 0
    for j, m in enumerate(looks if len(radii) else []):
        count = count + np.where(alive, rng.binomial(m - previous, p), 0)
        used = np.where(alive, m, used)
        previous = m
        best = np.where(alive, np.maximum(best, (count[..., None] >= crossing[:, j]).sum(-1) - 1), best)
        reach = (count[..., None] > futility[:, j]).sum(-1) - 1
        stop = (best >= len(radii) - 1) | (reach <= best) if target is None else (best >= 0) | (reach < 0)
        alive &= ~stop
        if not alive.any():
            break
    return np.where(best >= 0, radii[np.maximum(best, 0)], -1), used + s.n0


def folded_replay(q: np.ndarray, s: Setting, target: float | None,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The one-radius test with ``n0 = 0`` (:func:`smoothcert.certificates.sequential._exact_steps`
    with no selected class): at each look the leading class (first on ties) is certified at its
    crossing boundary or given up at its futility one, the boundaries at the library's folded level."""
    if s.bound != "exact" or target is None:
        raise ValueError("n0 = 0 is the exact bound's one-radius question")
    family = ExactLooks(s.first, s.growth, s.rho)
    level = folded_level(Cor1(), 1.0, target, family, N_MAX, ALPHA, s.beta, q.shape[-1])
    grid = exact_thresholds(Cor1(), 1.0, target, family, N_MAX, level, s.beta)
    counts = np.zeros(q.shape, dtype=np.int64)
    alive = np.ones(q.shape[:-1], dtype=bool)
    certified = np.zeros(q.shape[:-1], dtype=bool)
    used = np.zeros(q.shape[:-1], dtype=np.int64)
    leader = np.zeros(q.shape[:-1], dtype=np.int64)
    previous = 0
    for j, m in enumerate(grid.looks if len(grid.radii) else []):
        counts += rng.multinomial(np.where(alive, m - previous, 0), q)
        used, previous = np.where(alive, m, used), m
        leader = np.where(alive, counts.argmax(-1), leader)
        count = np.take_along_axis(counts, leader[..., None], -1)[..., 0]
        crossed = alive & (count >= grid.crossing[0, j])
        certified |= crossed
        alive &= ~crossed & (count > grid.futility[0, j])
        if not alive.any():
            break
    return leader, np.where(certified, int(target), -1), used


def fixed(q: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Selected class and certified radius of the paper's protocol (n0 = 1,000, n = 10,000, Clopper-Pearson at alpha)."""
    chosen, share = select(q, 1000, rng)
    return chosen, radius(cp_lower(rng.binomial(N_MAX, share).astype(float), N_MAX, ALPHA))


def oracle(p: np.ndarray, needed: np.ndarray, power: float | None = None) -> np.ndarray:
    """Samples an oracle knowing p needs to certify radius ``needed`` (-1: nothing, 0 samples):
    the smallest n whose Clopper-Pearson bound at the expected count p n passes tau_needed (the
    floor), or, with ``power``, the smallest fixed n that certifies it with that probability (at most n_max)."""
    out = np.zeros(p.shape)
    for i in np.flatnonzero(needed >= 0):
        lo, hi = 1, N_MAX
        while lo < hi:
            mid = (lo + hi) // 2
            if power is None:
                passes = cp_lower(np.array(p[i] * mid), mid, ALPHA) > TAU[needed[i]]
            else:
                counts = np.arange(mid + 1.0)
                passes = binom.pmf(counts, mid, p[i])[cp_lower(counts, mid, ALPHA) > TAU[needed[i]]].sum() >= power
            lo, hi = (lo, mid) if passes else (mid + 1, hi)
        out[i] = lo
    return out


def predict_floor(q: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Samples an oracle knowing q needs for PREDICT (0 where fixed n is not right): the smallest n
    whose binomial test (Cohen et al.; Hung & Fithian) at the expected top-two counts rejects at alpha."""
    second, first = np.sort(q, 1)[:, -2], q.max(1)
    out = np.zeros(len(q))
    for i in np.flatnonzero(right):
        lo, hi = 1, N_MAX
        while lo < hi:
            mid = (lo + hi) // 2
            a, b = round(first[i] * mid), round(second[i] * mid)
            passes = a + b > 0 and binomtest(a, a + b, 0.5).pvalue <= ALPHA
            lo, hi = (lo, mid) if passes else (mid + 1, hi)
        out[i] = lo
    return out


def predict_section(q: np.ndarray, label: np.ndarray, reps: int, schedules: list[tuple[int, float]]) -> None:
    """PREDICT: fixed n against sequential PREDICT (the library's own coroutine) at each schedule
    (first look, growth): samples and looks per image, samples against the floor, and accuracy.
    Every schedule is fed the same vote sequences (one per run and image), so their differences
    are the schedules', not sampling noise between them."""
    rng = np.random.default_rng(4)
    fixed_right = np.zeros((reps, len(q)), dtype=bool)
    for r in range(reps):
        for i in range(len(q)):
            counts = rng.multinomial(N_MAX, q[i])
            second, first = np.sort(counts)[-2:]
            fixed_right[r, i] = counts.argmax() == label[i] and binomtest(first, first + second, 0.5).pvalue <= ALPHA
    floor = predict_floor(q, (fixed_right.mean(0) > 0.5) & (q.argmax(1) == label)).mean()
    print(f"\n== PREDICT: oracle floor {floor:,.0f} samples/image; fixed n: 10,000, accuracy "
          f"{100 * fixed_right.mean():.2f}%; {reps} runs per image")
    print("first growth looks to n_max | samples mean median | x floor | looks per image mean median | accuracy % "
          "| abstain %")
    marks = {(d["step"], d["growth"]): f" ({bound} default)" for bound in ("looks", DEFAULT_BOUND)
             for d in [DEFAULTS[bound]["predict"]]}
    options = [Adaptive(step=step, growth=growth) for step, growth in schedules]
    decided, used, looks = (np.zeros((len(schedules), reps, len(q)), dtype=np.int64) for _ in range(3))
    votes = np.random.default_rng(5)
    for r, i in itertools.product(range(reps), range(len(q))):
        sequence = votes.choice(q.shape[1], N_MAX, p=q[i])
        for k, option in enumerate(options):
            coroutine, drawn = predict_steps(N_MAX, ALPHA, q.shape[1], option), 0
            try:
                size = next(coroutine)
                while True:
                    block = np.bincount(sequence[drawn:drawn + size], minlength=q.shape[1])
                    looks[k, r, i], drawn = looks[k, r, i] + 1, drawn + size
                    size = coroutine.send(block)
            except StopIteration as done:
                decided[k, r, i], used[k, r, i] = done.value[0], drawn
    for k, (step, growth) in enumerate(schedules):
        scheduled = len(options[k].settled(predict=True).family().looks(N_MAX))
        print(f"{step:5d} {growth:6.2f} {scheduled:5d} | {used[k].mean():7,.0f} {np.median(used[k]):6,.0f} | "
              f"{used[k].mean() / max(floor, 1):6.2f}x | {looks[k].mean():5.2f} {np.median(looks[k]):4.0f} | "
              f"{100 * np.mean(decided[k] == label):6.2f} | {100 * np.mean(decided[k] == ABSTAIN):5.2f}"
              + marks.get((step, growth), ""))


def paired(rad: np.ndarray, correct: np.ndarray, base: np.ndarray, base_correct: np.ndarray, images: int,
           rng: np.random.Generator) -> tuple[float, float, float]:
    """Percent of (run, image) pairs certified lower and higher than the fixed replay (-1 where not
    certified correctly), and the percent of runs in which a two-sided Wilcoxon test (SciPy's default,
    zero differences dropped) on ``images`` random digits finds the two apart at 0.05: the reference
    comparison of bench_reference.py, simulated."""
    a, b = np.where(correct, rad, -1), np.where(base_correct, base, -1)
    rejected = []
    for diff in a - b:
        sample = rng.choice(diff, images, replace=False)
        rejected.append(np.any(sample != 0) and wilcoxon(sample).pvalue <= 0.05)
    return 100 * np.mean(a < b), 100 * np.mean(a > b), 100 * np.mean(rejected)


def summary(rad: np.ndarray, correct: np.ndarray, radii: list[int]) -> tuple[float, np.ndarray]:
    """ACR and certified accuracy (%) at ``radii`` of (reps, images) radii."""
    good = np.where(correct & (rad >= 0), rad, -1)
    return float(np.mean(np.maximum(good, 0) * (good >= 0))), np.array([100 * np.mean(good >= r) for r in radii])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logs", type=Path, nargs="+", help="fixed-sampling certify logs (their images are pooled)")
    parser.add_argument("--votes", type=Path, nargs="*", default=[],
                        help="one .npy of measured votes (images, classes) per log: the non-top classes' shares")
    parser.add_argument("--measure", type=Path, default=None,
                        help="first measure --votes with this checkpoint (--samples ablations per digit)")
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--shift", type=float, default=0.0,
                        help="simulate a stronger model: every non-top share times 1 - shift")
    parser.add_argument("--reps", type=int, default=200, help="simulated runs per image")
    parser.add_argument("--targets", default="2,4,8", help="target radii of the one-radius question")
    parser.add_argument("--n0", default="10,20,30,50,100")
    parser.add_argument("--first", default="10,20,30,50,100,150,200,300")
    parser.add_argument("--growth", default="1.5,2,2.5,3,4")
    parser.add_argument("--beta", default="0.01,0.05,0.1,0.2,0.3,0.5")
    parser.add_argument("--futility", default="threshold,final")
    parser.add_argument("--last", default="0.5", help="shares of alpha kept for the last look (spend; looks)")
    parser.add_argument("--bound", choices=("exact", "looks"), default="exact", help="the grid's bound family")
    parser.add_argument("--rho", default="0.25,0.5,1,2", help="alpha-spending exponents (exact)")
    parser.add_argument("--images", type=int, default=40, help="digits per simulated Wilcoxon test against fixed n")
    parser.add_argument("--tolerance", type=float, default=0.005,
                        help="a setting may lose at most this much more than the old default (ACR/100 or accuracy)")
    parser.add_argument("--top", type=int, default=8, help="settings printed per question")
    parser.add_argument("--no-grid", action="store_true", help="only the old and the current defaults")
    parser.add_argument("--skip-largest", action="store_true", help="only the target radii (and PREDICT)")
    parser.add_argument("--skip-predict", action="store_true", help="no PREDICT section")
    parser.add_argument("--predict-step", default=None,
                        help="PREDICT's first looks, a grid with --predict-growth; neither given: the looks and "
                        "exact bounds' schedules")
    parser.add_argument("--predict-growth", default=None, help="PREDICT's growths (see --predict-step)")
    parser.add_argument("--predict-reps", type=int, default=None, help="PREDICT's runs per image; default --reps / 10")
    args = parser.parse_args()
    if args.votes and len(args.votes) != len(args.logs):
        raise ValueError("--votes takes one file per log")

    logs = [read_log(path) for path in args.logs]
    if args.measure is not None:
        for log, path in zip(logs, args.votes, strict=True):
            np.save(path, measure_votes(args.measure, log, args.samples))
    votes = [np.load(path) for path in args.votes] or [None] * len(logs)
    q = np.concatenate([class_probabilities(log, v, 10, args.shift) for log, v in zip(logs, votes)])
    label = np.concatenate([log["label"] for log in logs])
    top = q.argmax(1)
    p = q.max(1)
    runner_up = np.sort(q, 1)[:, -2]
    print(f"{len(p)} images; top share p: median {np.median(p):.3f}, > tau_11 {np.mean(p > TAU[11]):.0%}, "
          f"<= 1/2 {np.mean(p <= 0.5):.0%}; runner-up share median {np.median(runner_up):.3f}, "
          f"max {runner_up.max():.3f}; shift {args.shift}")
    Q = np.broadcast_to(q, (args.reps, *q.shape))
    radii = list(range(12))
    base_chosen, base_radius = fixed(Q, np.random.default_rng(0))
    base_acr, base_acc = summary(base_radius, base_chosen == label, radii)
    expected_radius = radius(cp_lower(p * N_MAX, N_MAX, ALPHA))
    print(f"fixed n0=1000 n=10000: 11,000 samples, ACR {base_acr:.3f}, certified % r=0..11 "
          + " ".join(f"{a:.1f}" for a in base_acc))
    for n0 in sorted({int(v) for v in args.n0.split(",") if int(v) > 0} | {100, 1000}):
        wrong = select(Q, n0, np.random.default_rng(2))[0] != top
        print(f"selection on n0={n0:4d}: another class than the top one in {100 * wrong.mean():.2f}% of runs "
              f"(images with p > tau_0: {100 * wrong[:, p > TAU[0]].mean():.2f}%)")

    if args.no_grid:
        grid = []
    elif args.bound == "exact":
        grid = [Setting(int(a), int(b), float(c), float(d), "spent", 0.5, "exact", float(e))
                for a, b, c, d, e in itertools.product(args.n0.split(","), args.first.split(","),
                                                       args.growth.split(","), args.beta.split(","),
                                                       args.rho.split(","))]
    else:
        grid = [Setting(int(a), int(b), float(c), float(d), e, float(f))
                for a, b, c, d, e, f in itertools.product(args.n0.split(","), args.first.split(","),
                                                          args.growth.split(","), args.beta.split(","),
                                                          args.futility.split(","), args.last.split(","))]
    for target in [*([] if args.skip_largest else [None]), *(float(t) for t in args.targets.split(",") if t)]:
        name = "largest radius" if target is None else f"target radius {target:g}"
        need = np.where(top == label, expected_radius, -1)
        if target is not None:
            need = np.where(need >= target, int(target), -1)
        floor = oracle(p, need).mean()
        question = "largest" if target is None else "target"
        rows = []
        for s in [Setting.default("looks", question), Setting.default(DEFAULT_BOUND, question), *grid]:
            chosen, rad, used = sequential(Q, s, target, np.random.default_rng(1))
            acr, acc = summary(rad, chosen == label, radii)
            if target is None:
                loss = max(base_acr - acr, float(np.max(base_acc - acc)) / 100)  # worst of ACR and accuracy
            else:
                loss = float(base_acc[int(target)] - acc[int(target)]) / 100
            moved = paired(rad, chosen == label, base_radius, base_chosen == label, min(args.images, len(p)),
                           np.random.default_rng(3))
            rows.append((s, used.mean(), np.median(used), acr, acc, loss, moved))
        ok = sorted((r for r in rows[2:] if r[5] <= max(rows[1][5], 0) + args.tolerance), key=lambda r: r[1])
        powered = ", ".join(f"{int(100 * w)}% power {oracle(p, need, w).mean():,.0f}" for w in (0.8, 0.9))
        print(f"\n== {name}: oracle floor {floor:,.0f} samples/image (fixed n: 11,000, {11_000 / max(floor, 1):.0f}x "
              f"it); an oracle knowing p that fixes n for {powered}")
        print("bound n0 first growth beta futility last rho | samples mean median | ACR | certified % r=0..11 "
              f"| loss vs fixed | x floor | lower / higher % than fixed | Wilcoxon p <= 0.05 on {args.images} digits")
        for i, (s, mean, median, acr, acc, loss, moved) in enumerate([*rows[:2], *ok[: args.top]]):
            print(f"{s.bound:5s} {s.n0:3d} {s.first:4d} {s.growth:4.2f} {s.beta:4.2f} {s.futility:9s} {s.last:4.2f} "
                  f"{s.rho:4.2f} | {mean:7,.0f} {median:7,.0f} | {acr:.3f} | " + " ".join(f"{a:.1f}" for a in acc)
                  + f" | {loss:+.4f} | {mean / max(floor, 1):.2f}x | "
                  + (f"{moved[0]:.1f} / {moved[1]:.1f} | {moved[2]:.0f}%" if target is None else "- | -")
                  + {0: " (looks default)", 1: " (default)"}.get(i, ""))
    if not args.skip_predict:
        schedules = [(DEFAULTS[bound]["predict"]["step"], DEFAULTS[bound]["predict"]["growth"])
                     for bound in ("looks", DEFAULT_BOUND)]
        if args.predict_step or args.predict_growth:
            steps = args.predict_step.split(",") if args.predict_step else [str(schedules[-1][0])]
            growths = args.predict_growth.split(",") if args.predict_growth else [str(schedules[-1][1])]
            schedules = [(int(a), float(b)) for a, b in itertools.product(steps, growths)]
        predict_section(q, label, args.predict_reps or max(1, args.reps // 10), schedules)


if __name__ == "__main__":
    main()
