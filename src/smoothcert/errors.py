"""The one validation layer: [`ArgumentError`][ArgumentError], what every check of a user's value
raises, and the scalar checks every module shares. Each check returns the checked value or raises an
[`ArgumentError`][ArgumentError] (a ValueError) naming the argument, the value and the allowed range;
the command line shows the flag the user typed ([`for_flag`][smoothcert.errors.ArgumentError.for_flag]).
A base model that cannot take its input is told so in one line by
[`model_input_error`][smoothcert.errors.model_input_error], for the classifiers and training alike."""

from __future__ import annotations

import math
import numbers
import operator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from .noises import Noise


class ArgumentError(ValueError):
    """A value that one argument cannot take. ``message`` is a template with ``{name}`` and
    ``{value}``: ``str(err)`` fills in the Python ``argument`` and the value's repr ("beta must be
    in (0, 1), got 1.5"), [`for_flag`][for_flag] the command-line flag and the value as typed ("--beta
    must be in (0, 1), got 1.5"). The flag is ``flag`` if given (when it is not the argument's
    name, e.g. ``--max`` for ``max_images``), else ``--`` plus the argument with dashes."""

    def __init__(self, argument: str, value: object, message: str, flag: str | None = None) -> None:
        self.argument, self.value, self.message = argument, value, message
        self.flag = flag
        super().__init__(self._fill(argument, repr(value)))

    def _fill(self, name: str, value: str) -> str:
        return self.message.replace("{name}", name).replace("{value}", value)

    def for_flag(self) -> str:
        """The message naming the command-line flag."""
        return self._fill(self.flag or "--" + self.argument.replace("_", "-"), str(self.value))


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float; [`ArgumentError`][ArgumentError] naming ``name`` unless ``0 < alpha < 1``."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ArgumentError(name, alpha, "{name} must be a number in (0, 1), got {value}") from None
    if not 0.0 < value < 1.0:
        raise ArgumentError(name, alpha, "{name} must be in (0, 1), got {value}")
    return value


def check_integer(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as an int; [`ArgumentError`][ArgumentError] unless it is an integer (and ``>= minimum`` if given)."""
    reason = "{name} must be an integer" + ("" if minimum is None else f" >= {minimum}") + ", got {value}"
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ArgumentError(name, value, reason) from None
    if minimum is not None and number < minimum:
        raise ArgumentError(name, value, reason)
    return number


def check_positive(value: object, name: str) -> float:
    """``value`` as a float; [`ArgumentError`][ArgumentError] unless it is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
        raise ArgumentError(name, value, "{name} must be a finite number > 0, got {value}")
    return float(value)


def check_count(name: str, value: object) -> int:
    """``value`` as an int; [`ArgumentError`][ArgumentError] unless it is a positive integer (a sample or class count)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ArgumentError(name, value, "{name} must be a positive integer, got {value}")
    return int(value)


def call_model(model: torch.nn.Module, batch: torch.Tensor, noise: Noise | None = None) -> torch.Tensor:
    """``model(batch)``; a model that cannot take ``batch`` raises the one line of
    [`model_input_error`][smoothcert.errors.model_input_error] (running out of memory is re-raised as it is).

    Args:
        model: The base model.
        batch: What it is fed.
        noise: The noise that made ``batch``; None: the images as given.
    """
    import torch

    try:
        return model(batch)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, ValueError) as err:
        raise model_input_error(err, batch, noise) from err


def model_input_error(err: Exception, batch: torch.Tensor, noise: Noise | None = None) -> ValueError:
    """The one-line ValueError for a base model that raised ``err`` on ``batch``: what input it must
    accept and where that comes from (the samples of ``noise``, with its ``input_note``, or the images
    as given when None), ``err``'s first line at the end.

    Args:
        err: What the model raised (a shape mismatch, say).
        batch: The batch it was given.
        noise: The noise that made ``batch``, or None for images as given.
    """
    what = "the images as given" if noise is None else f"what {noise.kind} noise feeds it"
    shape = ", ".join(map(str, batch.shape[1:]))
    size = f"{batch.shape[1]} channels of {batch.shape[2]}x{batch.shape[3]} pixels" if batch.dim() == 4 else shape
    note = f"; {noise.input_note}" if noise is not None and noise.input_note else ""
    return ValueError(f"the base model cannot take {what}: it must accept batches (N, {shape}), {size} per "
                      f"copy{note} ({str(err).splitlines()[0]})")
