"""What an attack queries: an undefended model or the PREDICT of a smoothed classifier (see
`smoothcert.attacks`)."""

from __future__ import annotations

from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import nn

from ..certificates.sequential import predict_decision
from ..classifiers.base import base_logits
from ..classifiers.deterministic import DeterministicClassifier
from ..classifiers.smoothed import Sampling, SmoothedClassifier, as_sampling
from ..errors import check_alpha, check_count
from ..runtime.seeding import generator, resolve_device

ATTACK_STREAM, FIXED_STREAM, FRESH_STREAM, RECHECK_STREAM = 3, 4, 5, 6


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
    """An undefended classifier queried directly: scores are logits, decisions their argmax.

    Args:
        model: The classifier: images (N, C, H, W) to logits (N, ``num_classes``).
        num_classes: How many classes the logits have.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: Most images per forward pass.
    """

    target: ClassVar[str] = "model"

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
        chunks = [x[i:i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        return torch.cat([base_logits(self.model, chunk, self.num_classes)
                          for chunk in chunks]).float()

    def decide(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.argmax(1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The labels of a batch (the oracle contract of ``smoothcert.substitute``)."""
        return self.decide(self.scores(x))

    def settings(self, **given: object) -> dict[str, object]:
        """What an attack log records about the queries: nothing beyond the target."""
        return {}

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]:
        """(adversarial?, decision) on ``x``: a deterministic model needs no fresh samples."""
        decision = int(self(x[None])[0])
        return decision != label, decision


class SmoothedOracle:
    """PREDICT of ``smoothed`` on ``n`` noise samples per query at level ``alpha``.

    ``fixed=True`` reuses one set of ``n`` noise draws, seeded by ``key``, for every query; for
    ablation the base classifier's vote on each draw is cached and only the draws that keep a
    changed pixel are re-evaluated (exactly the same votes, several times fewer forward passes).
    ``fixed=False`` draws fresh noise per query. ``sampling="adaptive"`` (or an
    [`Adaptive`][smoothcert.certificates.sequential.Adaptive]) makes every query the sequential PREDICT of
    [`smoothcert.certificates.sequential.predict_steps`][smoothcert.certificates.sequential.predict_steps] with at most ``n`` samples: it stops at the first
    look that settles the top class, and with fixed ablations only the draws up to that look are
    evaluated. ``confirm`` always uses fresh samples (``n_check``, default ``n``) and the same
    ``sampling``.

    Args:
        smoothed: The smoothed classifier whose PREDICT is queried.
        n: Noise samples per query (adaptive: at most).
        alpha: PREDICT's level: it abstains unless the top class is decided at ``alpha``.
        fixed: Whether every query reuses one set of noise draws (seeded by ``key``).
        key: The seed of the fixed draws and the fresh ones, e.g. (seed, idx).
        n_check: Fresh samples of ``confirm``; None: ``n``.
        sampling: ``"fixed"``, ``"adaptive"`` or an
            [`Adaptive`][smoothcert.certificates.sequential.Adaptive], settled at once for PREDICT
            (unset options: its defaults; ``options.settled(recorded, predict=True)`` goes on with
            the options a resumed log recorded).
    """

    target: ClassVar[str] = "smoothed"

    def __init__(self, smoothed: SmoothedClassifier, n: int = 1000, alpha: float = 0.05, *, fixed: bool = True,
                 key: tuple[int, ...] = (0,), n_check: int | None = None, sampling: Sampling = "fixed") -> None:
        self.smoothed, self.alpha, self.fixed, self.key = smoothed, alpha, fixed, tuple(key)
        self.n = check_count("n", n)
        self.n_check = check_count("n_check", n if n_check is None else n_check)
        check_alpha(alpha)
        options = as_sampling(sampling)
        self.sampling: Sampling = "fixed" if options is None else options.settled(predict=True)
        self._adaptive = options is not None
        self.num_classes = smoothed.num_classes
        self.queries = 0
        self.checks = 0
        self._fresh = generator(*self.key, FRESH_STREAM, device=smoothed.device)
        self._keep: torch.Tensor | None = None
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # (image, votes; -1 unknown), most recent last

    @torch.inference_mode()
    def _cached_mask_counts(self, x: torch.Tensor) -> np.ndarray:
        """PREDICT's vote counts on the fixed ablations. Votes start from those of the closer of
        the last two images used (attacks alternate between an accepted image and one-pixel trials
        around it), less the draws that keep a pixel in which ``x`` differs; draws are evaluated
        only when PREDICT's sampling reaches them and their vote is not known."""
        noise, device = self.smoothed.noise, self.smoothed.device
        c, h, w = x.shape
        if self._keep is None:
            g = generator(*self.key, FIXED_STREAM, device=device)
            self._keep = noise.sample_keep(self.n, (h, w), g, device)
        votes, base = torch.full((self.n,), -1, dtype=torch.long, device=device), None
        for j, (image, cached) in enumerate(self._cache):
            known = cached.masked_fill(self._keep[:, (x != image).any(0).flatten()].any(1), -1)
            if (known >= 0).sum() > (votes >= 0).sum():
                votes, base = known, j
        steps = self.smoothed.predict_steps(self.n, self.alpha, self.sampling)
        used, num = 0, next(steps)
        try:
            while True:
                missing = (votes[used:used + num] < 0).nonzero().squeeze(1) + used
                for i in range(0, len(missing), self.smoothed.batch_size):
                    chunk = missing[i:i + self.smoothed.batch_size]
                    inputs = noise.apply(x.expand(len(chunk), c, h, w), self._keep[chunk])
                    votes[chunk] = base_logits(self.smoothed.base, inputs, self.num_classes, noise).argmax(1)
                block = torch.bincount(votes[used:used + num], minlength=self.num_classes).cpu().numpy()
                used, num = used + num, steps.send(block)
        except StopIteration as done:
            counts = done.value[1]
        if base is not None:  # the image we started from stays cached: it was just used
            self._cache.append(self._cache.pop(base))
        self._cache = [*self._cache[-1:], (x.clone(), votes)]
        return counts

    def settings(self, **given: object) -> dict[str, object]:
        """What an attack log records about the queries: PREDICT's samples, level, noise reuse and
        sampling (``"fixed"``, or the settled adaptive options as certify and predict logs record them)."""
        sampling = self.sampling if isinstance(self.sampling, str) else {"scheme": "adaptive", **self.sampling.record()}
        return {"n": self.n, "n_check": self.n_check, "alpha": self.alpha, "fixed": self.fixed, "sampling": sampling}

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Vote counts (B, num_classes) of the base classifier over the noise draws."""
        rows = []
        for image in x.to(self.smoothed.device):
            self.queries += 1
            if self.fixed and self.smoothed.noise.masks:
                rows.append(torch.from_numpy(self._cached_mask_counts(image)))
            else:
                g = generator(*self.key, FIXED_STREAM, device=self.smoothed.device) if self.fixed else self._fresh
                steps = self.smoothed.predict_steps(self.n, self.alpha, self.sampling)
                rows.append(torch.from_numpy(self.smoothed.run(image, steps, g)[1]))
        return torch.stack(rows).float()

    def decide(self, scores: torch.Tensor) -> torch.Tensor:
        """PREDICT's answer on the vote counts ``scores`` returned (for adaptive sampling, the
        counts it stopped at determine the answer: [`smoothcert.certificates.sequential.predict_decision`][smoothcert.certificates.sequential.predict_decision])."""
        counts = scores.long().numpy()
        if self._adaptive:
            return torch.tensor([predict_decision(row, self.alpha, self.num_classes) for row in counts])
        return torch.tensor([self.smoothed.predict_from_counts(row, self.alpha) for row in counts])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """PREDICT labels of a batch, ``ABSTAIN`` = -1 (the oracle contract of ``smoothcert.substitute``)."""
        return self.decide(self.scores(x))

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]:
        """(adversarial?, decision) of PREDICT on ``x`` with ``n_check`` fresh samples."""
        g = generator(*self.key, RECHECK_STREAM, self.checks, device=self.smoothed.device)
        self.checks += 1
        decision = self.smoothed.predict(x, self.n_check, self.alpha, g, sampling=self.sampling)
        return decision != label, decision


class DeterministicOracle:
    """The vote of a ``DeterministicClassifier`` (column/block smoothing, partition voting): scores
    are the exact vote counts, decisions their argmax with the smaller-index tie-break. Each copy's
    votes are cached per image, and only the copies that keep a pixel in which a query differs from
    the closer of the last two images are re-evaluated (exactly the same votes, far fewer forward
    passes for attacks that change a few pixels at a time). ``forward_passes`` counts the copies evaluated.

    Args:
        classifier: The deterministic classifier whose exact vote is queried.
    """

    target: ClassVar[str] = "deterministic"

    def __init__(self, classifier: DeterministicClassifier) -> None:
        self.classifier = classifier
        self.num_classes = classifier.num_classes
        self.queries = 0
        self.checks = 0  # confirm() re-scores through scores(), so it counts as a query
        self.forward_passes = 0
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] = []  # (image, per-copy votes), most recent last

    def _copy_votes(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.classifier.keep
        votes, stale, base = None, torch.arange(len(keep), device=keep.device), self._cache[-1:]
        for entry in self._cache:
            rows = keep[:, (x != entry[0]).any(0).flatten()].any(1).nonzero().squeeze(1)
            if len(rows) < len(stale):
                votes, stale, base = entry[1].clone(), rows, [entry]
        if votes is None:
            votes = self.classifier.copy_votes(x)
        elif len(stale):
            votes[stale] = self.classifier.copy_votes(x, stale)
        self.forward_passes += len(stale)
        self._cache = [*base, (x.clone(), votes)]  # the image we started from stays: attacks come back to it
        return votes

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Vote counts (B, num_classes)."""
        rows = []
        for image in x.to(self.classifier.device):
            self.queries += 1
            rows.append(self._copy_votes(image).sum(0).cpu())
        return torch.stack(rows).float()

    def settings(self, *, vote: str | None = None, theta: float | None = None, **given: object) -> dict[str, object]:
        """What an attack log records about the queries: the vote flags as given (theta's default 0.2)."""
        return {"vote": vote, "theta": 0.2 if theta is None else theta}

    def decide(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.argmax(1)  # the first maximum: ties go to the smaller class index

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The labels of a batch (the oracle contract of ``smoothcert.substitute``)."""
        return self.decide(self.scores(x))

    def confirm(self, x: torch.Tensor, label: int) -> tuple[bool, int]:
        """(adversarial?, decision) on ``x``: the vote is exact, so no fresh samples are needed."""
        decision = int(self(x[None])[0])
        return decision != label, decision
