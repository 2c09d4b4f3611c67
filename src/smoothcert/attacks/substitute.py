"""Black-box transfer attack: a substitute trained by Jacobian-based dataset augmentation.

Papernot, McDaniel, Goodfellow, Jha, Celik & Swami, "Practical Black-Box Attacks against Machine
Learning" (AsiaCCS 2017), Algorithm 1, with the two refinements of their Section 6: a periodic
step size ``lambda_rho = lambda * (-1)^floor(rho / tau)`` and reservoir sampling (Papernot,
McDaniel & Goodfellow 2016, Algorithm 2): after ``sigma`` doubling rounds only ``kappa`` random
points of S_rho are augmented, so ``|S_rho| = 2^sigma |S_0| + kappa (rho - sigma)``.

The adversary only sees the oracle's labels. An oracle is any callable mapping a batch
(B, C, H, W) in [0, 1] to int64 labels (B,) in 0..K-1, or ``ABSTAIN`` (-1) for a smoothed
classifier that abstains; with ``abstain=True`` abstention is a label of its own (substitute
output K). Oracle queries are expensive, so each point is labelled exactly once and counted.
The substitute then crafts FGSM examples (Goodfellow et al. 2015) whose transfer rate to the
oracle is measured with the certificate paper's criterion: misclassified or abstained.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ..certificates.sequential import ABSTAIN
from ..data import ImageDataset, check_images
from ..errors import ArgumentError
from ..runtime.seeding import generator, resolve_device

LabelOracle = Callable[[torch.Tensor], torch.Tensor]
"""``oracle(x) -> labels``: (B, C, H, W) images in [0, 1] to int64 labels in 0..K-1 or -1
(``smoothcert.attacks.ModelOracle`` and ``SmoothedOracle`` are such callables)."""

_INIT, _SHUFFLE, _RESERVOIR = 0, 1, 2  # random streams: generator(seed, rho, stream)
_EVAL_BATCH = 1024  # images per substitute forward pass outside training
# the defaults of the paper's attack (Papernot et al. 2017: 150 MNIST test images seed it, FGSM at 0.3),
# which the substitute job and its --seed-size and --eps flags take
DEFAULT_SEED_SIZE = 150
DEFAULT_EPS = 0.3


def _int_at_least(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ArgumentError(name, value, "{name} must be an integer >= " + f"{low}" + ", got {value}")
    return int(value)


def _positive_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and value > 0
    ):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def _check_eps(eps: object) -> float:
    eps = _positive_float("eps", eps)
    if eps > 1:
        raise ArgumentError("eps", eps, "{name} must lie in (0, 1] (pixels are in [0, 1]), got {value}")
    return eps


def _query(oracle: LabelOracle, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The oracle's labels for ``x``, queried in chunks of ``batch_size``, shape/dtype checked."""
    parts = []
    for i in range(0, len(x), batch_size):
        chunk = x[i : i + batch_size]
        with torch.no_grad():
            labels = oracle(chunk)
        if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.shape != (len(chunk),):
            raise ValueError(
                f"the oracle must return an int64 tensor of shape ({len(chunk)},), got "
                f"{getattr(labels, 'dtype', type(labels).__name__)} of shape {tuple(getattr(labels, 'shape', ()))}"
            )
        parts.append(labels.to(x.device))
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.int64, device=x.device)


def _check_labels(labels: torch.Tensor, num_classes: int, abstain: bool) -> torch.Tensor:
    """``labels`` unchanged; ValueError unless they lie in 0..K-1 (or are ``ABSTAIN`` if allowed)."""
    low = ABSTAIN if abstain else 0
    if len(labels) and (int(labels.min()) < low or int(labels.max()) >= num_classes):
        hint = "" if abstain else " (pass abstain=True for an oracle that abstains)"
        raise ValueError(f"oracle labels must lie in {low}..{num_classes - 1}, got "
                         f"{int(labels.min())}..{int(labels.max())}{hint}")
    return labels


