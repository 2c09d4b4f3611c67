"""Checks of the sampling options of a certify, predict or attack run against the classifier of
its checkpoint, before anything runs: a flag the classifier does not read is refused, and so are
sample counts with which no image can be certified or predicted. Errors are
[`ArgumentError`][smoothcert.certificates.ArgumentError] naming the argument (the CLI shows its flag)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from ..certificates import ArgumentError, check_alpha, check_count
from ..certificates.sequential import ABSTAIN, Adaptive, best_lower, check_n0, predict_decision
from .base import Classifier
from .smoothed import Sampling, as_sampling

ADAPTIVE_OPTIONS = ("radius", "bound", "step", "beta", "futility")
"""The options of adaptive sampling (fields of [`Adaptive`][Adaptive], flags ``--radius`` ...) that fixed sampling does not read."""

SAMPLING_OPTIONS = ("sampling", "n0", "n", "alpha", *ADAPTIVE_OPTIONS)
"""What only a sampled classifier reads: an exact (deterministic) vote refuses each of them."""


def sampling_options(sampling: str | None = None, *, radius: float | None = None, bound: str | None = None,
                     beta: float | None = None, step: int | None = None, futility: str | None = None) -> Sampling | None:
    """``"fixed"``, the [`Adaptive`][Adaptive] options of ``--sampling``, ``--radius``, ``--bound``,
    ``--beta``, ``--step`` and ``--futility`` (None: the resumed log's, else the question's default),
    or None when none was given (the job's default).
    Each given value is checked under its own name (by [`Adaptive`][Adaptive]); an adaptive option
    with fixed sampling is refused.

    Args:
        sampling: ``"fixed"``, ``"adaptive"`` or None (not given).
        radius: The target radius of the one-radius question.
        bound: The bound family (``exact``, ``looks``, ``anytime``).
        beta: The futility level.
        step: The first look (or the batch between looks of ``anytime``).
        futility: The futility rule.
    """
    given = {name: value for name, value in (("radius", radius), ("bound", bound), ("step", step), ("beta", beta),
                                             ("futility", futility)) if value is not None}
    if sampling == "fixed":
        for name, value in given.items():
            raise ArgumentError(name, value, "{name} {value} is an option of adaptive sampling, which fixed sampling "
                                "does not read: drop it or sample adaptively")
        return "fixed"
    if sampling not in (None, "adaptive"):
        raise ArgumentError("sampling", sampling, "{name} must be adaptive or fixed, got {value}")
    if sampling is None and not given:
        return None
    return Adaptive(**given)  # checks each option, refusing a bad one by its name


def _given(sampling: Sampling | None, n0: int | None, n: int | None, alpha: float | None) -> list[tuple[str, object]]:
    """The sampling options as (argument, value), None where not given; of ``sampling``, its
    adaptive options that differ from their defaults (else ``("sampling", "adaptive")``)."""
    options = as_sampling(sampling) if sampling is not None else None
    if options is not None:
        default = Adaptive(radius=options.radius)
        changed = [(name, getattr(options, name)) for name in ADAPTIVE_OPTIONS
                   if getattr(options, name) != (None if name == "radius" else getattr(default, name))]
        return changed or [("sampling", "adaptive")]
    return [("sampling", sampling), ("n0", n0), ("n", n), ("alpha", alpha)]


def refuse_sampling_options(classifier: Classifier, given: Iterable[tuple[str, object]],
                            flags: Mapping[str, str] | None = None) -> None:
    """Refuse the first of ``given`` that is not None, a sampling option, for ``classifier``, which
    samples nothing (an exact vote, an undefended model): an
    [`ArgumentError`][smoothcert.errors.ArgumentError] naming the option, the checkpoint's noise and
    how the classifier certifies, and saying to drop it. The one refusal that certify, predict, the
    attacks' oracles and the attack's ``n_check`` and ``fixed`` share.

    Args:
        classifier: A classifier that samples nothing.
        given: The options as (argument, value), in the order they are checked; None: not given.
            A bool is a switch, named without its value.
        flags: The command-line flag of an argument whose flag is not ``--`` plus its name
            (``{"fixed": "--fresh"}``).

    Raises:
        ArgumentError: For the first option given.
    """
    for name, value in given:
        if value is not None:
            shown = "{name}" if isinstance(value, bool) else "{name} {value}"
            raise ArgumentError(name, value, shown + ": a checkpoint trained with --noise "
                                f"{classifier.noise.kind} samples nothing (it {classifier.certified}), so it reads "
                                "no sampling options: drop {name}", flag=(flags or {}).get(name))


def check_sampling(classifier: Classifier, mode: str, image_size: tuple[int, int], *, n0: int | None = None,
                   n: int | None = None, alpha: float | None = None, sampling: Sampling | None = None,
                   ) -> tuple[int | None, int, float, Sampling]:
    """``(n0, n, alpha, sampling)`` that ``mode`` (certify, predict) runs ``classifier`` with, the
    defaults filled in (adaptive sampling; ``n`` 10000, ``alpha`` 0.05; ``n0`` stays None when not
    given: the resumed log's, else the question's default), before anything runs. Refused, naming
    the argument:

    - any of them for a classifier that does not sample (an exact vote; an undefended model refuses first);
    - a sampling mode the noise does not offer (its ``samplings``), adaptive sampling with a certificate
      other than the noise's first (sequential CERTIFY computes that one), ``n0`` for predict;
    - an ``n`` and ``alpha`` with which no image can be certified (predicted) even when all ``n`` votes
      go to one class (Clopper-Pearson lower bound ``alpha ** (1/n)``, or the adaptive bound's best), and
      a target ``radius`` above the largest radius they can certify.
    """
    if not classifier.samples:
        copies = classifier.sample_counts(1, 1, "fixed")  # an undefended model refuses here: it has no certificate
        refuse_sampling_options(classifier, _given(sampling, n0, n, alpha))
        return copies[0], copies[1], 0.05, copies[2]
    noise = classifier.noise
    options = as_sampling("adaptive" if sampling is None else sampling)
    name = "fixed" if options is None else "adaptive"
    if name not in noise.samplings:
        raise ArgumentError("sampling", name, "{name} {value}: " + f"{noise.kind} noise offers "
                            f"{' and '.join(noise.samplings) or 'no'} sampling")
    if mode == "predict" and n0 is not None:
        raise ArgumentError("n0", n0, "{name} {value}: predict draws no selection samples; drop {name}")
    if mode == "certify" and options is not None and classifier.certificate != noise.certificates[0]:
        raise ArgumentError("certificate", classifier.certificate, "{name} {value}: adaptive sampling certifies with "
                            f"{noise.certificates[0]} only; certify {{value}} with fixed sampling")
    if n0 is not None:  # None: the resumed log's, else the question's default (run_dataset fills it in)
        check_n0(n0, options)
    n = check_count("n", 10_000 if n is None else n)
    alpha = check_alpha(0.05 if alpha is None else alpha)
    unanimous = np.zeros(classifier.num_classes, dtype=np.int64)
    unanimous[0] = n  # every vote for one class: the best any image can do
    if mode == "predict":
        decision = (classifier.predict_from_counts(unanimous, alpha) if options is None
                    else predict_decision(unanimous, alpha, classifier.num_classes))
        if decision == ABSTAIN:
            raise ArgumentError("n", n, "{name} {value} predicts no image: " + f"at alpha {alpha:g} even {n} votes of "
                                f"{n} for one class abstain; raise {{name}}")
        return n0, n, alpha, "fixed" if options is None else options
    if options is None:
        p_lower, cap = noise.certify(unanimous, 0, alpha, image_size, classifier.certificate)
    else:
        p_lower = best_lower(options.family(), n, alpha)
        cap = noise.radius(p_lower, image_size)
    if math.isnan(cap):
        raise ArgumentError("n", n, "{name} {value} certifies no image: " + f"at alpha {alpha:g} even {n} votes of {n} "
                            f"for one class give p_lower {p_lower:.4f}, which certifies no {noise.kind} radius; "
                            "raise {name}")
    if options is not None and options.radius is not None and options.radius > cap:
        raise ArgumentError("radius", options.radius, "{name} {value} is out of reach: " + f"with {n} samples and "
                            f"alpha {alpha:g} no image is certified beyond radius {cap:g}; lower {{name}} or draw "
                            "more samples")
    return n0, n, alpha, "fixed" if options is None else options
