"""Checkpoints and logs written by smoothcert 0.1.0 (commit 90a9075) still load, resume and report.

``tests/fixtures/v0_1/`` was written once by ``tests/fixtures/make_old_format.py`` (see its docstring
for what each file is and the few edits made by hand) and is frozen: never regenerate it to make
this file pass. A failure here means files users already have would stop loading, resuming or
reporting.

Each test works on a copy in ``tmp_path`` and runs from inside it, with the command lines the
fixtures were written with (``manifest.json``), so relative paths (``--checkpoint ablation``,
``npz:mnist7.npz``) resolve inside the copy. A log's settings record the checkpoint as the
absolute path it had when the fixture was written, and resuming compares the settings exactly.
So the copy's settings are first pointed at the copy's checkpoints, written the way the CLI
records them (``str(Path(checkpoint).resolve())``).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from smoothcert import (
    DeterministicClassifier,
    SmoothedClassifier,
    load_checkpoint,
    load_dataset,
    make_noise,
    read_adversarial,
    read_attack_log,
    read_log,
    summarize,
)
from smoothcert.checkpoint import weights_sha256
from smoothcert.cli import main
from smoothcert.runner.log import differing

FIXTURES = Path(__file__).parent / "fixtures" / "v0_1"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
REFERENCE = MANIFEST["reference"]
LOGS = MANIFEST["logs"]


def _flag(argv, name):
    return argv[argv.index(name) + 1] if name in argv else None


def _repoint(settings_file: Path, key: str, folder: str) -> None:
    """Point ``key`` of a log's settings at the copy's ``folder``, as the CLI would have recorded it."""
    settings = json.loads(settings_file.read_text())
    recorded = Path(settings[key])
    assert recorded.is_absolute() and recorded.name == folder, (settings_file, key, settings[key])
    settings[key] = str(Path(folder).resolve())
    settings_file.write_text(json.dumps(settings, indent=2, sort_keys=True))


@pytest.fixture
def old(tmp_path, monkeypatch):
    """A copy of the fixtures, the current directory, with every log's settings pointed at the copy."""
    root = tmp_path / "v0_1"
    shutil.copytree(FIXTURES, root)
    monkeypatch.chdir(root)
    for argv in LOGS.values():
        settings = Path(_flag(argv, "--out") + ".json")
        for flag, key in (("--checkpoint", "checkpoint"), ("--denoiser", "denoiser")):
            if _flag(argv, flag) is not None:
                _repoint(settings, key, _flag(argv, flag))
    return root


def _rows(path):
    return [line.split("\t") for line in Path(path).read_text().splitlines()]


def _digit(name):
    ref = REFERENCE[name]
    return load_dataset(ref["dataset"], "test").x[ref["digit"]]


@pytest.mark.parametrize("name, noise", [
    ("ablation", make_noise("ablation", k=45, encoding="multichannel")),
    ("gaussian", make_noise("gaussian", sigma=0.25)),
])
def test_smoothed_checkpoint_loads_with_its_noise_and_votes(old, name, noise):
    smoothed = SmoothedClassifier.from_checkpoint(name, device="cpu")
    _, config = load_checkpoint(name)
    assert smoothed.noise == noise and config["noise"] == noise.config()
    assert smoothed.num_classes == config["num_classes"] == 10
    x, ref = _digit(name), REFERENCE[name]
    votes = smoothed.sample(x, ref["vote_samples"], torch.Generator().manual_seed(ref["vote_seed"]))
    assert votes.tolist() == ref["votes"]
    with torch.no_grad():
        logits = smoothed.base(smoothed.noise(x[None], torch.Generator().manual_seed(ref["logits_seed"])))[0]
    np.testing.assert_allclose(logits.numpy(), ref["logits"], rtol=0, atol=1e-5)
    assert smoothed.predict(x, 50, 0.05, torch.Generator().manual_seed(0)) in range(-1, 10)


def test_clean_checkpoint_loads(old):
    model, config = load_checkpoint("clean")
    assert config["noise"] == make_noise("none").config() == {"noise": "none"}
    with torch.no_grad():
        logits = model(_digit("clean")[None])[0]
    np.testing.assert_allclose(logits.numpy(), REFERENCE["clean"]["logits"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name, noise", [
    ("columns", make_noise("columns", band=4)),
    ("partition", make_noise("partition", groups=4, image_size=(28, 28), seed=0)),
])
def test_deterministic_checkpoint_loads_with_its_noise_and_votes(old, name, noise):
    _, config = load_checkpoint(name)
    assert config["noise"] == json.loads(json.dumps(noise.config()))
    x, ref = _digit(name), REFERENCE[name]
    for vote in ("threshold", "argmax"):
        det = DeterministicClassifier.from_checkpoint(name, vote=vote, device="cpu")
        assert det.noise == noise and det.copies == ref["copies"]
        assert det.votes(x).tolist() == ref[f"votes_{vote}"]
        assert det.predict(x) in range(10)


@pytest.mark.parametrize("cut", ["after the second row", "inside the third row"])
def test_interrupted_certify_log_resumes_to_the_uninterrupted_rows(old, cut):
    log = Path(_flag(LOGS["certify-interrupted.tsv"], "--out"))
    reference = _rows(_flag(LOGS["certify.tsv"], "--out"))
    before = log.read_text()
    assert len(before.splitlines()) == 3  # header and two rows
    if cut == "inside the third row":  # the process died while writing it
        log.write_text(before + "\t".join(reference[3])[:12])
    assert main(LOGS["certify-interrupted.tsv"]) == 0
    after = log.read_text()
    assert after.startswith(before)  # the two finished rows are kept byte for byte
    rows = _rows(log)
    assert len(rows) == 4 and rows[:3] == _rows(FIXTURES / "logs" / "certify-interrupted.tsv")
    assert rows[3][:-1] == reference[3][:-1]  # same seed, same row (up to the time column)
    assert read_log(log).idx.tolist() == [0, 3, 6]


