"""The batch calls of SmoothedClassifier.certify / predict pack like the dataset runner and give its rows exactly."""

import pytest
import torch

from smoothcert.classifiers import Certificate, SmoothedClassifier
from smoothcert.cli import main
from smoothcert.data import load_dataset


def _rows(path):
    header, *lines = path.read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


@pytest.mark.parametrize("sampling, sizes, speed", [
    ("fixed", ["--n0", "40", "--n", "500"], {}),  # the speed defaults of both: measured batch size, channels-last
    ("adaptive", ["--n0", "40", "--n", "3000"], {"batch_size": 200, "compile": "off", "channels_last": "off"}),
])
def test_packed_certify_and_predict_give_the_runners_rows(tiny_checkpoint, tmp_path, sampling, sizes, speed):
    data, model = tiny_checkpoint
    flags = [f"--{name.replace('_', '-')}={value}" for name, value in speed.items()]
    common = ["--checkpoint", str(model), "--dataset", data, "--sampling", sampling, "--skip", "2", "--seed", "3",
              "--device", "cpu", "--quiet", *flags]
    assert main(["certify", *common, *sizes, "--out", str(tmp_path / "c.tsv")]) == 0
    assert main(["predict", *common, *sizes[2:], "--out", str(tmp_path / "p.tsv")]) == 0
    certified, predicted = _rows(tmp_path / "c.tsv"), _rows(tmp_path / "p.tsv")
    indices = [int(row["idx"]) for row in certified]
    assert indices == list(range(0, 24, 2))

    smoothed = SmoothedClassifier.from_checkpoint(model, device="cpu", **speed)
    images = load_dataset(data, "test").x[indices]
    n0, n = int(sizes[1]), int(sizes[3])
    certs = smoothed.certify(images, n0, n, 0.05, sampling=sampling, seed=3, indices=indices)
    assert all(isinstance(cert, Certificate) for cert in certs) and len(certs) == len(indices)
    for row, cert in zip(certified, certs, strict=True):
        assert (row["predict"], row["count"], row["n"], row["p_lower"], row["radius"]) == (
            str(cert.predict), str(cert.count), str(cert.n), f"{cert.p_lower:.6g}", f"{cert.radius:.6g}")
    decisions = smoothed.predict(list(images), n, 0.05, sampling=sampling, seed=3, indices=indices)
    assert [int(row["predict"]) for row in predicted] == decisions
    # one image keeps returning one result, and is the same image of the batch with its stream
    assert smoothed.certify(images[3], n0, n, 0.05, sampling=sampling, seed=3, indices=[indices[3]]) == certs[3]
    assert smoothed.predict(images[3], n, 0.05, sampling=sampling, seed=3, indices=[indices[3]]) == decisions[3]


def test_batch_arguments_are_checked(tiny_checkpoint):
    _, model = tiny_checkpoint
    smoothed = SmoothedClassifier.from_checkpoint(model, device="cpu")
    images = torch.rand(3, 1, 8, 8)
    with pytest.raises(ValueError, match="pass seed="):
        smoothed.certify(images, 10, 10, 0.05, torch.Generator())
    with pytest.raises(ValueError, match="indices has 2 entries for 3 images"):
        smoothed.predict(images, 10, 0.05, indices=[0, 1])
    assert smoothed.certify(images[:0], 10, 10, 0.05) == []
    g = torch.Generator().manual_seed(0)
    assert isinstance(smoothed.certify(images[0], 10, 20, 0.05, g), Certificate)  # the single-image API as before
