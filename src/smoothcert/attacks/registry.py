"""The one registry of attacks: their command-line names (``--attack``) and flags, the library's
own and those of installed packages.

An attack is an [`L0Attack`][smoothcert.attacks.base.L0Attack] subclass: a frozen dataclass of its
parameters with a ``name`` and ``flags`` (flag -> argparse settings, ``"attribute"``: the parameter
it sets when that is not the flag's dest). [`register_attack`][register_attack] adds a class; the
command line's attack flags are derived from the registered ones ([`attack_flags`][attack_flags]) and
[`make_attack`][make_attack] builds an attack from their values. An installed package adds attacks
without an import through the entry-point group [`PLUGIN_GROUP`][PLUGIN_GROUP] (``smoothcert.attacks``):
each entry point names an attack class, which the registry loads on first use.
"""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ..errors import ArgumentError
from ..plugins import load_entry_points
from .base import L0Attack
from .patch import PatchAttack
from .pointwise import Pointwise
from .sparse_rs import SparseRS

A = TypeVar("A", bound=type[L0Attack])

PLUGIN_GROUP = "smoothcert.attacks"
"""The entry-point group of attack plugins: ``name = "package.module:AttackClass"``."""
_REGISTRY: dict[str, type[L0Attack]] = {}
_PLUGINS = {"loaded": False}


def _attributes(cls: type[L0Attack]) -> dict[str, str]:
    """Each flag of ``cls`` -> the parameter it sets."""
    return {flag: spec.get("attribute", flag) for flag, spec in cls.flags.items()}


def _argparse(spec: dict[str, Any]) -> dict[str, Any]:
    """A flag's argparse settings (its declaration less ``attribute``)."""
    return {key: value for key, value in spec.items() if key != "attribute"}


def register_attack(cls: A) -> A:
    """Register ``cls`` under its ``name``. ValueError if the name is taken by another class, if a
    flag sets no parameter of the class, or if a flag is declared differently by a registered attack."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"attack {cls.__name__} needs a name (its --attack name)")
    if _REGISTRY.get(name, cls) is not cls:
        raise ValueError(f"attack {name!r} is registered already (by {_REGISTRY[name].__name__})")
    fields = [field.name for field in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    known = attack_flags(plugins=False)
    for flag, attribute in _attributes(cls).items():
        option = "--" + flag.replace("_", "-")
        if attribute not in fields:
            raise ValueError(f"flag {option} of the attack {name} sets {attribute!r}, which is not a parameter of "
                             f"{cls.__name__} (its parameters: {', '.join(fields) or 'none'})")
        if flag in known and known[flag] != _argparse(cls.flags[flag]):
            raise ValueError(f"flag {option} of the attack {name} differs from the one another attack declares")
    _REGISTRY[name] = cls
    return cls


def load_plugins() -> None:
    """Register the attacks of installed packages ([`PLUGIN_GROUP`][PLUGIN_GROUP] entry points), once. A
    plugin that fails to load is skipped with a warning naming its package."""
    if not _PLUGINS["loaded"]:
        _PLUGINS["loaded"] = True
        load_entry_points(PLUGIN_GROUP, L0Attack, _REGISTRY, register_attack, "attack")


def attack_names(plugins: bool = True) -> tuple[str, ...]:
    """The registered ``--attack`` names, in registration order (with ``plugins``, after loading the
    installed packages' attacks)."""
    if plugins:
        load_plugins()
    return tuple(_REGISTRY)


def attack_flags(plugins: bool = True) -> dict[str, dict[str, Any]]:
    """Every flag a registered attack reads -> its argparse settings (for the CLI)."""
    flags: dict[str, dict[str, Any]] = {}
    for name in attack_names(plugins):
        flags.update({flag: _argparse(spec) for flag, spec in _REGISTRY[name].flags.items() if flag not in flags})
    return flags


def attack_class(name: object) -> type[L0Attack]:
    """The class registered as ``name``; ValueError naming the choices otherwise."""
    load_plugins()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown attack {name!r}; choose one of {attack_names()}")
    return _REGISTRY[name]


ATTACK_CLASSES: dict[str, type[L0Attack]] = {cls.name: register_attack(cls)
                                             for cls in (Pointwise, SparseRS, PatchAttack)}
"""The library's own attacks by name ([`attack_class`][attack_class] also finds those of installed packages)."""

ATTACKS = tuple(ATTACK_CLASSES)
"""The built-in ``--attack`` names ([`attack_names`][attack_names] lists plugins' too)."""

ATTACK_FLAGS = tuple(attack_flags(plugins=False))
"""The built-in attacks' command-line flags (argparse dests; [`attack_flags`][attack_flags] has plugins' too)."""


def make_attack(name: str, **flags: float | int | None) -> L0Attack:
    """The attack named on the command line (``--attack``) from its flags (argparse dests such as
    ``restarts``, ``start_budget``, ``patch``; None: the default). The attack validates its values;
    a flag of another attack is a ValueError naming the attack it belongs to.

    Args:
        name: ``"pointwise"``, ``"sparse-rs"``, ``"patch"`` or an installed plugin's attack.
        **flags: The attack's flags by argparse dest (``restarts``, ``start_steps``,
            ``search_steps``, ``kicks``, ``budget``, ``start_budget``, ``patch``, ``max_queries``).

    Raises:
        ValueError: For an unknown attack, a flag of another attack, or an invalid value.
    """
    cls = attack_class(name)
    given = {flag: value for flag, value in flags.items() if value is not None}
    for flag in given:
        if flag not in cls.flags:
            owners = [other for other in attack_names() if flag in _REGISTRY[other].flags]
            if not owners:
                raise TypeError(f"make_attack got an unknown flag {flag!r}")
            raise ValueError(f"--{flag.replace('_', '-')} belongs to --attack {' or '.join(owners)}")
    attributes = _attributes(cls)
    try:
        return cls(**{attributes[flag]: value for flag, value in given.items()})
    except ArgumentError as err:  # name the flag, not the attribute it sets (--patch, not size)
        flag = {attribute: flag for flag, attribute in attributes.items()}.get(err.argument)
        if flag is None:
            raise
        raise ArgumentError(flag, err.value, err.message) from None
