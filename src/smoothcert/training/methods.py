"""Training methods for the base classifiers of smoothed classifiers.

A method is a small frozen object holding its hyperparameters (validated at construction) and
called once per minibatch as ``method(model, x, y, noise, generator, epoch)``; it returns the
scalar loss to minimise and the logits (B, num_classes) of one noisy copy of every image, for
the training accuracy. ``config()`` records the method and every hyperparameter as JSON, and
``method_from_config`` rebuilds it, so checkpoints say exactly how a model was trained.

Batch layout: methods with ``m`` noisy copies per image feed B*m inputs to the model (copies of
one image are adjacent) and average over the copies, so the effective batch size stays B images
(the recipe's ``batch_size``); memory and compute grow about m-fold. Each copy is a separate call
of the noise, so copies of an image get different ablation masks even when the noise shares one
mask across the batch (``Ablation(per_batch=True)``).

Every method works with both noises except SmoothAdv (Gaussian only). Methods built for the
Gaussian L2 certificate (Stability, MACER, Consistency) are applied to ablation by replacing
"x + delta" with an ablated copy of x; Consistency's argument does not depend on the noise,
MACER's ablation variant is a surrogate (see [`Macer`][Macer]).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint
from ..noises import Noise, noise_from_config

_P_CLAMP = 1e-6
"""MACER clamps probabilities to [1e-6, 1 - 1e-6] before Phi^-1 (finite, |Phi^-1| <= 4.75)."""


class Method(Protocol):
    """What ``fit`` needs from a training method."""

    name: str

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss to minimise, logits (B, num_classes) of one noisy copy, for train accuracy)."""
        ...

    def config(self) -> dict[str, Any]: ...


def _validate(
    method: Any, counts: dict[str, int], nonnegative: tuple[str, ...] = (), positive: tuple[str, ...] = ()
) -> None:
    """Check ``method``'s fields: integers ``>= counts[name]`` and finite reals ``>= 0`` / ``> 0``
    (stored as float, so ``config()`` round-trips exactly)."""
    for name, minimum in counts.items():
        value = getattr(method, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise ValueError(f"{method.name}: {name} must be an integer >= {minimum}, got {value!r}")
        object.__setattr__(method, name, int(value))
    for name in nonnegative + positive:
        value = getattr(method, name)
        strict = name in positive
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
            or (value <= 0 if strict else value < 0)
        ):
            bound = "> 0" if strict else ">= 0"
            raise ValueError(f"{method.name}: {name} must be a finite number {bound}, got {value!r}")
        object.__setattr__(method, name, float(value))


def _check_label_smoothing(method: Any) -> None:
    _validate(method, {}, nonnegative=("label_smoothing",))
    if method.label_smoothing >= 1:
        raise ValueError(f"{method.name}: label_smoothing must lie in [0, 1), got {method.label_smoothing!r}")


class _Config:
    """``config()`` for the method dataclasses: the name plus every parameter (field set at construction)."""

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    """The noise capabilities (attributes of the noise) the method relies on: see [`supports`][.supports]."""

    def config(self) -> dict[str, Any]:
        return {"method": self.name, **{f.name: getattr(self, f.name) for f in fields(self) if f.init}}


def noisy_copies(noise: Noise, x: torch.Tensor, m: int, generator: torch.Generator) -> torch.Tensor:
    """``m`` independent noisy copies of every image: (B*m, ...) with the copies of image i at
    rows i*m .. i*m + m - 1 (each copy is its own call of ``noise``)."""
    return torch.stack([noise(x, generator) for _ in range(m)], dim=1).flatten(0, 1)


