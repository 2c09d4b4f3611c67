"""The threat-model protocol and the one registry of noises.

A noise (a threat model's smoothing distribution) is one object that knows everything the rest of
the library asks of it:

- how to sample: ``noise(x, generator)`` turns a batch (B, C, H, W) in [0, 1] into inputs of the
  base classifier, ``channels(c)`` says how many channels those have, ``clean_input(x)`` is the
  noise-free input in the same format (training methods that compare clean and noisy outputs);
- how it is certified: ``classifier`` names the classifier kind that certifies it (``smoothed``:
  sampled votes, [`SmoothedClassifier`][smoothcert.classifiers.SmoothedClassifier]; ``deterministic``: every
  ablation set once, [`DeterministicClassifier`][smoothcert.classifiers.DeterministicClassifier]; ``model``: nothing
  to certify), ``certificates`` the certificate names it computes (the first is the default) and
  ``samplings`` the sampling modes they allow;
- its configuration: ``to_config()`` is the JSON that checkpoints and logs record and
  ``from_config`` rebuilds the same noise from it;
- its command-line flags: ``flags`` maps each flag it reads to its argparse settings;
  ``from_flags`` builds it from their values and from what the data tell ([`NoiseContext`][NoiseContext]).

[`register_noise`][register_noise] puts a noise class in the registry under its ``kinds``; [`make_noise`][make_noise]
(from flags) and [`noise_from_config`][noise_from_config] (from a checkpoint) are the only places that look a
noise up by name. Adding a threat model means a noise module (subclass [`ThreatModel`][ThreatModel],
decorate it with [`register_noise`][register_noise]) and its certificate module; see CONTRIBUTING.md.
An installed package adds noises without an import through the entry-point group
[`PLUGIN_GROUP`][PLUGIN_GROUP] (``smoothcert.noises``): each entry point names a noise class, which the
registry loads on first use; a checkpoint of such a noise records the package (``provider``), so
an unknown noise says what to install.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch

from ..errors import ArgumentError
from ..plugins import load_entry_points
from .protocols import Noise, capability_problem

CLASSIFIERS = ("smoothed", "deterministic", "model")
"""The classifier kinds a noise can name in ``classifier``."""


@dataclass(frozen=True)
class NoiseContext:
    """What a noise may need from the data and the run besides its flags: the training set's
    per-channel ``train_mean`` (the mean NULL encoding), the ``image_size`` (H, W) and the run's
    ``seed`` (a seeded partition)."""

    train_mean: tuple[float, ...] | None = None
    image_size: tuple[int, int] | None = None
    seed: int = 0


N = TypeVar("N", bound="ThreatModel")


class ThreatModel:
    """The base of every noise: registry metadata, config round-trip and defaults that refuse.

    Subclasses set ``kind`` (the ``--noise`` name; a class serving several names, like column and
    block smoothing, lists them in ``kinds``), ``flags``, ``classifier``, ``certificates`` and
    ``samplings``, and implement ``from_flags``, ``__call__``, ``channels`` and ``to_config``, and
    what the capabilities they advertise require ([`smoothcert.noises.protocols`][smoothcert.noises.protocols]:
    a sampled noise ``certify``, an adaptive one ``radius`` and ``radius_step``, a deterministic one
    ``keep_masks``, ``apply``, ``vote_radius`` ...). ``from_flags`` and ``to_config`` here are
    placeholders marked ``abstractmethod``; [`register_noise`][register_noise] refuses a class that lacks
    a member of a protocol it advertises, a placeholder counting as missing.
    """

    kind: str
    kinds: ClassVar[tuple[str, ...]] = ()
    flags: ClassVar[dict[str, dict[str, Any]]] = {}
    classifier: ClassVar[str] = "smoothed"
    certificates: ClassVar[tuple[str, ...]] = ()
    samplings: ClassVar[tuple[str, ...]] = ("adaptive", "fixed")
    masks: ClassVar[bool] = False
    """True if a draw is a keep mask: ``noise(x) == apply(x, sample_keep(...))`` and the noisy input
    depends only on the kept pixels (lets attack oracles reuse votes of unchanged draws)."""
    additive: ClassVar[bool] = False
    """True if the noisy input is x plus noise drawn independently of x (SmoothAdv needs this)."""
    denoise_defaults: ClassVar[dict[str, Any]] = {}
    """Flag values ``smoothcert denoise`` takes for this noise when the user gives none."""
    denoisable: ClassVar[bool] = False
    """True if ``smoothcert denoise`` can train a denoiser for this noise."""
    input_note: ClassVar[str] = ""
    """What someone building a base model for this noise should know about its input (e.g. that an
    encoding doubles the channels, and how to keep them); empty when the noise feeds the images' shape."""
    margin_scale: ClassVar[float | None] = None
    """The factor that turns Phi^-1(p1) - Phi^-1(p2) into MACER's radius hinge; None: MACER refuses."""

    @classmethod
    @abstractmethod
    def from_flags(cls: type[N], kind: str, flags: Mapping[str, Any], context: NoiseContext) -> N:
        """The noise named ``kind`` from its command-line ``flags`` (only those in ``cls.flags``)."""
        raise NotImplementedError

    @classmethod
    def from_config(cls: type[N], config: Mapping[str, Any]) -> N:
        """The noise that ``to_config`` recorded: by default its fields, less the ``noise`` key."""
        return cls(**{key: value for key, value in config.items() if key != "noise"})

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The JSON that checkpoints and logs record (``"noise"``: the kind)."""
        raise NotImplementedError

    def config(self) -> dict[str, Any]:
        """Deprecated name of `to_config` (kept for one release)."""
        return self.to_config()

    def channels(self, data_channels: int) -> int:
        """Channels of the base classifier's input for images of ``data_channels`` channels."""
        return data_channels

    def clean_input(self, x: torch.Tensor) -> torch.Tensor:
        """The noise-free input ``x`` in the base classifier's format (methods that compare clean and
        noisy outputs need it); ValueError where the noise does not define one."""
        raise ValueError(f"no clean input is defined for {self.kind} noise")

    @property
    def refusal(self) -> str:
        """Why a smoothed classifier cannot certify this noise by sampling."""
        if self.classifier == "deterministic":
            return (f"{self.kind} noise is deterministic: certify it with DeterministicClassifier "
                    "(smoothcert certify does so for such checkpoints), not by sampling")
        return f"{self.kind} noise has no sampling certificate"

    def check_certificate(self, name: str | None) -> None:
        """ValueError naming the choices unless ``name`` is one of ``certificates``."""
        if not self.certificates:
            raise ValueError(self.refusal)
        if name not in self.certificates:
            raise ArgumentError("certificate", name, "{name} {value} is not a certificate of " +
                                f"{self.kind} noise; choose one of {', '.join(self.certificates)}")


