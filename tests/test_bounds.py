import json
import math

import numpy as np
import pytest

from smoothcert.reports.empirical import (
    is_attack_log,
    median_attack_magnitude,
    read_attack_log,
    soundness,
    summarize_attack,
    table2,
)
from smoothcert.reports import read_log
from smoothcert.runner import ATTACK_COLUMNS, CERTIFY_COLUMNS


def _write_attack(path, rows, target="smoothed", checkpoint="/ckpt", decisions=None):
    """rows: (idx, label, l0, success); also writes the settings and the adversarial-example npz."""
    lines = ["\t".join(ATTACK_COLUMNS)]
    lines += [f"{i}\t{label}\t{l0}\t{100 + i}\t{ok}\t0.5" for i, label, l0, ok in rows]
    path.write_text("\n".join(lines) + "\n")
    path.with_name(path.name + ".json").write_text(json.dumps({"target": target, "checkpoint": checkpoint}))
    decisions = decisions or {}
    np.savez(path.with_suffix(".npz"), idx=np.array([r[0] for r in rows]), x_adv=np.zeros((len(rows), 1, 2, 2)),
             success=np.array([bool(r[3]) for r in rows]),
             decision=np.array([decisions.get(r[0], (r[1] + 1) % 10) for r in rows]))
    return path


def _write_certify(path, rows, checkpoint="/ckpt"):
    """rows: (idx, label, predict, radius)."""
    lines = ["\t".join(CERTIFY_COLUMNS)]
    lines += [f"{i}\t{label}\t{p}\t900\t1000\t0.9\t{r}\t{int(p == label)}\t1.0" for i, label, p, r in rows]
    path.write_text("\n".join(lines) + "\n")
    path.with_name(path.name + ".json").write_text(json.dumps({"checkpoint": checkpoint}))
    return path


def test_median_attack_magnitude_is_the_smallest_m_covering_half():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        l0 = rng.integers(0, 20, n).astype(float)
        l0[rng.random(n) < 0.3] = math.inf
        brute = min(m for m in [*range(21), math.inf] if 2 * np.sum(l0 <= m) >= n)
        assert median_attack_magnitude(l0) == brute
    assert median_attack_magnitude([3.0, math.inf]) == 3.0
    assert median_attack_magnitude([3.0, math.inf, math.inf]) == math.inf
    with pytest.raises(ValueError, match="non-empty"):
        median_attack_magnitude([])
    with pytest.raises(ValueError):
        median_attack_magnitude([1.0, float("nan")])


def test_read_attack_log_and_summary(tmp_path):
    path = _write_attack(tmp_path / "a.tsv", [(0, 1, 5, 1), (1, 2, "inf", 0), (2, 3, 0, 1), (3, 4, 9, 1)])
    assert is_attack_log(path) and not is_attack_log(tmp_path / "missing.tsv")
    log = read_attack_log(path)
    assert log.target == "smoothed" and log.idx.tolist() == [0, 1, 2, 3] and math.isinf(log.l0[1])
    s = summarize_attack(log)
    assert s["success"] == 0.75 and s["median_l0"] == 5 and s["mean_queries"] == 101.5


@pytest.mark.parametrize(("line", "message"), [
    ("0\t1\tinf\t5\t1\t0.1", "contradicts"),
    ("0\t1\t4\t5\t0\t0.1", "contradicts"),
    ("0\t1\t-1\t5\t1\t0.1", "contradicts"),
    ("0\t1\tx\t5\t1\t0.1", "cannot parse"),
    ("0\t1\t4\t5", "expected 6 fields"),
])
def test_read_attack_log_rejects_bad_rows(tmp_path, line, message):
    path = tmp_path / "bad.tsv"
    path.write_text("\t".join(ATTACK_COLUMNS) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        read_attack_log(path)
    with pytest.raises(ValueError, match="not an attack log"):
        read_attack_log(_write_certify(tmp_path / "c.tsv", [(0, 1, 1, 2)]))


def test_soundness_counts_successes_inside_certified_radii(tmp_path):
    cert = read_log(_write_certify(tmp_path / "c.tsv", [
        (0, 1, 1, 4), (1, 2, 2, 6), (2, 3, 5, 3), (3, 4, -1, "nan"), (4, 5, 5, 2), (5, 6, 6, 1)]))
    attack = read_attack_log(_write_attack(tmp_path / "a.tsv", [
        (0, 1, 4, 1),       # inside (l0 == radius): a contradiction if PREDICT gave a class
        (1, 2, 7, 1),       # outside
        (2, 3, 1, 1),       # misclassified by CERTIFY: no certificate to contradict
        (3, 4, 1, 1),       # abstained by CERTIFY
        (5, 6, 0, 1),       # inside at 0: PREDICT abstains on the clean image
        (6, 7, 1, 1),       # not in the certify log
    ], decisions={5: -1}))
    check = soundness(cert, attack)
    assert check["compared"] == 3  # idx 0, 1, 5 are certified correctly and attacked
    assert check["inside"] == [0, 5] and check["inside_wrong"] == [0] and check["inside_abstain"] == [5]
    text = table2([attack], [cert])
    assert "2 of 3 (1 wrong class, 1 abstain)" in text


def test_table2_rows(tmp_path):
    cert = read_log(_write_certify(tmp_path / "c.tsv", [(i, 1, 1, 2 * i) for i in range(4)]))
    smoothed = read_attack_log(_write_attack(tmp_path / "s.tsv", [(i, 1, 2 * i + 3, 1) for i in range(4)]))
    clean = read_attack_log(_write_attack(tmp_path / "u.tsv", [(i, 1, 2, 1) for i in range(4)], target="model"))
    lines = table2([smoothed, clean], [cert], markdown=True).splitlines()
    assert lines[0].startswith("| attack log | target |") and len(lines) == 4
    # certified robustness 0, 2, 4, 6 -> median 4 (two of four >= 4); attack L0 3, 5, 7, 9 -> median 5
    assert lines[2] == "| s | smoothed | 4 | 4 | 100.0% | 5 | 0 of 4 (0 wrong class, 0 abstain) |"
    assert lines[3] == "| u | model | 4 | N/A | 100.0% | 2 | - |"
