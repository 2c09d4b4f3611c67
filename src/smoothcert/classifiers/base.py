"""What every classifier of the library shares: the CERTIFY outcome, the image check, and the
interface that the dataset runner, the attacks' oracles and the reports rely on.

A *classifier* here is a base model together with the rule that turns its outputs on transformed
copies of an image into a prediction with a certificate: the smoothed classifier of a sampled
noise (`smoothed`, Cohen et al. 2019; Levine & Feizi 2020), the exact vote of a deterministic
noise (`deterministic`), the smoothed classifier of a denoiser in front of a frozen model
(`denoised`), or an undefended model (`undefended`, which certifies nothing).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

import numpy as np
import torch
from torch import nn

from ..errors import call_model, check_count
from ..noises import Noise
from ..runtime.seeding import resolve_device
from ..runtime.speed import Switch, accelerate, auto_batch_size, eager
from .preprocessing import Bounds, Preprocessing, preprocessed

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
Steps = Generator[int, np.ndarray, T]
"""A sampling coroutine: yields sample counts, is sent vote counts, returns its outcome."""

WINDOW = 64
"""How many images [`run_packed`][run_packed] keeps in flight, their samples packed into shared forward passes."""


def prepare_base(base: nn.Module, device: str | torch.device, batch_size: int | None, *, compile: Switch,
                 channels_last: Switch, amp: str | None, preprocessing: Preprocessing = None
                 ) -> tuple[nn.Module, torch.device, int]:
    """``(model, device, batch_size)`` of a classifier: the library's own view of ``base``, in eval
    mode on the resolved ``device``, behind ``preprocessing`` (the preprocessing module) and accelerated
    by [`accelerate`][smoothcert.runtime.speed.accelerate] (``"auto"`` turns on what was measured to pay for
    this model on this device type), and ``batch_size`` None the measured fastest for the model
    ([`auto_batch_size`][smoothcert.runtime.speed.auto_batch_size]). With the defaults a classifier built in
    Python runs as fast as the command line's.

    The caller's ``base`` is never changed: a model already in eval mode on ``device`` is used as
    it is (channels-last changes only the input's layout), any other is copied first.

    Args:
        base: The caller's model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: Most inputs per forward pass; None: the fastest measured for the model.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Mixed precision, ``"bf16"`` or ``"fp16"``, or None.
        preprocessing: ``{"mean": ..., "std": ...}``, a callable on a batch, or None.

    Raises:
        ValueError: For a model that must be copied but cannot be.
    """
    device = resolve_device(device)
    model = getattr(base, "build_config", {}).get("model")
    size = auto_batch_size(model, device) if batch_size is None else check_count("batch_size", batch_size)
    tensors = [*base.parameters(), *base.buffers()]
    index = torch.cuda.current_device() if device.type == "cuda" and device.index is None else device.index
    elsewhere = any(t.device.type != device.type or (index is not None and t.device.index != index) for t in tensors)
    if any(m.training for m in base.modules()) or elsewhere:
        try:
            base = copy.deepcopy(base)
        except Exception as err:  # noqa: BLE001 - any module that cannot be copied
            raise ValueError(f"the base model cannot be copied ({type(err).__name__}: {err}); pass it in eval mode "
                             f"on {device} (model.eval().to(device)) and it is used as it is") from err
        base = base.to(device).eval()
    view = accelerate(preprocessed(base, preprocessing, device), compile=compile, channels_last=channels_last, amp=amp)
    return view, device, size


@dataclass(frozen=True)
class Certificate:
    """Outcome of CERTIFY for one image: ``predict`` is ``ABSTAIN`` (-1) with radius NaN when the
    bound on the top class is too weak; ``count`` is that class's votes among ``n``.

    Attributes:
        predict: The certified class, or ``ABSTAIN`` (-1).
        count: The votes of the top class among the ``n`` estimation samples.
        n: The estimation samples drawn (adaptive: as many as it took).
        p_lower: The lower confidence bound on the top class's probability (NaN for an exact vote).
        radius: The certified radius in the noise's threat model; NaN on abstention.
    """

    predict: int
    count: int
    n: int
    p_lower: float
    radius: float


def check_image(x: torch.Tensor, bounds: Bounds = (0.0, 1.0)) -> torch.Tensor:
    """``x``; ValueError unless it is one (C, H, W) floating-point image with finite pixels within
    ``bounds`` (the classifier's input space, `preprocessing`)."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected an image as a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got shape {tuple(x.shape)}")
    if x.shape[0] == x.shape[1] and x.shape[2] in (1, 3) and x.shape[0] > 4:
        raise ValueError(f"expected one image of shape (C, H, W), got {tuple(x.shape)}, which looks like (H, W, C): "
                         "pass x.permute(2, 0, 1)")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point image, got dtype {x.dtype} (scale integer pixels to the "
                         "classifier's bounds first, e.g. x.float() / 255)")
    lower, upper = bounds
    if not torch.isfinite(x).all() or x.min() < lower or x.max() > upper:
        raise ValueError(f"pixel values must lie in [{lower:g}, {upper:g}]"
                         + (" (declare another input space with bounds=...)" if bounds == (0.0, 1.0) else ""))
    return x


def base_logits(model: nn.Module, batch: torch.Tensor, num_classes: int, noise: Noise | None = None) -> torch.Tensor:
    """``model(batch)``, checked ([`check_logits`][smoothcert.classifiers.base.check_logits]); a model
    that cannot take the batch is a ValueError in one line that says what input it must accept and
    where it comes from (the samples of ``noise``, with its ``input_note``, or the images as given when None)."""
    return check_logits(call_model(model, batch, noise), len(batch), num_classes)


def try_input(model: nn.Module, inputs: torch.Tensor, num_classes: int, noise: Noise) -> None:
    """Feed ``model`` the ``inputs`` ``noise`` makes of one image, eagerly (the accelerations neither
    compile nor count them, [`eager`][smoothcert.runtime.speed.eager]): a model that cannot take them, or
    that does not give one row of logits per input, is refused by
    [`base_logits`][smoothcert.classifiers.base.base_logits] before any sampling.

    Args:
        model: The classifier's (accelerated) base model.
        inputs: A few noisy copies (B, C', H, W) of one image, drawn from a stream of their own.
        num_classes: How many classes the logits must have.
        noise: The noise that made ``inputs``.
    """
    with torch.inference_mode():
        base_logits(eager(model), inputs, num_classes, noise)


def check_logits(logits: torch.Tensor, rows: int, num_classes: int) -> torch.Tensor:
    """``logits``; ValueError unless they are finite with shape (``rows``, ``num_classes``): a model
    with NaN outputs (a diverged training) or of another shape must not vote, since an argmax over
    them would certify whatever class comes first."""
    if tuple(logits.shape) != (rows, num_classes):
        raise ValueError(f"the base model returned outputs of shape {tuple(logits.shape)} for a batch of {rows}; "
                         f"expected ({rows}, {num_classes}): one logit per class (num_classes={num_classes})")
    if not torch.isfinite(logits).all():
        raise ValueError("the base model returned non-finite logits (NaN or inf), as a diverged training leaves "
                         "it; such a model cannot be certified: retrain it (e.g. with a lower --lr)")
    return logits


class Classifier(Protocol):
    """What every classifier kind has, an undefended model included (`smoothed`, `deterministic`,
    `denoised`, `undefended`).

    ``kind`` names it in logs; ``certified`` says how it certifies, for messages ("is certified by
    sampling", ...). ``samples`` says whether it draws noise samples (and so reads the sampling
    options: ``n0``, ``n``, ``alpha``, ``sampling``), ``certifies`` whether it has a certificate at
    all; what checks a run's options and picks how attacks query it reads these two, never the
    kind. ``sample_counts`` says how many
    samples CERTIFY / PREDICT really draw and with which sampling (a deterministic vote evaluates
    each copy once, whatever was asked); a kind that certifies nothing refuses there, and on
    ``certificate``.
    """

    kind: ClassVar[str]
    certified: ClassVar[str]
    samples: ClassVar[bool]
    certifies: ClassVar[bool]
    base: nn.Module
    noise: Noise
    num_classes: int
    batch_size: int
    device: torch.device

    @property
    def certificate(self) -> str:
        """What the radius column of a log means (the certificate's name)."""
        ...

    def sample_counts(self, n0: int | None, n: int, sampling: object) -> tuple[int | None, int, object]: ...


class VotingClassifier(Classifier, Protocol):
    """A classifier that certifies by a vote of its base model (smoothed, denoised, deterministic):
    what the dataset runner and the attacks' oracles drive.

    ``certify_steps`` / ``predict_steps`` are the coroutines the dataset runner drives, with
    ``sample_many`` packing the samples of many images into full forward passes; ``certify`` /
    ``predict`` run them on one image (a smoothed classifier also on a batch, then giving a list),
    ``sample`` draws one image's votes and ``predict_from_counts`` decides on them. A deterministic
    vote takes the sampling arguments and does not need them (every copy once, exactly).
    """

    def sample(self, x: torch.Tensor, num: int, generator: torch.Generator | None = None) -> np.ndarray: ...

    def sample_many(self, requests: Sequence[tuple[torch.Tensor, int, torch.Generator | None]]) -> np.ndarray: ...

    def certify_steps(self, image_size: tuple[int, int], n0: int, n: int, alpha: float,
                      sampling: object = "fixed") -> Steps[Certificate]: ...

    def predict_steps(self, n: int, alpha: float, sampling: object = "fixed") -> Steps[tuple[int, np.ndarray]]: ...

    def predict_from_counts(self, counts: np.ndarray, alpha: float) -> int: ...

    def certify(self, x: torch.Tensor, n0: int, n: int, alpha: float, generator: torch.Generator | None = None, *,
                sampling: object = "fixed") -> Certificate | list[Certificate]: ...

    def predict(self, x: torch.Tensor, n: int, alpha: float, generator: torch.Generator | None = None, *,
                sampling: object = "fixed") -> int | list[int]: ...


def run_packed(
    classifier: VotingClassifier, jobs: Iterable[tuple[K, torch.Tensor, Steps[T], torch.Generator | None]],
    window: int = WINDOW,
) -> Iterator[tuple[K, T, float]]:
    """Drive the sampling coroutines of ``jobs`` ``(key, image, steps, generator)`` (images of one
    shape, distinct keys) together; yield ``(key, outcome, seconds)`` in the order of ``jobs``.

    Up to ``window`` images are in flight, admitted while their pending requests fill less than one
    forward pass (``classifier.batch_size``); every round samples all pending requests in one
    ``sample_many`` call, so images that need few samples share forward passes. Each image draws
    from its own ``generator`` exactly as if it were sampled alone (`sample_many`), so its
    outcome does not depend on the packing. ``jobs`` is read lazily (a job's coroutine and
    generator can be made on admission); ``seconds`` is the image's share, by samples, of the
    rounds it took part in. The dataset runner and the batch calls of ``certify`` / ``predict`` use this.
    """
    waiting = iter(jobs)
    active: dict[K, tuple[torch.Tensor, Steps[T], int, torch.Generator | None]] = {}  # key -> (image, steps, request, stream)
    order: list[K] = []  # admitted keys in the order of jobs, not yet yielded
    seconds: dict[K, float] = {}
    finished: dict[K, T] = {}

    def admit() -> bool:
        job = next(waiting, None)
        if job is None:
            return False
        key, image, steps, stream = job
        active[key] = (image, steps, next(steps), stream)
        order.append(key)
        seconds[key] = 0.0
        return True

    while True:
        while len(active) < window and sum(a[2] for a in active.values()) < classifier.batch_size and admit():
            pass
        if not active:
            return
        keys = list(active)
        start = time.perf_counter()
        votes = classifier.sample_many([(active[k][0], active[k][2], active[k][3]) for k in keys])
        elapsed = time.perf_counter() - start
        total = sum(active[k][2] for k in keys)
        for key, counts in zip(keys, votes, strict=True):
            image, steps, request, stream = active[key]
            seconds[key] += elapsed * request / total
            try:
                active[key] = (image, steps, steps.send(counts), stream)
            except StopIteration as done:
                del active[key]
                finished[key] = done.value
        while order and order[0] in finished:
            key = order.pop(0)
            yield key, finished.pop(key), seconds.pop(key)
