"""The option bundles that the jobs share: which images ([`DataOptions`][DataOptions]), how many noise
samples at what level ([`SamplingOptions`][SamplingOptions]) and where and how fast the work runs
([`RuntimeOptions`][RuntimeOptions]). Each validates itself when made, naming the bad field; the
command line's flags, defaults and help are derived from their fields
([`add_flags`][smoothcert.options.Bundle.add_flags], [`from_args`][smoothcert.options.Bundle.from_args]),
so a default is written once. A job takes the bundles as objects (``data=DataOptions(max_images=10)``)
or their fields one by one as keywords (``max_images=10``), which [`gather`][gather] sorts into the
bundles; a field the job does not read is refused by name."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch

from .classifiers.smoothed import SAMPLINGS, Sampling, as_sampling
from .data import DATASETS, SPLITS
from .errors import ArgumentError, check_alpha, check_count
from .runtime.distributed import rank_device
from .runtime.seeding import DEVICES
from .runtime.speed import AMP_DTYPES, SWITCHES, Switch

B = TypeVar("B", bound="Bundle")


def _flag(help: str, flag: str | None = None, **argparse_options: Any) -> dict[str, Any]:
    """A field's command-line flag (``--`` plus the field's name with dashes unless ``flag``) and
    its ``argparse`` options."""
    return {"help": help, "flag": flag, **argparse_options}


def _seed(text: str) -> int:
    """``--seed``'s type: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a seed is a non-negative integer, got {value}")
    return value


class Bundle:
    """What the three bundles share: validation on construction, their fields as flags, and the
    refusal of a field a job does not read."""

    def __post_init__(self) -> None:
        try:
            self.check()
        except ArgumentError as err:  # the command line names the field's own flag (--max for max_images)
            if err.flag is None and err.argument in self.names():
                err.flag = self.flag(err.argument)
            raise

    def check(self) -> None:
        """Raise an [`ArgumentError`][smoothcert.errors.ArgumentError] naming the first bad field."""

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The bundle's field names."""
        return tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]

    @classmethod
    def flag(cls, name: str) -> str:
        """The command-line flag of the field ``name``."""
        spec = cls._field(name).metadata
        return spec.get("flag") or "--" + name.replace("_", "-")

    @classmethod
    def _field(cls, name: str) -> dataclasses.Field[Any]:
        return next(f for f in dataclasses.fields(cls) if f.name == name)  # type: ignore[arg-type]

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser, names: Iterable[str] | None = None, *,
                  defaults: Mapping[str, Any] | None = None, help: Mapping[str, str] | None = None) -> None:
        """Add the flags of the fields ``names`` (None: all) to ``parser``, with the fields' own
        defaults unless ``defaults`` gives a command's, and their help unless ``help`` does.

        Args:
            parser: The subcommand's parser.
            names: The fields the subcommand reads; None: every field.
            defaults: A subcommand's own defaults, by field name.
            help: A subcommand's own help texts, by field name.
        """
        defaults, help = defaults or {}, help or {}
        for name in cls.names() if names is None else names:
            f = cls._field(name)
            spec = {k: v for k, v in f.metadata.items() if k not in ("flag", "help", "invert")}
            default = defaults.get(name, f.default)
            text = help.get(name, f.metadata["help"])
            if f.metadata.get("invert"):  # --quiet sets progress to False
                parser.add_argument(cls.flag(name), dest=name, action="store_false", help=text)
                continue
            parser.add_argument(cls.flag(name), dest=name, default=default, **spec,
                                help=text.replace("{default}", str(default)))

    @classmethod
    def from_args(cls: type[B], args: argparse.Namespace, names: Iterable[str] | None = None, **values: Any) -> B:
        """The bundle of the parsed flags of the fields ``names`` (None: every field with a flag in
        ``args``; the others keep their defaults), with ``values`` in place of parsed ones.

        Args:
            args: What ``argparse`` parsed.
            names: The fields the subcommand's job reads; None: all that ``args`` holds.
            **values: Fields set otherwise than from their flag (e.g. ``sampling``, built from several flags).
        """
        names = [name for name in (cls.names() if names is None else names) if hasattr(args, name)]
        return cls(**{**{name: getattr(args, name) for name in names}, **values})

    def refuse(self, job: str, names: Iterable[str]) -> None:
        """ArgumentError for the first of ``names`` that is not at its default: ``job`` does not read it.

        Args:
            job: The job, as the message names it.
            names: The fields the job does not read.
        """
        for name in names:
            value, default = getattr(self, name), self._field(name).default
            if value != default:
                raise ArgumentError(name, value, f"{job} does not read {{name}} (got {{value}}): drop it",
                                    flag=self.flag(name))


