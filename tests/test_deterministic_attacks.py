"""Attacks on deterministic classifiers (exact-vote oracle, patch attack) and the CLI end to end."""

import csv
import json

import pytest
import torch
from torch import nn

from smoothcert.attacks import (
    DeterministicOracle,
    ModelOracle,
    PatchAttack,
    Pointwise,
    SparseRS,
    l0_pixels,
)
from smoothcert.cli import main
from smoothcert.classifiers.deterministic import DeterministicClassifier
from smoothcert.noises import Bands, Partition
from smoothcert.reports import read_log, summarize
from smoothcert.runner import CERTIFY_COLUMNS


class BrightAny(nn.Module):
    """Class 1 iff some pixel of channel 0 is brighter than 0.5 (a kept pixel, under the multichannel encoding)."""

    def forward(self, z):
        bright = z[:, 0].flatten(1).max(1).values - 0.5
        return torch.stack([-bright, bright], 1) * 10


def test_oracle_votes_equal_the_classifier_with_fewer_forward_passes():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6 * 6, 4))
    for noise, vote in ((Bands("columns", 2), "threshold"), (Partition.create(6, (6, 6), 1), "argmax")):
        classifier = DeterministicClassifier(net, noise, 4, (6, 6), vote=vote, theta=0.25, device="cpu")
        oracle = DeterministicOracle(classifier)
        g = torch.Generator().manual_seed(1)
        x = torch.rand(1, 6, 6, generator=g)
        images = [x]
        for _ in range(12):  # an attack's path: one-pixel trials around the current image, sometimes accepted
            trial = images[-1].clone()
            trial.view(-1)[int(torch.randint(0, 36, (1,), generator=g))] = float(torch.rand(1, generator=g))
            images.append(trial if torch.rand(1, generator=g) < 0.5 else images[-1])
        for image in images:
            assert torch.equal(oracle.scores(image[None])[0], torch.tensor(classifier.votes(image)).float())
        assert oracle.queries == len(images)
        assert oracle.forward_passes < len(images) * classifier.copies


def test_patch_attack_finds_patches_just_beyond_the_certificate_and_none_within():
    """Black 8x8 image, columns s=2, bright-pixel model: 3x3 patches are certified, a 4x4 one flips the vote."""
    classifier = DeterministicClassifier(BrightAny(), Bands("columns", 2), 2, (8, 8), vote="argmax", device="cpu")
    x = torch.zeros(1, 8, 8)
    assert classifier.certify(x).radius == 3
    beyond = PatchAttack(size=4, max_queries=200)(DeterministicOracle(classifier), x, 0, key=(0, 0))
    assert beyond.success and beyond.decision == 1 and 1 <= beyond.l0 <= 16
    assert classifier.predict(beyond.x_adv) == 1
    changed = (beyond.x_adv != x).any(0).nonzero()
    assert (changed.max(0).values - changed.min(0).values <= 3).all()  # inside one 4x4 square
    within = PatchAttack(size=3, max_queries=200)(DeterministicOracle(classifier), x, 0, key=(0, 0))
    assert not within.success and within.l0 == float("inf")


def test_patch_attack_on_an_undefended_model_and_its_validation():
    oracle = ModelOracle(BrightAny(), 2, device="cpu")  # on a raw image, channel 0 is the image itself
    result = PatchAttack(size=2, max_queries=50)(oracle, torch.zeros(1, 6, 6), 0, key=(0, 1))
    assert result.success and 1 <= result.l0 <= 4
    with pytest.raises(ValueError, match="does not fit"):
        PatchAttack(size=7)(oracle, torch.zeros(1, 6, 6), 0)
    with pytest.raises(ValueError, match="p_init"):
        PatchAttack(p_init=0)


