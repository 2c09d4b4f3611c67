"""The attacks by command-line name (``--attack``) and their flags."""

from __future__ import annotations

from ..certificates import ArgumentError
from .patch import PatchAttack
from .pointwise import Pointwise
from .sparse_rs import SparseRS

ATTACKS = ("pointwise", "sparse-rs", "patch")

ATTACK_CLASSES: dict[str, type[Pointwise] | type[SparseRS] | type[PatchAttack]] = {
    "pointwise": Pointwise, "sparse-rs": SparseRS, "patch": PatchAttack}

ATTACK_FLAGS = tuple(dict.fromkeys(flag for cls in ATTACK_CLASSES.values() for flag in cls.flags))
"""Every attack's command-line flags (argparse dests)."""


def make_attack(name: str, **flags: float | int | None) -> Pointwise | SparseRS | PatchAttack:
    """The attack named on the command line (``--attack``) from its flags (argparse dests such as
    ``restarts``, ``start_budget``, ``patch``; None: the default). The attack validates its values;
    a flag of another attack is a ValueError naming the attack it belongs to."""
    if name not in ATTACK_CLASSES:
        raise ValueError(f"unknown attack {name!r}; choose one of {ATTACKS}")
    cls = ATTACK_CLASSES[name]
    given = {flag: value for flag, value in flags.items() if value is not None}
    for flag in given:
        if flag not in cls.flags:
            owners = [other for other, c in ATTACK_CLASSES.items() if flag in c.flags]
            if not owners:
                raise TypeError(f"make_attack got an unknown flag {flag!r}")
            raise ValueError(f"--{flag.replace('_', '-')} belongs to --attack {' or '.join(owners)}")
    try:
        return cls(**{cls.flags[flag]: value for flag, value in given.items()})
    except ArgumentError as err:  # name the flag, not the attribute it sets (--patch, not size)
        flag = {attribute: flag for flag, attribute in cls.flags.items()}.get(err.argument)
        if flag is None:
            raise
        raise ArgumentError(flag, err.value, err.message) from None