_REGISTRY: dict[str, type[ThreatModel]] = {}


PLUGIN_GROUP = "smoothcert.noises"
"""The entry-point group of noise plugins: ``name = "package.module:NoiseClass"``."""
_PROVIDERS: dict[str, str] = {}  # noise kind -> the installed package that provides it
_PLUGINS = {"loaded": False}


def load_plugins() -> None:
    """Register the noises of installed packages ([`PLUGIN_GROUP`][PLUGIN_GROUP] entry points), once. A
    plugin that fails to load is skipped with a warning naming its package."""
    if _PLUGINS["loaded"]:
        return
    _PLUGINS["loaded"] = True
    for cls, provider in load_entry_points(PLUGIN_GROUP, ThreatModel, _REGISTRY, register_noise, "noise"):
        for kind in cls.kinds or (cls.kind,):
            _PROVIDERS[kind] = provider


def noise_provider(kind: str) -> str | None:
    """The installed package that provides noise ``kind`` (None for the library's own noises)."""
    load_plugins()
    return _PROVIDERS.get(kind)


def register_noise(cls: type[N]) -> type[N]:
    """Class decorator: register ``cls`` under each of its ``kinds`` (default ``(cls.kind,)``).

    ValueError if a name is taken by another class, if ``classifier`` is not one of
    [`CLASSIFIERS`][CLASSIFIERS], if the class advertises a capability it does not implement (one line naming
    the member: [`capability_problem`][smoothcert.noises.protocols.capability_problem]), or if a flag it
    declares is declared differently by a registered noise.

    Args:
        cls: A [`ThreatModel`][ThreatModel] subclass (see CONTRIBUTING.md, "Adding a threat model").

    Returns:
        ``cls`` itself, registered.
    """
    kinds = cls.kinds or (cls.kind,)
    if cls.classifier not in CLASSIFIERS:
        raise ValueError(f"{cls.__name__}.classifier must be one of {CLASSIFIERS}, got {cls.classifier!r}")
    problem = capability_problem(cls, kinds[0])
    if problem is not None:
        raise ValueError(problem)
    for kind in kinds:
        if _REGISTRY.get(kind, cls) is not cls:
            raise ValueError(f"noise {kind!r} is registered already (by {_REGISTRY[kind].__name__})")
    known = noise_flags()
    for name, spec in cls.flags.items():
        if name in known and known[name] != spec:
            raise ValueError(f"flag --{name.replace('_', '-')} of {cls.__name__} differs from the one another noise declares")
    for kind in kinds:
        _REGISTRY[kind] = cls
    return cls


def noise_kinds(plugins: bool = True) -> tuple[str, ...]:
    """The registered ``--noise`` names, in registration order (with ``plugins``, after loading the
    installed packages' noises)."""
    if plugins:
        load_plugins()
    return tuple(_REGISTRY)