@pytest.mark.parametrize("attack", [Pointwise(restarts=2, max_queries=300), SparseRS(max_queries=200)])
def test_l0_attacks_against_partition_voting_never_beat_the_certificate(attack):
    """Black 4x4 image, T=5: radius 2, so any adversarial example changes at least 3 pixels."""
    classifier = DeterministicClassifier(BrightAny(), Partition.create(5, (4, 4), 0), 2, (4, 4), device="cpu")
    x = torch.zeros(1, 4, 4)
    radius = classifier.certify(x).radius
    result = attack(DeterministicOracle(classifier), x, 0, key=(0, 2))
    assert result.success and result.l0 > radius
    assert classifier.predict(result.x_adv) != 0 and l0_pixels(result.x_adv, x) == result.l0


# ---------- command line ----------

@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_npz):
    root = tmp_path_factory.mktemp("determ")
    data = tiny_npz(root / "tiny.npz", 1, 256, 12)
    out = {}
    for name, flags in (("columns", ["--noise", "columns", "--band", "2"]), ("partition", ["--noise", "partition", "--groups", "8"])):
        out[name] = root / name
        assert main(["train", "--dataset", data, "--model", "mnist_cnn", *flags, "--epochs", "2", "--batch-size", "32",
                     "--device", "cpu", "--quiet", "--out", str(out[name])]) == 0
    return {"data": data, **out}


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f, delimiter="\t"))


def test_certify_writes_the_usual_log_with_exact_votes(models, tmp_path):
    config = json.loads((models["partition"] / "config.json").read_text())
    assert config["noise"]["groups"] == 8 and len(config["noise"]["assignment"]) == 64
    for name, copies, extra in (("columns", 8, []), ("columns", 8, ["--patch", "2", "--vote", "argmax"]),
                                ("partition", 8, [])):
        out = tmp_path / f"{name}{len(extra)}.tsv"
        assert main(["certify", "--checkpoint", str(models[name]), "--device", "cpu", "--quiet", "--out", str(out),
                     *extra]) == 0
        rows = _rows(out)
        assert tuple(rows[0]) == CERTIFY_COLUMNS and len(rows) == 13
        for r in rows[1:]:
            assert int(r[2]) >= 0 and int(r[4]) == copies and 0 <= int(r[3]) <= copies and r[5] == "nan"
            assert float(r[6]) >= 0 and float(r[6]).is_integer()
            if extra:
                assert float(r[6]) in (0, 2)
        summary = summarize(read_log(out), (0, 1, 2))
        assert summary["abstained"] == 0 and summary["n"] == 12
        settings = json.loads(out.with_name(out.name + ".json").read_text())
        assert settings["n"] == copies and settings["noise"]["noise"] == name


def test_predict_and_attack_deterministic_checkpoints(models, tmp_path, capsys):
    assert main(["predict", "--checkpoint", str(models["partition"]), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "p.tsv")]) == 0
    assert all(int(r[4]) == 8 for r in _rows(tmp_path / "p.tsv")[1:])
    for name, attack in (("columns", ["--attack", "patch", "--patch", "2"]), ("partition", ["--attack", "sparse-rs"])):
        out = tmp_path / f"{name}-attack.tsv"
        assert main(["attack", "--checkpoint", str(models[name]), *attack, "--max-queries", "30", "--max", "3",
                     "--device", "cpu", "--quiet", "--out", str(out)]) == 0
        assert len(_rows(out)) == 4
        assert json.loads(out.with_name(out.name + ".json").read_text())["target"] == "deterministic"


@pytest.mark.parametrize("args,message", [
    (["certify", "--patch", "2"], "--patch certifies column/block smoothing"),
    (["certify", "--certificate", "cor1"], "certified exactly"),
    (["attack", "--patch", "2"], "--patch belongs to --attack patch"),
])
def test_deterministic_cli_errors(models, tmp_path, capsys, args, message):
    assert main([*args, "--checkpoint", str(models["partition"]), "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "x.tsv")]) == 2
    assert message in capsys.readouterr().err
