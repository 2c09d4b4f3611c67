"""End-to-end: ``smoothcert denoise`` then ``certify --denoiser`` on a tiny clean classifier."""

import csv
import json

import numpy as np
import pytest

from smoothcert.cli import main


@pytest.fixture(scope="module")
def clean(tmp_path_factory, tiny_npz):
    root = tmp_path_factory.mktemp("tiny-denoise")
    data = tiny_npz(root / "tiny.npz", 2, 80, 16)
    model = root / "clean"
    assert main(["train", "--dataset", data, "--model", "mnist_cnn", "--noise", "none", "--epochs", "2",
                 "--batch-size", "16", "--device", "cpu", "--out", str(model), "--quiet"]) == 0
    return {"data": data, "model": str(model)}


def _denoise(clean, out, *extra):
    return main(["denoise", "--classifier", clean["model"], "--epochs", "2", "--batch-size", "16", "--depth", "3",
                 "--width", "8", "--device", "cpu", "--quiet", "--out", str(out), *extra])


def test_denoise_then_certify_the_composition(clean, tmp_path, capsys):
    den = tmp_path / "den"
    assert _denoise(clean, den, "--method", "mse", "--sigma", "0.25") == 0
    config = json.loads((den / "config.json").read_text())
    assert config["noise"] == {"noise": "gaussian", "sigma": 0.25} and config["method"] == "mse"
    out = tmp_path / "c.tsv"
    assert main(["certify", "--checkpoint", clean["model"], "--denoiser", str(den), "--n0", "10", "--n", "100",
                 "--alpha", "0.01", "--device", "cpu", "--quiet", "--out", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0][:7] == ["idx", "label", "predict", "count", "n", "p_lower", "radius"] and len(rows) == 17
    settings = json.loads((tmp_path / "c.tsv.json").read_text())
    assert settings["denoiser"] == str(den.resolve()) and settings["noise"]["noise"] == "gaussian"
    capsys.readouterr()
    # without a denoiser the clean classifier has nothing to certify: the message says what to do
    assert main(["certify", "--checkpoint", clean["model"], "--n", "10", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "x.tsv")]) == 2
    assert "--denoiser" in capsys.readouterr().err


def test_denoise_for_ablation_and_decrop(clean, tmp_path):
    inpaint = tmp_path / "inpaint"
    assert _denoise(clean, inpaint, "--noise", "ablation", "--k", "16") == 0
    assert json.loads((inpaint / "config.json").read_text())["in_channels"] == 2  # multichannel input
    decrop = tmp_path / "decrop"
    assert _denoise(clean, decrop, "--method", "decrop", "--data-fraction", "0.25") == 0
    config = json.loads((decrop / "config.json").read_text())
    assert config["num_images"] == 20 and config["decrop"]["eps"] == pytest.approx(8 / 255)
    assert main(["predict", "--checkpoint", clean["model"], "--denoiser", str(decrop), "--n", "50", "--max", "3",
                 "--device", "cpu", "--quiet", "--out", str(tmp_path / "p.tsv")]) == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--data-fraction", "0"], "data_fraction"),
    (["--method", "decrop", "--epochs", "1"], "at least 2 epochs"),
    *((["--noise", noise], f"ablation or gaussian, not {noise}") for noise in ("none", "lee", "columns", "blocks",
                                                                            "partition")),
])
def test_denoise_errors(clean, tmp_path, capsys, args, message):
    assert _denoise(clean, tmp_path / "bad", *args) == 2
    assert message in capsys.readouterr().err


def test_denoise_checks_the_dataset_against_the_classifier_as_certify_does(clean, tmp_path, capsys):
    colour = np.zeros((4, 8, 8, 3), np.float32)  # the classifier reads greyscale images
    np.savez(tmp_path / "colour.npz", x_train=colour, y_train=np.array([0, 1, 0, 1]), x_test=colour,
             y_test=np.array([0, 1, 0, 1]))
    assert _denoise(clean, tmp_path / "den", "--dataset", f"npz:{tmp_path / 'colour.npz'}") == 2
    err = capsys.readouterr().err
    assert "--dataset npz:" in err and "has 3-channel images" in err and "the model takes 1" in err
    assert not (tmp_path / "den").exists()  # refused before any training


def test_reproduce_denoised_refuses_epochs(capsys):
    assert main(["reproduce", "denoised", "--epochs", "3"]) == 2
    assert "drop --epochs" in capsys.readouterr().err
