"""An undefended model (trained with ``--noise none``): what attacks query directly. It has no
certificate, so CERTIFY and PREDICT refuse it before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..checkpoint import load_checkpoint
from ..errors import check_count
from ..noises import Noise, noise_from_config
from ..runtime.speed import Switch
from .base import prepare_base


class Undefended:
    """The model ``base`` as it is: its prediction is the argmax of its logits.

    ``batch_size`` (None: the fastest measured for the model) bounds how many copies go through the
    model at once (memory cap); ``compile``, ``channels_last`` (``"auto"``, ``"on"``, ``"off"``) and
    ``amp`` accelerate it ([`prepare_base`][smoothcert.classifiers.base.prepare_base]).

    Args:
        base: The model: images (N, C, H, W) to logits (N, ``num_classes``).
        noise: The checkpoint's noise (``none``: it certifies nothing).
        num_classes: How many classes the logits have.
        batch_size: Most copies per forward pass; None: the fastest measured for the model.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        compile: Whether to `torch.compile` the model: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Mixed precision, ``"bf16"`` or ``"fp16"`` (meant for CUDA); None: the model's own dtype.
    """

    kind: ClassVar[str] = "model"
    certified: ClassVar[str] = "has no certificate"
    samples: ClassVar[bool] = False
    certifies: ClassVar[bool] = False

    def __init__(self, base: nn.Module, noise: Noise, num_classes: int, *, batch_size: int | None = None,
                 device: str | torch.device = "auto", compile: Switch = "auto", channels_last: Switch = "auto",
                 amp: str | None = None) -> None:
        self.num_classes = check_count("num_classes", num_classes)
        self.base, self.device, self.batch_size = prepare_base(base, device, batch_size, compile=compile,
                                                               channels_last=channels_last, amp=amp)
        self.noise = noise

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs: Any) -> Undefended:
        """The undefended model of a ``smoothcert train --noise none`` checkpoint.

        Args:
            path: The checkpoint's folder.
            **kwargs: The constructor's keyword arguments.
        """
        base, config = load_checkpoint(path)
        return cls(base, noise_from_config(config["noise"]), config["num_classes"], **kwargs)

    @property
    def certificate(self) -> str:
        raise ValueError(self.noise.refusal)

    def sample_counts(self, n0: int, n: int, sampling: object) -> tuple[int, int, object]:
        """Refuses: an undefended model has nothing to sample and no certificate."""
        raise ValueError(self.noise.refusal)
