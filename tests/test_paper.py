import pytest

from smoothcert.reproductions import TABLE1, TABLE8, demo, reproduce

SMALL = dict(epochs=1, max_images=3, n0=10, n=50, alpha=0.05, device="cpu", progress=False)


def test_paper_tables_transcribed():
    assert TABLE1[45] == (96.72, 0.45, 8) == TABLE8["multichannel"]
    assert TABLE1[5][2] is None  # N/A: accuracy below 50%
    assert max(TABLE1, key=lambda k: (TABLE1[k][2] or -1, TABLE1[k][0])) == 45  # the paper's choice
    assert TABLE8["mean"] == (96.27, 0.43, 7)


def test_reproduce_table8_prints_ours_beside_the_paper(tmp_path, capsys):
    text = reproduce("table8", out=tmp_path, **SMALL)
    assert "96.72% (0.45%)" in text and "96.27% (0.43%)" in text
    rows = [line for line in text.splitlines() if line.startswith("| multichannel") or line.startswith("| mean")]
    assert len(rows) == 2 and all(line.count("|") == 7 for line in rows)
    assert (tmp_path / "table8.md").read_text() == text and (tmp_path / "table8.png").stat().st_size > 0
    for enc in ("multichannel", "mean"):
        for log in ("certify.tsv", "predict.tsv"):  # PREDICT gives the accuracy column, CERTIFY the median
            assert len((tmp_path / enc / log).read_text().splitlines()) == 1 + 3
    # a second call finds the finished models and logs and does not redo them
    stamp = (tmp_path / "mean" / "model" / "model.safetensors").stat().st_mtime_ns
    assert reproduce("table8", out=tmp_path, **SMALL) == text
    assert (tmp_path / "mean" / "model" / "model.safetensors").stat().st_mtime_ns == stamp


def test_reproduce_rejects_unknown_table(tmp_path):
    with pytest.raises(ValueError, match="unknown table"):
        reproduce("table3", out=tmp_path)


def test_demo_prints_adaptive_sampling_beside_fixed(tmp_path):
    text = demo(out=tmp_path, **SMALL)
    assert "| 45 |" in text  # the Table-1 row
    sampling = (tmp_path / "sampling.md").read_text()
    assert sampling in text
    for run in ("certify, fixed", "certify, adaptive", "predict, fixed", "predict, adaptive"):
        assert f"| {run} |" in sampling
    assert "samples/image (mean/median)" in sampling
    assert "1,010 / 1,010" not in sampling  # n0 = 10 + n = 50 for the fixed run, as the settings file says
    assert "60 / 60" in sampling
    for mode in ("certify", "predict"):
        assert len((tmp_path / "k45" / f"{mode}-adaptive.tsv").read_text().splitlines()) == 1 + 3
