"""``smoothcert reproduce patch`` and ``reproduce partition`` at a tiny scale (8x8 images, one epoch)."""

import pytest

from smoothcert.cli import main
from smoothcert.reproductions import reproduce_partition, reproduce_patch


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_npz):
    root = tmp_path_factory.mktemp("reproduce")
    data = tiny_npz(root / "tiny.npz", 2, 128, 3)
    ablation = root / "ablation"
    assert main(["train", "--dataset", data, "--model", "mnist_cnn", "--k", "16", "--epochs", "1", "--batch-size", "32",
                 "--device", "cpu", "--quiet", "--out", str(ablation)]) == 0
    small = {"dataset": data, "model": "mnist_cnn", "epochs": 1, "max_images": 3, "device": "cpu", "progress": False}
    return {"small": small, "ablation": ablation}


def test_reproduce_patch_prints_ours_beside_the_paper(tiny, tmp_path):
    text = reproduce_patch(out=tmp_path, band=2, patch=3, **tiny["small"])
    assert "columns s=2, threshold vote (theta 0.2)" in text and "columns s=2, argmax vote" in text
    assert "| paper, CIFAR-10: column smoothing s=4 | 83.8 | 57.6 |" in text
    ours = [line.split("|") for line in text.splitlines() if line.startswith("| columns")]
    assert len(ours) == 2 and all(cells[4].strip() == "8" for cells in ours)  # 8 bands = forward passes
    assert (tmp_path / "patch.md").read_text() == text and (tmp_path / "patch.png").stat().st_size > 0
    assert len((tmp_path / "columns-s2" / "certify-argmax.tsv").read_text().splitlines()) == 1 + 3
    assert reproduce_patch(out=tmp_path, band=2, patch=3, **tiny["small"]) == text  # models and logs are reused


def test_reproduce_partition_beside_randomized_ablation(tiny, tmp_path, capsys):
    text = reproduce_partition(out=tmp_path, groups=(4, 9), classifier=tiny["ablation"], n0=10, n=50, **tiny["small"])
    rows = {line.split("|")[1].strip(): line.split("|") for line in text.splitlines() if line.startswith("| ")}
    assert rows["partition T=4"][-3].strip() == "4" and rows["partition T=9"][-3].strip() == "9"
    assert rows["randomized ablation k=16"][-3].strip() == "60"  # n0 + n forward passes
    assert len(rows["partition T=4"]) == 2 + 3 + 12 + 2  # name, accuracy, median, r=0..11, passes, seconds
    assert "median certified L0 radius 12 (FPA) vs 10" in text
    with pytest.raises(ValueError, match="pass the randomized ablation checkpoint"):
        reproduce_partition(out=tmp_path, groups=(4,), **tiny["small"])
    assert main(["reproduce", "patch", "--n", "5", "--out", str(tmp_path)]) == 2
    assert "--n: reproduce patch does not read it" in capsys.readouterr().err
