"""DE-CROP: a denoiser for a frozen classifier from 1% of the training data.

Nayak, Rawal & Chakraborty (WACV 2023; supplement Sections 4, 8, 9) train the denoiser D of
denoised smoothing with few images by

* Stage 1 (once, cached on disk): for every image x a *boundary sample* x_b (L-inf PGD on the
  frozen classifier f) and an *interpolated sample* x_int (Adam on the input toward the mixed
  logits alpha*f(x) + (1-alpha)*f(x_b));
* Stage 2: L_lc = CE(f(D(x+d)), argmax f(x)), L_cs = 1 - cos(f(D(x_b+d)), f(x)) and the same for
  x_int (on logits), and a multi-kernel MMD between the L2-normalised penultimate features F(x)
  and F(D(x_b+d)), F(D(x_int+d));
* Stage 3: a domain discriminator on F(x) vs F(D(x+d)) behind a gradient-reversal layer whose
  coefficient ramps as w*(2/(1+exp(-10p)) - 1) (Ganin & Lempitsky 2015, the supplement's [1]).

Hyperparameters are the checked ones of ``shared/notes/denoised-smoothing.md``. The classifier
never changes: every function here runs it in eval mode with gradients only to its input.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .runtime.seeding import generator

STAGE1_STREAM = 3  # random starts of PGD come from generator(seed, STAGE1_STREAM)
CACHE_VERSION = 1  # bump when the sample generation changes, so old caches are not reused

# Loss weights (notes: L_lc 1, L_cs 4 per sample kind, L_mmd 4 per sample kind; GRL w = 2).
WEIGHT_LC, WEIGHT_CS, WEIGHT_MMD, GRL_WEIGHT = 1.0, 4.0, 4.0, 2.0
DISCRIMINATOR_LR = 1e-5


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode with ``requires_grad=False``; restore both flags on exit.

    Gradients still flow through it to its input, which is all PGD and the denoiser need."""
    modes = [m.training for m in model.modules()]
    grads = [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    try:
        yield model
    finally:
        for m, mode in zip(model.modules(), modes):
            m.training = mode
        for p, flag in zip(model.parameters(), grads):
            p.requires_grad_(flag)


# ----------------------------------------------------------------------------- stage 1


def pgd_linf(
    classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float = 8 / 255, step: float = 2 / 255,
    steps: int = 20, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Boundary samples (DE-CROP Eq. 5): L-inf PGD maximising CE(f(x'), y) from a uniform random
    start in the eps-ball; every iterate is projected onto the eps-ball around ``x`` and [0, 1]."""
    if not (eps > 0 and step > 0) or steps < 1:
        raise ValueError(f"PGD needs eps > 0, step > 0 and steps >= 1, got {eps}, {step}, {steps}")
    start = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    lower, upper = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    x_adv = torch.max(torch.min(x + eps * (2 * start - 1), upper), lower)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(classifier(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.max(torch.min(x_adv.detach() + step * grad.sign(), upper), lower)
    return x_adv.detach()


def interpolated_samples(
    classifier: nn.Module, x: torch.Tensor, x_b: torch.Tensor, *, alpha: float = 0.8, lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.999), max_steps: int = 50, tol: float = 1e-3,
) -> torch.Tensor:
    """Interpolated samples (DE-CROP Eq. 7): starting at ``x``, Adam on the input minimises
    MSE(f(x_int), alpha*f(x) + (1-alpha)*f(x_b)), clamped to [0, 1] after each step, for at most
    ``max_steps`` steps or until the loss changes by less than ``tol``."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"the mixing coefficient alpha must lie in [0, 1], got {alpha}")
    with torch.no_grad():
        target = alpha * classifier(x) + (1 - alpha) * classifier(x_b)
    x_int = x.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x_int], lr=lr, betas=betas)
    previous = math.inf
    for _ in range(max_steps):
        loss = F.mse_loss(classifier(x_int), target)
        if abs(previous - loss.item()) < tol:
            break
        previous = loss.item()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x_int.clamp_(0, 1)
    return x_int.detach()


@dataclass(frozen=True)
class SampleParams:
    """Stage-1 hyperparameters (notes; supplement Table 1 uses PGD). ``chunk`` images are
    processed at once (memory bound; it also fixes the early stop of the interpolation)."""

    eps: float = 8 / 255
    step: float = 2 / 255
    steps: int = 20
    alpha: float = 0.8
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.999)
    max_steps: int = 50
    tol: float = 1e-3
    chunk: int = 100


def _update(h: Any, t: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes to the hash ``h``."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def state_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state dict (names, dtypes, shapes and bytes): identifies its weights."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        _update(h, tensor)
    return h.hexdigest()


def cache_key(classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, params: SampleParams, seed: int) -> str:
    """Hash of everything the stage-1 samples depend on: weights, images, labels, parameters, seed."""
    h = hashlib.sha256(state_hash(classifier).encode())
    _update(h, x)
    _update(h, y)
    h.update(json.dumps({**asdict(params), "seed": seed, "version": CACHE_VERSION}, sort_keys=True).encode())
    return h.hexdigest()


def generate_samples(
    classifier: nn.Module, x: torch.Tensor, y: torch.Tensor, *, params: SampleParams = SampleParams(), seed: int = 0,
    cache_dir: str | Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stage 1: boundary and interpolated samples ``(x_b, x_int)`` of the images ``x``; PGD raises
    the cross-entropy to the labels ``y`` (the denoiser trainer passes the classifier's own predictions).

    With ``cache_dir`` they are stored as ``decrop-<key>.safetensors``, the key hashing the
    classifier's weights, the images, labels, ``params`` and ``seed`` (see ``cache_key``): a second
    call with the same inputs loads them, any change generates (and caches) new ones.
    """
    if x.dim() != 4 or y.shape != (x.shape[0],):
        raise ValueError(f"expected images (N, C, H, W) and labels (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
    file = None
    if cache_dir is not None:
        file = Path(cache_dir) / f"decrop-{cache_key(classifier, x, y, params, seed)[:32]}.safetensors"
        if file.is_file():
            try:
                cached = load_file(str(file))
            except (SafetensorError, OSError) as err:
                raise ValueError(f"corrupt DE-CROP sample cache {file}: {err}; delete it") from err
            if cached.get("boundary") is None or cached["boundary"].shape != x.shape or cached["interpolated"].shape != x.shape:
                raise ValueError(f"DE-CROP sample cache {file} does not match the images; delete it")
            return cached["boundary"].to(x.device), cached["interpolated"].to(x.device)
    g = generator(seed, STAGE1_STREAM, device=x.device)
    boundary, interpolated = [], []
    with frozen(classifier):
        for i in range(0, len(x), params.chunk):
            xc, yc = x[i : i + params.chunk], y[i : i + params.chunk]
            xb = pgd_linf(classifier, xc, yc, eps=params.eps, step=params.step, steps=params.steps, generator=g)
            boundary.append(xb)
            interpolated.append(interpolated_samples(
                classifier, xc, xb, alpha=params.alpha, lr=params.lr, betas=params.betas,
                max_steps=params.max_steps, tol=params.tol,
            ))
    x_b, x_int = torch.cat(boundary), torch.cat(interpolated)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        save_file({"boundary": x_b.cpu().contiguous(), "interpolated": x_int.cpu().contiguous()}, str(tmp))
        os.replace(tmp, file)
    return x_b, x_int


# ----------------------------------------------------------------------------- penultimate features


class Penultimate:
    """``(features, logits)`` of a classifier in one forward pass, without rewriting it.

    Uses, in order: the input of the module named ``layer`` (a forward hook); ``model.features``
    with ``model.fc`` (smoothcert's models); the same on the last module of an ``nn.Sequential``
    (``build_model(..., mean=, std=)`` wraps ours as ``Sequential(normalize, model)``); the input
    of the last ``nn.Linear`` (a forward hook). Features are flattened to (B, dim).
    """

    def __init__(self, model: nn.Module, layer: str | None = None) -> None:
        self.model = model
        self.prefix: nn.Module | None = None
        self.core: nn.Module | None = None
        self.hooked: nn.Module | None = None
        if layer is not None:
            try:
                self.hooked = model.get_submodule(layer)
            except AttributeError as err:
                raise ValueError(f"the classifier has no module named {layer!r}") from err
        elif hasattr(model, "features") and hasattr(model, "fc"):
            self.core = model
        elif isinstance(model, nn.Sequential) and len(model) and hasattr(model[-1], "features") and hasattr(model[-1], "fc"):
            self.prefix, self.core = model[:-1], model[-1]
        else:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            if not linears:
                raise ValueError(
                    "cannot find the classifier's penultimate features: it has no features(x)/fc and no nn.Linear; "
                    "name the layer whose input they are (layer=...)"
                )
            self.hooked = linears[-1]

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.core is not None:
            feats = self.core.features(x if self.prefix is None else self.prefix(x))
            return feats.flatten(1), self.core.fc(feats)
        captured: list[torch.Tensor] = []
        handle = self.hooked.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0]))
        try:
            logits = self.model(x)
        finally:
            handle.remove()
        if not captured:
            raise ValueError("the chosen feature layer was not called in the classifier's forward pass")
        return captured[-1].flatten(1), logits


# ----------------------------------------------------------------------------- stage 2 and 3 losses


def mmd(a: torch.Tensor, b: torch.Tensor, kernels: int = 5) -> torch.Tensor:
    """Squared multi-kernel MMD (biased V-statistic) between feature sets a (n, dim) and b (m, dim).

    The kernel is the sum of ``kernels`` Gaussians exp(-||u-v||^2 / h_i) with bandwidths doubling,
    h_i = h * 2^(i - kernels // 2), centred on h = the mean squared distance between distinct points of
    the pooled set (detached), as in DAN (Long et al. 2015). Zero for identical sets, positive otherwise.
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(f"MMD needs two non-empty (n, dim) feature sets, got {tuple(a.shape)} and {tuple(b.shape)}")
    z = torch.cat([a, b])
    total = len(z)
    d2 = (z.unsqueeze(0) - z.unsqueeze(1)).pow(2).sum(-1)
    h = (d2.detach().sum() / max(total * total - total, 1)).clamp_min(1e-12)
    scales = h * 2.0 ** (torch.arange(kernels, device=z.device, dtype=z.dtype) - kernels // 2)
    k = torch.exp(-d2.unsqueeze(-1) / scales).sum(-1)
    n = len(a)
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def cosine_loss(logits: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """L_cs: mean over the batch of 1 - cos(logits, reference)."""
    return (1 - F.cosine_similarity(logits, reference, dim=1)).mean()


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coefficient: float) -> torch.Tensor:  # type: ignore[override]
        ctx.coefficient = coefficient
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.coefficient * grad, None


def reverse_gradient(x: torch.Tensor, coefficient: float) -> torch.Tensor:
    """Gradient-reversal layer (Ganin & Lempitsky 2015): identity forward, gradient times -coefficient."""
    return _ReverseGradient.apply(x, coefficient)


def grl_coefficient(progress: float, weight: float = GRL_WEIGHT) -> float:
    """The ramp w * (2 / (1 + exp(-10 p)) - 1) at training progress p in [0, 1] (0 at p = 0, ~w at p = 1)."""
    if not 0 <= progress <= 1:
        raise ValueError(f"training progress must lie in [0, 1], got {progress}")
    return weight * (2 / (1 + math.exp(-10 * progress)) - 1)


class DomainDiscriminator(nn.Sequential):
    """Stage-3 MLP (supplement Section 4): features -> 100, BatchNorm, ReLU -> 2 domains (clean, denoised)."""

    def __init__(self, features: int, hidden: int = 100) -> None:
        super().__init__(nn.Linear(features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 2))


class DecropObjective:
    """The DE-CROP training loss of a denoiser on a fixed image set.

    Precomputes, with the frozen classifier, the clean logits f(x), the normalised features F(x)
    and the labels argmax f(x) of ``x`` and holds the stage-1 samples ``x_b``, ``x_int``. Calling it
    with a denoiser, the indices of a minibatch, the noise and the training ``progress`` in stage 3
    (``None`` in stage 2) returns the summed weighted loss; in stage 3 the discriminator (its own
    optimizer, Adam lr 1e-5) takes a step on the same backward pass.
    """

    def __init__(
        self, classifier: nn.Module, x: torch.Tensor, x_b: torch.Tensor, x_int: torch.Tensor, *,
        layer: str | None = None, batch_size: int = 256,
    ) -> None:
        self.classifier, self.x, self.x_b, self.x_int = classifier, x, x_b, x_int
        self.penultimate = Penultimate(classifier, layer)
        with torch.no_grad():
            parts = [self.penultimate(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        self.clean_features = F.normalize(torch.cat([p[0] for p in parts]), dim=1)
        self.clean_logits = torch.cat([p[1] for p in parts])
        self.labels = self.clean_logits.argmax(1)
        self.discriminator = DomainDiscriminator(self.clean_features.shape[1]).to(x.device)
        self.disc_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=DISCRIMINATOR_LR)

    def _denoised(self, denoiser: nn.Module, images: torch.Tensor, noise, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        feats, logits = self.penultimate(denoiser(noise(images, g)))
        return F.normalize(feats, dim=1), logits

    def __call__(self, denoiser: nn.Module, idx: torch.Tensor, noise, g: torch.Generator, progress: float | None) -> torch.Tensor:
        clean_feats, clean_logits = self.clean_features[idx], self.clean_logits[idx]
        feats, logits = self._denoised(denoiser, self.x[idx], noise, g)
        loss = WEIGHT_LC * F.cross_entropy(logits, self.labels[idx])
        for samples in (self.x_b, self.x_int):
            s_feats, s_logits = self._denoised(denoiser, samples[idx], noise, g)
            loss = loss + WEIGHT_CS * cosine_loss(s_logits, clean_logits) + WEIGHT_MMD * mmd(clean_feats, s_feats)
        if progress is None:
            return loss
        self.discriminator.train()
        domains = torch.cat([torch.zeros(len(idx)), torch.ones(len(idx))]).long().to(feats.device)
        reversed_feats = reverse_gradient(torch.cat([clean_feats, feats]), grl_coefficient(progress))
        return loss + F.cross_entropy(self.discriminator(reversed_feats), domains)

    def step(self) -> None:
        """Update the discriminator after the shared backward pass (stage 3 only)."""
        self.disc_optimizer.step()
        self.disc_optimizer.zero_grad(set_to_none=True)