@dataclass(frozen=True)
class DataOptions(Bundle):
    """Which images a job runs on.

    Attributes:
        dataset: ``mnist5k``, ``mnist``, ``cifar10``, ``npz:PATH`` or ``folder:PATH``; None: the
            checkpoint's.
        split: ``"train"`` or ``"test"``.
        data_root: Where ``mnist`` and ``cifar10`` are kept; None: ``$SMOOTHCERT_DATA`` or the default cache.
        skip: Take every ``skip``-th image.
        max_images: At most this many images; None: all.
    """

    dataset: str | None = field(default=None, metadata=_flag(
        f"one of {', '.join(DATASETS)} (default: the checkpoint's)"))
    split: str = field(default="test", metadata=_flag("train or test (default {default})", choices=SPLITS))
    data_root: str | Path | None = field(default=None, metadata=_flag(
        "folder with MNIST/CIFAR-10 files (default $SMOOTHCERT_DATA or ~/.cache/smoothcert/data)", type=Path))
    skip: int = field(default=1, metadata=_flag("use every N-th image", type=int, metavar="N"))
    max_images: int | None = field(default=None, metadata=_flag("at most N images", flag="--max", type=int, metavar="N"))

    def check(self) -> None:
        if self.dataset is not None and not isinstance(self.dataset, str):
            raise ArgumentError("dataset", self.dataset, "{name} must be a name such as mnist5k or npz:PATH, got {value}")
        if self.split not in SPLITS:
            raise ArgumentError("split", self.split, "{name} must be train or test, got {value}")
        check_count("skip", self.skip)
        if self.max_images is not None:
            check_count("max_images", self.max_images)


@dataclass(frozen=True)
class SamplingOptions(Bundle):
    """How many noise samples CERTIFY or PREDICT draws per image, and at what level (Cohen et al.,
    Algorithm 1 and Proposition 1). None leaves a value to the job: the resumed log's, else the
    classifier's default (``check_sampling``).

    Attributes:
        n0: CERTIFY's selection samples.
        n: The estimation samples (adaptive: at most).
        alpha: The failure probability.
        sampling: ``"fixed"``, ``"adaptive"`` or an [`Adaptive`][smoothcert.certificates.sequential.Adaptive].
    """

    n0: int | None = field(default=None, metadata=_flag(
        "selection samples; 0: the one-radius test (--radius, exact bound) certifies the class that leads it",
        type=int))
    n: int | None = field(default=None, metadata=_flag(
        "estimation samples (default 10000, as the paper); the maximum with adaptive sampling", type=int))
    alpha: float | None = field(default=None, metadata=_flag("failure probability (default 0.05, as the paper)",
                                                             type=float))
    sampling: Sampling | None = field(default=None, metadata=_flag(
        "adaptive (default): stop sampling once the answer is settled, at the same alpha; fixed: always --n "
        "samples, the paper's protocol", choices=SAMPLINGS))

    def check(self) -> None:
        if self.n0 is not None and self.n0 != 0:  # 0: the test selects the class (refused where it cannot)
            check_count("n0", self.n0)
        if self.n is not None:
            check_count("n", self.n)
        if self.alpha is not None:
            check_alpha(self.alpha)
        if self.sampling is not None:
            as_sampling(self.sampling)


