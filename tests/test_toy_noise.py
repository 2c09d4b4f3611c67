"""A threat model added from this file alone: the worked example of CONTRIBUTING.md.

``Bernoulli`` keeps every pixel independently with probability ``keep_prob`` and writes NULL
elsewhere, in the multichannel encoding of Levine & Feizi (2020, "Architectural and training
considerations"): a kept pixel v becomes (v, 1 - v), NULL is 0 on every channel.

Its certificate follows Levine & Feizi's Theorem 1 and Corollary 1 with a different Delta. Let x
and x' differ in a set S of rho pixels and draw one keep mask T for both. If T misses S, the two
noisy inputs are equal; T meets S with probability Delta(rho) = 1 - (1 - keep_prob)^rho. So
|p_c(x) - p_c(x')| <= Delta(rho) for every class c, and p_A(x') >= p_lower - Delta(rho) > 1/2
keeps A the smoothed prediction at x'. The radius is the largest integer rho <= d = H*W with
p_lower - Delta(rho) > 1/2 (NaN, abstain, where p_lower <= 1/2).

Nothing here touches the library: the class is registered by a fixture that restores the
registry afterwards, so other tests never see ``--noise bernoulli``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

import smoothcert.noises.base
from smoothcert.certificates import clopper_pearson_lower
from smoothcert.cli import build_parser, main
from smoothcert.noises import (
    NoiseContext,
    ThreatModel,
    ablate,
    make_noise,
    noise_from_config,
    noise_kinds,
    register_noise,
)

# ----------------------------------------------------------------------------- the certificate module

BERNOULLI_CERTIFICATES = ("bernoulli",)
_TOLERANCE = 1e-9  # float margins smaller than this are decided again in exact rational arithmetic


def check_keep_prob(keep_prob: object) -> float:
    """``keep_prob`` as a float in (0, 1]; ValueError otherwise (0 would keep nothing)."""
    if isinstance(keep_prob, bool) or not isinstance(keep_prob, (int, float)) or not 0 < keep_prob <= 1:
        raise ValueError(f"keep_prob must be a number in (0, 1], got {keep_prob!r}")
    return float(keep_prob)


def bernoulli_delta(rho: int | np.ndarray, keep_prob: float) -> float | np.ndarray:
    """Delta(rho) = 1 - (1 - keep_prob)^rho: the chance that a mask keeps one of rho given pixels."""
    rho = np.asarray(rho)
    if keep_prob == 1:  # log1p(-1) = -inf, and 0 * -inf is NaN
        return np.where(rho > 0, 1.0, 0.0)[()]
    return (0.0 - np.expm1(rho * np.log1p(-keep_prob)))[()]


def _exactly_certified(p_lower: float, keep_prob: float, rho: int) -> bool:
    """p_lower - Delta(rho) > 1/2 in exact arithmetic on the given floats."""
    delta = 1 - (1 - Fraction(keep_prob)) ** rho
    return Fraction(p_lower) - delta > Fraction(1, 2)


def bernoulli_radius(p_lower: float, d: int, keep_prob: float) -> float:
    """The largest integer rho in [0, d] with ``p_lower - Delta(rho) > 1/2`` (Corollary 1's argument
    with Bernoulli's Delta); NaN (abstain) where ``p_lower <= 1/2``.

    Delta is non-decreasing in rho, so the certified rho form a prefix of 0..d; the float answer is
    re-decided exactly wherever its margin is within ``_TOLERANCE`` of 0.
    """
    keep_prob, p = check_keep_prob(keep_prob), float(p_lower)
    if not 0 <= p <= 1:
        raise ValueError(f"p_lower must be a probability, got {p_lower!r}")
    rho = np.arange(d + 1)
    margin = p - bernoulli_delta(rho, keep_prob) - 0.5
    radius = int(np.count_nonzero(margin > 0)) - 1  # -1: even rho = 0 fails
    if radius >= 0 and abs(margin[radius]) < _TOLERANCE:
        while radius >= 0 and not _exactly_certified(p, keep_prob, radius):
            radius -= 1
    if radius < d and abs(margin[radius + 1]) < _TOLERANCE:
        while radius < d and _exactly_certified(p, keep_prob, radius + 1):
            radius += 1
    return float(radius) if radius >= 0 else math.nan


def certify_bernoulli(counts: np.ndarray, top: int, alpha: float, d: int, keep_prob: float) -> tuple[float, float]:
    """(p_lower, radius) of class ``top`` (chosen independently of ``counts``): the one-sided
    Clopper-Pearson lower bound at level ``alpha`` and :func:`bernoulli_radius`."""
    p_lower = float(clopper_pearson_lower(int(counts[top]), int(np.sum(counts)), alpha))
    return p_lower, bernoulli_radius(p_lower, d, keep_prob)


# ----------------------------------------------------------------------------- the noise module


@dataclass(frozen=True)
class Bernoulli(ThreatModel):
    """Keep each pixel independently with probability ``keep_prob``, NULL elsewhere (multichannel)."""

    keep_prob: float
    kind: ClassVar[str] = "bernoulli"
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "keep_prob": {"type": float, "default": None,
                      "help": "probability of keeping each pixel (--noise bernoulli)"},
    }
    classifier: ClassVar[str] = "smoothed"
    certificates: ClassVar[tuple[str, ...]] = BERNOULLI_CERTIFICATES
    radius_step: ClassVar[float] = 1.0  # L0 radii are integers

    @classmethod
    def from_flags(cls, kind: str, flags: Mapping[str, Any], context: NoiseContext) -> Bernoulli:
        """``--keep-prob``; nothing is read from the data (``context``)."""
        if flags.get("keep_prob") is None:
            raise ValueError("bernoulli noise needs --keep-prob")
        return cls(flags["keep_prob"])

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_prob", check_keep_prob(self.keep_prob))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """An independent mask per image of the batch (B, C, H, W) -> (B, 2C, H, W)."""
        b, _, h, w = x.shape
        keep = torch.rand(b, h * w, generator=generator, device=x.device) < self.keep_prob
        return ablate(x, keep)

    def channels(self, data_channels: int) -> int:
        return 2 * data_channels

    def to_config(self) -> dict[str, Any]:
        return {"noise": self.kind, "keep_prob": self.keep_prob}

    def certify(
        self, counts: np.ndarray, top: int, alpha: float, image_size: tuple[int, int], certificate: str = "bernoulli"
    ) -> tuple[float, float]:
        """(p_lower, L0 radius) of class ``top`` from the vote ``counts`` (fixed sampling); NaN abstains."""
        self.check_certificate(certificate)
        h, w = image_size
        return certify_bernoulli(counts, top, alpha, h * w, self.keep_prob)

    def radius(self, p_lower: float, image_size: tuple[int, int]) -> float:
        """The L0 radius certified by ``p_lower`` (adaptive sampling asks this at every look)."""
        h, w = image_size
        return bernoulli_radius(p_lower, h * w, self.keep_prob)


@pytest.fixture
def toy(monkeypatch):
    """Bernoulli registered for one test; the registry is restored afterwards."""
    monkeypatch.setattr(smoothcert.noises.base, "_REGISTRY", dict(smoothcert.noises.base._REGISTRY))
    register_noise(Bernoulli)
    return Bernoulli


# ----------------------------------------------------------------------------- (a) registry and config


def test_config_round_trip_and_make_noise(toy):
    noise = Bernoulli(0.3)
    config = noise.to_config()
    assert config == {"noise": "bernoulli", "keep_prob": 0.3}
    assert noise_from_config(json.loads(json.dumps(config))) == noise
    assert make_noise("bernoulli", keep_prob=0.3) == noise
    assert make_noise("bernoulli", keep_prob=0.3, image_size=(8, 8), seed=3) == noise  # context is accepted
    assert "bernoulli" in noise_kinds()
    assert noise_from_config({"noise": "bernoulli", "keep_prob": 0.5}) != noise
    with pytest.raises(ValueError, match="--keep-prob"):
        make_noise("bernoulli")
    with pytest.raises(ValueError, match="keep_prob"):
        make_noise("bernoulli", keep_prob=1.5)
    with pytest.raises(ValueError, match="unknown certificate"):
        noise.check_certificate("cor1")


def test_a_clashing_flag_is_refused(toy):
    """A second noise declaring --keep-prob differently cannot be registered (the CLI has one flag)."""

    @dataclass(frozen=True)
    class Other(Bernoulli):
        kind: ClassVar[str] = "other"
        flags: ClassVar[dict[str, dict[str, Any]]] = {"keep_prob": {"type": int, "default": 1}}

    with pytest.raises(ValueError, match="--keep-prob of Other"):
        register_noise(Other)
    with pytest.raises(ValueError, match="registered already"):
        register_noise(type("Again", (Bernoulli,), {}))


# ----------------------------------------------------------------------------- (b) the sampler


def test_sampler_keeps_keep_prob_of_the_pixels_and_nulls_the_rest():
    noise = Bernoulli(0.3)
    x = torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    z = noise(x, torch.Generator().manual_seed(1))
    assert z.shape == (50, noise.channels(3), 8, 8) == (50, 6, 8, 8)
    kept = (z[:, :3] + z[:, 3:]).sum(1) > 0.5  # a kept pixel sums to 1 per channel pair, NULL to 0
    # a colour pixel is kept or dropped as one unit: every channel of a kept pixel is (v, 1 - v)
    assert torch.equal(z[:, :3], x * kept[:, None]) and torch.equal(z[:, 3:], (1 - x) * kept[:, None])
    assert (z.permute(0, 2, 3, 1)[~kept] == 0).all()  # NULL is 0 on both channels
    n = kept.numel()
    sd = math.sqrt(n * 0.3 * 0.7)
    assert abs(int(kept.sum()) - 0.3 * n) < 4 * sd
    # seeded: the same generator state gives the same draw, and copies of one image get their own masks
    assert torch.equal(noise(x, torch.Generator().manual_seed(1)), z)
    same = noise(x[:1].expand(20, 3, 8, 8), torch.Generator().manual_seed(2))
    assert len({tuple(m.flatten().tolist()) for m in (same[:, 0] + same[:, 3] > 0.5)}) > 1


def test_sampler_would_catch_the_complementary_probability():
    """The tolerance has power: keeping 1 - keep_prob of the pixels lies far outside it."""
    n, p = 50 * 64, 0.3
    kept = int((torch.rand(n, generator=torch.Generator().manual_seed(0)) < 1 - p).sum())
    assert abs(kept - p * n) > 4 * math.sqrt(n * p * (1 - p))


# ----------------------------------------------------------------------------- (c) certificate by enumeration

D = 4  # pixels of the 1x2x2 inputs whose noise is enumerated exactly
MASKS = torch.tensor(list(itertools.product((False, True), repeat=D)))  # all 2^4 keep masks
INPUTS = torch.tensor(list(itertools.product((0.0, 1.0), repeat=D)))  # all binary 1x2x2 images
KEEP_PROBS = (0.0625, 0.125, 0.25, 0.375, 0.5, 0.75)  # dyadic: exact in floats and in Fraction


def _ones_and_zeros(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Kept pixels of value 1 and of value 0 in ablated binary inputs (B, 2, 2, 2)."""
    return z[:, 0].flatten(1).sum(1), z[:, 1].flatten(1).sum(1)


BASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    # any kept 1 -> class 1: the worst case of the coupling argument (tight at x = 0)
    "or": lambda z: (_ones_and_zeros(z)[0] > 0).long(),
    "majority": lambda z: (_ones_and_zeros(z)[0] > _ones_and_zeros(z)[1]).long(),
    "first-pixel": lambda z: (z[:, 0, 0, 0] > 0.5).long(),  # NULL reads as 0
}