def noise_flags() -> dict[str, dict[str, Any]]:
    """Every flag a registered noise reads -> its argparse settings (for the CLI)."""
    load_plugins()
    flags: dict[str, dict[str, Any]] = {}
    for cls in dict.fromkeys(_REGISTRY.values()):
        flags.update({name: spec for name, spec in cls.flags.items() if name not in flags})
    return flags


def certificate_help() -> str:
    """Which ``--certificate`` names each registered noise takes, its default first (for the CLI)."""
    load_plugins()
    return "; ".join(f"{kind}: {', '.join(cls.certificates)}" for kind, cls in _REGISTRY.items() if cls.certificates)


def certificate_names() -> tuple[str, ...]:
    """Every certificate name of a registered noise (for the CLI's ``--certificate``)."""
    load_plugins()
    names = (name for cls in dict.fromkeys(_REGISTRY.values()) for name in cls.certificates)
    return tuple(dict.fromkeys(names))


def noise_class(kind: object) -> type[ThreatModel]:
    """The class registered as ``kind``; ValueError naming the choices otherwise."""
    load_plugins()
    if not isinstance(kind, str) or kind not in _REGISTRY:
        raise ValueError(f"unknown noise {kind!r}; choose one of {noise_kinds()}")
    return _REGISTRY[kind]


def check_noise_flags(kind: str, values: Mapping[str, Any]) -> type[ThreatModel]:
    """The class of noise ``kind``; [`ArgumentError`][ArgumentError] naming the flag if ``values`` gives (not
    None) a flag that another noise reads and this one does not, TypeError for a name no noise declares."""
    cls = noise_class(kind)
    unknown = sorted(set(values) - set(NoiseContext.__dataclass_fields__) - set(noise_flags()))
    if unknown:
        raise TypeError(f"make_noise got unknown flags {unknown}; the noises read {sorted(noise_flags())}")
    for name, value in values.items():
        if name in noise_flags() and name not in cls.flags and value is not None:
            own = ", ".join("--" + flag.replace("_", "-") for flag in cls.flags) or "none"
            raise ArgumentError(name, value, "{name} {value} is not a parameter of " + f"{kind} noise (its flags: {own})")
    return cls


def make_noise(kind: str, **values: Any) -> ThreatModel:
    """The noise named by the CLI's ``--noise`` and its flags, e.g. ``make_noise("ablation", k=45)``.

    ``values`` hold flags (``k``, ``encoding``, ``sigma``, ...) and [`NoiseContext`][NoiseContext] fields
    (``train_mean``, ``image_size``, ``seed``); a flag left out or None takes its default (``--k`` 45,
    ...). A flag of another noise is refused unless None ([`check_noise_flags`][check_noise_flags]).

    Args:
        kind: The ``--noise`` name: ``ablation``, ``gaussian``, ``lee``, ``columns``, ``blocks``,
            ``partition``, ``none`` or a plugin's.
        **values: Its flags and context, as above.

    Raises:
        ValueError: For an unknown noise, a flag of another noise or an invalid value.
    """
    cls = check_noise_flags(kind, values)
    context_fields = NoiseContext.__dataclass_fields__
    context = NoiseContext(**{key: value for key, value in values.items() if key in context_fields})
    flags = {key: spec.get("default") if values.get(key) is None else values[key] for key, spec in cls.flags.items()}
    return cls.from_flags(kind, flags, context)


def noise_record(noise: ThreatModel) -> dict[str, Any]:
    """What a checkpoint records of ``noise``: ``to_config()``, with the package that provides it
    (``provider``) for a plugin's noise."""
    provider = noise_provider(noise.kind)
    return {**noise.to_config(), **({"provider": provider} if provider else {})}


def noise_from_config(config: Mapping[str, Any]) -> ThreatModel:
    """Rebuild the noise that a checkpoint or log recorded with ``to_config()`` (or
    [`noise_record`][noise_record]).

    Args:
        config: The recorded JSON object, ``{"noise": kind, ...}`` (a checkpoint's
            ``config["noise"]``, a log's ``settings["noise"]``).

    Raises:
        ValueError: For an unknown noise (naming the plugin package that provides it, if
            recorded) or a record that does not describe one.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"a noise config must be a JSON object, got {config!r}")
    provider = config.get("provider")
    config = {key: value for key, value in config.items() if key != "provider"}
    try:
        cls = noise_class(config.get("noise"))
    except ValueError as err:
        hint = f": it comes from the package {provider!r}; install it" if provider else ""
        raise ValueError(f"{err} (in the checkpoint config){hint}") from None
    try:
        return cls.from_config(config)
    except TypeError as err:  # a missing or unknown key: the dataclass names it
        raise ValueError(f"the recorded noise {dict(config)} does not describe a {cls.__name__} noise ({err}); "
                         "the checkpoint config or log settings were edited or are damaged") from None
