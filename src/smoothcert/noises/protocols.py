"""What the rest of the library asks of a noise, as typed protocols (see
[`smoothcert.noises.base`][smoothcert.noises.base])."""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

import torch


class Noise(Protocol):
    """What the classifiers, the trainers and the CLI need from a noise (see [`smoothcert.noises.base`][smoothcert.noises.base])."""

    kind: str
    classifier: ClassVar[str]
    certificates: ClassVar[tuple[str, ...]]
    samplings: ClassVar[tuple[str, ...]]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...

    def channels(self, data_channels: int) -> int: ...

    def clean_input(self, x: torch.Tensor) -> torch.Tensor: ...

    def to_config(self) -> dict[str, Any]: ...

    def check_certificate(self, name: str | None) -> None: ...