def exact_probabilities(base: Callable[[torch.Tensor], torch.Tensor], keep_prob: float) -> list[list[Fraction]]:
    """P(base(noise(x)) = c) for every binary input x and class c in {0, 1}, summed over all 2^d masks."""
    q = Fraction(keep_prob)
    weights = [q ** int(m.sum()) * (1 - q) ** (D - int(m.sum())) for m in MASKS]
    probs = []
    for x in INPUTS:
        images = x.view(1, 1, 2, 2).expand(len(MASKS), 1, 2, 2)
        labels = base(ablate(images, MASKS)).tolist()
        p1 = sum((w for w, label in zip(weights, labels) if label == 1), Fraction(0))
        probs.append([1 - p1, p1])
    return probs


def violations(radius: Callable[[float, float], float]) -> list[tuple[str, float, int, int]]:
    """Every (base, keep_prob, x, x') where ``radius(p_A, keep_prob)`` certifies x' but the exact
    smoothed classifier does not predict A at x' (p_A(x') <= 1/2 with two classes)."""
    found = []
    for (name, base), keep_prob in itertools.product(BASES.items(), KEEP_PROBS):
        probs = exact_probabilities(base, keep_prob)
        for i, x in enumerate(INPUTS):
            top = int(probs[i][1] > probs[i][0])
            r = radius(float(probs[i][top]), keep_prob)
            assert Fraction(float(probs[i][top])) == probs[i][top]  # the float is exact
            if math.isnan(r):
                continue
            for j, other in enumerate(INPUTS):
                if int((x != other).sum()) <= r and not probs[j][top] > Fraction(1, 2):
                    found.append((name, keep_prob, i, j))
    return found