@pytest.mark.parametrize("name", ["certify.tsv", "certify-adaptive.tsv", "predict.tsv", "columns-certify.tsv",
                                  "pointwise.tsv"])
def test_finished_log_resumes_as_a_no_op(old, name):
    """Re-running a finished log's command is accepted (same settings) and adds nothing."""
    log = Path(_flag(LOGS[name], "--out"))
    files = [log, log.with_suffix(".npz")] if name == "pointwise.tsv" else [log]
    before = [f.read_bytes() for f in files]
    assert main(LOGS[name]) == 0
    assert [f.read_bytes() for f in files] == before


def test_report_prints_tables_for_the_old_logs(old, capsys):
    names = ["certify.tsv", "certify-adaptive.tsv", "predict.tsv", "columns-certify.tsv", "pointwise.tsv"]
    assert main(["report", *(_flag(LOGS[n], "--out") for n in names), "--radii", "0,4,8"]) == 0
    lines = capsys.readouterr().out.splitlines()

    def line(run):
        return next(text for text in lines if text.startswith(run + " "))

    assert line("certify").split() == ["certify", "3", "33.33%", "(0.00%)", "N/A", "2.667", "33.33%", "33.33%",
                                       "33.33%", line("certify").split()[9], "120", "/", "120"]
    assert line("certify-adaptive").split()[:8] == ["certify-adaptive", "3", "33.33%", "(0.00%)", "N/A", "3.000",
                                                    "33.33%", "33.33%"]
    assert line("predict").split()[:5] == ["predict", "3", "33.33%", "(0.00%)", "-"]
    assert line("columns-certify").split()[:8] == ["columns-certify", "3", "33.33%", "(0.00%)", "N/A", "1.000",
                                                   "33.33%", "0.00%"]
    attack_row = line("pointwise").split()  # run, target, images, certified median, success, median L0, ...
    assert attack_row[:3] == ["pointwise", "smoothed", "2"] and attack_row[4:6] == ["50.0%", "0"]

    summary = summarize(read_log("logs/certify.tsv"), radii=[0, 4, 8, 9])
    assert summary["n"] == 3 and summary["accuracy"] == pytest.approx(1 / 3) and summary["abstained"] == 0
    assert summary["certified_accuracy"] == pytest.approx({0.0: 1 / 3, 4.0: 1 / 3, 8.0: 1 / 3, 9.0: 0.0})
    assert summary["samples_per_image"] == (120.0, 120.0)  # n0 from the settings file + n
    predict = read_log("logs/predict.tsv")
    assert predict.radius is None and predict.predict.tolist() == [2, 2, 2]
    attack = read_attack_log("logs/pointwise.tsv")
    assert attack.target == "smoothed" and attack.checkpoint == str(Path("ablation").resolve())
    assert attack.idx.tolist() == [0, 6] and attack.l0.tolist() == [0.0, np.inf]
    assert attack.queries.tolist() == [2, 47] and attack.success.tolist() == [True, False]
    examples = read_adversarial("logs/pointwise.tsv")
    assert examples["idx"].tolist() == [0, 6] and examples["x_adv"].shape == (2, 1, 28, 28)
    assert examples["success"].tolist() == [True, False]


def test_denoiser_certifies_with_its_classifier(old):
    argv = list(LOGS["denoised-certify.tsv"])
    fixture_log = Path(_flag(argv, "--out"))
    argv[argv.index("--out") + 1] = "logs/denoised-again.tsv"
    assert main(argv) == 0
    assert [row[:-1] for row in _rows("logs/denoised-again.tsv")] == [row[:-1] for row in _rows(fixture_log)]
    # a new run records the settings the old log has (else old logs would not resume), and the identities
    new = json.loads(Path("logs/denoised-again.tsv.json").read_text())
    assert differing(json.loads(Path(str(fixture_log) + ".json").read_text()), new) == []
    assert new["checkpoint"] == "clean" and new["weights"] == weights_sha256("clean")
    assert new["denoiser"] == "denoiser" and new["denoiser_weights"] == weights_sha256("denoiser")


def test_training_checkpoint_is_described_and_not_overwritten(old, capsys):
    assert (old / "ablation" / "optimizer.safetensors").is_file()
    assert main(MANIFEST["train"]["ablation"]) == 2  # the same command without --resume
    assert "ablation already holds a classifier checkpoint at epoch 1 of 2" in capsys.readouterr().err


@pytest.mark.slow
def test_training_checkpoint_resumes_for_one_more_epoch(old):
    before, config = load_checkpoint("ablation")
    assert config["epoch"] == 1 and config["recipe"]["epochs"] == 2
    argv = MANIFEST["train"]["ablation"]
    assert _flag(argv, "--epochs") == "2"
    assert main([*argv, "--resume"]) == 0
    after, resumed = load_checkpoint("ablation")
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    assert resumed["history"][0] == config["history"][0]
    assert 0 <= resumed["history"][1]["heldout_acc"] <= 1
    changed = [k for k, v in before.state_dict().items() if not torch.equal(v, after.state_dict()[k])]
    assert changed  # the second epoch trained the loaded weights
