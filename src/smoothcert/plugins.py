"""Classes from installed packages: each entry point of a group (``name = "package.module:Class"``)
names a class, which its registry loads on first use. A plugin that fails to load is skipped with
a warning naming its package, so a broken package never breaks the library."""

from __future__ import annotations

import importlib.metadata
import warnings
from collections.abc import Callable, Mapping
from typing import Any


def load_entry_points(group: str, base: type, registry: Mapping[str, type], register: Callable[[type], Any],
                      what: str) -> list[tuple[type, str]]:
    """Load the classes of the entry points of ``group`` and pass each that is not in ``registry`` yet
    (its module may have been imported first) to ``register``; the ``(class, package)`` of each one
    loaded. A class that does not subclass ``base``, or that fails to import or register, is skipped
    with a warning naming the ``what`` plugin and its package."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=group):
        provider = entry.dist.name if entry.dist is not None else entry.value.split(":")[0]
        try:
            cls = entry.load()
            if not (isinstance(cls, type) and issubclass(cls, base)):
                raise TypeError(f"{entry.value} is not a {base.__name__} subclass")
            if cls not in registry.values():
                register(cls)
        except Exception as err:  # noqa: BLE001 - a broken plugin must not break the library
            warnings.warn(f"smoothcert {what} plugin {entry.name!r} of {provider} was not loaded "
                          f"({type(err).__name__}: {err})", stacklevel=3)
            continue
        loaded.append((cls, provider))
    return loaded