def test_radius_is_sound_against_exact_enumeration():
    assert violations(lambda p, q: bernoulli_radius(p, D, q)) == []


def test_radius_is_tight_one_more_pixel_is_unsafe():
    """radius + 1 is refuted by enumeration (the OR classifier at x = 0 attains Delta exactly), and so
    is a non-strict ``>= 1/2`` (keep_prob 1/2, where p_A(x') = 1/2 at distance 1 is a tie)."""
    assert violations(lambda p, q: bernoulli_radius(p, D, q) + 1)

    def non_strict(p: float, q: float) -> float:
        ok = [rho for rho in range(D + 1) if p - float(bernoulli_delta(rho, q)) >= 0.5]
        return float(max(ok)) if ok else math.nan

    assert violations(non_strict)
    # the tight case by hand: x = 0 under OR has p_0 = 1; (3/4)^2 > 1/2 >= (3/4)^3, so radius 2, and
    # setting 3 pixels to 1 leaves p_0(x') = (3/4)^3 < 1/2
    assert bernoulli_radius(1.0, D, 0.25) == 2.0
    assert exact_probabilities(BASES["or"], 0.25)[7][0] == Fraction(27, 64)  # x' = (0, 1, 1, 1)


def test_radius_edges_and_certify_from_counts():
    assert math.isnan(bernoulli_radius(0.5, 64, 0.1))  # p_lower <= 1/2 abstains
    assert bernoulli_radius(0.5 + 1e-12, 64, 0.1) == 0.0  # certified, but no pixel may change
    assert bernoulli_radius(1.0, 4, 0.001) == 4.0  # capped at d
    assert bernoulli_radius(1.0, 64, 1.0) == 0.0  # everything kept: any change may show
    # the float search agrees with the closed form rho < log(3/2 - p) / log(1 - keep_prob)
    for p, q in itertools.product(np.linspace(0.51, 0.999, 25), (0.01, 0.05, 0.2)):
        bound = math.log(1.5 - p) / math.log1p(-q)
        assert bernoulli_radius(p, 10_000, q) == math.ceil(bound) - 1
    noise = Bernoulli(0.05)
    counts = np.array([3, 95, 2])
    p_lower, radius = noise.certify(counts, 1, 0.05, (8, 8), "bernoulli")
    assert p_lower == pytest.approx(float(clopper_pearson_lower(95, 100, 0.05)))
    assert radius == bernoulli_radius(p_lower, 64, 0.05) == noise.radius(p_lower, (8, 8)) >= 1
    assert math.isnan(noise.certify(counts, 0, 0.05, (8, 8), "bernoulli")[1])  # top chosen elsewhere: 3 votes


