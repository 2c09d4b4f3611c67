"""Faster forward passes of a base classifier: torch.compile, channels-last, mixed precision.

Randomized smoothing only uses the base classifier's discrete votes argmax f(noise(x)), and the
certificates (Cohen et al. 2019, Theorem 1; Levine & Feizi 2020, Theorem 1) hold for whatever
function f is: a certificate computed with a compiled, channels-last or autocast (bf16/fp16)
classifier is valid for exactly that classifier as run. Reduced precision can flip a vote on an
input near a decision boundary, so a log records ``amp`` in its settings and is not mixed with
float32 votes; compilation and memory layout only reorder float32 arithmetic.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Accelerated(nn.Module):
    """``model`` with its input in channels-last layout (``channels_last``), under autocast to
    ``amp`` ("bf16"/"fp16", meant for CUDA; on a CPU it runs but rarely helps) and compiled by
    ``torch.compile`` (``compile``, for inference: the weights are frozen into the graph);
    returns float32 logits. If compilation fails, a warning names the reason and the model runs
    eagerly from then on."""

    def __init__(self, model: nn.Module, *, compile: bool = False, channels_last: bool = False,
                 amp: str | None = None) -> None:
        super().__init__()
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"unknown --amp {amp!r}; choose one of {sorted(AMP_DTYPES)}")
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.channels_last = channels_last
        self.amp = amp
        # freezing: the weights become constants of the compiled graph (certification never changes
        # them), so inductor folds them and pre-packs the convolutions
        self._compiled = torch.compile(self.model, options={"freezing": True}) if compile else None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)  # in_channels, num_classes, ... of the model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = AMP_DTYPES[self.amp] if self.amp else None
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            return self._run(x).float()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(x)
            except Exception as err:  # noqa: BLE001 - any compiler failure falls back; model errors recur eagerly
                warnings.warn(f"torch.compile could not compile the base classifier ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''}); running it eagerly", stacklevel=2)
                self._compiled = None
        return self.model(x)


def accelerate(model: nn.Module, *, compile: bool = False, channels_last: bool = False,
               amp: str | None = None) -> nn.Module:
    """``model`` itself when nothing is asked, else ``Accelerated(model, ...)`` (see there)."""
    if not (compile or channels_last or amp):
        return model
    return Accelerated(model, compile=compile, channels_last=channels_last, amp=amp).eval()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host-to-CUDA copy goes through pinned memory without blocking the host."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