def log_mean_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log of the mean over copies of softmax(logits): (B, m, K) -> (B, K), computed stably."""
    return torch.logsumexp(logits.log_softmax(-1), dim=1) - math.log(logits.shape[1])


def consistency_kl(logits: torch.Tensor) -> torch.Tensor:
    """mean_i KL(p_hat || softmax(logits_i)) per image, p_hat the mean softmax over the m copies
    (Jeong & Shin 2020); (B, m, K) -> (B,). Gradients flow through p_hat."""
    log_p_hat = log_mean_softmax(logits).unsqueeze(1)
    return (log_p_hat.exp() * (log_p_hat - logits.log_softmax(-1))).sum(-1).mean(1)


def stability_kl(clean_logits: torch.Tensor, noisy_logits: torch.Tensor) -> torch.Tensor:
    """KL(softmax(f(x)) || softmax(f(x + delta))) per image; (B, K), (B, K) -> (B,)."""
    log_clean = clean_logits.log_softmax(-1)
    return (log_clean.exp() * (log_clean - noisy_logits.log_softmax(-1))).sum(-1)


def distillation_kl(teacher_logits: torch.Tensor, logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(softmax(t / T) || softmax(s / T)) per input (Hinton et al. 2015); (N, K), (N, K) -> (N,).
    The factor T^2 keeps its gradients on the scale of the cross-entropy's as T changes."""
    log_t = (teacher_logits / temperature).log_softmax(-1)
    return temperature**2 * (log_t.exp() * (log_t - (logits / temperature).log_softmax(-1))).sum(-1)


def macer_hinge(logits: torch.Tensor, y: torch.Tensor, beta: float, gamma: float, scale: float) -> torch.Tensor:
    """MACER's robustness loss per image (Zhai et al. 2020; Jeong & Shin supplement, Eq. 8);
    (B, m, K) -> (B,).

    With p the mean over copies of softmax(beta * logits), p1 >= p2 its two largest entries and
    xi = Phi^-1(p1) - Phi^-1(p2), the loss is ``scale * max(0, gamma - xi)`` on images whose top
    class is ``y`` and 0 on the others; it is inactive once xi > gamma. Probabilities are clamped
    to [1e-6, 1 - 1e-6] (no gradient beyond), where the reference code drops infinite values.
    """
    top = (beta * logits).softmax(-1).mean(1).topk(2, dim=-1)
    phi_inv = torch.special.ndtri(top.values.clamp(_P_CLAMP, 1 - _P_CLAMP))
    gap = phi_inv[:, 0] - phi_inv[:, 1]
    correct = top.indices[:, 0] == y
    return scale * torch.where(correct, (gamma - gap).clamp_min(0), torch.zeros_like(gap))


@dataclass(frozen=True)
class NoiseAugmentation(_Config):
    """Cross-entropy of the base classifier on one noisy copy of every image: Gaussian data
    augmentation (Cohen et al. 2019) and the training of Levine & Feizi (2020). ``label_smoothing``
    (Szegedy et al. 2016) mixes the one-hot target with the uniform distribution.

    Args:
        label_smoothing: The weight of the uniform distribution in the target, in [0, 1).
    """

    label_smoothing: float = 0.0
    name: ClassVar[str] = "noise"

    def __post_init__(self) -> None:
        _check_label_smoothing(self)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(noise(x, generator))
        return F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits


@dataclass(frozen=True)
class Consistency(_Config):
    """Consistency regularization (Jeong & Shin 2020).

    loss = mean CE over all m copies + lam * mean_i KL(p_hat || softmax(f(x + delta_i)))
    + eta * H(p_hat), with p_hat the mean softmax over the copies and no stop-gradient on it.
    Defaults m=2, lam=10 (MNIST sigma=0.25; the paper uses 5 for sigma=0.5 and 1), eta=0.5. This
    is the paper's form; the reference code's ``xent`` variant sets eta = lam. With ``m=1`` the
    KL term vanishes identically (p_hat = p_1), leaving CE + eta * H: allowed, but not consistency.
    With ``lam = eta = 0`` it is plain cross-entropy on m noisy draws of every image per step.
    ``label_smoothing`` as in ``NoiseAugmentation``, on the CE term.

    Args:
        m: Noisy copies of every image per step.
        lam: The weight of the KL consistency term.
        eta: The weight of the entropy term.
        label_smoothing: As in [`NoiseAugmentation`][NoiseAugmentation].
    """

    m: int = 2
    lam: float = 10.0
    eta: float = 0.5
    label_smoothing: float = 0.0
    name: ClassVar[str] = "consistency"

    def __post_init__(self) -> None:
        _validate(self, {"m": 1}, nonnegative=("lam", "eta"))
        _check_label_smoothing(self)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(noisy_copies(noise, x, self.m, generator)).view(len(x), self.m, -1)
        ce = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(self.m), label_smoothing=self.label_smoothing)
        log_p_hat = log_mean_softmax(logits)
        entropy = -(log_p_hat.exp() * log_p_hat).sum(-1)
        loss = ce + self.lam * consistency_kl(logits).mean() + self.eta * entropy.mean()
        return loss, logits[:, 0]


