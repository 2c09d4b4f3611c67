"""Empirical L0 attacks: upper bounds that check a certificate from above.

An attack is a small object holding its parameters (as in Foolbox 3), called as
``attack(oracle, x, label, key=(seed, idx))`` on one image. The *oracle* is what the adversary
queries:

- ``ModelOracle``: an undefended classifier (scores = logits, decision = argmax);
- ``SmoothedOracle``: the PREDICT of a ``SmoothedClassifier`` on ``n`` noise samples per query.
  Following Levine & Feizi (2020, Table 2) an input is adversarial when the smoothed classifier
  misclassifies it *or abstains*. The noise of a query can be a fixed set of ablations reused by
  every query of the image (``fixed=True``: a deterministic target, so the attack does not chase
  sampling noise), and an adversarial example is accepted only after ``confirm`` re-checks it with
  fresh samples.

Attacks change whole pixels (all channels), the unit of the L0 certificate, and count every
oracle query. ``Pointwise`` is decision-based (Schott et al. 2019): a salt-and-pepper start of
growing density, then passes that reset perturbed pixels while the input stays adversarial, best
of ``restarts``. ``SparseRS`` is score-based random search with a pixel budget (Croce et al. 2022)
on the margin of the oracle's scores (logits, or the vote counts of the smoothed classifier).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from .certificates import check_alpha
from .checkpoint import load_checkpoint, noise_from_config
from .noises import Ablation, Clean, ablate, sample_keep_mask
from .seeding import generator, resolve_device
from .smooth import SmoothedClassifier, check_count, check_image

ATTACK_STREAM, FIXED_STREAM, FRESH_STREAM, RECHECK_STREAM = 3, 4, 5, 6
ATTACKS = ("pointwise", "sparse-rs")


class Oracle(Protocol):
    """The adversary's view of a classifier: ``scores`` (B, num_classes), larger is more that class,
    and the ``decide``d labels (``ABSTAIN`` allowed). ``queries`` counts the images scored and
    ``checks`` the fresh re-checks of ``confirm`` that did not go through ``scores``."""

    num_classes: int
    queries: int
    checks: int

    def scores(self, x: torch.Tensor) -> torch.Tensor: ...

    def decide(self, scores: torch.Tensor) -> torch.Tensor: ...

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]: ...


class ModelOracle:
    """An undefended classifier queried directly: scores are logits, decisions their argmax."""

    def __init__(self, model: nn.Module, num_classes: int, *, device: str | torch.device = "auto",
                 batch_size: int = 1000) -> None:
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.num_classes = check_count("num_classes", num_classes)
        self.batch_size = check_count("batch_size", batch_size)
        self.queries = 0
        self.checks = 0  # confirm() re-scores through scores(), so it counts as a query

    @torch.inference_mode()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        x = x.to(self.device)
        return torch.cat([self.model(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]).float()

    def decide(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.argmax(1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The labels of a batch (the oracle contract of ``smoothcert.substitute``)."""
        return self.decide(self.scores(x))

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]:
        """(adversarial?, decision) on ``x``: a deterministic model needs no fresh samples."""
        decision = int(self(x[None])[0])
        return decision != label, decision


