"""Every results table in README.md and docs/ equals what its committed logs render (tests/docs_results.py).

Change one digit of a table, or of a log, and this fails; `python tests/docs_results.py --write`
rewrites the tables after new logs are committed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs_results import ROOT, pages, pending_logs, render, tables
from smoothcert.cli import build_parser
from smoothcert.reports import report

FRAMED = [(page, spec, body) for page in pages() for spec, body in tables(page.read_text())]


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
