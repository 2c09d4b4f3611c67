"""A random-search patch attack: an empirical upper bound for patch certificates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..errors import check_count
from ..runtime.seeding import generator
from .base import MAX_QUERIES_FLAG, AttackResult, L0Attack, label_margin, queried, smallest
from .oracles import ATTACK_STREAM, Oracle


@dataclass(frozen=True)
class PatchAttack(L0Attack):
    """Score-based random search over one ``size`` x ``size`` patch, its position and its content
    (in the spirit of Croce et al. 2022's Patch-RS).

    The patch starts at a random position with every pixel at a random corner of the colour cube.
    Queries alternate between moving the patch (to a uniformly random position) and recolouring a
    random square of its content with one random corner colour; the square's area starts at
    ``p_init`` of the patch and halves after 10%, 20%, 40%, 60% and 80% of ``max_queries``. A
    proposal is kept when the margin (score of the true class minus the best other) does not grow.
    The first proposal the oracle decides wrongly and ``confirm`` accepts is returned; its L0 is
    the number of pixels the patch actually changed (at most ``size``^2).

    Args:
        size: The patch side m (``--patch``).
        max_queries: Oracle queries.
        p_init: The initial share of the patch's area a recolouring changes.
    """

    name: ClassVar[str] = "patch"
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "patch": {"type": int, "attribute": "size", "help": "patch: side M of the square patch (default 5)"},
        "max_queries": MAX_QUERIES_FLAG,
    }

    size: int = 5
    max_queries: int = 1000
    p_init: float = 0.5

    _HALVINGS = (0.1, 0.2, 0.4, 0.6, 0.8)

    def __post_init__(self) -> None:
        check_count("size", self.size)
        check_count("max_queries", self.max_queries)
        if not 0 < self.p_init <= 1:
            raise ValueError(f"p_init must lie in (0, 1], got {self.p_init}")

    def square_side(self, query: int) -> int:
        """Side of the recoloured square at ``query``: sqrt(p * size^2), p halved at each passed milestone."""
        p = self.p_init / 2 ** sum(query > f * self.max_queries for f in self._HALVINGS)
        return max(1, min(self.size, round(math.sqrt(p) * self.size)))

    def check_image_size(self, image_size: tuple[int, int]) -> None:
        """The patch must fit the images (checked before a run writes anything)."""
        h, w = image_size
        if self.size > h or self.size > w:
            raise ValueError(f"--patch {self.size}: a {self.size}x{self.size} patch does not fit a {h}x{w} image")

    def attack(self, oracle: Oracle, x: torch.Tensor, label: int, key: tuple[int, ...], spent: int) -> AttackResult:
        c, h, w = x.shape
        m = self.size
        self.check_image_size((h, w))
        g = generator(*key, ATTACK_STREAM)

        def position() -> tuple[int, int]:
            return int(torch.randint(0, h - m + 1, (1,), generator=g)), int(torch.randint(0, w - m + 1, (1,), generator=g))

        def pasted(where: tuple[int, int], patch: torch.Tensor) -> torch.Tensor:
            out = x.clone()
            out[:, where[0]:where[0] + m, where[1]:where[1] + m] = patch
            return out

        where, content = position(), torch.randint(0, 2, (c, m, m), generator=g).float()
        best = math.inf
        for query in range(self.max_queries):
            cand_where, cand_content = where, content
            if query % 2 == 1:
                cand_where = position()
            elif query > 0:
                q = self.square_side(query)
                i, j = (int(v) for v in torch.randint(0, m - q + 1, (2,), generator=g))
                cand_content = content.clone()
                cand_content[:, i:i + q, j:j + q] = torch.randint(0, 2, (c, 1, 1), generator=g).float()
            candidate = pasted(cand_where, cand_content)
            scores = oracle.scores(candidate[None])
            if int(oracle.decide(scores)[0]) != label:
                ok, decision = oracle.confirm(candidate, label)
                if ok:
                    return smallest(x, label, [(candidate, decision)], queried(oracle) - spent)
            margin = float(label_margin(scores, label)[0])
            if margin <= best:
                best, where, content = margin, cand_where, cand_content
        return smallest(x, label, [], queried(oracle) - spent)
