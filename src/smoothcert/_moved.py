"""Old import paths of modules that moved into subpackages, kept working for one release.

``import smoothcert.smooth`` (say) still works: a finder on ``sys.meta_path`` answers the old name
with the module's new home (the same module object, so ``isinstance`` and identity hold) and emits
a ``DeprecationWarning`` naming the new path. Nothing in the package imports an old path.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

MOVED = {
    "smoothcert.augment": "smoothcert.training.augment",
    "smoothcert.bounds": "smoothcert.reports.empirical",
    "smoothcert.deterministic": "smoothcert.classifiers.deterministic",
    "smoothcert.distributed": "smoothcert.runtime.distributed",
    "smoothcert.gaussian": "smoothcert.certificates.gaussian",
    "smoothcert.information": "smoothcert.certificates.information",
    "smoothcert.lee": "smoothcert.certificates.lee",
    "smoothcert.locking": "smoothcert.runtime.locking",
    "smoothcert.methods": "smoothcert.training.methods",
    "smoothcert.paper": "smoothcert.reproductions",
    "smoothcert.report": "smoothcert.reports",
    "smoothcert.seeding": "smoothcert.runtime.seeding",
    "smoothcert.sequential": "smoothcert.certificates.sequential",
    "smoothcert.smooth": "smoothcert.classifiers.smoothed",
    "smoothcert.speed": "smoothcert.runtime.speed",
    "smoothcert.train": "smoothcert.training",
}
"""Old module path -> new module path (removed in the next release)."""


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module at its new path."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; the old path goes away in the next release",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module is already imported."""


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths listed in [`MOVED`][MOVED]."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        return None if new is None else importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())