class SmoothedOracle:
    """PREDICT of ``smoothed`` on ``n`` noise samples per query at level ``alpha``.

    ``fixed=True`` reuses one set of ``n`` noise draws, seeded by ``key``, for every query; for
    ablation the base classifier's vote on each draw is cached and only the draws that keep a
    changed pixel are re-evaluated (exactly the same votes, several times fewer forward passes).
    ``fixed=False`` draws fresh noise per query. ``confirm`` always uses fresh samples
    (``n_check``, default ``n``).
    """

    def __init__(self, smoothed: SmoothedClassifier, n: int = 1000, alpha: float = 0.05, *, fixed: bool = True,
                 key: tuple[int, ...] = (0,), n_check: int | None = None) -> None:
        self.smoothed, self.alpha, self.fixed, self.key = smoothed, alpha, fixed, tuple(key)
        self.n = check_count("n", n)
        self.n_check = check_count("n_check", n if n_check is None else n_check)
        check_alpha(alpha)
        self.num_classes = smoothed.num_classes
        self.queries = 0
        self.checks = 0
        self._fresh = generator(*self.key, FRESH_STREAM, device=smoothed.device)
        self._keep: torch.Tensor | None = None
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # (image, votes), most recent last

    @torch.inference_mode()
    def _cached_ablation_votes(self, x: torch.Tensor) -> torch.Tensor:
        """Votes on the fixed ablations, re-evaluating only the draws that keep a pixel in which
        ``x`` differs from the closer of the last two images used (attacks alternate between an
        accepted image and one-pixel trials around it)."""
        noise, device = self.smoothed.noise, self.smoothed.device
        c, h, w = x.shape
        if self._keep is None:
            g = generator(*self.key, FIXED_STREAM, device=device)
            self._keep = sample_keep_mask(self.n, h * w, noise.k, g, device)
        votes = torch.empty(self.n, dtype=torch.long, device=device)
        rows = torch.arange(self.n, device=device)
        for j, (image, cached) in enumerate(self._cache):
            stale = self._keep[:, (x != image).any(0).flatten()].any(1).nonzero().squeeze(1)
            if len(stale) < len(rows):
                votes, rows, base = cached.clone(), stale, j
        for i in range(0, len(rows), self.smoothed.batch_size):
            chunk = rows[i:i + self.smoothed.batch_size]
            inputs = ablate(x.expand(len(chunk), c, h, w), self._keep[chunk], noise.encoding, noise.mean)
            votes[chunk] = self.smoothed.base(inputs).argmax(1)
        if len(rows) < self.n:  # the image we started from stays cached: it was just used
            self._cache.append(self._cache.pop(base))
        self._cache = [*self._cache[-1:], (x.clone(), votes)]
        return torch.bincount(votes, minlength=self.num_classes)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Vote counts (B, num_classes) of the base classifier over the noise draws."""
        rows = []
        for image in x.to(self.smoothed.device):
            self.queries += 1
            if self.fixed and isinstance(self.smoothed.noise, Ablation):
                rows.append(self._cached_ablation_votes(image).cpu())
            else:
                g = generator(*self.key, FIXED_STREAM, device=self.smoothed.device) if self.fixed else self._fresh
                rows.append(torch.from_numpy(self.smoothed.sample(image, self.n, g)))
        return torch.stack(rows).float()

    def decide(self, scores: torch.Tensor) -> torch.Tensor:
        counts = scores.long().numpy()
        return torch.tensor([self.smoothed.predict_from_counts(row, self.alpha) for row in counts])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """PREDICT labels of a batch, ``ABSTAIN`` = -1 (the oracle contract of ``smoothcert.substitute``)."""
        return self.decide(self.scores(x))

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]:
        """(adversarial?, decision) of PREDICT on ``x`` with ``n_check`` fresh samples."""
        g = generator(*self.key, RECHECK_STREAM, self.checks, device=self.smoothed.device)
        self.checks += 1
        decision = self.smoothed.predict(x, self.n_check, self.alpha, g)
        return decision != label, decision


@dataclass(frozen=True)
class AttackResult:
    """One image's attack: the adversarial ``x_adv`` (the clean image when ``success`` is False),
    its L0 distance in pixels (``inf`` on failure), the oracle queries spent (re-checks
    included) and the oracle's confirmed decision on ``x_adv`` (``ABSTAIN`` = -1)."""

    x_adv: torch.Tensor
    l0: float
    queries: int
    success: bool
    decision: int


