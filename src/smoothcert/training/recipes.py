"""Training recipes: named, frozen parameter sets for ``smoothcert train``.

The paper's (Levine & Feizi 2020, appendix Tables 10-12), a faster ``fast`` default for CPU demos
(the paper's MNIST recipe, SGD at lr 0.01, sits at loss 2.30 for about 30 epochs before it
learns) and ``mnist-ablation``, the best recipe found for the embedded 4,000 training digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from ..models import check_model
from .augment import check_augment
from .methods import Method, make_method


@dataclass(frozen=True)
class Recipe:
    """An optimisation schedule. ``milestones`` multiply the lr by ``gamma`` (step schedule);
    ``schedule="cosine"`` anneals it to 0 over ``epochs`` instead. ``augment`` names the data
    augmentation ([`smoothcert.training.augment`][smoothcert.training.augment]), applied during the first ``augment_until`` fraction of
    the epochs (1: all of them; below 1 the last epochs train on the images as they are); ``ema``
    > 0 keeps an exponential moving average of the weights with that decay per step, which is what
    is evaluated and saved. ``method`` and ``method_params`` name the training method
    ([`smoothcert.training.methods`][smoothcert.training.methods]) and ``model`` the architecture (``smoothcert.models``; None: the
    dataset's default) used when none is given.

    Args:
        name: The recipe's name (``--recipe``).
        epochs: Training epochs.
        batch_size: Images per step.
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: The initial learning rate.
        momentum: SGD's momentum.
        weight_decay: L2 weight decay.
        schedule: ``"step"`` (``milestones``, ``gamma``) or ``"cosine"``.
        milestones: The epochs at which the step schedule multiplies the lr by ``gamma``.
        gamma: The step schedule's factor.
        mask_per_batch: One noise draw per minibatch, the paper's training choice for ablation.
        augment: The data augmentation: ``"none"``, a name or several joined by ``+``.
        augment_until: The fraction of the epochs that augment.
        ema: The per-step decay of the weights' moving average; 0: none.
        method: The training method's name.
        method_params: Its hyperparameters as (name, value) pairs.
        model: The architecture's name; None: the dataset's default.
        source: Where the recipe comes from (a paper and its table, or ours).
    """

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
    augment_until: float = 1.0
    ema: float = 0.0
    method: str = "noise"
    method_params: tuple[tuple[str, float], ...] = ()
    model: str | None = None
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
        check_augment(self.augment)
        if not 0 < self.augment_until <= 1:
            raise ValueError(f"augment_until must be a fraction of the epochs in (0, 1], got {self.augment_until}")
        self.make_method()  # an unknown method or parameter fails here
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be a decay in [0, 1) (0: no weight averaging), got {self.ema}")
        if self.model is not None:
            check_model(self.model)

    def lr_at(self, epoch: int) -> float:
        """Learning rate during 0-based ``epoch``."""
        if self.schedule == "cosine":
            return 0.5 * self.lr * (1 + math.cos(math.pi * epoch / self.epochs))
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)

    def augments(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` trains on augmented images."""
        return epoch < self.augment_until * self.epochs

    def make_method(self, **overrides: Any) -> Method:
        """The recipe's training method, its parameters updated by ``overrides``."""
        return make_method(self.method, **{**dict(self.method_params), **overrides})

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
    "mnist-ablation": Recipe(
        "mnist-ablation", epochs=400, batch_size=64, optimizer="adam", lr=1e-3, schedule="cosine",
        method="consistency", method_params=(("m", 4), ("lam", 0.5), ("eta", 0.0)), model="mnist_cnn_bn",
        source="smoothcert: fast's optimizer with consistency over 4 ablations per digit and step "
               "(Jeong & Shin 2020, lam 0.5, eta 0), batch 64, 400 epochs, the MNIST CNN with batch "
               "normalisation, chosen on a validation split of mnist5k's train digits",
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
"""The training recipes by name (``--recipe``): the papers' (Tables 10-12) and the CPU defaults."""


def get_recipe(name: str, **overrides: Any) -> Recipe:
    """A named recipe with ``overrides`` (None values ignored), e.g. ``get_recipe("fast", epochs=5)``.

    Args:
        name: A name of [`RECIPES`][RECIPES] (``fast``, ``mnist-ablation``, ``paper-mnist``, ...).
        **overrides: Fields of [`Recipe`][Recipe] to replace.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {sorted(RECIPES)}")
    return replace(RECIPES[name], **{k: v for k, v in overrides.items() if v is not None})
