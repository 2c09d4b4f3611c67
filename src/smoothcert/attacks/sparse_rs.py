"""Sparse-RS L0 random search (Croce et al. 2022)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import ArgumentError, check_count
from ..runtime.seeding import generator
from .base import MAX_QUERIES_FLAG, AttackResult, L0Attack, label_margin, queried, smallest
from .oracles import ATTACK_STREAM, Oracle


@dataclass(frozen=True)
class SparseRS(L0Attack):
    """Sparse-RS L0 random search (Croce et al. 2022, Algorithm 1 and Section 3.1), score-based.

    As in the authors' code (github.com/fra31/sparse-rs, ``RSAttack`` with ``norm='L0'``): with a
    budget of ``b`` pixels, start from ``b`` random pixels, each channel set to 0 or 1 at random;
    each step resets ``t`` of the perturbed pixels to their original values and perturbs ``t``
    new ones (random corners of the colour cube; for ``t = 1`` a colour different from the
    pixel's current one), and keeps the change when the margin loss (score of the true class
    minus the best other) strictly falls or the oracle is fooled. ``t = max(floor(p * b), 1)``
    with ``p = p_init / 2`` from the first step on, then ``p_init`` divided by 4, 5, 6, 8, 10, 12,
    15, 20 after 0.5%, 2%, 5%, 10%, 20%, 40%, 60%, 80% of ``max_queries`` (their ``p_selection``
    schedule rescaled to the budget). ``budget=None`` searches the smallest budget: doubling
    ``start``, 2 ``start``, ... until a success, then ``bisect`` bisection steps; each budget
    tried gets ``max_queries``. An adversarial candidate counts only once ``confirm`` (fresh
    samples for a smoothed oracle) accepts it; a rejected one is kept as the search state. The
    reported L0 counts the pixels actually changed (a random corner may equal the original).

    Args:
        budget: Pixels to perturb; None: search the smallest budget.
        max_queries: Oracle queries per budget tried.
        p_init: The initial share of the budget that a step swaps.
        bisect: Bisection steps after the doubling search finds a budget.
        start: The first budget of the doubling search (``--start-budget``).
    """

    name: ClassVar[str] = "sparse-rs"
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "budget": {"type": int, "help": "sparse-rs: fixed pixel budget (default: search the smallest)"},
        "start_budget": {"type": int, "attribute": "start",
                         "help": "sparse-rs: first budget of the doubling search (default 1)"},
        "max_queries": MAX_QUERIES_FLAG,
    }

    budget: int | None = None
    max_queries: int = 1000
    p_init: float = 0.3
    bisect: int = 3
    start: int = 1

    # (end of the phase in 1/10,000 of max_queries, divisor of p_init); after the last: 20
    _SCHEDULE = ((0, 1), (50, 2), (200, 4), (500, 5), (1000, 6), (2000, 8), (4000, 10), (6000, 12), (8000, 15))

    def check_image_size(self, image_size: tuple[int, int]) -> None:
        """A fixed ``budget`` must not exceed the pixels of the images."""
        pixels = image_size[0] * image_size[1]
        if self.budget is not None and self.budget > pixels:
            raise ValueError(f"--budget {self.budget} exceeds the {pixels} pixels of the images")

    def __post_init__(self) -> None:
        if self.budget is not None:
            check_count("budget", self.budget)
        check_count("max_queries", self.max_queries)
        check_count("start", self.start)
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must lie in (0, 1], got {self.p_init}")
        if isinstance(self.bisect, bool) or not isinstance(self.bisect, int) or self.bisect < 0:
            raise ArgumentError("bisect", self.bisect, "{name} must be a non-negative integer, got {value}")

    def swaps(self, query: int, budget: int) -> int:
        """Pixels swapped at step ``query`` (1, 2, ...): ``max(floor(p * budget), 1)`` with ``p`` on
        the authors' schedule."""
        progress = int(query / self.max_queries * 10000)
        divisor = next((div for end, div in self._SCHEDULE if progress <= end), 20)
        return max(int(self.p_init / divisor * budget), 1)

    @staticmethod
    def _colours(current: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Random corners of the colour cube for the (C, t) pixels ``current``; a single new pixel
        gets a colour different from its current one, as in the authors' code."""
        while True:
            colours = torch.randint(0, 2, current.shape, generator=g).float()
            if current.shape[1] > 1 or not torch.equal(colours, current):
                return colours

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
                cand_values[:, drop] = self._colours(flat[:, outside[take]], g)
            candidate = flat.clone()
            candidate[:, cand_in] = cand_values
            candidate = candidate.view(c, h, w)
            scores = oracle.scores(candidate[None])
            margin = float(label_margin(scores, label)[0])
            fooled = int(oracle.decide(scores)[0]) != label
            if fooled:
                ok, decision = oracle.confirm(candidate, label)
                if ok:
                    return candidate, decision
            if margin < best_margin or fooled:
                best_margin, inside, outside, values = min(margin, best_margin), cand_in, cand_out, cand_values
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
        return smallest(x, label, [f for f in found if f is not None], queried(oracle) - spent)
