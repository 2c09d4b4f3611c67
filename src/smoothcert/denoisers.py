"""Denoised smoothing: certify a frozen pretrained classifier f by smoothing D∘f.

Salman et al. (NeurIPS 2020) put a denoiser D, trained for the certification noise, in front of
a classifier that never saw noise; the smoothed classifier of ``Sequential(D, f)`` is certified
as usual. D is a DnCNN (Zhang et al. 2017) trained with one of

* ``mse``: the "denoising" objective MSE(D(x + d), x);
* ``stability``: CE(f(D(x + d)), argmax f(x)) with f frozen;
* ``mse-stability``: Salman et al.'s best practice, MSE pre-training then stability: the first
  ceil(epochs/2) epochs MSE, the remaining floor(epochs/2) stability, each phase with a fresh Adam;
* ``decrop``: DE-CROP (Nayak et al. 2023, [`smoothcert.decrop`][smoothcert.decrop]): stage 2 (L_lc + L_cs + MMD)
  for ceil(epochs/2) epochs, then stage 3 (adding the domain discriminator) for the rest.

Every phase runs Adam (lr 1e-3 by default) with the learning rate divided by 10 after each third
of its epochs (Salman et al.: 90 epochs, step 30; DE-CROP: 600 epochs, step 200).

The noise is any smoothcert noise: Gaussian for denoised smoothing, and also randomized ablation
(``Ablation``): a DnCNN on the ablated input inpaints the missing pixels, so a classifier trained
only on clean images can be certified in L0 ("denoised ablation"). With the multichannel encoding
the denoiser sees 2C channels and outputs C: the residual is taken on the first C channels, i.e.
the kept pixel values (0 where ablated).

A denoiser checkpoint is a directory with ``denoiser.safetensors`` and ``config.json`` (never a
pickle) recording the architecture, the noise it was trained for and the classifier's path and
weight hash, so a certification can refuse a mismatched pair.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .checkpoint import commit, load_tensors, read_json_config
from .data import ImageDataset
from .decrop import DecropObjective, SampleParams, frozen, generate_samples, state_hash
from .errors import check_count
from .noises import BatchSharedNoise, Noise, make_noise
from .runtime.distributed import (
    all_reduce_sum,
    broadcast_buffers,
    current_world,
    rank_device,
)
from .runtime.seeding import generator, resolve_device, stream_seed
from .training import Recipe, refuse_overwrite

METHODS = ("mse", "stability", "mse-stability", "decrop")
# (epochs, batch size) when not given: Salman et al. 2020 (90, 256); DE-CROP reference schedule (600, 200)
DEFAULT_SCHEDULE = {"mse": (90, 256), "stability": (90, 256), "mse-stability": (90, 256), "decrop": (600, 200)}
# Adam's learning rate and the DnCNN of the papers (depth 17, width 64), shared by DnCNN, train_denoiser,
# the denoise job and its --lr, --depth and --width flags
DEFAULT_LR, DEFAULT_DEPTH, DEFAULT_WIDTH = 1e-3, 17, 64
FORMAT = "smoothcert-denoiser/1"
_REQUIRED = ("format", "channels", "in_channels", "depth", "width", "method", "noise", "classifier")
SUBSET_STREAM, INIT_STREAM, TRAIN_STREAM = 4, 5, 6


class DnCNN(nn.Module):
    """DnCNN (Zhang et al. 2017), as used by Salman et al. and DE-CROP: conv3x3(in->width)+ReLU,
    (depth-2) x [conv3x3(width->width, no bias) + BatchNorm + ReLU], conv3x3(width->channels);
    residual output ``x[:, :channels] - body(x)``. The paper's network is depth 17, width 64.

    ``in_channels`` (default ``channels``) may be larger, e.g. 2C for the multichannel ablation
    encoding. The last convolution starts at zero, so an untrained DnCNN is the identity on the
    first ``channels`` channels (the composition starts as the plain classifier). Weights are kept
    in channels-last layout, which makes the small convolutions about 1.5x faster on a CPU.

    Args:
        channels: Image channels C it outputs.
        depth: Convolution layers (the paper's 17).
        width: Channels of the hidden layers (the paper's 64).
        in_channels: Input channels; None: ``channels``.
    """

    def __init__(self, channels: int, depth: int = DEFAULT_DEPTH, width: int = DEFAULT_WIDTH,
                 in_channels: int | None = None) -> None:
        super().__init__()
        self.channels = check_count("channels", channels)
        self.in_channels = check_count("in_channels", self.channels if in_channels is None else in_channels)
        self.depth = check_count("depth", depth)
        self.width = check_count("width", width)
        if self.depth < 2:
            raise ValueError(f"a DnCNN needs depth >= 2, got {depth}")
        if self.in_channels < self.channels:
            raise ValueError(f"in_channels ({in_channels}) must be at least channels ({channels})")
        layers: list[nn.Module] = [nn.Conv2d(self.in_channels, self.width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(self.depth - 2):
            layers += [nn.Conv2d(self.width, self.width, 3, padding=1, bias=False), nn.BatchNorm2d(self.width),
                       nn.ReLU(inplace=True)]
        last = nn.Conv2d(self.width, self.channels, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*layers, last)
        self.to(memory_format=torch.channels_last)  # ~1.5x faster small convolutions on CPU (equal up to rounding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"DnCNN expects a batch (N, {self.in_channels}, H, W), got shape {tuple(x.shape)}")
        return x[:, : self.channels] - self.body(x)

    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "in_channels": self.in_channels, "depth": self.depth, "width": self.width}


class KeepChannels(nn.Module):
    """The first ``channels`` channels of the input: with the multichannel ablation encoding that is
    the image with ablated pixels set to 0, which a classifier trained on clean images can read."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = check_count("channels", channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, : self.channels]


def denoised_classifier(denoiser: nn.Module, classifier: nn.Module) -> nn.Sequential:
    """``Sequential(denoiser, classifier)``: the base classifier D∘f that ``SmoothedClassifier`` smooths.

    Args:
        denoiser: The denoiser D.
        classifier: The frozen classifier f.
    """
    expected = getattr(classifier, "in_channels", None)
    produced = getattr(denoiser, "channels", None)
    if expected is not None and produced is not None and expected != produced:
        raise ValueError(f"the denoiser outputs {produced} channels but the classifier expects {expected}")
    return nn.Sequential(OrderedDict(denoiser=denoiser, classifier=classifier))


def stratified_subset(labels: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a random ``fraction`` of every class (at least one image per class), drawn
    with ``generator(seed, SUBSET_STREAM)``: DE-CROP keeps 1% of the training images per class."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"data_fraction must lie in (0, 1], got {fraction!r}")
    g = generator(seed, SUBSET_STREAM)
    labels = labels.cpu()
    chosen = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        take = max(1, round(fraction * len(members)))
        chosen.append(members[torch.randperm(len(members), generator=g)[:take]])
    return torch.cat(chosen).sort().values


def _phases(method: str, epochs: int) -> list[tuple[str, int]]:
    """(objective, epochs) of each training phase."""
    if method in ("mse", "stability"):
        return [(method, epochs)]
    if epochs < 2:
        raise ValueError(f"{method} trains in two phases and needs at least 2 epochs, got {epochs}")
    first, second = ("mse", "stability") if method == "mse-stability" else ("decrop-stage2", "decrop-stage3")
    return [(first, epochs - epochs // 2), (second, epochs // 2)]


def _schedule(epochs: int, batch_size: int, lr: float) -> Recipe:
    """Adam with the learning rate divided by 10 after each third of the phase."""
    milestones = tuple(sorted({max(1, epochs * i // 3) for i in (1, 2)} - {epochs}))
    return Recipe("denoiser", epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr, milestones=milestones,
                  source="Salman et al. 2020 / DE-CROP: Adam, lr x0.1 after each third")


def _settings_differ(saved: dict[str, Any], settings: dict[str, Any]) -> list[str]:
    """Keys whose values differ, comparing the classifier by weight hash only (not by path)."""
    def same(key: str) -> bool:
        if key == "classifier":
            return (saved.get(key) or {}).get("sha256") == settings[key]["sha256"]
        return saved.get(key) == settings[key]
    return [k for k in settings if not same(k)]


@torch.no_grad()
def _predict(classifier: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    return torch.cat([classifier(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def train_denoiser(
    classifier: nn.Module,
    train_set: ImageDataset,
    *,
    method: str = "mse",
    sigma: float | None = None,
    noise: Noise | None = None,
    data_fraction: float = 1.0,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float = DEFAULT_LR,
    depth: int = DEFAULT_DEPTH,
    width: int = DEFAULT_WIDTH,
    seed: int = 0,
    device: str | torch.device = "auto",
    out: str | Path | None = None,
    classifier_path: str | Path | None = None,
    feature_layer: str | None = None,
    sample_params: SampleParams | None = None,
    cache_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[DnCNN, dict[str, Any]]:
    """Train a DnCNN in front of the frozen ``classifier``; returns (denoiser in eval mode, config).

    The noise is ``Gaussian(sigma)`` or the given ``noise`` (exactly one of the two). Training uses a
    per-class stratified ``data_fraction`` of ``train_set`` (seeded by ``seed``); ``epochs`` and
    ``batch_size`` default to the papers' schedules (``DEFAULT_SCHEDULE``). The classifier runs in
    eval mode with ``requires_grad=False`` and its weights are not changed; its flags are restored
    afterwards. ``classifier_path`` is recorded in the config beside the weights' SHA-256.

    With ``out``, the checkpoint is written there. A denoiser already in ``out`` is refused unless
    ``resume=True`` (a denoiser is only written when finished, so resuming loads it instead of
    retraining, and refuses different settings; with nothing in ``out`` it trains) or
    ``overwrite=True`` (retrain and replace it); see ``train.refuse_overwrite``.
    DE-CROP's stage-1 samples are cached in ``cache_dir`` (default ``out/stage1``); ``feature_layer``
    names the module whose input are the penultimate features if the classifier has no ``features``.

    Args:
        classifier: The frozen classifier f.
        train_set: The training images.
        method: ``"mse"``, ``"stability"``, ``"mse-stability"`` or ``"decrop"``.
        sigma: The Gaussian noise's standard deviation (or give ``noise``).
        noise: A denoisable noise (or give ``sigma``).
        data_fraction: The stratified share of ``train_set`` trained on.
        epochs: Training epochs; None: the method's schedule.
        batch_size: Images per step; None: the method's schedule.
        lr: Adam's learning rate.
        depth: DnCNN layers.
        width: DnCNN channels.
        seed: The seed of the noise, sampling and shuffling streams.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        out: The checkpoint folder, or None.
        classifier_path: The classifier's checkpoint, recorded.
        feature_layer: The module whose input are the penultimate features (DE-CROP).
        sample_params: DE-CROP's stage-1 hyperparameters; None: the defaults.
        cache_dir: Where DE-CROP's stage-1 samples are cached; None: ``out/stage1``.
        resume: Load a finished denoiser in ``out`` (refusing different settings).
        overwrite: Retrain and replace a denoiser in ``out``.
        progress: Whether to show progress bars.
    """
    refuse_overwrite(out, resume, overwrite)
    if len(train_set) == 0:
        raise ValueError(f"{train_set.name} holds no images to train on")
    if method not in METHODS:
        raise ValueError(f"unknown denoiser method {method!r}; choose one of {METHODS}")
    if (sigma is None) == (noise is None):
        raise ValueError("give exactly one of sigma (Gaussian noise) or noise")
    noise = make_noise("gaussian", sigma=sigma) if noise is None else noise
    if not noise.certificates:
        raise ValueError("a denoiser is trained for the certification noise: give Gaussian or ablation noise, not none")
    if isinstance(noise, BatchSharedNoise) and noise.per_batch:
        raise ValueError("train the denoiser with a noise drawn per image (per_batch=False), as it is certified")
    default_epochs, default_batch = DEFAULT_SCHEDULE[method]
    epochs = check_count("epochs", default_epochs if epochs is None else epochs)
    batch_size = check_count("batch_size", default_batch if batch_size is None else batch_size)
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"the learning rate must be a positive number, got {lr!r}")
    phases = _phases(method, epochs)
    sample_params = SampleParams() if sample_params is None else sample_params
    subset = stratified_subset(train_set.y, data_fraction, seed)
    channels = train_set.channels
    settings = {
        "format": FORMAT, "channels": channels, "in_channels": noise.channels(channels), "depth": depth, "width": width,
        "method": method, "noise": noise.to_config(), "data_fraction": data_fraction, "num_images": len(subset),
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "dataset": train_set.name,
        "classifier": {"path": None if classifier_path is None else Path(classifier_path).as_posix(),
                       "sha256": state_hash(classifier)},
        "decrop": asdict(sample_params) if method == "decrop" else None, "feature_layer": feature_layer,
    }
    settings = json.loads(json.dumps(settings))
    if resume and out is not None and (Path(out) / "config.json").exists():
        saved = read_denoiser_config(out)
        diff = _settings_differ(saved, settings)
        if diff:
            raise ValueError(f"{out} holds a denoiser trained with different settings ({', '.join(diff)}): replace it "
                             "with --overwrite (overwrite=True) or choose another --out")
        return load_denoiser(out, device)

    world = current_world()
    if world.distributed and method == "decrop":
        raise ValueError("DE-CROP's domain discriminator is not trained under torchrun; run decrop in one process")
    device = rank_device(device, world)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, INIT_STREAM))
        denoiser = DnCNN(channels, depth, width, noise.channels(channels)).to(device)
    classifier.to(device)
    x = train_set.x[subset].to(device)
    history: list[dict[str, Any]] = []
    with frozen(classifier):
        labels = _predict(classifier, x)
        objective = None
        if method == "decrop":
            x_b, x_int = generate_samples(classifier, x, labels, params=sample_params, seed=seed,
                                          cache_dir=cache_dir or (None if out is None else Path(out) / "stage1"))
            objective = DecropObjective(classifier, x, x_b, x_int, layer=feature_layer)
        net = denoiser  # under torchrun: DDP, each rank a slice of every batch (see train.fit)
        if world.distributed:
            net = DistributedDataParallel(denoiser, device_ids=[device.index] if device.type == "cuda" else None)
        bar = tqdm(total=epochs, desc=f"denoiser ({method})", unit="epoch", disable=not (progress and world.main))
        for number, (kind, phase_epochs) in enumerate(phases):
            schedule = _schedule(phase_epochs, batch_size, lr)
            optimizer = schedule.make_optimizer(denoiser.parameters())
            steps = math.ceil(len(x) / batch_size)
            for epoch in range(phase_epochs):
                g = generator(seed, TRAIN_STREAM, number, epoch, device=device)
                for group in optimizer.param_groups:
                    group["lr"] = schedule.lr_at(epoch)
                denoiser.train()
                order = torch.randperm(len(x), generator=g, device=device)
                if world.distributed:
                    g = generator(seed, TRAIN_STREAM, number, epoch, world.size, world.rank, device=device)
                total = seen = 0.0
                for step in range(steps):
                    idx = order[step * batch_size : (step + 1) * batch_size]
                    if world.distributed:
                        if len(idx) < world.size:
                            continue
                        idx = idx.tensor_split(world.size)[world.rank]
                    if kind == "mse":
                        loss = F.mse_loss(net(noise(x[idx], g)), x[idx])
                    elif kind == "stability":
                        loss = F.cross_entropy(classifier(net(noise(x[idx], g))), labels[idx])
                    else:
                        p = (epoch * steps + step) / (phase_epochs * steps) if kind == "decrop-stage3" else None
                        loss = objective(denoiser, idx, noise, g, p)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if kind == "decrop-stage3":
                        objective.step()
                    total += loss.item() * len(idx)
                    seen += len(idx)
                total, seen = all_reduce_sum([total, seen], device)
                history.append({"phase": kind, "epoch": epoch + 1, "lr": schedule.lr_at(epoch), "loss": total / seen})
                bar.update()
                bar.set_postfix(phase=kind, loss=round(total / seen, 5))
        bar.close()
    broadcast_buffers(denoiser)
    denoiser.eval()
    config = {**settings, "history": history}
    if out is not None and world.main:
        save_denoiser(out, denoiser, config)
    return denoiser, config


def save_denoiser(path: str | Path, denoiser: DnCNN, config: dict[str, Any]) -> Path:
    """Write ``denoiser.safetensors`` and ``config.json`` as one checkpoint (``checkpoint.commit``)."""
    return commit(path, {"denoiser.safetensors": denoiser.state_dict()}, {**config, **denoiser.config(), "format": FORMAT})


def read_denoiser_config(path: str | Path) -> dict[str, Any]:
    """A denoiser checkpoint's config, with clear errors for a missing, corrupt or foreign directory."""
    return read_json_config(path, FORMAT, _REQUIRED, "denoiser")


def load_denoiser(path: str | Path, device: str | torch.device = "cpu") -> tuple[DnCNN, dict[str, Any]]:
    """Rebuild a saved DnCNN and load its weights; returns (denoiser in eval mode, config)."""
    config = read_denoiser_config(path)
    denoiser = DnCNN(config["channels"], config["depth"], config["width"], config["in_channels"])
    file = Path(path) / "denoiser.safetensors"
    try:
        denoiser.load_state_dict(load_tensors(file))
    except RuntimeError as err:
        raise ValueError(f"weights in {file} do not fit the DnCNN its config describes: {err}") from err
    return denoiser.to(resolve_device(device)).eval(), config


def __getattr__(name: str) -> Any:
    """``denoise`` (the job), which moved to [`smoothcert.runner.jobs`][smoothcert.runner.jobs]
    (imported on first use: the jobs import the classifiers, which import this module)."""
    if name == "denoise":
        from .runner import jobs
        return jobs.denoise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
