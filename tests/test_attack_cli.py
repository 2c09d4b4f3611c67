"""End-to-end tests of ``smoothcert attack``, ``substitute`` and the Table-2 report on a tiny dataset."""

import csv
import json

import numpy as np
import pytest
import torch

from smoothcert.attacks import Pointwise, SmoothedOracle, l0_pixels
from smoothcert.certificates.sequential import Adaptive
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.cli import main
from smoothcert.data import load_dataset
from smoothcert.runner import ATTACK_COLUMNS, read_adversarial, run_attack


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_npz):
    """8x8 'images' whose class is the brighter half; an undefended model and a k=16 ablation model."""
    root = tmp_path_factory.mktemp("tiny-attack")
    data = tiny_npz(root / "tiny.npz", 1, 256, 12)
    models = {}
    for name, noise in (("clean", ["--noise", "none"]), ("ablation", ["--k", "16"])):
        models[name] = str(root / name)
        assert main(["train", "--dataset", data, "--model", "mnist_cnn", *noise, "--epochs", "3",
                     "--batch-size", "32", "--device", "cpu", "--out", models[name], "--quiet"]) == 0
    x_test = torch.from_numpy(np.load(root / "tiny.npz")["x_test"])[:, None]
    return {"data": data, "x": x_test, **models}


def _attack(model, out, *extra):
    return main(["attack", "--checkpoint", model, "--device", "cpu", "--quiet", "--out", str(out), *extra])


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f, delimiter="\t"))


def test_attack_log_and_examples_agree(tiny, tmp_path):
    out = tmp_path / "a.tsv"
    assert _attack(tiny["clean"], out, "--restarts", "2", "--start-steps", "50", "--max-queries", "300") == 0
    rows = _rows(out)
    assert tuple(rows[0]) == ATTACK_COLUMNS and len(rows) == 13
    saved = read_adversarial(out)
    assert saved["idx"].tolist() == [int(r[0]) for r in rows[1:]]
    for row, x_adv, ok, decision in zip(rows[1:], saved["x_adv"], saved["success"], saved["decision"], strict=True):
        clean = tiny["x"][int(row[0])]
        assert bool(int(row[4])) == ok
        if ok:
            assert float(row[2]) == l0_pixels(torch.from_numpy(x_adv), clean) and decision != int(row[1])
        else:
            assert row[2] == "inf" and np.array_equal(x_adv, clean.numpy())
        assert 0 <= x_adv.min() and x_adv.max() <= 1
    assert json.loads((tmp_path / "a.tsv.json").read_text())["target"] == "model"


def test_attack_resumes_without_losing_or_duplicating_rows(tiny, tmp_path):
    whole, part = tmp_path / "whole.tsv", tmp_path / "part.tsv"
    common = ["--attack", "sparse-rs", "--max-queries", "50", "--start-budget", "4", "--skip", "2"]
    assert _attack(tiny["clean"], whole, *common) == 0
    assert _attack(tiny["clean"], part, *common, "--max", "3") == 0
    text = part.read_text()
    part.write_text(text[: len(text) - 4])  # interrupted mid-row: the npz already has that image
    assert _attack(tiny["clean"], part, *common) == 0
    assert [r[:-1] for r in _rows(part)] == [r[:-1] for r in _rows(whole)]
    a, b = read_adversarial(part), read_adversarial(whole)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_smoothed_attack_with_sequential_predict(tiny, tmp_path):
    """The log records PREDICT's settled options, as certify and predict logs do, and resumes with them."""
    out = tmp_path / "a.tsv"
    common = ["--sampling", "adaptive", "--restarts", "1", "--start-steps", "30", "--kicks", "1", "--n", "200"]
    assert _attack(tiny["ablation"], out, *common, "--max", "1") == 0
    settings = json.loads((tmp_path / "a.tsv.json").read_text())
    assert settings["sampling"] == {"scheme": "adaptive", **Adaptive().settled(predict=True).record()}
    assert settings["kicks"] == 1
    assert _attack(tiny["ablation"], out, *common, "--max", "2") == 0
    assert len(_rows(out)) == 3 and json.loads((tmp_path / "a.tsv.json").read_text()) == settings


def test_an_attack_log_that_recorded_bare_adaptive_resumes_with_its_schedule(tiny, tmp_path):
    """Attack logs recorded ``"sampling": "adaptive"`` before they recorded PREDICT's options; they
    ran the looks bound's schedule (first look 100, doubling). Oracles settled against that record
    go on with it, rows as an uninterrupted run's; oracles at today's defaults are refused."""
    smoothed = SmoothedClassifier.from_checkpoint(tiny["ablation"], batch_size=64, device="cpu")
    data = load_dataset(tiny["data"], "test")

    def run(out, options, images):
        def make_oracle(idx):
            return SmoothedOracle(smoothed, n=200, key=(0, idx), sampling=options)
        settings = {"target": "smoothed", **make_oracle(0).settings()}
        return run_attack(make_oracle, Pointwise(restarts=1, steps=30, kicks=1), data, out,
                          indices=list(range(images)), settings=settings, progress=False)

    legacy = Adaptive().settled("adaptive", predict=True)
    old, whole = tmp_path / "old.tsv", tmp_path / "whole.tsv"
    run(old, legacy, 2)
    run(whole, legacy, 3)
    recorded = old.with_name("old.tsv.json")
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "sampling": "adaptive"}))  # as written then
    with pytest.raises(ValueError, match=r"different settings \(sampling\)"):
        run(old, Adaptive(), 3)
    resumed = Adaptive().settled(json.loads(recorded.read_text())["sampling"], predict=True)
    assert (resumed.step, resumed.growth) == (100, 2.0)
    run(old, resumed, 3)
    assert [r[:-1] for r in _rows(old)] == [r[:-1] for r in _rows(whole)]


