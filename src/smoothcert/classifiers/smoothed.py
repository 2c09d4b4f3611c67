"""The smoothed classifier g(x) = argmax_c P(f(noise(x)) = c) and its PREDICT / CERTIFY.

Follows Cohen, Rosenfeld & Kolter (2019), used unchanged by Levine & Feizi (2020, Results):
CERTIFY picks the top class from ``n0`` samples and bounds its probability with ``n`` fresh
samples; PREDICT abstains unless a binomial test separates the top two classes. The noise object
(ablation, ...) supplies both the sampling and the matching certificate, so this class does not
know which threat model it certifies.

``sampling="fixed"`` is that protocol; an [`Adaptive`][smoothcert.certificates.sequential.Adaptive] (or
``"adaptive"``) draws samples in growing batches and stops once the answer is settled, at the
same ``alpha`` ([`smoothcert.certificates.sequential`][smoothcert.certificates.sequential]). Both are coroutines that ask for samples
(``certify_steps``, ``predict_steps``), so one image can be driven alone or many together with
their samples packed into full forward passes (``certify`` / ``predict`` on a batch, the dataset
runner: [`run_packed`][smoothcert.classifiers.base.run_packed]).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn
from tqdm.auto import tqdm

from ..certificates.sequential import ABSTAIN, Adaptive, check_n0
from ..certificates.sequential import certify_steps as sequential_certify
from ..certificates.sequential import predict_steps as sequential_predict
from ..checkpoint import load_checkpoint
from ..errors import check_alpha, check_count
from ..noises import BatchSharedNoise, Noise, noise_from_config
from ..runtime import seeding
from ..runtime.speed import Switch
from .base import Certificate, Steps, T, base_logits, check_image, prepare_base, run_packed, try_input
from .preprocessing import Bounds, Preprocessing, check_bounds

SAMPLINGS = ("adaptive", "fixed")
Sampling = str | Adaptive
"""``"fixed"`` (Cohen et al.'s n samples), ``"adaptive"`` (``Adaptive()``) or an ``Adaptive``."""
Images = torch.Tensor | Sequence[torch.Tensor]
"""One (C, H, W) image, a batch (N, C, H, W), or a sequence of (C, H, W) images of one shape."""


class SmoothedClassifier:
    """A base classifier ``base`` smoothed by ``noise``.

    ``batch_size`` (None: the fastest measured for the model) bounds how many noisy copies go
    through the model at once (memory cap); ``compile``, ``channels_last`` (``"auto"``, ``"on"``,
    ``"off"``) and ``amp`` accelerate it ([`prepare_base`][smoothcert.classifiers.base.prepare_base]).
    ``certificate`` names the certificate the noise computes (ablation: ``cor1``, ``cor2``, ``jia``;
    Gaussian: ``cohen``, ``two-class``); ``None`` takes the noise's first, the papers' choice.
    ``bounds`` is the input space images are given in, where the noise acts and the certificate
    holds; ``preprocessing`` (``{"mean": ..., "std": ...}`` or a callable) maps each noisy copy to
    what the model was trained on (`preprocessing`). The caller's
    ``base`` is never modified ([`prepare_base`][smoothcert.classifiers.base.prepare_base]).

    ``certify`` / ``predict`` take one (C, H, W) image (one result; noise from ``generator``) or a
    batch, (N, C, H, W) or a list of images, and then return a list: the images' samples are packed
    into shared forward passes as in the dataset runner, and image ``i`` draws from the stream keyed
    by ``(seed, indices[i])`` (default ``seed`` 0 and ``indices`` 0..N-1; one image given a ``seed``
    is a batch of one), so each result equals the row that ``smoothcert certify --seed SEED``
    writes for dataset index ``indices[i]``:

        certs = smoothed.certify(images, n0=100, n=10_000, alpha=0.05, sampling="adaptive", seed=0)

    Args:
        base: The base classifier f: a model from a batch of noisy copies (N, C', H, W), as
            ``noise`` makes them (its `channels(C)`: 2·C for ablation's multichannel encoding), to
            logits (N, ``num_classes``).
        noise: The threat model ([`Ablation`][smoothcert.noises.ablation.Ablation],
            [`Gaussian`][smoothcert.noises.gaussian.Gaussian], ...): it draws the noisy copies and
            computes the certificate.
        num_classes: How many classes ``base``'s logits have.
        certificate: The certificate's name; None: the noise's first.
        batch_size: Most noisy copies per forward pass; None: the fastest measured for the model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Mixed precision, ``"bf16"`` or ``"fp16"`` (meant for CUDA); None: the model's own dtype.
        bounds: (lower, upper) of the input space images are given in.
        preprocessing: What maps a noisy copy to the model's input: ``{"mean": ..., "std": ...}``
            per channel, a callable on a batch, or None.

    Raises:
        ValueError: For a noise drawn once per batch (``per_batch``), or a certificate the noise
            does not compute.
    """

    kind: ClassVar[str] = "smoothed"
    certified: ClassVar[str] = "is certified by sampling"
    samples: ClassVar[bool] = True
    certifies: ClassVar[bool] = True

    def __init__(
        self,
        base: nn.Module,
        noise: Noise,
        num_classes: int,
        *,
        certificate: str | None = None,
        batch_size: int | None = None,
        device: str | torch.device = "auto",
        compile: Switch = "auto",
        channels_last: Switch = "auto",
        amp: str | None = None,
        bounds: Bounds = (0.0, 1.0),
        preprocessing: Preprocessing = None,
    ) -> None:
        self.num_classes = check_count("num_classes", num_classes)
        self.bounds = check_bounds(bounds)
        self.base, self.device, self.batch_size = prepare_base(base, device, batch_size, compile=compile,
                                                               channels_last=channels_last, amp=amp,
                                                               preprocessing=preprocessing)
        self.noise = noise
        self.dtype = next((p.dtype for p in base.parameters() if p.is_floating_point()), torch.float32)  # inputs'
        if isinstance(noise, BatchSharedNoise) and noise.per_batch:
            raise ValueError("certification needs an independent noise draw per sample: use per_batch=False")
        if certificate is None and not noise.certificates:
            noise.check_certificate(certificate)  # raises: this noise certifies nothing
        certificate = noise.certificates[0] if certificate is None else certificate
        noise.check_certificate(certificate)
        self.certificate = certificate
        self._tried: set[tuple[int, ...]] = set()  # image shapes whose noisy copies the model was seen to take

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> SmoothedClassifier:
        """The smoothed classifier of a ``smoothcert train`` checkpoint (model, noise, classes).

        Args:
            path: The checkpoint's folder (``--out`` of ``smoothcert train``).
            **kwargs: The constructor's keyword arguments (``certificate``, ``batch_size``,
                ``device``, ...).
        """
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], **kwargs)

    def sample_counts(self, n0: int, n: int, sampling: Sampling) -> tuple[int, int, Sampling]:
        """The selection and estimation samples CERTIFY / PREDICT draw (at most, adaptively): as asked."""
        return n0, n, sampling
    def sample(self, x: torch.Tensor, num: int, generator: torch.Generator | None = None) -> np.ndarray:
        """Votes of the base classifier on ``num`` noisy copies of ``x``: an array (num_classes,).

        Args:
            x: One image (C, H, W) within ``bounds``.
            num: How many noisy copies to draw.
            generator: The random stream of the noise; None: torch's global one.

        Returns:
            How many copies the base classifier assigned to each class.
        """
        return self.sample_many([(x, num, generator)])[0]

    @torch.inference_mode()
    def sample_many(self, requests: Sequence[tuple[torch.Tensor, int, torch.Generator | None]]) -> np.ndarray:
        """Votes (len(requests), num_classes) for requests ``(x, num, generator)`` of images of one shape.

        Each request draws its noise from its own generator in chunks of at most ``batch_size``
        copies, exactly as if it were sampled alone; the noisy copies of all requests then go
        through the model in forward passes of ``batch_size`` (the last may be smaller), so
        images that need few samples share passes instead of leaving them part-empty.
        """
        counts = torch.zeros(len(requests), self.num_classes, dtype=torch.long, device=self.device)
        queue: list[tuple[torch.Tensor, torch.Tensor]] = []  # (owner of each copy, noisy copies)
        queued = 0

        def forward(size: int) -> None:
            nonlocal queue, queued
            owners, batch = queue[0] if len(queue) == 1 else (torch.cat([o for o, _ in queue]), torch.cat([z for _, z in queue]))
            labels = base_logits(self.base, batch[:size], self.num_classes, self.noise).argmax(1)
            counts.index_put_((owners[:size], labels), torch.ones_like(labels), accumulate=True)
            queue = [(owners[size:], batch[size:])] if size < len(batch) else []
            queued -= size

        for i, (x, num, generator) in enumerate(requests):
            x = check_image(x, self.bounds).to(self.device, self.dtype)
            self._try_input(x)
            remaining = check_count("number of samples", num)
            while remaining > 0:
                b = min(self.batch_size, remaining)
                queue.append((torch.full((b,), i, device=self.device), self.noise(x.expand(b, *x.shape), generator)))
                queued, remaining = queued + b, remaining - b
                while queued >= self.batch_size:
                    forward(self.batch_size)
        if queued:
            forward(queued)
        return counts.cpu().numpy()

    def _try_input(self, x: torch.Tensor) -> None:
        """Once per image shape, before any sampling: two noisy copies of ``x`` from a stream of their own
        (the sampling streams are unchanged) through the model, which must take them and give logits
        ([`try_input`][smoothcert.classifiers.base.try_input]); a mismatch is a one-line ValueError saying
        what the model must accept.

        Args:
            x: One image (C, H, W) on the classifier's device.
        """
        if tuple(x.shape) not in self._tried:
            copies = self.noise(x.expand(2, *x.shape), torch.Generator(self.device).manual_seed(0))
            try_input(self.base, copies, self.num_classes, self.noise)
            self._tried.add(tuple(x.shape))

    def run(self, x: torch.Tensor, steps: Steps[T], generator: torch.Generator | None = None) -> T:
        """Drive a sampling coroutine (``certify_steps``, ``predict_steps``) on one image."""
        return next(run_packed(self, [(0, x, steps, generator)]))[1]

    def run_images(
        self, x: Images, steps: Callable[[tuple[int, int]], Steps[T]], generator: torch.Generator | None,
        seed: int | None, indices: Sequence[int] | None, progress: bool = True, desc: str = "images",
    ) -> T | list[T]:
        """Drive ``steps(image_size)`` on one image (``run``; with ``seed``, the stream (seed, index)) or,
        packed, on each image of a batch with the streams (seed, index): see the class docstring. A
        batch shows a progress bar named ``desc`` unless ``progress`` is False."""
        if isinstance(x, torch.Tensor) and x.dim() not in (3, 4):
            raise ValueError(f"expected one image (C, H, W) or a batch (N, C, H, W), got shape {tuple(x.shape)}")
        single = isinstance(x, torch.Tensor) and x.dim() == 3
        images = [x] if single else list(x)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)), got "
                             f"{type(generator).__name__}; to seed by a number pass seed= instead")
        if generator is not None and (seed is not None or not single):
            raise ValueError("generator= drives one (C, H, W) image; a batch draws image i from the stream "
                             "(seed, indices[i]): pass seed= instead")
        if single and seed is None and indices is None:
            return self.run(x, steps(tuple(x.shape[-2:])), generator)
        indices = list(range(len(images)) if indices is None else indices)
        if len(indices) != len(images):
            raise ValueError(f"indices has {len(indices)} entries for {len(images)} images")
        shapes = {tuple(image.shape) for image in images}
        if len(shapes) > 1:
            raise ValueError(f"a batch holds images of one shape, got {sorted(shapes)}")
        size = tuple(images[0].shape[-2:]) if images else (0, 0)
        seed = 0 if seed is None else seed
        jobs = ((i, image, steps(size), seeding.generator(seed, index, device=self.device))
                for i, (image, index) in enumerate(zip(images, indices, strict=True)))
        bar = tqdm(run_packed(self, jobs), total=len(images), desc=desc, unit="image", disable=single or not progress)
        outcomes = [outcome for _, outcome, _ in bar]
        return outcomes[0] if single else outcomes

    def predict(
        self, x: Images, n: int, alpha: float, generator: torch.Generator | None = None, *,
        sampling: Sampling = "fixed", seed: int | None = None, indices: Sequence[int] | None = None,
        progress: bool = True,
    ) -> int | list[int]:
        """PREDICT: the top class of ``n`` noisy votes, or ``ABSTAIN`` (see ``predict_from_counts``);
        adaptive sampling stops as soon as the top class is decided (``n`` is then the maximum).
        A batch gives a list, packed and seeded by (``seed``, index) as described in the class
        docstring, with a progress bar unless ``progress`` is False.

        Args:
            x: One image (C, H, W), or a batch (N, C, H, W) or list of images of one shape.
            n: Noise samples for the vote (adaptive: at most).
            alpha: PREDICT returns a class other than g(x) with probability at most ``alpha``,
                else it abstains (Cohen et al. 2019, Proposition 1).
            generator: The random stream of one image; a batch takes ``seed`` instead.
            sampling: ``"fixed"`` (``n`` samples), ``"adaptive"`` or an
                [`Adaptive`][smoothcert.certificates.sequential.Adaptive].
            seed: The seed of the streams (``seed``, ``indices[i]``); None: 0 for a batch.
            indices: The dataset index of each image of a batch; None: 0 to N-1.
            progress: Whether a batch shows a progress bar.

        Returns:
            The class, or ``ABSTAIN`` (-1); a list for a batch.
        """
        outcome = self.run_images(x, lambda size: self.predict_steps(n, alpha, sampling), generator, seed, indices,
                                  progress, "predict")
        return outcome[0] if isinstance(outcome, tuple) else [decision for decision, _ in outcome]

    def predict_steps(self, n: int, alpha: float, sampling: Sampling = "fixed") -> Steps[tuple[int, np.ndarray]]:
        """PREDICT as a coroutine: yields sample counts, is sent votes, returns (class, votes)."""
        check_alpha(alpha)
        check_count("n", n)
        options = as_sampling(sampling)
        if options is None:
            counts = yield n
            return self.predict_from_counts(counts, alpha), counts
        return (yield from sequential_predict(n, alpha, self.num_classes, options))

    @staticmethod
    def predict_from_counts(counts: np.ndarray, alpha: float) -> int:
        """The top class, or ``ABSTAIN`` if the two-sided binomial test of the top two counts has
        p-value above ``alpha`` (then the probability of returning a wrong class is at most ``alpha``)."""
        check_alpha(alpha)
        second, top = np.argsort(counts, kind="stable")[-2:]
        n_a, n_b = int(counts[top]), int(counts[second])
        if binomtest(n_a, n_a + n_b, 0.5).pvalue > alpha:
            return ABSTAIN
        return int(top)

    def certify(
        self, x: Images, n0: int, n: int, alpha: float, generator: torch.Generator | None = None, *,
        sampling: Sampling = "fixed", seed: int | None = None, indices: Sequence[int] | None = None,
        progress: bool = True,
    ) -> Certificate | list[Certificate]:
        """CERTIFY: select the top class on ``n0`` samples, bound its probability on ``n`` fresh
        samples at level ``alpha`` (adaptive: at most ``n``), and return the certified radius of
        the noise's threat model, in the classifier's input space. An abstention is ``ABSTAIN`` with
        radius NaN (Cohen et al.'s code and ART return radius 0 there). A batch gives a list, packed
        and seeded by (``seed``, index) as described in the class docstring, with a progress bar
        unless ``progress`` is False.

        Args:
            x: One image (C, H, W), or a batch (N, C, H, W) or list of images of one shape.
            n0: Selection samples that pick the top class.
            n: Estimation samples that bound its probability (adaptive: at most).
            alpha: A returned radius is wrong with probability at most ``alpha`` (Cohen et al.
                2019, Proposition 2); the radius is the noise's certificate of the lower bound on
                p_A (ablation: Levine & Feizi 2020, Corollary 1, Eq. 14).
            generator: The random stream of one image; a batch takes ``seed`` instead.
            sampling: ``"fixed"`` (Cohen et al.'s ``n0`` + ``n``), ``"adaptive"`` or an
                [`Adaptive`][smoothcert.certificates.sequential.Adaptive] (the command line's
                default is adaptive).
            seed: The seed of the streams (``seed``, ``indices[i]``); None: 0 for a batch.
            indices: The dataset index of each image of a batch; None: 0 to N-1.
            progress: Whether a batch shows a progress bar.

        Returns:
            A [`Certificate`][smoothcert.classifiers.base.Certificate] (class, votes, samples,
            p_lower, radius); a list for a batch.
        """
        return self.run_images(x, lambda size: self.certify_steps(size, n0, n, alpha, sampling), generator, seed,
                               indices, progress, "certify")

    def certify_steps(
        self, image_size: tuple[int, int], n0: int, n: int, alpha: float, sampling: Sampling = "fixed"
    ) -> Steps[Certificate]:
        """CERTIFY as a coroutine for images of ``image_size`` (H, W): yields sample counts, is sent
        votes, returns the [`Certificate`][Certificate]."""
        check_alpha(alpha)
        options = as_sampling(sampling)
        check_n0(n0, options)
        check_count("n", n)
        if options is None:
            top = int((yield n0).argmax())
            counts = yield n
            p_lower, radius = self.noise.certify(counts, top, alpha, image_size, self.certificate)
            count = int(counts[top])
        else:
            if self.certificate != self.noise.certificates[0]:
                raise ValueError(f"adaptive sampling certifies with {self.noise.certificates[0]} only; "
                                 f"use fixed sampling for the {self.certificate} certificate")
            outcome = yield from sequential_certify(
                NoiseRadius(self.noise, tuple(image_size)), n0, n, alpha, options, self.noise.radius_step,
                self.num_classes)
            top, count, n, p_lower, radius = outcome.top, outcome.count, outcome.n, outcome.p_lower, outcome.radius
        if np.isnan(radius):
            return Certificate(ABSTAIN, count, n, float(p_lower), float("nan"))
        return Certificate(top, count, n, float(p_lower), float(radius))


@dataclass(frozen=True)
class NoiseRadius:
    """The radius a noise certifies from a lower bound on p, for images of ``image_size``: a
    hashable certificate, so sequential CERTIFY reuses its tables across images."""

    noise: Noise
    image_size: tuple[int, ...]

    def __call__(self, p_lower: float) -> float:
        return self.noise.radius(p_lower, self.image_size)


def as_sampling(sampling: Sampling) -> Adaptive | None:
    """``None`` for fixed sampling, else the [`Adaptive`][Adaptive] options (``"adaptive"``: the defaults)."""
    if isinstance(sampling, Adaptive):
        return sampling
    if sampling == "fixed":
        return None
    if sampling == "adaptive":
        return Adaptive()
    raise ValueError(f"unknown sampling {sampling!r}; choose one of {SAMPLINGS} or pass an Adaptive")