@dataclass(frozen=True)
class Stability(_Config):
    """Stability training (Li et al. 2019): CE(f(x), y) + lam *
    KL(softmax(f(x)) || softmax(f(x + delta))), lam=2 as in Jeong & Shin's supplement, Appendix B.

    ``x`` is the noise-free input in the model's format (`clean_input`). The reference code
    of Jeong & Shin uses the cross-entropy CE(softmax(f(x)) -> f(x + delta)) = KL + H(softmax(f(x)));
    we use the KL, so the term is zero exactly when the clean and noisy predictions agree.

    Args:
        lam: The weight of the KL term.
    """

    lam: float = 2.0
    name: ClassVar[str] = "stability"

    def __post_init__(self) -> None:
        _validate(self, {}, nonnegative=("lam",))

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        clean_logits = model(noise.clean_input(x))
        noisy_logits = model(noise(x, generator))
        loss = F.cross_entropy(clean_logits, y) + self.lam * stability_kl(clean_logits, noisy_logits).mean()
        return loss, noisy_logits


@dataclass(frozen=True)
class Macer(_Config):
    """MACER (Zhai et al. 2020; Jeong & Shin supplement, Eq. 7-8): attack-free maximisation of the certified radius.

    loss = CE(log mean_i softmax(f(x + delta_i)), y) + lam * mean over the batch of
    [`macer_hinge`][macer_hinge] (zero on misclassified images), the hinge computed with the softmax
    temperature ``beta``. For Gaussian noise its scale is sigma/2, so the hinge acts on the
    Gaussian radius (sigma/2)(Phi^-1(p1) - Phi^-1(p2)). Ablation has no sigma: the hinge acts on
    Phi^-1(p1) - Phi^-1(p2) with scale 1, a monotone margin surrogate (Levine & Feizi's Corollary 1
    L0 radius grows with p_A), not a radius. ``lam`` is 0 for ``epoch < deferred_epochs``.
    Defaults: the paper's MNIST values m=16, beta=16, gamma=8, lam=16 (6 at sigma=1; 4 on CIFAR-10).

    Args:
        m: Noisy copies of every image per step.
        beta: The inverse softmax temperature of the hinge.
        gamma: The hinge's margin: no loss once Phi^-1(p1) - Phi^-1(p2) > gamma.
        lam: The weight of the hinge term.
        deferred_epochs: Epochs trained with ``lam`` = 0 first.
    """

    m: int = 16
    beta: float = 16.0
    gamma: float = 8.0
    lam: float = 16.0
    deferred_epochs: int = 0
    name: ClassVar[str] = "macer"

    def __post_init__(self) -> None:
        _validate(self, {"m": 1, "deferred_epochs": 0}, nonnegative=("lam",), positive=("beta", "gamma"))

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scale = noise.margin_scale
        if scale is None:
            raise ValueError(f"MACER needs Gaussian or Ablation noise, got {noise.kind}")
        logits = model(noisy_copies(noise, x, self.m, generator)).view(len(x), self.m, -1)
        loss = F.nll_loss(log_mean_softmax(logits), y)
        lam = 0.0 if epoch < self.deferred_epochs else self.lam
        if lam > 0:
            loss = loss + lam * macer_hinge(logits, y, self.beta, self.gamma, scale).mean()
        return loss, logits[:, 0]