@dataclass(frozen=True)
class RuntimeOptions(Bundle):
    """Where and how fast a job runs; none of it changes a result except ``seed``.

    Attributes:
        seed: The seed of every random stream (an image's noise is keyed by (seed, index)).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        batch_size: Most noisy copies per forward pass (a memory bound); None: the fastest measured
            for the model on this device.
        compile: Whether to `torch.compile` the base classifier: ``"auto"``, ``"on"`` or ``"off"``.
        channels_last: Whether to feed the base classifier channels-last inputs: ``"auto"``, ``"on"`` or ``"off"``.
        amp: Autocast the base classifier to ``"bf16"`` or ``"fp16"`` (for CUDA); None: full precision.
        progress: Whether to show progress bars.
    """

    seed: int = field(default=0, metadata=_flag("the seed of every random stream (default {default})", type=_seed))
    device: str | torch.device = field(default="auto", metadata=_flag("auto (default), cpu or cuda", choices=DEVICES))
    batch_size: int | None = field(default=None, metadata=_flag(
        "noisy copies per forward pass (a memory bound; default: the fastest measured for the model on this device, "
        "else 1000)", type=int))
    compile: Switch = field(default="auto", metadata=_flag(
        "torch.compile the base classifier: auto (default) = once the run has done the evaluations that repay "
        "compiling, for models measured to gain (BENCHMARKS.md); on (also bare --compile); off. Eager, with one "
        "warning, if it cannot compile", nargs="?", const="on", choices=SWITCHES))
    channels_last: Switch = field(default="auto", metadata=_flag(
        "channels-last memory format for the base classifier: auto (default) = for models measured to gain; on "
        "(also bare --channels-last); off", nargs="?", const="on", choices=SWITCHES))
    amp: str | None = field(default=None, metadata=_flag(
        "autocast the base classifier to bf16 or fp16, for CUDA (recorded in the log's settings)",
        choices=sorted(AMP_DTYPES)))
    progress: bool = field(default=True, metadata=_flag("no progress bars", flag="--quiet", invert=True))

    def check(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ArgumentError("seed", self.seed, "{name} must be a non-negative integer, got {value}")
        if not isinstance(self.device, torch.device) and not (
                self.device in DEVICES or (isinstance(self.device, str) and self.device.startswith("cuda:"))):
            raise ArgumentError("device", self.device, "{name} must be one of " + ", ".join(DEVICES)
                                + " or cuda:N, got {value}")
        if self.batch_size is not None:
            check_count("batch_size", self.batch_size)
        for name in ("compile", "channels_last"):
            if getattr(self, name) not in (*SWITCHES, True, False):
                raise ArgumentError(name, getattr(self, name), "{name} must be auto, on or off, got {value}")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ArgumentError("amp", self.amp, "{name} must be bf16 or fp16, got {value}")

    def speed(self) -> dict[str, Any]:
        """The classifier-loading options but ``amp``: ``batch_size``, ``compile``, ``channels_last`` and the
        ``device`` resolved for this rank ([`rank_device`][smoothcert.runtime.distributed.rank_device])."""
        return {"batch_size": self.batch_size, "device": rank_device(self.device), "compile": self.compile,
                "channels_last": self.channels_last}


BUNDLES: dict[str, type[Bundle]] = {"data": DataOptions, "samples": SamplingOptions, "runtime": RuntimeOptions}
"""The bundles by the keyword a job takes them under."""


def gather(job: str | Callable[..., Any], options: Mapping[str, Any], reads: Mapping[str, Iterable[str]], *,
           rest: bool = False, **given: Bundle | None) -> tuple[Any, ...]:
    """The bundles of ``reads`` (keyword -> the fields the job reads), in its order: each the object
    given under its keyword, else its defaults, with the loose keywords ``options`` (field names)
    filled in. A keyword that names no field the job reads is a TypeError, as Python's own (with
    ``rest``, the keywords left are returned last instead: a noise's flags); a field given both in
    an object and loose is an ArgumentError; so is a field the job does not read set in a given object.

    Args:
        job: The job (or its name), as messages name it.
        options: The loose keywords the job was called with.
        reads: For each bundle keyword (``data``, ``samples``, ``runtime``), the fields the job reads.
        rest: Whether keywords that name no field are returned (as a dict, last) rather than refused.
        **given: The bundle objects the job was called with (None: not given).
    """
    name = job if isinstance(job, str) else job.__name__
    reads = {key: tuple(fields) for key, fields in reads.items()}
    owner = {f: key for key, fields in reads.items() for f in fields}
    unknown = {key: value for key, value in options.items() if key not in owner}
    if unknown and not rest:
        raise TypeError(f"{name}() got an unexpected keyword argument {next(iter(unknown))!r}")
    bundles = []
    for key, fields in reads.items():
        cls, obj = BUNDLES[key], given.get(key)
        loose = {f: options[f] for f in fields if f in options}
        if obj is None:
            bundles.append(cls(**loose))
            continue
        if not isinstance(obj, cls):
            raise ArgumentError(key, obj, f"{{name}} must be a {cls.__name__}, got {{value}}")
        obj.refuse(name, [f for f in cls.names() if f not in fields])
        twice = [f for f in loose if getattr(obj, f) != cls._field(f).default]
        if twice:
            raise ArgumentError(twice[0], loose[twice[0]], f"{{name}} is given twice, as a keyword and in {key}: "
                                "give it once")
        bundles.append(dataclasses.replace(obj, **loose) if loose else obj)
    return (*bundles, unknown) if rest else tuple(bundles)
