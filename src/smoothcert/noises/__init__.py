"""Noise distributions of smoothed classifiers: one module per threat model, one registry.

Every noise subclasses [`ThreatModel`][smoothcert.noises.base.ThreatModel] and is registered under its
``--noise`` name(s) ([`register_noise`][register_noise]); [`make_noise`][make_noise] builds one from command-line
flags and [`noise_from_config`][noise_from_config] from the JSON a checkpoint or log recorded. What each
capability a noise advertises requires is a typed protocol
([`smoothcert.noises.protocols`][smoothcert.noises.protocols]), checked when the noise is registered.

- ``Ablation`` (``ablation``): randomized ablation (Levine & Feizi 2020, Preliminaries): keep k of
  the d = H*W pixels, NULL elsewhere (multichannel or mean encoding, Table 8); L0 certificates in
  [`smoothcert.certificates.ablation`][smoothcert.certificates.ablation].
- ``Gaussian`` (``gaussian``): isotropic Gaussian noise (Cohen, Rosenfeld & Kolter 2019); L2
  certificates in [`smoothcert.certificates.gaussian`][smoothcert.certificates.gaussian].
- ``Lee`` (``lee``): the discrete noise of Lee et al. (2019), the L0 baseline of Levine & Feizi's
  Table 7; certificate in [`smoothcert.certificates.lee`][smoothcert.certificates.lee].
- ``Bands`` (``columns``, ``blocks``; Levine & Feizi, NeurIPS 2020) and ``Partition``
  (``partition``; Hammoudeh & Lowd, AAAI 2024): deterministic, every ablation set is evaluated
  once (``keep_masks``); certificates in [`smoothcert.certificates.bands`][smoothcert.certificates.bands] and ``.partition``.
- ``Clean`` (``none``): no noise, for undefended models; certifies nothing.
"""

from .ablation import ENCODINGS, Ablation, ablate, sample_keep_mask
from .bands import Bands
from .base import (
    CLASSIFIERS,
    NoiseContext,
    ThreatModel,
    certificate_help,
    certificate_names,
    check_noise_flags,
    make_noise,
    noise_class,
    noise_flags,
    PLUGIN_GROUP,
    load_plugins,
    noise_from_config,
    noise_kinds,
    noise_provider,
    noise_record,
    register_noise,
)
from .clean import Clean
from .gaussian import Gaussian
from .lee import Lee
from .partition import Partition, partition_assignment
from .protocols import (
    AdaptiveNoise,
    BatchSharedNoise,
    DeterministicNoise,
    MaskNoise,
    Noise,
    SampledNoise,
    capability_problem,
)

NOISES = noise_kinds(plugins=False)
"""The built-in ``--noise`` names ([`noise_kinds`][noise_kinds] also lists noises registered later and
those of installed plugins)."""

__all__ = ["CLASSIFIERS", "ENCODINGS", "NOISES", "PLUGIN_GROUP", "Ablation", "AdaptiveNoise", "Bands",
           "BatchSharedNoise", "Clean", "DeterministicNoise", "Gaussian", "Lee", "MaskNoise", "Noise", "NoiseContext",
           "Partition", "SampledNoise", "ThreatModel", "ablate", "capability_problem", "certificate_help",
           "certificate_names",
           "check_noise_flags", "make_noise", "noise_class", "noise_flags", "noise_from_config", "noise_kinds",
           "load_plugins", "noise_provider", "noise_record", "partition_assignment", "register_noise",
           "sample_keep_mask"]
