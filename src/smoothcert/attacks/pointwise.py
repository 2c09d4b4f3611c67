"""The Pointwise attack (Schott et al. 2019) in whole pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..seeding import generator
from ..smooth import check_count
from .base import AttackResult, _best_confirmed, _L0Attack, l0_pixels
from .oracles import ATTACK_STREAM, Oracle


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