def test_the_attack_command_resumes_a_bare_adaptive_log_with_its_schedule(tiny, tmp_path):
    """The same through ``smoothcert attack``: the job reads the log it resumes before it builds the
    oracle, so an old log goes on with the looks bound's schedule, rows as an uninterrupted run's."""
    from smoothcert.attacks import make_attack
    from smoothcert.runner.jobs import attack

    pointwise = make_attack("pointwise", restarts=1, start_steps=30, kicks=1)
    old, whole = tmp_path / "old.tsv", tmp_path / "whole.tsv"
    for out, images in ((old, 2), (whole, 3)):  # the schedule old logs ran: the looks bound's PREDICT
        attack(tiny["ablation"], out, pointwise, max_images=images, n=200, sampling=Adaptive(bound="looks"),
               device="cpu", progress=False)
    recorded = old.with_name("old.tsv.json")
    assert json.loads(recorded.read_text())["sampling"]["step"] == 100
    recorded.write_text(json.dumps({**json.loads(recorded.read_text()), "sampling": "adaptive"}))  # as written then
    assert _attack(tiny["ablation"], old, "--restarts", "1", "--start-steps", "30", "--kicks", "1", "--n", "200",
                   "--sampling", "adaptive", "--max", "3") == 0
    assert [r[:-1] for r in _rows(old)] == [r[:-1] for r in _rows(whole)]


def test_smoothed_attack_certify_and_table2(tiny, tmp_path, capsys):
    attack, cert = tmp_path / "s.tsv", tmp_path / "c.tsv"
    assert _attack(tiny["ablation"], attack, "--restarts", "1", "--start-steps", "30", "--kicks", "2", "--n", "100",
                   "--max", "4") == 0
    settings = json.loads((tmp_path / "s.tsv.json").read_text())
    assert settings["target"] == "smoothed" and settings["n"] == 100 and settings["fixed"] is True
    assert main(["certify", "--checkpoint", tiny["ablation"], "--n0", "20", "--n", "200", "--max", "4",
                 "--device", "cpu", "--quiet", "--out", str(cert)]) == 0
    undefended = tmp_path / "u.tsv"
    assert _attack(tiny["clean"], undefended, "--restarts", "1", "--start-steps", "30", "--max", "4") == 0
    capsys.readouterr()
    assert main(["report", str(cert), str(attack), str(undefended), "--radii", "0,1"]) == 0
    out = capsys.readouterr().out
    assert "certified median" in out and "inside certified radius" in out
    smoothed_row = next(line for line in out.splitlines() if line.startswith("s "))
    assert "smoothed" in smoothed_row and " of " in smoothed_row
    assert next(line for line in out.splitlines() if line.startswith("u ")).split()[3] == "N/A"


def test_substitute_end_to_end(tiny, tmp_path, capsys):
    for i, model in enumerate((tiny["clean"], tiny["ablation"])):
        out = tmp_path / f"sub{i}.json"  # an existing result is not replaced without --overwrite
        samples = ["--n", "50"] if model == tiny["ablation"] else []  # the undefended model samples nothing
        assert main(["substitute", "--checkpoint", model, "--seed-size", "6", "--rounds", "2", "--epochs", "2",
                     *samples, "--device", "cpu", "--quiet", "--out", str(out)]) == 0
        result = json.loads(out.read_text())
        assert [h["size"] for h in result["history"]] == [6, 12] and result["heldout_size"] == 6
        assert 0 <= result["transfer_rate"] <= 1
    assert result["abstain"] is True  # the smoothed oracle may abstain: the substitute sees it as a label
    assert "transfer rate" in capsys.readouterr().out


@pytest.mark.parametrize(("args", "message"), [
    (["--attack", "sparse-rs", "--restarts", "2"], "--restarts belongs to --attack pointwise"),
    (["--attack", "sparse-rs", "--search-steps", "0"], "--search-steps belongs to --attack pointwise"),
    (["--search-steps", "-1"], "--search-steps must be a non-negative integer"),
    (["--attack", "sparse-rs", "--kicks", "0"], "--kicks belongs to --attack pointwise"),
    (["--kicks", "-1"], "--kicks must be a non-negative integer"),
    (["--budget", "3"], "--budget belongs to --attack sparse-rs"),
    (["--restarts", "0"], "restarts must be a positive integer"),
    (["--alpha", "2"], "alpha"),
])
def test_attack_errors(tiny, tmp_path, capsys, args, message):
    assert _attack(tiny["ablation"], tmp_path / "x.tsv", *args) == 2
    assert message in capsys.readouterr().err