@dataclass(frozen=True)
class SmoothAdv(_Config):
    """SmoothAdv (Salman et al. 2019; Jeong & Shin supplement, Eq. 3-4): adversarial training of the soft
    smoothed classifier; Gaussian noise only.

    PGD with ``steps`` normalised-gradient steps of length 2*eps/steps maximises
    -log(mean_i softmax(f(x' + delta_i))_y) over x' in the L2 ball of radius eps around x with
    x' in [0, 1] (Eq. 4, m noise samples); eps grows linearly to ``epsilon`` over the first
    ``warmup_epochs`` epochs. The outer loss is the mean CE over f(x' + delta_i) with the same
    delta_i. The attack runs in eval mode (as the reference code) and restores the model's mode;
    it takes gradients with respect to x' only, so nothing accumulates in the parameters.

    Args:
        epsilon: The PGD attack's final L2 radius.
        steps: PGD steps per attack.
        m: Noise samples of the soft smoothed classifier.
        warmup_epochs: Epochs over which the radius grows linearly to ``epsilon``.
    """

    needs: ClassVar[tuple[str, ...]] = ("additive",)
    epsilon: float = 0.5
    steps: int = 10
    m: int = 4
    warmup_epochs: int = 10
    name: ClassVar[str] = "smoothadv"

    def __post_init__(self) -> None:
        _validate(self, {"steps": 1, "m": 1, "warmup_epochs": 0}, nonnegative=("epsilon",))

    def epsilon_at(self, epoch: int) -> float:
        """The attack radius during 0-based ``epoch``: epsilon * min(1, (epoch + 1) / warmup_epochs)."""
        return self.epsilon * min(1.0, (epoch + 1) / self.warmup_epochs) if self.warmup_epochs else self.epsilon

    def attack(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor, epsilon: float
    ) -> torch.Tensor:
        """x' maximising the soft smoothed loss for the fixed noise samples ``delta`` (B*m, ...)."""
        was_training = model.training
        model.eval()
        try:
            shift = torch.zeros_like(x, requires_grad=True)
            for _ in range(self.steps):
                logits = model((x + shift).repeat_interleave(self.m, 0) + delta).view(len(x), self.m, -1)
                (grad,) = torch.autograd.grad(F.nll_loss(log_mean_softmax(logits), y, reduction="sum"), shift)
                with torch.no_grad():
                    norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.dim() - 1))
                    shift = (x + shift + (2 * epsilon / self.steps) * grad / norm).clamp(0, 1) - x
                    # shrinking towards x keeps x' in [0, 1] (the box is convex)
                    length = shift.flatten(1).norm(dim=1).view_as(norm)
                    shift = shift * (epsilon / length).clamp(max=1.0).nan_to_num(1.0)
                shift.requires_grad_(True)
        finally:
            model.train(was_training)
        return (x + shift).detach()

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not supports(self, noise):
            raise ValueError(
                f"SmoothAdv needs Gaussian noise, got {noise.kind}: its PGD attack searches an L2 ball around "
                "x + delta, which is neither the threat model nor the noise of other smoothings (for ablation the "
                "matching attack would be an L0 attack on the ablated classifier, which smoothcert does not implement)"
            )
        # Gaussian noise is additive, so its draw at the zero image is the perturbation delta_i
        delta = noise(torch.zeros_like(x).repeat_interleave(self.m, 0), generator)
        epsilon = self.epsilon_at(epoch)
        x_adv = self.attack(model, x, y, delta, epsilon) if epsilon > 0 else x
        logits = model(x_adv.repeat_interleave(self.m, 0) + delta)
        loss = F.cross_entropy(logits, y.repeat_interleave(self.m))
        return loss, logits.view(len(x), self.m, -1)[:, 0]


