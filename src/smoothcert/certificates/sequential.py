"""Sequential (adaptive) sampling for CERTIFY and PREDICT at the same confidence level.

Cohen et al.'s CERTIFY spends a fixed n samples on every image. The procedures here draw
samples in growing batches and stop as soon as the answer is settled, with the same guarantee:
the returned radius is wrong with probability at most ``alpha``. Everything in this module is
pure numpy/scipy; [`smoothcert.classifiers.SmoothedClassifier`][smoothcert.classifiers.SmoothedClassifier] feeds the procedures with votes.

Three kinds of time-uniform bounds on a Bernoulli mean p:

* [`ExactLooks`][ExactLooks] (the default) -- exact group-sequential boundaries at looks
  ``n_1 < ... < n_J`` ([`smoothcert.certificates.boundaries`][smoothcert.certificates.boundaries]): for every
  radius threshold tau the count that certifies it at look j is computed from the exact law of the
  vote path at p = tau, with ``alpha (n_j / n)^rho`` spent by look j, so the looks cost no union
  bound. The boundaries grow with tau, so one crossing event covers every radius at once: a
  certificate of a radius whose threshold is >= p needs a crossing of the boundary of the
  smallest threshold >= p, which has probability <= alpha. Futility boundaries spend ``beta`` the
  same way at the proportion the last look needs (power only).

* [`GroupSequentialCP`][GroupSequentialCP] -- Clopper-Pearson at a fixed schedule of looks ``n_1 < ... < n_J``,
  with ``alpha`` spent across the looks (``alpha_j``, summing to ``alpha``: a share ``last`` of it
  at the last look, the rest evenly over the others). Each look's bound is an
  exact one-sided ``1 - alpha_j`` bound for its fixed sample size, so by the union bound
  ``P(some L_j > p) <= sum_j alpha_j = alpha``; stopping early only skips looks.
* [`MixtureCS`][MixtureCS] -- the Beta(1/2, 1/2) mixture confidence sequence, checked after every batch:
  for each fixed p, ``M_t(p) = int q^S (1-q)^(t-S) dBeta(q; 1/2, 1/2) / (p^S (1-p)^(t-S))`` is a
  nonnegative martingale with mean 1 under Bernoulli(p), so by Ville's inequality
  ``P(exists t: M_t(p) >= 1/a) <= a``; the bound is the set of p with ``M_t(p) < 1/a``. It is
  spent at ``(1 - last) alpha`` and a plain Clopper-Pearson bound at ``last * alpha`` is added at
  ``n_max`` (union bound again), so a run that uses all samples loses little against fixed n.

Selection. CERTIFY's class is the top one of ``n0`` selection samples that never enter a bound.
The one-radius question of the exact bound can instead take the class that leads at each look
(``n0 = 0``): it certifies class c at look j when c leads with ``S_j >= c_j``. A wrong certificate
needs some class with ``p_c <= tau`` to cross the boundary, and a class's count alone is a binomial
path, so by the union bound over classes the error is at most ``g(tau) + sum_{i >= 2} g(1 / i)``,
``g(q)`` the boundary's crossing probability at share q (increasing in q; the i-th largest of C
shares is at most 1 / i). [`folded_level`][folded_level] lowers the level the boundaries spend
until that sum is at most ``alpha``.

With the ``looks`` and ``anytime`` bounds, upper bounds only decide when further sampling is
futile: the one-sided Clopper-Pearson upper bound U at level ``beta``, at each look on its own; a
radius is out of reach when U is below its threshold, or (``futility="final"``) when the last
look's lower bound at the count U n_max would not certify it. They never enter a certificate, so
``beta`` and the rule cost power (a radius that later samples would have certified is given up),
never validity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Mapping
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.special import betainc, betaln
from scipy.stats import binomtest

from .boundaries import crossing_bounds, crossing_probability, futility_bounds, spent
from .checks import ArgumentError, check_alpha, check_count, check_integer
from .statistics import clopper_pearson_lower, clopper_pearson_upper

ABSTAIN = -1
"""The class PREDICT and CERTIFY return when they abstain (with radius NaN)."""


# ----------------------------------------------------------------------------- bounds


def _check_samples(count: int, n: int) -> tuple[int, int]:
    count, n = check_integer(count, "count", 0), check_integer(n, "n", 1)
    if count > n:
        raise ValueError(f"count={count} exceeds the number of samples n={n}")
    return count, n


def mixture_log_martingale(count: int, n: int, p: float) -> float:
    """``log M_n(p)`` of the Beta(1/2, 1/2) mixture after ``count`` successes in ``n`` trials."""
    return (betaln(count + 0.5, n - count + 0.5) - betaln(0.5, 0.5)
            - count * math.log(p) - (n - count) * math.log1p(-p))


def mixture_lower(count: int, n: int, alpha: float) -> float:
    """Anytime-valid lower bound: the smallest p with ``M_n(p) < 1/alpha`` (0 when count = 0).

    ``log M_n(p)`` is convex in p with its minimum (<= 0) at ``count / n``, so the bound is the
    root of ``log M_n(p) = log(1/alpha)`` below ``count / n``.

    Args:
        count: Successes among the ``n`` samples so far.
        n: Samples so far.
        alpha: The level, held at every ``n`` at once (Ville's inequality).
    """
    count, n = _check_samples(count, n)
    level = math.log(1.0 / check_alpha(alpha))
    if count == 0:
        return 0.0
    hat = count / n
    if hat == 1.0:  # log M is finite at p -> 1 only when count = n: check the interval's end
        hat = 1.0 - 1e-16
        if mixture_log_martingale(count, n, hat) >= level:
            return hat
    return brentq(lambda p: mixture_log_martingale(count, n, p) - level, 1e-300, hat, xtol=1e-14, rtol=1e-14)


def mixture_upper(count: int, n: int, alpha: float) -> float:
    """Anytime-valid upper bound: ``1 - mixture_lower(n - count, n, alpha)`` (symmetry of the prior).

    Args:
        count: Successes among the ``n`` samples so far.
        n: Samples so far.
        alpha: The level, held at every ``n`` at once.
    """
    count, n = _check_samples(count, n)
    return 1.0 - mixture_lower(n - count, n, alpha)


def check_last(last: float) -> float:
    """The share of ``alpha`` kept for the last look, in (0, 1)."""
    if not (isinstance(last, (int, float)) and 0 < last < 1):
        raise ArgumentError("last", last, "{name} (the share of alpha kept for the last look) must be in (0, 1), "
                            "got {value}")
    return float(last)


def spend(alpha: float, looks: int, last: float = 0.5) -> np.ndarray:
    """Per-look levels of [`GroupSequentialCP`][GroupSequentialCP]: ``last * alpha`` kept for the last look and
    the rest spread evenly over the interim looks (all of ``alpha`` when there is a single look).
    They sum to ``alpha``, which is all the union bound needs."""
    a = check_alpha(alpha)
    looks, last = check_integer(looks, "looks", 1), check_last(last)
    if looks == 1:
        return np.array([a])
    return np.array([a * (1 - last) / (looks - 1)] * (looks - 1) + [a * last])


def check_schedule(first: int, growth: float) -> None:
    """The first look of a schedule is a positive integer and the looks grow."""
    check_integer(first, "first", 1)
    if not (isinstance(growth, (int, float)) and growth > 1):
        raise ArgumentError("growth", growth, "{name} (the factor between looks) must be > 1, got {value}")


def schedule(first: int, growth: float, n_max: int) -> np.ndarray:
    """Looks ``first, first * growth, ...`` (rounded, a look that rounds onto the one before it
    skipped) ending exactly at ``n_max``."""
    n_max = check_integer(n_max, "n_max", 1)
    looks, n = [], float(first)
    while round(n) < n_max:
        if not looks or round(n) > looks[-1]:
            looks.append(round(n))
        n *= growth
    if looks and n_max < looks[-1] * (1 + (growth - 1) / 2):
        looks.pop()  # a last step much shorter than the others costs a look for few samples
    return np.array([*looks, n_max], dtype=np.int64)


@dataclass(frozen=True)
class GroupSequentialCP:
    """Clopper-Pearson at looks ``first, first * growth, ...`` ending exactly at ``n_max``, with
    ``alpha`` spent by [`spend`][spend].

    Attributes:
        first: The first look.
        growth: The factor between consecutive looks.
        last: The share of ``alpha`` kept for the last look.
    """

    first: int = 100
    growth: float = 2.0
    last: float = 0.5

    def __post_init__(self) -> None:
        check_schedule(self.first, self.growth)
        check_last(self.last)

    def looks(self, n_max: int) -> np.ndarray:
        return schedule(self.first, self.growth, n_max)

    def lower(self, count: int, n: int, look: int, looks: int, alpha: float) -> float:
        return float(clopper_pearson_lower(count, n, spend(alpha, looks, self.last)[look]))


@dataclass(frozen=True)
class MixtureCS:
    """The Beta(1/2, 1/2) mixture confidence sequence at ``(1 - last) alpha`` after every ``step``
    samples, joined by Clopper-Pearson at ``last * alpha`` at the last look (``n_max``).

    Attributes:
        step: Samples between looks.
        last: The share of ``alpha`` kept for the last look.
    """

    step: int = 100
    last: float = 0.5

    def __post_init__(self) -> None:
        check_integer(self.step, "step", 1)
        check_last(self.last)

    def looks(self, n_max: int) -> np.ndarray:
        n_max = check_integer(n_max, "n_max", 1)
        return np.unique(np.minimum(np.arange(1, -(-n_max // self.step) + 1) * self.step, n_max))

    def lower(self, count: int, n: int, look: int, looks: int, alpha: float) -> float:
        bound = mixture_lower(count, n, alpha * (1 - self.last))
        if look == looks - 1:
            bound = max(bound, float(clopper_pearson_lower(count, n, alpha * self.last)))
        return bound


EXACT_MAX = 1_000_000
"""The largest ``n`` of the exact bound: its tables take about a second per radius there."""


@dataclass(frozen=True)
class ExactLooks:
    """Exact group-sequential boundaries ([`boundaries`][smoothcert.certificates.boundaries]) at looks
    ``first, first * growth, ...`` ending at ``n_max``: ``alpha (n_j / n_max)^rho`` spent by look j,
    futility ``beta (n_j / n_max)``.

    Attributes:
        first: The first look.
        growth: The factor between consecutive looks.
        rho: The alpha-spending exponent (a larger one keeps more for the last looks).
    """

    first: int = 20
    growth: float = 1.3
    rho: float = 1.0

    def __post_init__(self) -> None:
        check_schedule(self.first, self.growth)
        if not (isinstance(self.rho, (int, float)) and 0 < self.rho <= 4):
            raise ArgumentError("rho", self.rho, "{name} (the alpha-spending exponent) must be in (0, 4], got {value}")

    def looks(self, n_max: int) -> np.ndarray:
        if n_max > EXACT_MAX:
            raise ArgumentError("n", n_max, "{name} {value} is too large for the exact bound, whose boundaries "
                                f"are computed over every count (at most {EXACT_MAX:,}): choose the looks bound")
        return schedule(self.first, self.growth, n_max)

    def crossing(self, tau: float, n_max: int, alpha: float) -> np.ndarray:
        """The counts that show p > ``tau`` at each look (``look + 1``: none)."""
        looks = self.looks(n_max)
        return crossing_bounds(tau, looks, spent(alpha, looks, self.rho))

    def futility(self, theta: float, n_max: int, beta: float) -> np.ndarray:
        """The counts at or below which p < ``theta`` is taken as settled at each look (-1: none)."""
        looks = self.looks(n_max)
        return futility_bounds(theta, looks, spent(beta, looks, 1.0))


BOUNDS = {"exact": ExactLooks, "looks": GroupSequentialCP, "anytime": MixtureCS}
"""The bound families by their CLI name (``--bound``)."""


# ----------------------------------------------------------------------------- procedures


FUTILITY = ("threshold", "final", "spent")
"""How a radius is found out of reach (``--futility``). With the ``looks`` and ``anytime`` bounds,
by the Clopper-Pearson upper bound U at ``beta`` at each look: ``threshold``, when U is below the
radius's threshold; ``final``, when even the last look's lower bound at the count U n_max (every
later sample at the rate U) would not certify it. With the ``exact`` bound, ``spent``: by futility
boundaries that stop with probability at most ``beta`` in all when p is the proportion the last
look needs to certify the radius ([`ExactLooks.futility`][ExactLooks.futility])."""

READS: dict[str, tuple[str, ...]] = {
    "exact": ("beta", "step", "growth", "futility", "rho"),
    "looks": ("beta", "step", "growth", "futility", "last"),
    "anytime": ("beta", "step", "growth", "futility", "last"),
}
"""The options each bound family reads (``rho`` only the exact bound, ``last`` only the others)."""

_LOOKS_DEFAULTS: dict[str, dict[str, Any]] = {
    "largest": {"n0": 100, "beta": 0.1, "step": 100, "growth": 1.5, "futility": "final", "last": 0.8},
    "target": {"n0": 30, "beta": 0.02, "step": 50, "growth": 1.25, "futility": "final", "last": 0.5},
    "predict": {"beta": 0.2, "step": 100, "growth": 2.0, "futility": "threshold", "last": 0.5},
}

DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "exact": {
        "largest": {"n0": 100, "beta": 0.3, "step": 20, "growth": 1.3, "futility": "spent", "rho": 1.0},
        "target": {"n0": 0, "beta": 0.6, "step": 20, "growth": 1.3, "futility": "spent", "rho": 0.25},
        "predict": {"beta": 0.2, "step": 20, "growth": 1.2, "futility": "spent", "rho": 1.0},
    },
    "looks": _LOOKS_DEFAULTS,
    "anytime": _LOOKS_DEFAULTS,
}
"""The options an [`Adaptive`][Adaptive] leaves unset, per bound family and question (largest radius,
a target radius, PREDICT), and CERTIFY's selection samples ``n0``: chosen by simulating sequential
CERTIFY and PREDICT on measured vote shares (``benchmarks/simulate_adaptive.py``,
docs/benchmarks/adaptive.md). PREDICT reads only ``step`` and ``growth`` (its schedule), whatever
the bound; the looks bound's (first look 100, doubling) is also the schedule of attack logs that
recorded the bare ``"adaptive"`` ([`upgraded_record`][upgraded_record]), so it stays."""

DEFAULT_BOUND = "exact"
"""The bound family of a new run (a resumed log keeps its own)."""

LEGACY = {"bound": "looks", "futility": "threshold", "last": 0.5}
"""Options added after logs were first written, at the value that behaves as before they existed:
a log that does not record one was written with this value, and it is recorded only when it differs."""


def _check_reads(bound: str, options: Mapping[str, Any]) -> None:
    """Refuse an option that ``bound`` does not read, or a futility rule it does not apply."""
    for name in ("rho", "last"):
        if options.get(name) is not None and name not in READS[bound]:
            raise ArgumentError(name, options[name], f"{{name}} {{value}} is an option of the "
                                f"{'exact bound' if name == 'rho' else 'looks and anytime bounds'}, not of the {bound} "
                                "bound: drop {name} or choose the bound it belongs to")
    rule = options.get("futility")
    if rule is not None and (rule == "spent") != (bound == "exact"):
        fits = "the exact bound" if rule == "spent" else "the looks and anytime bounds"
        raise ArgumentError("futility", rule, f"{{name}} {{value}} is a rule of {fits}, not of the {bound} bound: "
                            "drop {name} or choose the bound it belongs to")


@dataclass(frozen=True)
class Adaptive:
    """Options of sequential CERTIFY and PREDICT; ``None`` leaves one to [`settled`][Adaptive.settled].

    Validity holds at any setting: the options trade samples against power. Unset options take the
    [`DEFAULTS`][DEFAULTS] of the bound and question, or the ones a resumed log recorded.

    Attributes:
        bound: ``exact`` ([`ExactLooks`][ExactLooks], the default), ``looks``
            ([`GroupSequentialCP`][GroupSequentialCP]) or ``anytime`` ([`MixtureCS`][MixtureCS]); unset,
            a resumed log's own.
        radius: The question: ``None`` asks for the largest certified radius; a number R asks "is
            the image certified at R?" and stops as soon as that is decided.
        beta: The futility level (power only).
        step: The first look (``exact``, ``looks``) or the batch after which the bound is checked
            (``anytime``).
        growth: The factor between consecutive looks (``exact``, ``looks``).
        futility: The futility rule ([`FUTILITY`][FUTILITY]).
        last: The share of ``alpha`` kept for the last look (``looks``, ``anytime``).
        rho: The alpha-spending exponent of the ``exact`` bound: ``alpha (n_j / n)^rho`` is spent by look j.
    """

    bound: str | None = None
    radius: float | None = None
    beta: float | None = None
    step: int | None = None
    growth: float | None = None
    futility: str | None = None
    last: float | None = None
    rho: float | None = None

    def __post_init__(self) -> None:
        if self.bound is not None and self.bound not in BOUNDS:
            raise ArgumentError("bound", self.bound, "{name} must be one of " + ", ".join(BOUNDS) + ", got {value}")
        if self.futility is not None and self.futility not in FUTILITY:
            raise ArgumentError("futility", self.futility,
                                "{name} must be one of " + ", ".join(FUTILITY) + ", got {value}")
        if self.beta is not None:
            check_alpha(self.beta, "beta")
        if self.step is not None:
            check_integer(self.step, "step", 1)
        if self.last is not None:
            check_last(self.last)
        if self.radius is not None and not (isinstance(self.radius, (int, float)) and math.isfinite(self.radius)
                                            and self.radius >= 0):
            raise ArgumentError("radius", self.radius, "{name} (the target radius) must be a finite number >= 0, "
                                "got {value}")
        if self.bound is not None:
            _check_reads(self.bound, asdict(self))
        self.settled().family()  # validates step, growth and rho

    def question(self, predict: bool = False) -> str:
        """``predict``, or CERTIFY's ``largest`` (radius) or ``target`` (radius)."""
        return "predict" if predict else "largest" if self.radius is None else "target"

    def settled(self, recorded: Mapping[str, Any] | str | None = None, *, predict: bool = False) -> Adaptive:
        """These options with the bound and every unset option filled in: from ``recorded`` (the
        sampling settings of a log being resumed, so it goes on as it began; [`LEGACY`][LEGACY] for
        what it lacks, then its bound's [`DEFAULTS`][DEFAULTS]) when it asks the same question (with
        the same bound, if one is given), else from the [`DEFAULTS`][DEFAULTS] of
        [`DEFAULT_BOUND`][DEFAULT_BOUND] or the given bound. The bare ``"adaptive"`` that attack logs
        recorded before they recorded PREDICT's options records none: all [`LEGACY`][LEGACY]."""
        if recorded == "adaptive":
            recorded = {}
        resumed = {**LEGACY, **recorded} if isinstance(recorded, Mapping) else None
        same = resumed is not None and resumed.get("radius") == self.radius and \
            self.bound in (None, resumed.get("bound")) and resumed.get("bound") in BOUNDS
        bound = resumed["bound"] if same else self.bound or DEFAULT_BOUND
        source = {**DEFAULTS[bound][self.question(predict)], **(resumed if same else {})}
        unset = {f: source.get(f) for f in READS[bound] if getattr(self, f) is None}
        _check_reads(bound, {**asdict(self), **unset})
        return self if bound == self.bound and not unset else replace(self, bound=bound, **unset)

    def record(self) -> dict[str, Any]:
        """The settled options as a log records them (options the bound does not read and
        [`LEGACY`][LEGACY] values of the other options left out)."""
        settled = asdict(self.settled())
        return {k: v for k, v in settled.items()
                if (k in ("bound", "radius") or k in READS[settled["bound"]])
                and (k == "bound" or k not in LEGACY or LEGACY[k] != v)}

    def default_n0(self) -> int:
        """The selection samples of sequential CERTIFY when none are asked for (0: the class that
        leads the test, see [`folds`][Adaptive.folds])."""
        return DEFAULTS[self.bound or DEFAULT_BOUND][self.question()]["n0"]

    def folds(self) -> bool:
        """Whether the test can select the class itself (``n0 = 0``): the exact bound's one-radius question."""
        return self.radius is not None and self.settled().bound == "exact"

    def family(self) -> ExactLooks | GroupSequentialCP | MixtureCS:
        options = self.settled()
        if options.bound == "exact":
            return ExactLooks(options.step, options.growth, options.rho)
        if options.bound == "looks":
            return GroupSequentialCP(options.step, options.growth, options.last)
        return MixtureCS(options.step, options.last)


def upgraded_record(sampling: Any) -> Any:
    """A log's recorded ``sampling`` in the form logs record it now: the bare ``"adaptive"`` of an
    attack log written before attack logs recorded PREDICT's options becomes the record of the
    options it ran with (``Adaptive().settled("adaptive", predict=True)``: the looks bound, PREDICT's
    step 100 and growth 2); any other value is returned as it is."""
    if sampling == "adaptive":
        return {"scheme": "adaptive", **Adaptive().settled(sampling, predict=True).record()}
    return sampling


@dataclass(frozen=True)
class Outcome:
    """What sequential CERTIFY found: the selected class ``top``, its ``count`` among the ``n``
    estimation samples, the best lower bound ``p_lower`` of any look and its ``radius`` (NaN:
    abstain)."""

    top: int
    count: int
    n: int
    p_lower: float
    radius: float


@lru_cache(maxsize=64)
def best_lower(family: ExactLooks | GroupSequentialCP | MixtureCS, n_max: int, alpha: float) -> float:
    """The largest lower bound any run can reach (every sample a success): it fixes the cap, the
    largest radius sequential CERTIFY can certify with at most ``n_max`` samples. For the exact
    bound, the largest tau whose boundary some look can reach (to 1e-9)."""
    looks = family.looks(n_max)
    if isinstance(family, ExactLooks):
        tau = brentq(lambda t: 0.5 - _reachable(family, t, n_max, alpha), 1e-12, 1 - 1e-12, xtol=1e-10)
        while not _reachable(family, tau, n_max, alpha):  # the root may lie just past the step
            tau -= 1e-9
        return tau
    return max(family.lower(int(m), int(m), j, len(looks), alpha) for j, m in enumerate(looks))


def _reachable(family: ExactLooks, tau: float, n_max: int, alpha: float) -> float:
    """1 if some look's boundary for ``tau`` is at most its sample size, else 0 (a step in tau)."""
    return float(np.any(family.crossing(tau, n_max, alpha) <= family.looks(n_max)))


Radius = Callable[[float], float]
"""A certificate: the radius certified by a lower bound p on the top class (NaN when none)."""


def _level(radius: float, step: float) -> float:
    """Which grid cell ``radius`` lies in (-1 for abstain): radii in the same cell are 'the same'."""
    if math.isnan(radius):
        return -1.0
    return radius if math.isinf(radius) else float(math.floor(radius / step + 1e-9))


def check_n0(n0: object, options: Adaptive | None) -> int:
    """CERTIFY's selection samples ``n0``: a positive integer, or 0 where the test selects the class
    itself ([`Adaptive.folds`][Adaptive.folds]; ``options`` None is fixed sampling)."""
    if n0 == 0 and not isinstance(n0, bool) and isinstance(n0, (int, np.integer)):
        if options is not None and options.folds():
            return 0
        raise ArgumentError("n0", n0, "{name} {value} (no selection samples: the test certifies the class that "
                            "leads it) needs adaptive sampling with the exact bound and a target radius (--radius R); "
                            "give {name} >= 1 otherwise")
    return check_count("n0", n0)


def certify_steps(
    radius: Radius, n0: int, n_max: int, alpha: float, options: Adaptive, resolution: float = 1.0,
    num_classes: int | None = None,
) -> Generator[int, np.ndarray, Outcome]:
    """Sequential CERTIFY as a coroutine: it yields how many fresh samples it needs next and is
    sent their vote counts (num_classes,); it returns an [`Outcome`][Outcome].

    The top class comes from ``n0`` selection samples that never enter a bound, or with ``n0 = 0``
    (the exact bound's one-radius question) it is the class that leads at each look, at the level
    [`folded_level`][folded_level] gives for ``num_classes`` classes. Then batches up to ``n_max``
    estimation samples; after each look (the bound family's schedule) it stops when

    * largest radius (``options.radius is None``): a radius in the grid cell (width
      ``resolution``) of the largest radius any run could reach (the cap) is certified, or no
      radius in a higher cell is reachable any more (futility, by the rule ``options.futility``);
    * target radius R: R is certified, or R is out of reach.

    The certificate is the largest radius certified at any look: the bounds hold at every look
    simultaneously with probability >= 1 - alpha (see the module docstring). ``radius`` should be
    hashable (a frozen dataclass, not a lambda) for the exact bound's tables to be reused across images.
    """
    check_alpha(alpha)
    options = options.settled()
    family = options.family()
    if check_n0(n0, options) == 0:
        level = folded_level(radius, resolution, options.radius, family, n_max, alpha, options.beta,
                             check_count("num_classes", num_classes))
        grid = exact_thresholds(radius, resolution, options.radius, family, n_max, level, options.beta)
        return (yield from _exact_steps(grid, None, options.radius, resolution))
    top = int(np.argmax((yield n0)))
    if isinstance(family, ExactLooks):
        grid = exact_thresholds(radius, resolution, options.radius, family, n_max, alpha, options.beta)
        return (yield from _exact_steps(grid, top, options.radius, resolution))
    return (yield from _bound_steps(radius, top, family, n_max, alpha, options, resolution))


def _bound_steps(
    radius: Radius, top: int, family: GroupSequentialCP | MixtureCS, n_max: int, alpha: float, options: Adaptive,
    resolution: float,
) -> Generator[int, np.ndarray, Outcome]:
    """The ``looks`` and ``anytime`` bounds: a lower bound on p at each look, its radius certified."""
    looks = family.looks(n_max)
    cap = radius(best_lower(family, n_max, alpha))
    count = used = 0
    p_lower, certified = 0.0, math.nan
    for j, look in enumerate(looks):
        counts = yield int(look) - used
        count, used = count + int(counts[top]), int(look)
        p_lower = max(p_lower, family.lower(count, used, j, len(looks), alpha))
        certified = radius(p_lower)
        upper = float(clopper_pearson_upper(count, used, options.beta))
        if options.futility == "final":  # what the last look would certify at the rate U
            upper = family.lower(math.floor(upper * looks[-1]), int(looks[-1]), len(looks) - 1, len(looks), alpha)
        reachable = radius(upper)
        if options.radius is None:
            level = _level(certified, resolution)
            if level >= _level(cap, resolution) or _level(reachable, resolution) <= level:
                break
        elif certified >= options.radius or not reachable >= options.radius:
            break
    return Outcome(top, count, used, p_lower, certified)


REFINE = 16
"""Thresholds of the exact bound per ``resolution`` cell: a continuous radius (Gaussian) is certified
on a grid of ``resolution / REFINE``, an integer one (ablation) exactly."""


@dataclass(frozen=True)
class Thresholds:
    """What the exact bound can certify: ``radii`` (increasing), their thresholds ``tau`` (the radius
    is certified once p > tau is shown), and per threshold and look the counts that show it
    (``crossing``, nondecreasing down the rows) and the counts at or below which it is out of
    reach (``futility``)."""

    looks: np.ndarray
    radii: np.ndarray
    tau: np.ndarray
    crossing: np.ndarray
    futility: np.ndarray


def threshold(radius: Radius, r: float) -> float | None:
    """The smallest p of six significant digits whose radius is at least ``r`` (None if none is
    below 1): the exact bound certifies ``r`` once it shows p above it, and a log, which writes
    six digits, keeps it exactly (so its radius follows from its ``p_lower``). Rounding up only
    makes the test stricter, by less than 1e-6."""
    lo, hi = 0.0, float(np.nextafter(1.0, 0.0))
    if not radius(hi) >= r:
        return None
    for _ in range(64):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        lo, hi = (lo, mid) if radius(mid) >= r else (mid, hi)
    scale = 10 ** (5 - math.floor(math.log10(hi)))
    tau = math.ceil(hi * scale) / scale
    return tau if tau < 1 and radius(tau) >= r else None


def exact_thresholds(radius: Radius, resolution: float, target: float | None, family: ExactLooks, n_max: int,
                     alpha: float, beta: float) -> Thresholds:
    """The exact bound's [`Thresholds`][Thresholds] for one certificate and schedule (cached when
    ``radius`` is hashable, so a run computes them once).

    Args:
        radius: The certificate: the radius a lower bound on p certifies (NaN: none).
        resolution: The width of the cells in which radii count as the same (the noise's ``radius_step``).
        target: The one radius asked about, or None for every radius up to the cap.
        family: The looks and the alpha-spending exponent.
        n_max: The most estimation samples.
        alpha: The level.
        beta: The futility level (power only).
    """
    return _cached(_cached_thresholds, radius, resolution, target, family, n_max, alpha, beta)


def _cached(function: Callable[..., Any], radius: Radius, *args: Any) -> Any:
    """``function(radius, *args)`` from its ``lru_cache``, or computed for this image alone when
    ``radius`` is unhashable."""
    try:
        hash(radius)
    except TypeError:
        return function.__wrapped__(radius, *args)
    return function(radius, *args)


@lru_cache(maxsize=32)
def _cached_thresholds(radius: Radius, resolution: float, target: float | None, family: ExactLooks, n_max: int,
                       alpha: float, beta: float) -> Thresholds:
    """The radii from 0 (or the ``target`` alone) up to the cap on a grid of ``resolution / REFINE``,
    with their boundary tables; crossing boundaries are raised to be nondecreasing in tau (which
    only lowers each one's crossing probability) and futility ones likewise."""
    looks = family.looks(n_max)
    radii, taus, crossing = [], [], []
    r = 0.0 if target is None else float(target)
    while (tau := threshold(radius, r)) is not None:
        bounds = family.crossing(tau, n_max, alpha)
        if crossing:
            bounds = np.maximum(bounds, crossing[-1])
        if np.all(bounds > looks):
            break  # beyond the cap: no run certifies it
        radii.append(radius(tau))
        taus.append(tau)
        crossing.append(bounds)
        if target is not None:
            break
        fine = resolution / REFINE
        r = (math.floor(radii[-1] / fine + 1e-9) + 1) * fine
    futility = [family.futility(min(bounds[-1] / n_max, 1 - 1e-12), n_max, beta) for bounds in crossing]
    empty = np.zeros((0, len(looks)), dtype=np.int64)
    return Thresholds(looks, np.array(radii, dtype=float), np.array(taus, dtype=float),
                      np.array(crossing).reshape(-1, len(looks)) if crossing else empty,
                      np.maximum.accumulate(np.array(futility), axis=0) if futility else empty)


def _exact_steps(grid: Thresholds, top: int | None, target: float | None,
                 resolution: float) -> Generator[int, np.ndarray, Outcome]:
    """The exact bound: radius k is certified once the count of class ``top`` (None: the class that
    leads at the look) reaches its crossing boundary at a look; the run stops as
    [`certify_steps`][certify_steps] describes, with "reachable" meaning above the futility boundary."""
    votes: np.ndarray | int = 0
    count = used = 0
    leader = -1 if top is None else top
    best = -1
    cap = _level(grid.radii[-1], resolution) if len(grid.radii) else -1.0
    for j, look in enumerate(grid.looks if len(grid.radii) else []):
        votes = votes + (yield int(look) - used)
        used = int(look)
        leader = int(np.argmax(votes)) if top is None else top
        count = int(votes[leader])
        best = max(best, int(np.sum(count >= grid.crossing[:, j])) - 1)
        reach = int(np.sum(count > grid.futility[:, j])) - 1
        if target is not None:
            if best >= 0 or reach < 0:
                break
            continue
        level = _level(grid.radii[best], resolution) if best >= 0 else -1.0
        if level >= cap or (_level(grid.radii[reach], resolution) if reach >= 0 else -1.0) <= level:
            break
    if best < 0:
        return Outcome(leader, count, used, 0.0, math.nan)
    return Outcome(leader, count, used, float(grid.tau[best]), float(grid.radii[best]))


def others_crossing(bounds: np.ndarray, looks: np.ndarray, tau: float, num_classes: int) -> float:
    """``sum_{i=2..C} g(min(1 / i, tau))``, ``g`` the probability that a class of that share crosses
    ``bounds``: what the classes below the leader can add to a folded test's error. Once a term times
    the classes left is below a thousandth of the sum so far, they are all counted at that term (g
    only falls with i), so the result stays an upper bound, within 0.1% of the sum."""
    total = 0.0
    for i in range(2, num_classes + 1):
        term = crossing_probability(bounds, looks, min(1 / i, tau))
        if term * (num_classes - i + 1) <= 1e-3 * total + 1e-15:
            return total + term * (num_classes - i + 1)
        total += term
    return total


def folded_level(radius: Radius, resolution: float, target: float, family: ExactLooks, n_max: int, alpha: float,
                 beta: float, num_classes: int) -> float:
    """The level at which the one-radius test's boundaries are computed when it selects the class
    itself (``n0 = 0``; module docstring): ``alpha`` less what the other classes can add, lowered
    until the exact crossing probability at tau plus [`others_crossing`][others_crossing] is at most
    ``alpha`` (cached when ``radius`` is hashable)."""
    return _cached(_folded_level, radius, resolution, target, family, n_max, alpha, beta, num_classes)


@lru_cache(maxsize=32)
def _folded_level(radius: Radius, resolution: float, target: float, family: ExactLooks, n_max: int, alpha: float,
                  beta: float, num_classes: int) -> float:
    level = alpha
    for _ in range(200):
        grid = exact_thresholds(radius, resolution, target, family, n_max, level, beta)
        if not len(grid.radii):
            return level  # beyond the cap: nothing is ever certified
        bounds, tau = grid.crossing[0], float(grid.tau[0])
        total = crossing_probability(bounds, grid.looks, tau) + others_crossing(bounds, grid.looks, tau, num_classes)
        if total <= alpha * (1 - 1e-9):
            return level
        level *= min(alpha / total, 0.999)  # the error scales about with the level (at R = 0: twice it)
    raise RuntimeError(f"no level of the folded test fits alpha {alpha} for {num_classes} classes")


def pair_log_evidence(top: int, second: int) -> float:
    """``log`` of the e-value against "the top class is not more likely than the runner-up":
    the uniform mixture over q in [1/2, 1] of ``(2q)^top (2(1-q))^second`` (votes for either class).

    For any q <= 1/2 each ``(2q')^S (2(1-q'))^F`` with q' >= 1/2 is a nonnegative supermartingale
    in the votes, so the mixture is one too (Ville's inequality applies). It grows with ``top``
    and shrinks with ``second``."""
    top, second = check_integer(top, "top", 0), check_integer(second, "second", 0)
    tail = betainc(second + 1, top + 1, 0.5)  # P(q >= 1/2) under Beta(top + 1, second + 1)
    if tail <= 0:
        return -math.inf
    return math.log(2.0) + (top + second) * math.log(2.0) + betaln(top + 1, second + 1) + math.log(tail)


def predict_steps(
    n_max: int, alpha: float, num_classes: int, options: Adaptive
) -> Generator[int, np.ndarray, tuple[int, np.ndarray]]:
    """Sequential PREDICT as a coroutine (yields sample counts, is sent votes, returns
    ``(class or ABSTAIN, counts)``).

    After every look it returns the top class when the mixture e-value of top against runner-up
    reaches ``2 (C - 1) / alpha``; at ``n_max`` it also accepts Cohen et al.'s binomial test at
    ``alpha / 2``. A wrong class needs, for some class a != the true top c, the e-value of a
    against c (which is at least that against the runner-up, since c has no more votes than the
    runner-up) to cross ``2 (C - 1) / alpha`` (probability <= alpha / (2 (C - 1)) each, Ville), or the
    binomial test to err (<= alpha / 2, Hung & Fithian 2019): at most alpha in all.
    """
    check_alpha(alpha)
    counts = np.zeros(num_classes, dtype=np.int64)
    used = 0
    for look in options.settled(predict=True).family().looks(n_max):
        counts = counts + (yield int(look) - used)
        used = int(look)
        if _settled(counts, alpha, num_classes) is not None:
            break
    return predict_decision(counts, alpha, num_classes), counts


def _settled(counts: np.ndarray, alpha: float, num_classes: int) -> int | None:
    """The top class if its mixture e-value against the runner-up reaches ``2 (C - 1) / alpha``."""
    threshold = math.log(2 * (check_integer(num_classes, "num_classes", 2) - 1) / alpha)
    second, top = np.argsort(counts, kind="stable")[-2:]
    return int(top) if pair_log_evidence(int(counts[top]), int(counts[second])) >= threshold else None


def predict_decision(counts: np.ndarray, alpha: float, num_classes: int) -> int:
    """What [`predict_steps`][predict_steps] returns with the ``counts`` it stopped at: the top class if its
    e-value settled it, else (all ``n_max`` samples drawn) the top class if Cohen et al.'s
    binomial test at ``alpha / 2`` rejects a tie with the runner-up, else ``ABSTAIN``. A function
    of the final counts alone, since sampling stops at the first look that settles."""
    a = check_alpha(alpha)
    settled = _settled(counts, a, num_classes)
    if settled is not None:
        return settled
    second, top = np.argsort(counts, kind="stable")[-2:]
    n_a, n_b = int(counts[top]), int(counts[second])
    return int(top) if binomtest(n_a, n_a + n_b, 0.5).pvalue <= a / 2 else ABSTAIN
