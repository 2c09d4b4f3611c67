from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from smoothcert.reports import (
    average_certified_radius,
    certified_accuracy,
    format_table,
    median_certified_robustness,
    plot_ablated_samples,
    plot_certified_accuracy,
    plot_delta,
    read_log,
    summarize,
)
from smoothcert.reports.figures import CURVE_FIGSIZE, DPI, NULL_COLOUR, PANEL_SIZE

CERTIFY_HEADER = "idx\tlabel\tpredict\tcount\tn\tp_lower\tradius\tcorrect\ttime"
PREDICT_HEADER = "idx\tlabel\tpredict\tcount\tn\tcorrect\ttime"


def random_run(rng: np.random.Generator, n: int, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Radii (NaN = abstain) and correctness flags with all three outcomes represented."""
    outcome = rng.choice(3, size=n, p=[0.2, 0.1, 0.7])  # 0 wrong, 1 abstain, 2 correct
    radius = rng.integers(0, 12, size=n).astype(float) if integer else rng.uniform(0, 3, size=n)
    radius[outcome == 1] = np.nan
    return radius, outcome == 2


def brute_accuracy(radius, correct, r) -> float:
    return sum(1 for rad, ok in zip(radius, correct) if ok and not math.isnan(rad) and rad >= r) / len(radius)


def robustness_values(radius, correct) -> list[float]:
    return [rad if ok and not math.isnan(rad) else -math.inf for rad, ok in zip(radius, correct)]


def write_certify_log(path: Path, rows: list[tuple[int, int, int, float]]) -> Path:
    """rows: (idx, label, predict, radius); the other columns are filled consistently."""
    lines = [CERTIFY_HEADER]
    for i, (idx, label, predict, radius) in enumerate(rows):
        lines.append(f"{idx}\t{label}\t{predict}\t900\t1000\t0.87\t{radius}\t{int(predict == label)}\t{0.5 + i}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- metrics -------------------------------------------------------------------------------------

@pytest.mark.parametrize("integer", [True, False])
def test_certified_accuracy_matches_brute_force(integer: bool) -> None:
    rng = np.random.default_rng(0)
    radius, correct = random_run(rng, 200, integer)
    rs = np.array([0.0, 0.5, 1.0, 2.0, 2.7, 5.0, 11.0, 12.0])
    got = certified_accuracy(radius, correct, rs)
    assert got.shape == rs.shape
    np.testing.assert_allclose(got, [brute_accuracy(radius, correct, r) for r in rs])
    for r in rs:
        scalar = certified_accuracy(radius, correct, float(r))
        assert isinstance(scalar, float)
        assert scalar == pytest.approx(brute_accuracy(radius, correct, r))


def test_abstain_never_counts_even_if_flagged_correct() -> None:
    radius = np.array([np.nan, np.nan, 3.0, 0.0])
    correct = np.array([1, 1, 1, 0])
    assert certified_accuracy(radius, correct, 0.0) == pytest.approx(0.25)
    assert average_certified_radius(radius, correct) == pytest.approx(3.0 / 4)


def test_median_paper_example() -> None:
    # Results section: {N/A, N/A, 1, 2, 3} has median certified robustness 1, not 2.
    radius = np.array([4.0, np.nan, 1.0, 2.0, 3.0])
    correct = np.array([0, 0, 1, 1, 1], dtype=bool)
    assert median_certified_robustness(radius, correct) == 1.0


def test_median_equals_numpy_median_for_odd_counts() -> None:
    rng = np.random.default_rng(1)
    for n in (1, 3, 7, 51, 301):
        radius, correct = random_run(rng, n, integer=True)
        expected = float(np.median(robustness_values(radius, correct)))
        assert median_certified_robustness(radius, correct) == expected


def test_median_is_paper_definition_by_integer_scan() -> None:
    """Maximum integer rho with certified accuracy >= 50%, scanned by brute force (odd and even n)."""
    rng = np.random.default_rng(2)
    for n in (2, 4, 10, 11, 60, 99, 100):
        for _ in range(5):
            radius, correct = random_run(rng, n, integer=True)
            reached = [rho for rho in range(0, 13) if 2 * brute_accuracy(radius, correct, rho) >= 1]
            expected = max(reached) if reached else -math.inf
            assert median_certified_robustness(radius, correct) == expected
            # For even n that is the upper middle value, which np.median would average away.
            assert expected == sorted(robustness_values(radius, correct))[n // 2]


def test_median_even_count_differs_from_mean_of_middle() -> None:
    radius = np.array([1.0, 2.0, 3.0, 4.0])
    correct = np.ones(4, dtype=bool)
    assert np.median(radius) == 2.5
    assert median_certified_robustness(radius, correct) == 3.0  # accuracy at 3 is exactly 0.5
    # Half the images N/A: np.median gives -inf, the definition still certifies the rest.
    radius = np.array([np.nan, 5.0, 1.0, 2.0])
    correct = np.array([0, 0, 1, 1])
    assert median_certified_robustness(radius, correct) == 1.0


def test_median_fractional_radii_by_candidate_scan() -> None:
    rng = np.random.default_rng(3)
    for n in (5, 8, 40):
        radius, correct = random_run(rng, n, integer=False)
        values = robustness_values(radius, correct)
        reached = [v for v in values if math.isfinite(v) and 2 * brute_accuracy(radius, correct, v) >= 1]
        expected = max(reached) if reached else -math.inf
        assert median_certified_robustness(radius, correct) == expected


def test_median_minus_inf_when_accuracy_below_half() -> None:
    radius = np.array([3.0, np.nan, 2.0, 9.0, 1.0])
    correct = np.array([1, 0, 1, 0, 0])
    assert median_certified_robustness(radius, correct) == -math.inf
    assert median_certified_robustness(np.full(3, np.nan), np.zeros(3)) == -math.inf


def test_average_certified_radius_matches_loop() -> None:
    rng = np.random.default_rng(4)
    radius, correct = random_run(rng, 300, integer=False)
    expected = sum(max(v, 0.0) if math.isfinite(v) else 0.0 for v in robustness_values(radius, correct)) / 300
    assert average_certified_radius(radius, correct) == pytest.approx(expected)


@pytest.mark.parametrize("radius, correct, message", [
    ([1.0, 2.0], [1], "equal-length"),
    ([], [], "non-empty"),
    ([1.0, -1.0], [1, 1], ">= 0"),
    ([1.0, np.inf], [1, 1], "finite"),
    ([1.0, 2.0], [1, 2], "0/1"),
])
def test_metric_input_errors(radius, correct, message) -> None:
    with pytest.raises(ValueError, match=message):
        certified_accuracy(np.array(radius, dtype=float), np.array(correct), 0.0)


def test_nan_r_rejected() -> None:
    with pytest.raises(ValueError, match="NaN"):
        certified_accuracy(np.array([1.0]), np.array([1]), np.nan)


# ---- reading logs --------------------------------------------------------------------------------

def test_read_certify_log(tmp_path: Path) -> None:
    path = write_certify_log(tmp_path / "k45.tsv", [(0, 7, 7, 8), (20, 2, -1, "nan"), (40, 1, 3, 2), (60, 4, 4, 0)])
    log = read_log(path)
    assert log.name == "k45" and log.path == path
    np.testing.assert_array_equal(log.idx, [0, 20, 40, 60])
    np.testing.assert_array_equal(log.label, [7, 2, 1, 4])
    np.testing.assert_array_equal(log.predict, [7, -1, 3, 4])
    np.testing.assert_array_equal(log.correct, [True, False, False, True])
    np.testing.assert_array_equal(log.radius, [8.0, np.nan, 2.0, 0.0])
    np.testing.assert_allclose(log.time, [0.5, 1.5, 2.5, 3.5])
    assert read_log(path, name="multichannel").name == "multichannel"
    with pytest.raises(ValueError):
        log.radius[0] = 1.0  # frozen arrays


def test_read_predict_log(tmp_path: Path) -> None:
    path = tmp_path / "predict.tsv"
    path.write_text(f"{PREDICT_HEADER}\n0\t3\t3\t95\t100\t1\t0.25\n1\t5\t-1\t40\t100\t0\t0.75\n")
    log = read_log(path)
    assert log.radius is None
    np.testing.assert_array_equal(log.correct, [True, False])
    summary = summarize(log, [1.0])
    assert summary["accuracy"] == 0.5 and summary["abstained"] == 0.5
    assert summary["median"] is None and summary["acr"] is None
    assert summary["certified_accuracy"] == {1.0: None}


def test_read_cohen_reference_log(tmp_path: Path) -> None:
    path = tmp_path / "cohen.tsv"
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                    "0\t3\t3\t0.512\t1\t0:00:01.500000\n"
                    "20\t8\t-1\t0.0\t0\t0:01:02\n")
    log = read_log(path)
    np.testing.assert_array_equal(log.radius, [0.512, np.nan])  # abstention radius 0.0 -> NaN
    np.testing.assert_allclose(log.time, [1.5, 62.0])


def test_duplicated_idx_rejected(tmp_path: Path) -> None:
    path = write_certify_log(tmp_path / "dup.tsv", [(0, 1, 1, 3), (5, 2, 2, 1), (0, 1, 1, 3)])
    with pytest.raises(ValueError, match=r"dup\.tsv:4: duplicated idx 0 \(first seen on line 2\)"):
        read_log(path)


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    (CERTIFY_HEADER + "\n", "no data rows"),
    ("idx\tlabel\tpredict\tradius\ttime\n0\t1\t1\t2\t0.1\n", ":1: header lacks column.*correct"),
    (CERTIFY_HEADER + "\n0\t1\t1\t9\t10\t0.6\t2\t1\n", ":2: expected 9 tab-separated fields, found 8$"),
    (CERTIFY_HEADER + "\n0\t1\t1\t9\t10\t0.6\t2\t1", ":2: .*found 8 \\(unfinished last line"),
    (CERTIFY_HEADER + "\n0\t1\tone\t9\t10\t0.6\t2\t1\t0.1\n", ":2: column 'predict': cannot parse 'one'"),
    (CERTIFY_HEADER + "\n0\t1\t1\t9\t10\t0.6\t2\t1\t0.1\n1\t1\t2\t9\t10\t0.6\t2\t1\t0.1\n",
     ":3: correct=1 contradicts"),
    (CERTIFY_HEADER + "\n0\t1\t1\t9\t10\t0.6\tnan\t1\t0.1\n", ":2: radius 'nan' of a prediction"),
    (CERTIFY_HEADER + "\n0\t1\t1\t9\t10\t0.6\t-2\t1\t0.1\n", ":2: radius '-2'"),
    (CERTIFY_HEADER + "\n0\t-3\t1\t9\t10\t0.6\t2\t0\t0.1\n", ":2: negative label"),
])
def test_malformed_logs_rejected(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(content)
    with pytest.raises(ValueError, match="bad.tsv" + message if message.startswith(":") else message):
        read_log(path)


def test_missing_log_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.tsv"):
        read_log(tmp_path / "nothere.tsv")


# ---- summaries and tables ------------------------------------------------------------------------

def table1_like_log(tmp_path: Path, name: str, n_correct: int, n_abstain: int, radius: int) -> Path:
    """400 images: n_correct certified at `radius`, n_abstain abstained, the rest misclassified."""
    rows = []
    for i in range(400):
        if i < n_correct:
            rows.append((i, 1, 1, radius))
        elif i < n_correct + n_abstain:
            rows.append((i, 1, -1, "nan"))
        else:
            rows.append((i, 1, 2, radius + 1))
    return write_certify_log(tmp_path / f"{name}.tsv", rows)


def test_summarize_matches_independent_counts(tmp_path: Path) -> None:
    log = read_log(table1_like_log(tmp_path, "k45", n_correct=300, n_abstain=3, radius=8))
    s = summarize(log, [0, 8, 9])
    assert s["name"] == "k45" and s["n"] == 400
    assert s["accuracy"] == 300 / 400 and s["abstained"] == 3 / 400
    assert s["median"] == 8.0
    assert s["certified_accuracy"] == {0.0: 0.75, 8.0: 0.75, 9.0: 0.0}
    assert s["acr"] == pytest.approx(300 * 8 / 400)
    assert s["seconds_per_image"] == pytest.approx(np.mean(0.5 + np.arange(400)))


def test_format_table_contains_the_numbers(tmp_path: Path) -> None:
    good = summarize(read_log(table1_like_log(tmp_path, "k45", 300, 3, 8)), [0, 8])
    bad = summarize(read_log(table1_like_log(tmp_path, "k5", 120, 20, 2)), [0, 8])
    for markdown in (False, True):
        text = format_table([good, bad], [0, 8], markdown=markdown)
        lines = text.splitlines()
        assert len(lines) == 4
        assert ("|" in text) == markdown
        k45 = next(line for line in lines if "k45" in line)
        assert "75.00% (0.75%)" in k45 and "6.000" in k45  # ACR = 300 * 8 / 400
        assert k45.split()[k45.split().index("(0.75%)") + 1 + markdown] == "8"
        k5 = next(line for line in lines if "k5" in line)
        assert "30.00% (5.00%)" in k5 and "N/A" in k5 and "0.00%" in k5
        assert "r=8" in lines[0]
    assert format_table([good], [0, 8], markdown=True).splitlines()[1].startswith("| --- | ---: |")


def test_format_table_predict_log_and_radius_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(f"{PREDICT_HEADER}\n0\t3\t3\t95\t100\t1\t0.25\n")
    text = format_table([summarize(read_log(path), [1.0])], [1.0], markdown=False)
    assert "100.00% (0.00%)" in text and " - " in text
    with pytest.raises(ValueError, match="no certified accuracy at r=2"):
        format_table([summarize(read_log(path), [1.0])], [2], markdown=False)


# ---- plots ---------------------------------------------------------------------------------------

def assert_png(path: Path, width_in: float, height_in: float) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 0
    pixels = imread(path)
    assert pixels.shape[:2] == (round(height_in * DPI), round(width_in * DPI))
    return pixels


def test_plot_certified_accuracy(tmp_path: Path) -> None:
    logs = [read_log(table1_like_log(tmp_path, f"k{k}", 300 - k, 3, k // 5)) for k in (20, 45)]
    out = plot_certified_accuracy(logs, tmp_path / "plots" / "curve.png", max_radius=12)
    assert out == tmp_path / "plots" / "curve.png"
    assert_png(out, *CURVE_FIGSIZE)
    assert_png(plot_certified_accuracy(logs, tmp_path / "auto.png", xlabel="radius (L2)"), *CURVE_FIGSIZE)


def test_plot_certified_accuracy_rejects_predict_log(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(f"{PREDICT_HEADER}\n0\t3\t3\t95\t100\t1\t0.25\n")
    with pytest.raises(ValueError, match="predict log"):
        plot_certified_accuracy([read_log(path)], tmp_path / "x.png")


def test_plot_delta(tmp_path: Path) -> None:
    out = plot_delta(784, list(range(5, 101, 5)), tmp_path / "delta.png")
    assert_png(out, *CURVE_FIGSIZE)
    with pytest.raises(ValueError, match="at least one k"):
        plot_delta(784, [], tmp_path / "none.png")


def ablated(rng: np.random.Generator, image: np.ndarray, k: int, count: int) -> np.ndarray:
    h, w = image.shape[:2]
    samples = np.repeat(image[None].astype(float), count, axis=0)
    for sample in samples:
        drop = rng.permutation(h * w)[k:]
        sample.reshape(h * w, *image.shape[2:])[drop] = np.nan
    return samples


def test_plot_ablated_samples_single_row_draws_null_green(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    image = np.zeros((28, 28))
    image[6:22, 12:16] = 1.0
    samples = ablated(rng, image, 45, 4)
    out = plot_ablated_samples(image, samples, np.array([1, 1, 7, 1]), tmp_path / "fig1.png", title="MNIST")
    pixels = assert_png(out, 4 * PANEL_SIZE[0], 2 * PANEL_SIZE[1])
    green = np.all(np.abs(pixels[..., :3] - np.array(NULL_COLOUR)) < 0.02, axis=-1)
    assert green.sum() > 1000


def test_plot_ablated_samples_rows_per_k_and_colour(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    image = rng.uniform(size=(32, 32, 3))
    rows = {5: (ablated(rng, image, 5, 3), np.array([2, 9, 4])),
            45: (ablated(rng, image, 45, 4), np.array([3, 3, 5, 3])),
            100: (ablated(rng, image, 100, 2), np.array([3, 3]))}
    out = plot_ablated_samples(image, rows, None, tmp_path / "fig1_rgb.png")
    assert_png(out, 4 * PANEL_SIZE[0], 4 * PANEL_SIZE[1])


@pytest.mark.parametrize("samples, labels, message", [
    (np.zeros((2, 28, 27)), np.array([1, 2]), "samples must have shape"),
    (np.zeros((2, 28, 28)), np.array([1]), "labels must have shape"),
    (np.full((1, 28, 28), 2.0), np.array([1]), r"values in \[0, 1\]"),
    (np.zeros((1, 28, 28)), None, "labels are required"),
])
def test_plot_ablated_samples_errors(tmp_path: Path, samples, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        plot_ablated_samples(np.zeros((28, 28)), samples, labels, tmp_path / "x.png")