@dataclass(frozen=True)
class Distillation(_Config):
    """Consistency regularization ([`Consistency`][Consistency], eta = 0) whose cross-entropy targets come
    partly from a teacher that sees the image without noise (knowledge distillation, Hinton et al.
    2015; the teacher sees the same augmented view as the student, Beyer et al. 2022).

    loss = mean over the m copies of [(1 - weight) CE(f(noisy copy), y)
    + weight T^2 KL(softmax(t(x) / T) || softmax(f(noisy copy) / T))] + lam * consistency KL,
    with t(x) the teacher's logits on the clean input in its own format (`clean_input` of the
    noise it was trained with: an ordinary classifier trained with noise ``none`` sees x itself).
    The teacher is loaded once, in eval mode and without gradients; the training noise of the
    student does not matter for it.

    Attributes:
        teacher: A classifier checkpoint folder (``smoothcert train``).
        weight: The share of the distillation term in the cross-entropy targets.
        temperature: The softmax temperature T of teacher and student.
        m: Noisy copies per image.
        lam: The weight of the consistency term.
    """

    teacher: str = ""
    weight: float = 0.5
    temperature: float = 2.0
    m: int = 4
    lam: float = 0.5
    name: ClassVar[str] = "distillation"
    _teacher: Any = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.teacher, (str, Path)) or not str(self.teacher):
            raise ValueError(f"{self.name}: teacher must name a classifier checkpoint folder, got {self.teacher!r}")
        object.__setattr__(self, "teacher", str(self.teacher))
        _validate(self, {"m": 1}, nonnegative=("lam", "weight"), positive=("temperature",))
        if self.weight > 1:
            raise ValueError(f"{self.name}: weight must lie in [0, 1], got {self.weight!r}")
        try:
            model, config = load_checkpoint(self.teacher)
        except (OSError, ValueError) as err:
            raise type(err)(f"{self.name}: cannot load the teacher: {err}") from err
        object.__setattr__(self, "_teacher", (model.requires_grad_(False), noise_from_config(config["noise"])))

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: Noise, generator: torch.Generator, epoch: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        teacher, teacher_noise = self._teacher
        with torch.no_grad():
            teacher_logits = teacher.to(x.device)(teacher_noise.clean_input(x))
        logits = model(noisy_copies(noise, x, self.m, generator)).view(len(x), self.m, -1)
        if teacher_logits.shape[-1] != logits.shape[-1]:
            raise ValueError(f"the teacher {self.teacher} has {teacher_logits.shape[-1]} classes, the model "
                             f"{logits.shape[-1]}")
        flat = logits.flatten(0, 1)
        ce = F.cross_entropy(flat, y.repeat_interleave(self.m))
        kd = distillation_kl(teacher_logits.repeat_interleave(self.m, 0), flat, self.temperature).mean()
        loss = (1 - self.weight) * ce + self.weight * kd + self.lam * consistency_kl(logits).mean()
        return loss, logits[:, 0]


def supports(method: Method | type, noise: Noise | type) -> bool:
    """Whether ``method`` can train under ``noise``: the noise has every capability in the method's
    ``needs`` (e.g. SmoothAdv's PGD step needs an ``additive`` noise)."""
    return all(getattr(noise, capability, False) for capability in getattr(method, "needs", ()))


METHODS: dict[str, type] = {
    cls.name: cls for cls in (NoiseAugmentation, Consistency, Stability, Macer, SmoothAdv, Distillation)
}
"""The training methods by name (``--method``): noise augmentation and the regularizers of the papers."""


def make_method(name: str, **params: Any) -> Method:
    """The method ``name`` (one of ``METHODS``) with hyperparameters ``params`` (defaults otherwise).

    Args:
        name: ``noise``, ``consistency``, ``stability``, ``macer``, ``smoothadv`` or ``distillation``.
        **params: The method's hyperparameters, by name.

    Raises:
        ValueError: For an unknown method or parameter.
    """
    if name not in METHODS:
        raise ValueError(f"unknown training method {name!r}; choose one of {sorted(METHODS)}")
    cls = METHODS[name]
    valid = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for method {name!r}; valid parameters: {valid}")
    return cls(**params)


def method_from_config(cfg: dict[str, Any]) -> Method:
    """Rebuild a method from its ``config()``."""
    if "method" not in cfg:
        raise ValueError(f"a method config needs a 'method' entry, got keys {sorted(cfg)}")
    params = dict(cfg)
    return make_method(params.pop("method"), **params)
