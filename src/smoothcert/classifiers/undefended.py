"""An undefended model (trained with ``--noise none``): what attacks query directly. It has no
certificate, so CERTIFY and PREDICT refuse it before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..certificates import check_count
from ..checkpoint import load_checkpoint
from ..noises import Noise, noise_from_config
from ..runtime.seeding import resolve_device


class Undefended:
    """The model ``base`` as it is: its prediction is the argmax of its logits."""

    kind: ClassVar[str] = "model"
    certified: ClassVar[str] = "has no certificate"

    def __init__(self, base: nn.Module, noise: Noise, num_classes: int, *, batch_size: int = 1000,
                 device: str | torch.device = "auto") -> None:
        self.num_classes = check_count("num_classes", num_classes)
        self.batch_size = check_count("batch_size", batch_size)
        self.device = resolve_device(device)
        self.base = base.to(self.device).eval()
        self.noise = noise

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Undefended:
        """The undefended model of a ``smoothcert train --noise none`` checkpoint."""
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], **kwargs)

    @property
    def certificate(self) -> str:
        raise ValueError(self.noise.refusal)

    def sample_counts(self, n0: int, n: int, sampling: object) -> tuple[int, int, object]:
        """Refuses: an undefended model has nothing to sample and no certificate."""
        raise ValueError(self.noise.refusal)