def l0_pixels(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of pixels (all channels together) where images ``a`` and ``b`` (C, H, W) differ."""
    return int((a != b).any(0).sum())


def _margin(scores: torch.Tensor, label: int) -> torch.Tensor:
    """Score of ``label`` minus the best other score (negative: another class wins)."""
    others = scores.clone()
    others[:, label] = -math.inf
    return scores[:, label] - others.max(1).values


def _queried(oracle: Oracle) -> int:
    return oracle.queries + oracle.checks


def _smallest(x: torch.Tensor, label: int, confirmed: list[tuple[torch.Tensor, int]], queries: int) -> AttackResult:
    """The result for the smallest of the ``confirmed`` (image, decision) pairs, or a failure."""
    if not confirmed:
        return AttackResult(x.clone(), math.inf, queries, False, label)
    adv, decision = min(confirmed, key=lambda pair: l0_pixels(pair[0], x))
    return AttackResult(adv, float(l0_pixels(adv, x)), queries, True, decision)


def _best_confirmed(oracle: Oracle, x: torch.Tensor, label: int, found: list[torch.Tensor], spent: int) -> AttackResult:
    """The smallest of the ``found`` adversarial candidates that survives ``confirm``."""
    for adv in sorted(found, key=lambda a: l0_pixels(a, x)):
        ok, decision = oracle.confirm(adv, label)
        if ok:
            return _smallest(x, label, [(adv, decision)], _queried(oracle) - spent)
    return _smallest(x, label, [], _queried(oracle) - spent)


class _L0Attack:
    """What every attack does around its search: check the image, count the queries it spends, and
    return at L0 = 0 when the oracle already gets the clean image wrong (confirmed)."""

    def __call__(self, oracle: Oracle, x: torch.Tensor, label: int, *, key: tuple[int, ...] = (0,)) -> AttackResult:
        x = check_image(x).cpu()
        spent = _queried(oracle)
        if int(oracle.decide(oracle.scores(x[None]))[0]) != label:
            ok, decision = oracle.confirm(x, label)
            if ok:
                return _smallest(x, label, [(x.clone(), decision)], _queried(oracle) - spent)
        return self.attack(oracle, x, label, key, spent)

    def attack(self, oracle: Oracle, x: torch.Tensor, label: int, key: tuple[int, ...], spent: int) -> AttackResult:
        raise NotImplementedError


@dataclass(frozen=True)
class Pointwise(_L0Attack):
    """Pointwise attack (Schott et al. 2019), decision-based, in whole pixels.

    Each restart draws a salt-and-pepper pattern and raises its density in ``steps`` steps (the
    perturbed sets are nested; a new pattern follows density 1) until the oracle is fooled, then
    visits the perturbed pixels in a random order, resetting each one whose reset keeps the input
    adversarial, until a pass resets nothing. ``max_queries`` bounds each restart; the smallest confirmed result of ``restarts``
    restarts is returned, where a restart whose final image fails the fresh re-check offers the
    images of 1, 2, 4, ... resets before it. No L2 bisection: it lowers L2, not L0.
    """

    restarts: int = 10
    steps: int = 100
    max_queries: int = 5000

    def __post_init__(self) -> None:
        for name in ("restarts", "steps", "max_queries"):
            check_count(name, getattr(self, name))

    def _start(
        self, x: torch.Tensor, adversarial: Callable[[torch.Tensor], bool | None], g: torch.Generator
    ) -> torch.Tensor | None:
        """Salt-and-pepper noise of growing density on nested pixel sets; a new pattern after density 1."""
        c, h, w = x.shape
        flat = x.reshape(c, h * w)
        while True:
            order = torch.rand(h * w, generator=g)
            salt = torch.rand(h * w, generator=g) < 0.5
            previous = None
            for step in range(1, self.steps + 1):
                mask = order < step / self.steps
                candidate = flat.clone()
                candidate[:, mask & salt] = 1.0
                candidate[:, mask & ~salt] = 0.0
                candidate = candidate.view(c, h, w)
                if l0_pixels(candidate, x) == 0 or (previous is not None and torch.equal(candidate, previous)):
                    continue
                previous = candidate
                verdict = adversarial(candidate)
                if verdict is None:
                    return None
                if verdict:
                    return candidate

    def _restart(self, oracle: Oracle, x: torch.Tensor, label: int, g: torch.Generator) -> list[torch.Tensor]:
        """The accepted adversarial images of one restart, from the start to the most reduced."""
        c, h, w = x.shape
        d = h * w
        flat = x.reshape(c, d)
        used = 0

        def adversarial(candidate: torch.Tensor) -> bool | None:
            """Whether the oracle is fooled; None once the query budget is spent."""
            nonlocal used
            if used >= self.max_queries:
                return None
            used += 1
            return int(oracle.decide(oracle.scores(candidate[None]))[0]) != label

        adv = self._start(x, adversarial, g)
        if adv is None:
            return []
        path = [adv]
        while used < self.max_queries:
            changed = (adv != x).any(0).flatten().nonzero().squeeze(1)
            reset_any = False
            for i in changed[torch.randperm(len(changed), generator=g)].tolist():
                trial = adv.clone()
                trial.view(c, d)[:, i] = flat[:, i]
                verdict = adversarial(trial)
                if verdict is None:
                    break
                if verdict:
                    adv, reset_any = trial, True
                    path.append(adv)
            if not reset_any:
                break
        return path

    def attack(self, oracle: Oracle, x: torch.Tensor, label: int, key: tuple[int, ...], spent: int) -> AttackResult:
        found = []
        for r in range(self.restarts):
            path = self._restart(oracle, x, label, generator(*key, ATTACK_STREAM, r))
            # back-off candidates: the reduction ends where one more reset loses the (possibly lucky)
            # verdict, so fresh samples may reject it; the images 1, 2, 4, ... resets earlier are safer
            found += [path[-1 - back] for back in (0, *(2**i for i in range(len(path).bit_length()))) if back < len(path)]
        return _best_confirmed(oracle, x, label, found, spent)


@dataclass(frozen=True)
class SparseRS(_L0Attack):
    """Sparse-RS-style L0 random search (Croce et al. 2022), score-based.

    With a budget of ``b`` pixels: start from ``b`` random pixels set to random corners of the
    colour cube, then repeatedly swap ``t`` perturbed pixels for ``t`` new ones (new random
    values) and keep the swap when the margin (score of the true class minus the best other) does
    not grow; ``t`` starts at ``p_init * b`` and halves on the schedule of Croce et al. (after
    0.1%, 0.5%, 2%, 5%, 10%, 20%, 40%, 60%, 80% of ``max_queries``). ``budget=None`` searches the
    smallest budget: doubling ``start``, 2 ``start``, ... until a success, then ``bisect``
    bisection steps; each budget tried gets ``max_queries``. An adversarial candidate counts only
    once ``confirm`` (fresh samples for a smoothed oracle) accepts it; a rejected one is kept as
    the search state. The reported L0 counts the pixels actually changed (a random value may
    equal the original).
    """

    budget: int | None = None
    max_queries: int = 1000
    p_init: float = 0.3
    bisect: int = 3
    start: int = 1

    _HALVINGS = (0.001, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8)

    def __post_init__(self) -> None:
        if self.budget is not None:
            check_count("budget", self.budget)
        check_count("max_queries", self.max_queries)
        check_count("start", self.start)
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must lie in (0, 1], got {self.p_init}")
        if isinstance(self.bisect, bool) or not isinstance(self.bisect, int) or self.bisect < 0:
            raise ValueError(f"bisect must be a non-negative integer, got {self.bisect!r}")

    def swaps(self, query: int, budget: int) -> int:
        """Pixels swapped at ``query``: ``p_init * budget`` halved at each passed milestone, at least 1."""
        halvings = sum(query > f * self.max_queries for f in self._HALVINGS)
        return max(1, round(self.p_init * budget / 2**halvings))

    def search(
        self, oracle: Oracle, x: torch.Tensor, label: int, budget: int, g: torch.Generator
    ) -> tuple[torch.Tensor, int] | None:
        """Random search with ``budget`` pixels: the first adversarial image that ``confirm``
        accepts and the confirmed decision, or None. A candidate the re-check rejects becomes the
        current state, so the search goes on from past the (possibly lucky) boundary."""
        c, h, w = x.shape
        d = h * w
        if budget > d:
            raise ValueError(f"budget {budget} exceeds the number of pixels d={d}")
        flat = x.reshape(c, d)
        perm = torch.randperm(d, generator=g)
        inside, outside = perm[:budget].clone(), perm[budget:].clone()
        values = torch.randint(0, 2, (c, budget), generator=g).float()
        best_margin = math.inf
        for query in range(self.max_queries):
            if query == 0:
                cand_in, cand_out, cand_values = inside, outside, values
            else:
                t = min(self.swaps(query, budget), budget, d - budget)
                if t == 0:
                    break
                drop = torch.randperm(budget, generator=g)[:t]
                take = torch.randperm(d - budget, generator=g)[:t]
                cand_in, cand_out, cand_values = inside.clone(), outside.clone(), values.clone()
                cand_in[drop], cand_out[take] = outside[take], inside[drop]
                cand_values[:, drop] = torch.randint(0, 2, (c, t), generator=g).float()
            candidate = flat.clone()
            candidate[:, cand_in] = cand_values
            candidate = candidate.view(c, h, w)
            scores = oracle.scores(candidate[None])
            margin = float(_margin(scores, label)[0])
            if int(oracle.decide(scores)[0]) != label:
                ok, decision = oracle.confirm(candidate, label)
                if ok:
                    return candidate, decision
            if margin <= best_margin:
                best_margin, inside, outside, values = margin, cand_in, cand_out, cand_values
        return None

    def attack(self, oracle: Oracle, x: torch.Tensor, label: int, key: tuple[int, ...], spent: int) -> AttackResult:
        d = x.shape[1] * x.shape[2]
        tries = 0

        def attempt(budget: int) -> tuple[torch.Tensor, int] | None:
            nonlocal tries
            tries += 1
            return self.search(oracle, x, label, budget, generator(*key, ATTACK_STREAM, tries))

        found = []
        if self.budget is not None:
            found.append(attempt(self.budget))
        else:
            low, high = 0, min(self.start, d)
            while not found and high <= d:
                if (adv := attempt(high)) is not None:
                    found.append(adv)
                else:
                    low, high = high, min(2 * high, d) if high < d else d + 1
            for _ in range(self.bisect if found else 0):
                if high - low <= 1:
                    break
                middle = (low + high) // 2
                if (smaller := attempt(middle)) is None:
                    low = middle
                else:
                    high = middle
                    found.append(smaller)
        return _smallest(x, label, [f for f in found if f is not None], _queried(oracle) - spent)


def oracle_factory(
    checkpoint: str | Path, *, n: int = 1000, alpha: float = 0.05, fixed: bool = True, n_check: int | None = None,
    seed: int = 0, batch_size: int = 1000, device: str | torch.device = "auto",
) -> tuple[Callable[[int], Oracle], dict[str, Any]]:
    """``(make_oracle, config)`` for a ``smoothcert train`` checkpoint: ``make_oracle(idx)`` is a fresh
    oracle for image ``idx``: the model itself when it was trained without noise (undefended),
    else its smoothed classifier queried through PREDICT with noise streams keyed by (seed, idx)."""
    model, config = load_checkpoint(checkpoint)
    noise = noise_from_config(config["noise"])
    num_classes = config["num_classes"]
    if isinstance(noise, Clean):
        return (lambda idx: ModelOracle(model, num_classes, device=device, batch_size=batch_size)), config
    smoothed = SmoothedClassifier(model, noise, num_classes, batch_size=batch_size, device=device)
    return (lambda idx: SmoothedOracle(smoothed, n, alpha, fixed=fixed, key=(seed, idx), n_check=n_check)), config


def make_attack(name: str, **params: float | int | None) -> Pointwise | SparseRS:
    """The attack named on the command line (``--attack``) with its parameters."""
    if name == "pointwise":
        return Pointwise(**params)
    if name == "sparse-rs":
        return SparseRS(**params)
    raise ValueError(f"unknown attack {name!r}; choose one of {ATTACKS}")

