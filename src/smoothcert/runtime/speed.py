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
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
T = TypeVar("T")


SWITCHES = ("auto", "on", "off")
Switch = str | bool
"""``"on"`` (or True), ``"off"`` (or False), or ``"auto"``: on once it has paid for itself (see ``BREAK_EVEN``)."""

BREAK_EVEN: dict[tuple[str, str], dict[str, float]] = {
    ("mnist_cnn", "cpu"): {"channels_last": 0, "compile": float("inf")},
}
"""Evaluations of the base classifier after which ``"auto"`` turns each acceleration on, per (model of
[`smoothcert.models.MODELS`][smoothcert.models.MODELS], device type; inf: never), measured by
``benchmarks/bench_speed_defaults.py`` on a 2-core CPU at 1 thread (BENCHMARKS.md, "Defaults that
pay"). For the MNIST CNN, channels-last is faster from the first batch, with no setup; compiling
costs 30-53 s (cold cache) and its forward passes were not reliably faster than channels-last
alone, neither in full batches (0.87-1.06x at batch 256-1,000) nor in an attack oracle's small
ones (0.97x), so it is never repaid. A finite entry turns compilation on once that many evaluations are done, which costs
at most one compilation more than knowing the run's length in advance (ski rental). Models and
devices without an entry (CUDA: not measured) stay as they are under ``"auto"``; ask with ``"on"``."""


BATCH_SIZES: dict[tuple[str, str], int] = {("mnist_cnn", "cpu"): 256}
"""The fastest batch size measured per (model, device type) (same benchmark); others take 1,000."""


def auto_batch_size(model: str | None, device: torch.device) -> int:
    """``--batch-size`` when not given: the measured fastest for the checkpoint's ``model`` on ``device``, else 1,000."""
    return BATCH_SIZES.get((model, device.type), 1000)


def switch_at(value: Switch, flag: str, measured: float | None) -> float | None:
    """After how many evaluations an acceleration asked as ``value`` (``--compile``, ...) turns on:
    0 for on, None for off (and for ``"auto"`` without a ``measured`` break-even)."""
    if isinstance(value, bool):
        value = "on" if value else "off"
    if value not in SWITCHES:
        raise ValueError(f"unknown {flag} {value!r}; choose one of {SWITCHES}")
    if value == "auto":
        return None if measured is None or measured == float("inf") else measured
    return 0 if value == "on" else None


def plan(model: nn.Module, compile: Switch, channels_last: Switch) -> dict[str, float | None]:
    """When each acceleration of ``model`` turns on (evaluations, None: never), from the switches and
    the measured break-evens of the model (its ``build_config`` name) on its parameters' device type."""
    name = getattr(model, "build_config", {}).get("model")
    device = next(model.parameters(), torch.empty(0)).device.type
    measured = BREAK_EVEN.get((name, device), {})
    return {"channels_last": switch_at(channels_last, "--channels-last", measured.get("channels_last")),
            "compile": switch_at(compile, "--compile", measured.get("compile"))}


class Accelerated(nn.Module):
    """``model`` with its input in channels-last layout (``channels_last``), under autocast to
    ``amp`` ("bf16"/"fp16", meant for CUDA; on a CPU it runs but rarely helps) and compiled by
    ``torch.compile`` (``compile``, for inference: the weights are frozen into the graph);
    returns float32 logits. ``compile`` and ``channels_last`` are switches ([`Switch`][Switch]): an
    ``"auto"`` one turns on after the evaluations of its break-even (``plan``), counted over the calls. If torch.compile is unavailable or fails, one warning names the reason and the model
    runs eagerly from then on."""

    def __init__(self, model: nn.Module, *, compile: Switch = False, channels_last: Switch = False,
                 amp: str | None = None) -> None:
        super().__init__()
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"unknown --amp {amp!r}; choose one of {sorted(AMP_DTYPES)}")
        self.model = model
        self.amp = amp
        self.channels_last = False
        self.evaluations = 0
        self._compiled: nn.Module | None = None
        self._at = plan(model, compile, channels_last)
        self._switch()

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("model"), name)  # in_channels, num_classes, ... of the model

    def _switch(self) -> None:
        """Turn on every acceleration whose evaluation count has been reached."""
        if self._at["channels_last"] is not None and self.evaluations >= self._at["channels_last"]:
            # only the input changes layout: convolutions then run channels-last (measured as fast as
            # with converted weights, benchmarks/bench_speed_defaults.py) and the model is never modified
            self.channels_last, self._at["channels_last"] = True, None
        if self._at["compile"] is not None and self.evaluations >= self._at["compile"]:
            self._at["compile"] = None
            # freezing: the weights become constants of the compiled graph (certification never changes
            # them), so inductor folds them and pre-packs the convolutions
            self._compiled = self._guard(lambda: torch.compile(self.model, options={"freezing": True}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.evaluations += len(x)
        self._switch()
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = AMP_DTYPES[self.amp] if self.amp else None
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            return self._run(x).float()

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is not None:
            out = self._guard(lambda: self._compiled(x))
            if out is not None:
                return out
        return self.model(x)

    def _guard(self, call: Callable[[], T]) -> T | None:
        """``call()``, or None after one warning (and eager from then on) if torch.compile fails."""
        try:
            return call()
        except Exception as err:  # noqa: BLE001 - any compiler failure falls back; model errors recur eagerly
            warnings.warn(f"torch.compile could not compile the base classifier ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); running it eagerly", stacklevel=3)
            self._compiled = None
            return None


def accelerate(model: nn.Module, *, compile: Switch = False, channels_last: Switch = False,
               amp: str | None = None) -> nn.Module:
    """``model`` itself when nothing is asked (or nothing ``"auto"`` would ever turn on), else
    ``Accelerated(model, ...)`` (see there).

    Args:
        model: The model, in eval mode.
        compile: Whether to `torch.compile` it: ``"auto"``, ``"on"``/True or ``"off"``/False.
        channels_last: Whether to feed channels-last inputs, likewise.
        amp: Autocast to ``"bf16"`` or ``"fp16"``; None: off.
    """
    if amp is None and all(at is None for at in plan(model, compile, channels_last).values()):
        return model
    return Accelerated(model, compile=compile, channels_last=channels_last, amp=amp).eval()


def eager(model: nn.Module) -> nn.Module:
    """The module under ``model``'s accelerations ([`accelerate`][accelerate]): a call to it neither compiles
    nor counts towards a switch.

    Args:
        model: A model, accelerated or not.
    """
    return model.model if isinstance(model, Accelerated) else model


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host-to-CUDA copy goes through pinned memory without blocking the host."""
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)