def _predict(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The substitute's argmax class for ``x``, in chunks of ``_EVAL_BATCH``."""
    with torch.no_grad():
        return torch.cat([model(x[i : i + _EVAL_BATCH]).argmax(1) for i in range(0, len(x), _EVAL_BATCH)])


def _targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Substitute class indices: ``ABSTAIN`` becomes the extra class ``num_classes``."""
    return torch.where(labels == ABSTAIN, num_classes, labels)


def _mlp(in_features: int, hidden: int, outputs: int, g: torch.Generator) -> nn.Sequential:
    """The substitute: Flatten, two hidden layers of ``hidden`` ReLU units, ``outputs`` logits
    (the paper's MNIST substitutes; architecture matters little, Section 6)."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, outputs),
    )
    for layer in model:
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu", generator=g)
            nn.init.zeros_(layer.bias)
    return model


def jacobian_augment(substitute: nn.Module, x: torch.Tensor, targets: torch.Tensor, lam: float) -> torch.Tensor:
    """``clip(x + lam * sign(grad_x F(x)[target]), 0, 1)`` (Algorithm 1, line 8).

    ``F(x)`` is the substitute's probability vector; its log is differentiated instead, which has
    the same sign (probabilities are positive) and does not vanish when a probability underflows.
    """
    x = x.detach().requires_grad_(True)
    log_p = F.log_softmax(substitute(x), dim=1).gather(1, targets.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(log_p, x)
    return (x.detach() + lam * grad.sign()).clamp_(0.0, 1.0)


def fgsm(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Untargeted L-inf FGSM (Goodfellow et al. 2015): ``clip(x + eps * sign(grad_x CE), 0, 1)``.

    The step raises the cross-entropy of ``model``'s logits for ``labels``; ``eps`` in (0, 1].

    Args:
        model: The (substitute) model: images to logits.
        x: Images (B, C, H, W) in [0, 1].
        labels: Their labels (B,).
        eps: The L-inf step size, in (0, 1].
    """
    eps = _check_eps(eps)
    check_images(x)
    if labels.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},), got {tuple(labels.shape)}")
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), labels.to(x.device), reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return (x.detach() + eps * grad.sign()).clamp_(0.0, 1.0)


def error_rate(predicted: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``predicted != y``; an abstention (-1) never equals a label, so it counts."""
    if predicted.shape != y.shape or y.dim() != 1 or len(y) == 0:
        raise ValueError(f"need two non-empty 1-D label tensors of equal shape, got "
                         f"{tuple(predicted.shape)} and {tuple(y.shape)}")
    return float((predicted.cpu() != y.cpu()).double().mean())


def transfer_rate(oracle: LabelOracle, x_adv: torch.Tensor, y: torch.Tensor, *, batch_size: int = 128) -> float:
    """Fraction of ``x_adv`` the oracle misclassifies or abstains on (labels ``y``).

    Used on clean images it is the oracle's clean error, the baseline the transfer rate is read
    against ([`run_substitute`][run_substitute] reports both).

    Args:
        oracle: ``oracle(x) -> labels`` (-1 for an abstention).
        x_adv: The images (B, C, H, W) to label.
        y: Their true labels (B,).
        batch_size: Images per oracle call.
    """
    check_images(x_adv)
    return error_rate(_query(oracle, x_adv, _int_at_least("batch_size", batch_size, 1)), y)


@dataclass
class SubstituteResult:
    """What [`JacobianAugmentation.fit`][JacobianAugmentation.fit] returns.

    ``history`` has one record per round rho: ``round``, ``size`` = |S_rho|, ``queries`` = oracle
    labels of training points so far, and with a heldout set ``accuracy`` (vs. its true labels)
    and, when asked for, ``agreement`` with the oracle's labels. ``queries`` is the total for
    training; ``agreement_queries`` the separate cost of labelling the heldout images, whose
    labels are kept in ``heldout_labels`` (``None`` without agreement).
    """

    substitute: nn.Module
    history: list[dict[str, float]]
    queries: int
    agreement_queries: int
    heldout_labels: torch.Tensor | None
    abstain: bool


class JacobianAugmentation:
    """Substitute training by Jacobian-based dataset augmentation (Papernot et al. 2017, Alg. 1).

    Defaults are the paper's MNIST setting: ``rounds`` = rho_max = 6, ``lam`` = lambda = 0.1,
    sign period ``tau`` = 3, reservoir sampling of ``kappa`` = 400 points after
    ``reservoir_after`` = sigma = 3 rounds, a 2x``hidden`` ReLU MLP trained from scratch each
    round for ``epochs`` = 10 with Adam (``lr``, ``batch_size``). ``seed`` fixes every random
    choice (initialisation, shuffling, reservoir).

    Args:
        rounds: Substitute training rounds rho_max.
        lam: The Jacobian step lambda.
        tau: The period of lambda's sign change.
        reservoir_after: The round sigma after which reservoir sampling starts.
        kappa: Points added per round once reservoir sampling starts.
        epochs: Training epochs of the substitute per round.
        batch_size: The substitute's training batch.
        lr: Adam's learning rate.
        hidden: The width of the MLP's two hidden layers.
        seed: The seed of every random choice.
    """

    def __init__(
        self,
        rounds: int = 6,
        lam: float = 0.1,
        tau: int = 3,
        reservoir_after: int = 3,
        kappa: int = 400,
        epochs: int = 10,
        batch_size: int = 128,
        lr: float = 1e-3,
        hidden: int = 200,
        seed: int = 0,
    ) -> None:
        self.rounds = _int_at_least("rounds", rounds, 1)
        self.lam = _positive_float("lam", lam)
        self.tau = _int_at_least("tau", tau, 1)
        self.reservoir_after = _int_at_least("reservoir_after", reservoir_after, 0)
        self.kappa = _int_at_least("kappa", kappa, 1)
        self.epochs = _int_at_least("epochs", epochs, 1)
        self.batch_size = _int_at_least("batch_size", batch_size, 1)
        self.lr = _positive_float("lr", lr)
        self.hidden = _int_at_least("hidden", hidden, 1)
        self.seed = _int_at_least("seed", seed, 0)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    def step_size(self, rho: int) -> float:
        """``lambda_rho = lam * (-1)^floor(rho / tau)``; S_rho's new points use ``lambda_rho``."""
        return self.lam * (-1) ** (rho // self.tau)

    def sizes(self, seed_size: int) -> list[int]:
        """|S_rho| for rho = 0..rounds-1: doubling while rho <= sigma, then + kappa per round
        (or doubling while S_rho has fewer than kappa points)."""
        sizes = [_int_at_least("seed_size", seed_size, 1)]
        for rho in range(1, self.rounds):
            prev = sizes[-1]
            sizes.append(prev + (prev if rho <= self.reservoir_after else min(self.kappa, prev)))
        return sizes

    def _train(self, x: torch.Tensor, targets: torch.Tensor, outputs: int, rho: int) -> nn.Module:
        """Train a fresh substitute on (x, targets) for ``epochs`` (Algorithm 1, line 6)."""
        model = _mlp(x[0].numel(), self.hidden, outputs, generator(self.seed, rho, _INIT)).to(x.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=self.lr)
        g = generator(self.seed, rho, _SHUFFLE)
        model.train()
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=g).to(x.device)
            for i in range(0, len(x), self.batch_size):
                idx = order[i : i + self.batch_size]
                loss = F.cross_entropy(model(x[idx]), targets[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        return model.eval()

    def _augment(self, model: nn.Module, x: torch.Tensor, targets: torch.Tensor, rho: int) -> torch.Tensor:
        """The new points of S_{rho+1}: all of S_rho for rho < sigma, else ``kappa`` random ones."""
        if rho >= self.reservoir_after and len(x) > self.kappa:
            pick = torch.randperm(len(x), generator=generator(self.seed, rho, _RESERVOIR))[: self.kappa]
            x, targets = x[pick.to(x.device)], targets[pick.to(x.device)]
        lam = self.step_size(rho + 1)
        return torch.cat([jacobian_augment(model, x[i : i + self.batch_size], targets[i : i + self.batch_size], lam)
                          for i in range(0, len(x), self.batch_size)])

    def fit(
        self,
        oracle: LabelOracle,
        seed_images: torch.Tensor,
        num_classes: int,
        *,
        abstain: bool = False,
        heldout: ImageDataset | None = None,
        agreement: bool = False,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> SubstituteResult:
        """Run ``rounds`` rounds of label / train / augment from S_0 = ``seed_images``.

        Each point is sent to the oracle once (labels of S_rho are kept). With ``heldout`` (an
        (x, y) dataset of true labels) every round records the substitute's accuracy; with
        ``agreement=True`` the oracle also labels ``heldout.x`` once (counted apart) and every
        round records the substitute's agreement with those labels.
        """
        num_classes = _int_at_least("num_classes", num_classes, 2)
        check_images(seed_images)
        if len(seed_images) == 0:
            raise ValueError("seed_images is empty: S_0 needs at least one image")
        if agreement and heldout is None:
            raise ValueError("agreement=True needs a heldout set")
        if heldout is not None:
            check_images(heldout.x)
            if heldout.x.shape[1:] != seed_images.shape[1:] or len(heldout.x) == 0:
                raise ValueError(f"heldout images {tuple(heldout.x.shape)} must be non-empty and shaped like "
                                 f"the seed images {tuple(seed_images.shape[1:])}")
        device = resolve_device(device)
        outputs = num_classes + 1 if abstain else num_classes

        def label(points: torch.Tensor) -> torch.Tensor:
            return _check_labels(_query(oracle, points, self.batch_size), num_classes, abstain)

        heldout_labels = label(heldout.x.to(device)) if agreement else None
        x = seed_images.to(device=device, dtype=torch.float32)
        labels = label(x)
        history: list[dict[str, float]] = []
        bar = tqdm(range(self.rounds), desc="substitute", unit="round", disable=not progress)
        for rho in bar:
            targets = _targets(labels, num_classes)
            model = self._train(x, targets, outputs, rho)
            record: dict[str, float] = {"round": rho, "size": len(x), "queries": len(labels)}
            if heldout is not None:
                predicted = _predict(model, heldout.x.to(device))
                record["accuracy"] = 1.0 - error_rate(predicted, heldout.y)
                if heldout_labels is not None:
                    record["agreement"] = 1.0 - error_rate(predicted, _targets(heldout_labels, num_classes))
            history.append(record)
            if progress:
                bar.write("  ".join(f"{k} {v:.4g}" for k, v in record.items()))
            if rho + 1 < self.rounds:
                new = self._augment(model, x, targets, rho)
                x, labels = torch.cat([x, new]), torch.cat([labels, label(new)])
        return SubstituteResult(
            substitute=model,
            history=history,
            queries=len(labels),
            agreement_queries=0 if heldout_labels is None else len(heldout_labels),
            heldout_labels=heldout_labels,
            abstain=abstain,
        )


def split_seed(data: ImageDataset, seed_size: int = DEFAULT_SEED_SIZE) -> tuple[ImageDataset, ImageDataset]:
    """S_0 = the first ``seed_size`` images (the paper: 150 MNIST test images) and the rest as heldout."""
    size = _int_at_least("seed_size", seed_size, 1)
    if size >= len(data):
        raise ArgumentError("seed_size", size, "{name} {value} leaves no heldout images in " +
                            f"{data.name} ({len(data)} images)")
    return data.subset(slice(0, size)), data.subset(slice(size, None))


def run_substitute(
    oracle: LabelOracle,
    data_seed: ImageDataset,
    heldout: ImageDataset,
    *,
    num_classes: int,
    abstain: bool = False,
    eps: float = DEFAULT_EPS,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    **params: object,
) -> dict[str, object]:
    """JbDA substitute from ``data_seed`` (S_0), then FGSM (``eps``) transfer on ``heldout``.

    ``params`` are [`JacobianAugmentation`][JacobianAugmentation] arguments (rounds, lam, tau, reservoir_after,
    kappa, epochs, batch_size, lr, hidden). ``heldout`` must not contain the S_0 images (see
    [`split_seed`][split_seed]); the oracle labels it once, which gives the per-round agreement and the
    oracle's clean error, then labels its FGSM images once. Returns a JSON-ready dict: the
    per-round ``history``, final substitute ``accuracy`` and ``agreement``, query counts,
    ``substitute_success`` (FGSM images the substitute itself misclassifies, Figure 5's success
    rate), ``oracle_clean_error`` and ``transfer_rate`` (oracle misclassifies or abstains).

    Args:
        oracle: ``oracle(x) -> labels`` of the attacked classifier (-1 for an abstention).
        data_seed: The initial substitute training set S_0 (its labels are not used).
        heldout: Images for the agreement and the transfer rate, disjoint from S_0.
        num_classes: How many classes the oracle has.
        abstain: Whether the oracle may abstain (the substitute then learns it as a class).
        eps: FGSM's L-inf step.
        seed: The seed of every random choice.
        device: Where the substitute trains.
        progress: Whether to show progress bars.
        **params: [`JacobianAugmentation`][JacobianAugmentation]'s arguments.
    """
    eps = _check_eps(eps)
    attack = JacobianAugmentation(seed=seed, **params)  # type: ignore[arg-type]
    device = resolve_device(device)
    result = attack.fit(oracle, data_seed.x, num_classes, abstain=abstain, heldout=heldout, agreement=True,
                        device=device, progress=progress)
    x, y = heldout.x.to(device), heldout.y.to(device)
    x_adv = torch.cat([fgsm(result.substitute, x[i : i + _EVAL_BATCH], y[i : i + _EVAL_BATCH], eps)
                       for i in range(0, len(x), _EVAL_BATCH)])
    substitute_adv = _predict(result.substitute, x_adv)
    oracle_adv = _check_labels(_query(oracle, x_adv, attack.batch_size), num_classes, abstain)
    assert result.heldout_labels is not None
    last = result.history[-1]
    return {
        "attack": repr(attack),
        "seed_size": len(data_seed),
        "heldout_size": len(heldout),
        "abstain": abstain,
        "history": result.history,
        "accuracy": last["accuracy"],
        "agreement": last["agreement"],
        "queries": result.queries,
        "heldout_queries": result.agreement_queries,
        "transfer_queries": len(oracle_adv),
        "eps": eps,
        "substitute_success": error_rate(substitute_adv, y),
        "oracle_clean_error": error_rate(result.heldout_labels, y),
        "transfer_rate": error_rate(oracle_adv, y),
        "oracle_abstain_rate": float((oracle_adv == ABSTAIN).double().mean()),
    }


def format_substitute(result: dict[str, Any]) -> str:
    """The rounds of [`run_substitute`][run_substitute]'s ``result`` as a table, then its transfer rate."""
    lines = ["round  |S_rho|  oracle queries  substitute accuracy  agreement with oracle"]
    lines += [f"{h['round']:5d}  {h['size']:7d}  {h['queries']:14d}  {100 * h['accuracy']:18.2f}%  "
              f"{100 * h['agreement']:20.2f}%" for h in result["history"]]
    lines.append(f"FGSM eps={result['eps']:g} on {result['heldout_size']} held-out images: transfer rate "
                 f"{100 * result['transfer_rate']:.2f}% (oracle clean error {100 * result['oracle_clean_error']:.2f}%, "
                 f"abstained {100 * result['oracle_abstain_rate']:.2f}%)")
    return "\n".join(lines)
