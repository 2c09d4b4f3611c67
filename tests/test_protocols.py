"""A noise that advertises a capability it does not implement is refused when it is registered, in
one line naming the noise and the missing member; the built-in noises implement every protocol
they advertise, and every classifier kind its protocol, with the protocol's signatures."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
import torch
from test_toy_noise import Bernoulli

import smoothcert.noises.base as registry
from smoothcert.noises.protocols import protocol_members
from smoothcert.noises import (
    AdaptiveNoise,
    Ablation,
    BatchSharedNoise,
    DeterministicNoise,
    Gaussian,
    MaskNoise,
    Partition,
    SampledNoise,
    ThreatModel,
    capability_problem,
    noise_class,
    noise_kinds,
    register_noise,
)


@pytest.fixture(autouse=True)
def restored_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def refusal(cls: type) -> str:
    """The one-line message with which ``register_noise`` refuses ``cls``; nothing is registered."""
    before = noise_kinds(plugins=False)
    with pytest.raises(ValueError) as err:
        register_noise(cls)
    assert noise_kinds(plugins=False) == before
    message = str(err.value)
    assert "\n" not in message
    return message


SAMPLER = ("__call__", "to_config", "certificates")


def toy(name: str, *members: str, **attributes: Any) -> type:
    """A noise class ``name`` (kind: its lower-case name) with only ``members`` of the toy Bernoulli noise."""
    return type(name, (ThreatModel,), {"kind": name.lower(), **{m: getattr(Bernoulli, m) for m in members},
                                       **attributes})


def test_adaptive_sampling_without_radius_or_step_is_refused():
    # samplings default to adaptive and fixed
    message = refusal(toy("NoRadius", *SAMPLER, "certify", "radius_step"))
    assert message.startswith("noise 'noradius' (NoRadius) offers adaptive sampling ('adaptive' in samplings) but "
                              "does not implement radius (AdaptiveNoise)")
    assert "does not implement radius_step (AdaptiveNoise)" in refusal(toy("Stepless", *SAMPLER, "certify", "radius"))
    fixed = toy("FixedOnly", *SAMPLER, "certify", samplings=("fixed",))
    assert register_noise(fixed) is fixed  # fixed sampling asks for neither


def test_sampling_without_certify_or_certificates_is_refused():
    message = refusal(toy("Uncertified", *SAMPLER, samplings=("fixed",)))
    assert message.startswith("noise 'uncertified' (Uncertified) is certified by sampling (classifier 'smoothed' or "
                              "'fixed' in samplings) but does not implement certify (SampledNoise)")
    nameless = toy("Nameless", "__call__", "to_config", "certify", samplings=("fixed",))
    assert "(Nameless) is certified by sampling" in refusal(nameless)
    assert "names no certificates" in refusal(nameless)


def test_a_deterministic_vote_without_its_methods_is_refused():
    voteless = toy("Voteless", "__call__", "to_config", classifier="deterministic", samplings=(),
                   default_vote="argmax", keep_masks=Partition.keep_masks)
    message = refusal(voteless)
    assert message.startswith("noise 'voteless' (Voteless) is certified by a deterministic vote (classifier "
                              "'deterministic') but does not implement certifies_patches, apply, vote_radius, "
                              "describe (DeterministicNoise)")


def test_masks_without_sample_keep_are_refused():
    masked = type("Masked", (Bernoulli,), {"kind": "masked", "masks": True})
    assert refusal(masked).startswith("noise 'masked' (Masked) draws keep masks (masks = True) but does not "
                                      "implement sample_keep, apply (MaskNoise)")


def test_a_noise_without_a_sampler_or_a_config_is_refused():
    hollow = toy("Hollow", classifier="model", samplings=())
    assert refusal(hollow) == ("noise 'hollow' (Hollow) is a noise but does not implement __call__, to_config "
                               "(Noise): implement them or do not advertise it")


def test_a_plugin_that_advertises_what_it_lacks_is_skipped_naming_the_member(tmp_path, monkeypatch):
    from test_plugins import install

    source = ("from test_toy_noise import Bernoulli\nfrom smoothcert.noises import ThreatModel\n"
              "Salt = type('Salt', (ThreatModel,), {'kind': 'salt', 'certificates': ('bernoulli',), **{member: "
              "getattr(Bernoulli, member) for member in ('__call__', 'to_config', 'certify', 'radius_step')}})\n")
    install(tmp_path, "smoothcert-lacking", {"lacking_noise": source},
            {registry.PLUGIN_GROUP: "salt = lacking_noise:Salt"})
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_PROVIDERS", {})
    monkeypatch.setattr(registry, "_PLUGINS", {"loaded": False})
    with pytest.warns(UserWarning, match=r"'salt' of smoothcert-lacking was not loaded .*does not implement radius"):
        assert "salt" not in noise_kinds()


def test_the_built_in_noises_implement_what_they_advertise():
    for kind in noise_kinds(plugins=False):
        assert capability_problem(noise_class(kind), kind) is None, kind
    ablation, gaussian = Ablation(45), Gaussian(0.25)
    partition = Partition.create(4, (8, 8))
    assert isinstance(ablation, AdaptiveNoise) and isinstance(ablation, MaskNoise)
    assert isinstance(gaussian, AdaptiveNoise) and not isinstance(gaussian, MaskNoise)
    assert isinstance(partition, DeterministicNoise) and not isinstance(partition, SampledNoise)
    assert isinstance(ablation, BatchSharedNoise) and not isinstance(gaussian, BatchSharedNoise)
    x = torch.rand(3, 1, 8, 8)
    keep = partition.keep_masks(8, 8)[:3]
    assert torch.equal(partition.apply(x, keep)[:, 1] == 0, ~keep.view(3, 8, 8))  # ablated: NULL on both channels


def test_a_per_batch_noise_is_found_by_its_protocol():
    """Certification refuses a noise drawn once per minibatch, whatever class provides it."""
    from torch import nn

    from smoothcert.classifiers import SmoothedClassifier

    @dataclass(frozen=True)
    class Shared(Bernoulli):
        per_batch: bool = False
        flags: ClassVar[dict[str, dict[str, Any]]] = Bernoulli.flags

    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 64, 3))
    assert SmoothedClassifier(model, Shared(0.5), 3, device="cpu").noise.per_batch is False
    with pytest.raises(ValueError, match="independent noise draw per sample"):
        SmoothedClassifier(model, Shared(0.5, per_batch=True), 3, device="cpu")


# ----------------------------------------------------------------------------- the classifier kinds


def _parameters(function: Any) -> list[inspect.Parameter]:
    """The parameters of a method, less ``self`` (a static method has none to drop)."""
    parameters = list(inspect.signature(function).parameters.values())
    return parameters[1:] if parameters and parameters[0].name == "self" else parameters


def signature_problems(cls: type, protocol: type) -> list[str]:
    """Where a method of ``cls`` cannot be called as ``protocol`` declares it: a positional parameter
    in another place, a keyword it does not take, a default it lacks, or a parameter of its own
    without a default."""
    problems = []
    for name in protocol_members(protocol):
        declared = getattr(protocol, name, None)
        if not inspect.isfunction(declared):  # an attribute, or a property such as certificate
            continue
        wanted, given = _parameters(declared), _parameters(inspect.getattr_static(cls, name).__get__(None, cls))
        by_name = {p.name: p for p in given}
        positional = [p.name for p in given if p.kind == p.POSITIONAL_OR_KEYWORD]
        for i, p in enumerate(wanted):
            own = by_name.get(p.name)
            if own is None:
                problems.append(f"{cls.__name__}.{name} takes no {p.name}")
            elif p.kind == p.POSITIONAL_OR_KEYWORD and positional[i:i + 1] != [p.name]:
                problems.append(f"{cls.__name__}.{name} takes {p.name} in another place")
            elif p.default is not p.empty and own.default is own.empty:
                problems.append(f"{cls.__name__}.{name} has no default for {p.name}")
        problems += [f"{cls.__name__}.{name} needs {p.name}, which {protocol.__name__} does not pass" for p in given
                     if p.name not in {w.name for w in wanted} and p.default is p.empty
                     and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return problems


def test_every_classifier_kind_implements_its_protocol_with_its_signatures():
    from torch import nn

    from smoothcert.classifiers import (
        Classifier,
        DenoisedClassifier,
        DeterministicClassifier,
        SmoothedClassifier,
        Undefended,
        VotingClassifier,
    )
    from smoothcert.noises import Clean

    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 64, 3))
    voting = [SmoothedClassifier(model, Ablation(8), 3, device="cpu"),
              DenoisedClassifier(model, Ablation(8), 3, device="cpu"),
              DeterministicClassifier(model, Partition.create(4, (8, 8)), 3, (8, 8), device="cpu")]
    undefended = Undefended(nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), Clean(), 3, device="cpu")
    for classifier, protocol in [(c, VotingClassifier) for c in voting] + [(undefended, Classifier)]:
        # looked up without reading them: an undefended model's certificate is a refusal
        missing = [m for m in protocol_members(protocol)
                   if m not in vars(classifier) and not hasattr(type(classifier), m)]
        assert missing == [], type(classifier).__name__
        assert signature_problems(type(classifier), protocol) == [], type(classifier).__name__
    assert not hasattr(Undefended, "sample_many")  # it does not vote
    x = torch.rand(1, 8, 8)
    exact = voting[2]
    assert exact.predict(x, 100, 0.05, sampling="fixed") == exact.predict(x)  # called as any voting classifier
    assert repr(exact.certify(x, 10, 100, 0.05, sampling="fixed")) == repr(exact.certify(x))  # p_lower NaN


def test_a_new_classifier_kind_is_queried_by_what_it_can_do(monkeypatch, tiny_checkpoint):
    """oracle_factory asks a classifier whether it samples and whether it certifies, never its kind:
    kinds of names it has never seen get PREDICT, the exact vote or the model itself, and one that
    samples nothing refuses PREDICT's options."""
    from torch import nn

    from smoothcert.attacks import DeterministicOracle, ModelOracle, SmoothedOracle
    from smoothcert.classifiers import DeterministicClassifier, SmoothedClassifier, Undefended
    from smoothcert.errors import ArgumentError
    from smoothcert.noises import Clean
    from smoothcert.runner import jobs

    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 64, 2))
    kinds = [(type("Tempered", (SmoothedClassifier,), {"kind": "tempered"})(model, Ablation(8), 2, device="cpu"),
              SmoothedOracle),
             (type("Exact", (DeterministicClassifier,), {"kind": "exact"})(model, Partition.create(4, (8, 8)), 2, (8, 8),
                                                                           device="cpu"), DeterministicOracle),
             (type("Bare", (Undefended,), {"kind": "bare"})(nn.Sequential(nn.Flatten(), nn.Linear(64, 2)), Clean(), 2,
                                                            device="cpu"), ModelOracle)]
    for classifier, oracle in kinds:
        monkeypatch.setattr(jobs, "load_classifier", lambda checkpoint, given=classifier, **options: given)
        make_oracle, _ = jobs.oracle_factory(tiny_checkpoint[1])
        assert type(make_oracle(0)) is oracle
        if not classifier.samples:
            with pytest.raises(ArgumentError, match="samples nothing") as refused:
                jobs.oracle_factory(tiny_checkpoint[1], alpha=0.01)
            assert refused.value.argument == "alpha"


def test_the_signature_check_finds_a_mismatch():
    """DeterministicClassifier.predict took the image only; the check would have said so."""
    from smoothcert.classifiers import DeterministicClassifier, VotingClassifier

    old = type("Old", (DeterministicClassifier,), {"predict": lambda self, x: 0})
    assert signature_problems(old, VotingClassifier) == ["Old.predict takes no n", "Old.predict takes no alpha",
                                                         "Old.predict takes no generator",
                                                         "Old.predict takes no sampling"]
