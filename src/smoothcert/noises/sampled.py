"""The base of the noises certified from sampled vote counts (ablation, Gaussian, Lee et al.)."""

from __future__ import annotations

from typing import ClassVar


class Sampled:
    """Checks a certificate name against the noise's ``certificates`` (the first is the default);
    ``kind`` is the noise's ``--noise`` name."""

    kind: ClassVar[str]
    certificates: ClassVar[tuple[str, ...]]

    def check_certificate(self, name: str) -> None:
        """ValueError naming the choices unless ``name`` is one of ``certificates``."""
        if name not in self.certificates:
            raise ValueError(f"unknown certificate {name!r} for {self.kind} noise; choose one of {self.certificates}")