# ----------------------------------------------------------------------------- (d) the command line


def _help(command: str, capsys) -> str:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([command, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_cli_flags_appear_with_the_toy(toy, capsys):
    assert "--keep-prob" in _help("train", capsys)
    assert "--keep-prob" in _help("denoise", capsys)
    train = _help("train", capsys)
    assert "bernoulli" in train[train.index("--noise"):]
    certify = _help("certify", capsys)  # certify reads the noise from the checkpoint: no noise flags
    assert "--keep-prob" not in certify and "bernoulli" in certify  # but --certificate bernoulli


def test_cli_train_certify_report(toy, tiny_npz, tmp_path, capsys):
    data = tiny_npz(tmp_path / "tiny.npz", 7, 64, 16)
    model = tmp_path / "model"
    assert main(["train", "--dataset", data, "--noise", "bernoulli", "--keep-prob", "0.2", "--epochs", "1",
                 "--model", "mnist_cnn", "--device", "cpu", "--quiet", "--out", str(model)]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["noise"] == {"noise": "bernoulli", "keep_prob": 0.2}
    assert config["in_channels"] == 2

    common = ["--checkpoint", str(model), "--max", "4", "--device", "cpu", "--quiet", "--batch-size", "64"]
    fixed, adaptive = tmp_path / "fixed.tsv", tmp_path / "adaptive.tsv"
    assert main(["certify", *common, "--sampling", "fixed", "--n0", "10", "--n", "50",
                 "--certificate", "bernoulli", "--out", str(fixed)]) == 0
    assert main(["certify", *common, "--sampling", "adaptive", "--n0", "10", "--n", "80", "--step", "20",
                 "--out", str(adaptive)]) == 0
    radii = []
    for log in (fixed, adaptive):
        lines = log.read_text().splitlines()
        assert len(lines) == 1 + 4, lines  # header and 4 images
        settings = json.loads(log.with_name(log.name + ".json").read_text())
        assert settings["noise"] == {"noise": "bernoulli", "keep_prob": 0.2}
        header = lines[0].split("\t")
        for row in (dict(zip(header, line.split("\t"))) for line in lines[1:]):
            radius, p_lower = float(row["radius"]), float(row["p_lower"])
            radii.append(radius)
            # the radii are the toy's: its formula applied to the logged bound (NaN: abstained)
            assert (math.isnan(radius) and row["predict"] == "-1") or radius == bernoulli_radius(p_lower, 64, 0.2), row
            if log is fixed:  # fixed sampling: the Clopper-Pearson bound of the logged votes
                assert p_lower == pytest.approx(float(clopper_pearson_lower(int(row["count"]), 50, 0.05)), abs=1e-6)
    assert max(r for r in radii if not math.isnan(r)) >= 1  # keep_prob 0.2: some image certified beyond 0 pixels
    capsys.readouterr()
    assert main(["report", str(fixed), str(adaptive), "--radii", "0,1"]) == 0
    printed = capsys.readouterr().out
    assert "fixed" in printed and "adaptive" in printed, printed


def test_cli_refuses_the_toy_once_unregistered(capsys):
    """Runs after the tests above: the fixture restored the registry, so the toy is gone."""
    assert "bernoulli" not in noise_kinds()
    assert "--keep-prob" not in _help("train", capsys)
    assert "--keep-prob" not in _help("denoise", capsys)
    assert "bernoulli" not in _help("certify", capsys)  # nor its certificate among --certificate's choices
    with pytest.raises(ValueError, match="unknown noise"):
        make_noise("bernoulli", keep_prob=0.3)
    with pytest.raises(SystemExit):  # argparse: invalid choice
        build_parser().parse_args(["train", "--noise", "bernoulli"])
