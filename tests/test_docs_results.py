"""Every results table in README.md and docs/ equals what its committed logs render (tests/docs_results.py).

Change one digit of a table, or of a log, and this fails; `python tests/docs_results.py --write`
rewrites the tables after new logs are committed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs_results import ROOT, figure_is_current, figure_logs, figures, pages, pending_logs, render, tables
from smoothcert.cli import build_parser
from smoothcert.reports import report

FRAMED = [(page, spec, body) for page in pages() for spec, body in tables(page.read_text())]
FIGURES = [(page, spec) for page in pages() for spec in figures(page.read_text())]


@pytest.mark.parametrize("page,spec,body", FRAMED, ids=[f"{p.relative_to(ROOT)}: {s[:70]}" for p, s, _ in FRAMED])
def test_results_table_matches_its_logs(page: Path, spec: str, body: str):
    assert body == render(spec), (f"{page.relative_to(ROOT)}: the table under `{spec}` differs from its logs; "
                                  "run `python tests/docs_results.py --write` after committing new logs")


def test_readme_and_docs_have_results_tables():
    """The mechanism is in use (guards against a silent zero): the README's headline tables are framed."""
    readme = [spec for page, spec, _ in FRAMED if page.name == "README.md"]
    assert len(readme) >= 3 and any(spec.startswith("report") for spec in readme)


def test_a_rendered_table_is_what_smoothcert_report_prints():
    """A `report` marker over committed logs renders exactly `smoothcert report ... --markdown`."""
    logs = sorted(log.relative_to(ROOT).as_posix() for log in (ROOT / "docs/results").rglob("*.tsv"))
    assert logs
    spec = f"report {' '.join(logs)} --radii 0,2,4"
    args = build_parser().parse_args(spec.split())
    assert render(spec) == report([ROOT / log for log in args.logs], args.radii, markdown=True)


def test_pending_logs_are_not_committed_yet():
    """A log listed as pending that has arrived must leave pending.txt (and its table be rewritten)."""
    arrived = sorted(log for log in pending_logs() if (ROOT / log).is_file())
    assert not arrived, f"{arrived} are committed: remove them from docs/results/pending.txt and run --write"


def test_every_committed_log_has_its_settings():
    """Each log under docs/results/ comes with the settings file `smoothcert certify/predict` writes beside it."""
    logs = sorted((ROOT / "docs/results").rglob("*.tsv"))
    assert logs
    missing = [log.relative_to(ROOT) for log in logs if not log.with_name(log.name + ".json").is_file()]
    assert not missing, f"logs without their .json settings: {missing}"


def test_a_changed_digit_fails():
    """The comparison is sensitive: one digit changed in a rendered table no longer matches."""
    spec, body = next((s, b) for _, s, b in FRAMED if s.startswith("report") and re.search(r"\d", b))
    changed = re.sub(r"(\d)(?=[^\d]*$)", lambda m: str((int(m[1]) + 1) % 10), body, count=1)
    assert changed != body and changed != render(spec)


@pytest.mark.parametrize("page,spec", FIGURES, ids=[f"{p.relative_to(ROOT)}: {s[:70]}" for p, s in FIGURES])
def test_figure_shows_its_logs(page: Path, spec: str):
    png, _ = figure_logs(spec)
    assert png.name in page.read_text().split(spec, 1)[1], f"{page.relative_to(ROOT)} does not show {png.name}"
    assert figure_is_current(spec), (f"{page.relative_to(ROOT)}: {png.relative_to(ROOT)} does not show the curves of "
                                     f"`{spec}`; run `python tests/docs_results.py --write` after committing new logs")


def test_the_curves_pages_have_figures():
    """Table 1, adaptive sampling and partition voting show certified-accuracy curves from their logs."""
    pages_with_figures = {page.relative_to(ROOT).as_posix() for page, _ in FIGURES}
    assert {"docs/reproducing/table1.md", "docs/adaptive.md", "docs/reproducing/partition.md"} <= pages_with_figures


def test_a_figure_of_other_data_is_not_current(tmp_path):
    """The figure check is sensitive: a figure drawn from a log with one radius changed fails it."""
    from smoothcert.reports import plot_certified_accuracy, read_log
    from smoothcert.reports.figures import curves_digest, figure_digest

    log = read_log(ROOT / "docs/results/demo/certify.tsv")
    png = plot_certified_accuracy([log], tmp_path / "curve.png")
    assert figure_digest(png) == curves_digest([log])
    lines = (ROOT / "docs/results/demo/certify.tsv").read_text().splitlines()
    header, row = lines[0].split("\t"), lines[1].split("\t")
    column = header.index("radius")
    assert row[header.index("correct")] == "1"
    row[column] = str(float(row[column]) - 1)  # the first digit certifies one pixel less
    (tmp_path / "changed.tsv").write_text("\n".join([lines[0], "\t".join(row), *lines[2:]]) + "\n")
    changed = read_log(tmp_path / "changed.tsv", name=log.name)
    assert figure_digest(png) != curves_digest([changed])


def test_no_committed_patch_attack_breaks_a_certified_digit():
    """Soundness on the committed patch logs: a digit certified against the attacked patch side
    (threshold vote, the attack's target) is never broken by the patch attack."""
    import json

    import numpy as np

    from smoothcert.reports import read_attack_log, read_log

    attack = read_attack_log(ROOT / "docs/results/patch/attack.tsv")
    certify = read_log(ROOT / "docs/results/patch/certify-threshold.tsv")
    side = json.loads((ROOT / "docs/results/patch/attack.tsv.json").read_text())["size"]
    certified = dict(zip(certify.idx.tolist(), (certify.correct & (certify.radius >= side)).tolist(), strict=True))
    attacked_certified = [i for i in attack.idx.tolist() if certified[i]]
    broken = [i for i, ok in zip(attack.idx.tolist(), attack.success, strict=True) if ok and certified[i]]
    assert attacked_certified and np.any(attack.success)  # the check compares something
    assert broken == []


@pytest.mark.parametrize("attack", ["k45-pointwise", "k45-sparse-rs"])
def test_no_committed_attack_breaks_a_digit_inside_its_certified_radius(attack):
    """Soundness on the committed Table 2 logs: the attacks against the k = 45 smoothed classifier
    never succeed with fewer pixels than a digit's certified radius."""
    from smoothcert.reports import read_attack_log, read_log, soundness

    check = soundness(read_log(ROOT / "docs/results/table1/k45/certify.tsv"),
                      read_attack_log(ROOT / f"docs/results/table2/{attack}.tsv"))
    assert check["compared"] >= 30 and check["inside"] == []


def test_every_reproduction_page_shows_our_results_from_logs():
    """No reproduction page waits for its logs: each renders at least one table of ours from them."""
    ours = ("report ", "information ", "substitute ")
    for page in sorted((ROOT / "docs/reproducing").glob("*.md")):
        if page.name == "index.md":
            continue
        text = page.read_text()
        assert "not published yet" not in text.lower(), page.name
        assert any(spec.startswith(ours) for spec, _ in tables(text)), f"{page.name} renders none of our logs"
    assert not pending_logs(), f"logs still announced as pending: {sorted(pending_logs())}"
