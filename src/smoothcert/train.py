"""Training base classifiers on noisy inputs, one command for a whole schedule.

Recipes are named, frozen parameter sets: the paper's (Levine & Feizi 2020, appendix Tables
10-12) and a faster ``fast`` default for CPU demos (the paper's MNIST recipe, SGD at lr 0.01,
sits at loss 2.30 for about 30 epochs before it learns). Every epoch draws its randomness from
``generator(seed, epoch)`` and the learning rate is a pure function of the epoch, so a run
resumed from its last checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import load_optimizer, load_weights, read_config, save_checkpoint
from .data import ImageDataset, channel_mean, load_dataset
from .methods import Method, make_method
from .models import build_model
from .noises import Noise, make_noise
from .seeding import generator, resolve_device, stream_seed

TRAIN_STREAM, EVAL_STREAM = 0, 1
MODEL_INIT_STREAM = 2**32  # initial weights come from stream (seed, MODEL_INIT_STREAM)


@dataclass(frozen=True)
class Recipe:
    """An optimisation schedule. ``milestones`` multiply the lr by ``gamma`` (step schedule);
    ``schedule="cosine"`` anneals it to 0 over ``epochs`` instead."""

    name: str
    epochs: int
    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "step"
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    mask_per_batch: bool = False
    augment: str = "none"
    source: str = ""

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch size must be positive, got {self.epochs}, {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose sgd or adam")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"unknown schedule {self.schedule!r}; choose step or cosine")
        if self.augment not in ("none", "crop-flip"):
            raise ValueError(f"unknown augmentation {self.augment!r}; choose none or crop-flip")

    def lr_at(self, epoch: int) -> float:
        """Learning rate during 0-based ``epoch``."""
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


_PAPER_MNIST = Recipe(
    "paper-mnist", epochs=400, batch_size=128, lr=0.01, milestones=(200,), mask_per_batch=True,
    source="Levine & Feizi 2020, appendix Table 10",
)
RECIPES: dict[str, Recipe] = {
    "fast": Recipe(
        "fast", epochs=200, batch_size=128, optimizer="adam", lr=1e-3, schedule="cosine",
        source="smoothcert CPU default: Adam with cosine decay, a mask per image",
    ),
    "paper-mnist": _PAPER_MNIST,
    "paper-cifar10": replace(
        _PAPER_MNIST, name="paper-cifar10", weight_decay=5e-4, augment="crop-flip",
        source="Levine & Feizi 2020, appendix Table 11",
    ),
    "paper-imagenet": Recipe(
        "paper-imagenet", epochs=36, batch_size=256, lr=0.1, milestones=(21, 31), weight_decay=1e-4,
        mask_per_batch=True, augment="crop-flip",
        source="Levine & Feizi 2020, appendix Table 12 (random-resized crops simplified to pad-and-crop)",
    ),
}


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe with ``overrides`` (None values ignored), e.g. ``get_recipe("fast", epochs=5)``."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})


def crop_flip(x: torch.Tensor, g: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding by ``pad`` and random horizontal flip, per image."""
    b, c, h, w = x.shape
    dev = x.device
    shift_y, shift_x = torch.randint(0, 2 * pad + 1, (2, b, 1), generator=g, device=dev)
    rows = (shift_y + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (shift_x + torch.arange(w, device=dev)).view(b, 1, 1, w)
    batch, chan = torch.arange(b, device=dev).view(b, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1)
    out = F.pad(x, (pad, pad, pad, pad))[batch, chan, rows, cols]
    flip = torch.rand(b, generator=g, device=dev) < 0.5
    return torch.where(flip.view(b, 1, 1, 1), out.flip(3), out)


@torch.no_grad()
def accuracy_under_noise(
    model: nn.Module, noise: Noise, data: ImageDataset, g: torch.Generator, batch_size: int = 500
) -> float:
    """Accuracy of the base classifier on one noisy draw of every image in ``data``."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(data), batch_size):
        x, y = data.x[i : i + batch_size].to(device), data.y[i : i + batch_size].to(device)
        correct += int((model(noise(x, g)).argmax(1) == y).sum())
    return correct / len(data)


def _check_resumable(saved: dict[str, Any], config: dict[str, Any]) -> None:
    keys = ("model", "noise", "dataset", "recipe", "method", "seed", "in_channels", "num_classes")
    diff = [k for k in keys if saved.get(k) != config.get(k)]
    if diff:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {config.get(k)!r}" for k in diff)
        raise ValueError(f"cannot resume: the run was started with different settings ({details})")


def fit(
    model: nn.Module,
    noise: Noise,
    train_set: ImageDataset,
    recipe: Recipe,
    *,
    heldout: ImageDataset | None = None,
    method: Method | str = "noise",
    seed: int = 0,
    device: str | torch.device = "auto",
    out: str | Path | None = None,
    resume: bool = False,
    config: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` on ``noise(x)`` for ``recipe.epochs`` epochs; returns the per-epoch history.

    With ``out`` a checkpoint directory is written after every epoch (see ``checkpoint``), with
    ``config`` (model description, dataset, ...) merged into its ``config.json``. ``resume=True``
    continues from the checkpoint in ``out`` and refuses if its settings differ.
    """
    method = make_method(method) if isinstance(method, str) else method
    expected = getattr(model, "in_channels", None)
    if expected is not None and noise.channels(train_set.channels) != expected:
        raise ValueError(
            f"the model expects {expected} input channels but {train_set.name} under this noise "
            f"gives {noise.channels(train_set.channels)}"
        )
    device = resolve_device(device)
    model.to(device)
    optimizer = recipe.make_optimizer(model.parameters())
    # the checkpoint records the noise to certify with (independent masks); training may share one mask per batch
    config = {**(config or {}), "recipe": asdict(recipe), "method": method.config(), "seed": seed, "noise": noise.config()}
    config = json.loads(json.dumps(config))  # as it reads back from config.json (tuples become lists)
    if recipe.mask_per_batch and hasattr(noise, "per_batch"):
        noise = replace(noise, per_batch=True)
    history: list[dict[str, float]] = []
    if resume:
        if out is None:
            raise ValueError("resume needs the output directory of the interrupted run")
        saved = read_config(out)
        _check_resumable(saved, config)
        load_weights(out, model)
        load_optimizer(out, optimizer, saved)
        history = saved.get("history", [])
    start = len(history)
    x_all, y_all = train_set.x.to(device), train_set.y.to(device)
    bar = tqdm(range(start, recipe.epochs), initial=start, total=recipe.epochs, desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        g = generator(seed, epoch, TRAIN_STREAM, device=device)
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr_at(epoch)
        model.train()
        order = torch.randperm(len(train_set), generator=g, device=device)
        total_loss = total_correct = 0.0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            x, y = x_all[idx], y_all[idx]
            if recipe.augment == "crop-flip":
                x = crop_flip(x, g)
            loss, logits = method(model, x, y, noise, g, epoch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * len(idx)
            total_correct += int((logits.argmax(1) == y).sum())
        record = {
            "epoch": epoch + 1, "lr": recipe.lr_at(epoch),
            "loss": total_loss / len(order), "train_acc": total_correct / len(order),
        }
        if heldout is not None:
            eval_g = generator(seed, epoch, EVAL_STREAM, device=device)
            record["heldout_acc"] = accuracy_under_noise(model, noise, heldout, eval_g)
        history.append(record)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        if progress:
            bar.write("  ".join(f"{k} {v:.4g}" for k, v in record.items()))
        if out is not None:
            save_checkpoint(out, model, {**config, "epoch": epoch + 1, "history": history}, optimizer)
    return history


def train_classifier(
    dataset: str,
    out: str | Path,
    *,
    noise: str = "ablation",
    k: int | None = 45,
    encoding: str = "multichannel",
    sigma: float | None = None,
    band: int | None = None,
    groups: int | None = None,
    recipe: Recipe | str = "fast",
    model: str | None = None,
    method: Method | str = "noise",
    seed: int = 0,
    device: str | torch.device = "auto",
    data_root: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> list[dict[str, float]]:
    """``smoothcert train``: build the model for ``dataset`` under the named noise, train it on the
    train split (held-out accuracy on the test split) and checkpoint every epoch into ``out``.

    ``model`` defaults to the paper's MNIST CNN for 28x28 images and ResNet18 otherwise.
    """
    train = load_dataset(dataset, "train", data_root)
    heldout = load_dataset(dataset, "test", data_root)
    mean = channel_mean(train.x) if encoding == "mean" else None
    smoothing = make_noise(noise, k=k, encoding=encoding, train_mean=mean, sigma=sigma, band=band, groups=groups,
                           image_size=train.image_shape[1:], seed=seed)
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    model = model or ("mnist_cnn" if train.image_shape[1:] == (28, 28) else "resnet18")
    in_channels = smoothing.channels(train.channels)
    torch.manual_seed(stream_seed(seed, MODEL_INIT_STREAM))
    net = build_model(model, in_channels, train.num_classes, train.image_shape[1:])
    config = {
        "model": model, "in_channels": in_channels, "num_classes": train.num_classes,
        "image_size": list(train.image_shape[1:]), "dataset": dataset, "classes": list(train.classes),
    }
    return fit(net, smoothing, train, recipe, heldout=heldout, method=method, seed=seed, device=device,
               out=out, resume=resume, config=config, progress=progress)
