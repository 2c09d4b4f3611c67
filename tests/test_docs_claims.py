"""Times and counts the pages state agree with the committed logs they were measured from.

A statement backed by logs under docs/results/ carries a marker right before its number (hidden
on the site and on GitHub)::

    took <!-- claim: s/image docs/results/demo/certify.tsv -->**0.93 s per image**

The marker names what the number is and the logs it comes from:

* ``images LOG...``: how many images (rows) each log holds.
* ``s/image LOG...``: the mean of the logs' per-image ``time``, to the digits the page gives.
* ``samples/image LOG...``: the mean noise samples per image (selection ``n0`` included), as
  ``smoothcert report`` counts them, to the digits the page gives.
* ``wall LOG...``: the wall time of the run that wrote the logs (``9 min 32 s``, ``572 s``,
  ``33 min``). A log records each image's time, not start-up or training, so the stated time,
  to its last unit, must be at least the logs' total.
* ``differ LOG_A LOG_B``: how many images (same ``idx``) get a different prediction or radius in
  the two logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from docs_results import ROOT, pages
from smoothcert.reports import AttackLog, RunLog, is_attack_log, read_attack_log, read_log

MARKER = re.compile(r"<!-- claim:(?P<spec>[^\n]*?)-->[*_]*(?P<stated>[^<]{0,40})")
NUMBER = re.compile(r"\d[\d,]*(?:\.(?P<decimals>\d+))?")
DURATION = re.compile(r"(?:(?P<h>\d+) h\b ?)?(?:(?P<min>\d+) min(?:utes)?\b ?)?(?:(?P<s>\d+(?:\.\d+)?) s(?:econds)?\b)?")
KINDS = ("images", "s/image", "samples/image", "wall", "differ")


@dataclass(frozen=True)
class Claim:
    """One marked statement: its page, what it states, the logs and the number as written."""

    page: str
    kind: str
    logs: tuple[str, ...]
    stated: str  # the text after the marker, whitespace collapsed


def claims(text: str, page: str = "") -> list[Claim]:
    """The marked statements of a page's text."""
    found = []
    for m in MARKER.finditer(text):
        kind, *logs = m["spec"].split() or [""]
        found.append(Claim(page, kind, tuple(logs), " ".join(m["stated"].split())))  # a number may wrap
    return found


def stated_value(kind: str, text: str) -> tuple[float, float]:
    """(value, half its last unit) of the number or duration at the start of ``text``."""
    if kind == "wall":
        m = DURATION.match(text)
        if m is None or not m[0].strip():
            raise ValueError(f"no duration (like '9 min 32 s') after a wall claim: {text!r}")
        seconds = float(m["s"] or 0)
        unit = 10.0 ** -len(m["s"].partition(".")[2]) if m["s"] else 60.0 if m["min"] else 3600.0
        return 3600 * int(m["h"] or 0) + 60 * int(m["min"] or 0) + seconds, unit / 2
    m = NUMBER.match(text)
    if m is None:
        raise ValueError(f"no number after a {kind} claim: {text!r}")
    return float(m[0].replace(",", "")), 10.0 ** -len(m["decimals"] or "") / 2


def _read(path: Path) -> RunLog | AttackLog:
    return read_attack_log(path) if is_attack_log(path) else read_log(path)


def _differing(a: Path, b: Path) -> int:
    """Images of both certify or predict logs whose prediction or radius differs (NaN equals NaN)."""
    first, second = read_log(a), read_log(b)
    rows = {i: k for k, i in enumerate(second.idx.tolist())}
    shared = [(k, rows[i]) for k, i in enumerate(first.idx.tolist()) if i in rows]
    if not shared:
        raise ValueError(f"{a} and {b} share no image")
    j, k = (np.array(side) for side in zip(*shared))
    differ = first.predict[j] != second.predict[k]
    if first.radius is not None and second.radius is not None:
        differ |= ~np.isclose(first.radius[j], second.radius[k], rtol=0, atol=1e-9, equal_nan=True)
    return int(differ.sum())


def measured(kind: str, paths: list[Path]) -> float:
    """What the logs say for a claim of ``kind``."""
    if not paths:
        raise ValueError(f"a {kind} claim names no log")
    if kind == "differ":
        if len(paths) != 2:
            raise ValueError(f"a differ claim compares two logs, got {len(paths)}")
        return _differing(*paths)
    logs = [_read(path) for path in paths]
    if kind == "images":
        counts = {log.idx.size for log in logs}
        if len(counts) > 1:
            raise ValueError(f"the logs hold different numbers of images: {sorted(counts)}")
        return counts.pop()
    if kind == "s/image":
        return float(np.concatenate([log.time for log in logs]).mean())
    if kind == "wall":
        return float(sum(log.time.sum() for log in logs))
    if kind == "samples/image":
        if any(getattr(log, "samples", None) is None for log in logs):
            raise ValueError("a samples/image claim needs logs with an n column")
        return float(np.concatenate([log.samples for log in logs]).mean())
    raise ValueError(f"unknown claim kind {kind!r}; expected one of {KINDS}")


def contradiction(claim: Claim, root: Path = ROOT) -> str | None:
    """Why the logs contradict ``claim``, or None when they agree with it."""
    value, half = stated_value(claim.kind, claim.stated)
    actual = measured(claim.kind, [root / log for log in claim.logs])
    if claim.kind == "wall":
        if value + half >= actual:
            return None
        return f"states {value:g} s of wall time, but the logs alone record {actual:.1f} s"
    if abs(value - actual) <= half + 1e-9:
        return None
    return f"states {claim.stated.strip()!r} ({claim.kind}), the logs give {actual:.4g}"


CLAIMS = [claim for page in pages() for claim in claims(page.read_text(), page.relative_to(ROOT).as_posix())]


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{c.page}: {c.kind} {c.stated[:20]}" for c in CLAIMS])
def test_claim_agrees_with_its_logs(claim: Claim):
    problem = contradiction(claim)
    assert problem is None, f"{claim.page}: {problem} ({', '.join(claim.logs)})"


def test_the_timed_and_counted_pages_mark_their_claims():
    """The mechanism is in use on the pages that time or count logged runs, for every kind a page states."""
    marked = {claim.page for claim in CLAIMS}
    expected = {"README.md", "docs/benchmarks/certification.md", "docs/benchmarks/training.md",
                "docs/benchmarks/attacks-smoothed.md", *(f"docs/reproducing/{name}.md" for name in (
                    "table1", "table2", "table7", "table8", "smoothing", "denoised", "l0-consistency",
                    "partition", "patch"))}
    assert expected <= marked, f"pages without claim markers: {sorted(expected - marked)}"
    assert {"images", "s/image", "samples/image", "wall"} <= {claim.kind for claim in CLAIMS}


DEMO = "docs/results/demo/certify.tsv"


@pytest.mark.parametrize("text,agrees", [
    (f"<!-- claim: images {DEMO} -->120 digits", True),
    (f"<!-- claim: images {DEMO} -->121 digits", False),
    (f"<!-- claim: images {DEMO} docs/results/table2/k45-pointwise.tsv -->120 digits", None),  # 120 and 50 images
    (f"<!-- claim: s/image {DEMO} -->**0.82 s per image**", True),
    (f"<!-- claim: s/image {DEMO} -->0.84 s per image", False),
    (f"<!-- claim: s/image {DEMO} -->0.815 s per image", False),  # more digits, less rounding
    ("<!-- claim: s/image docs/results/table2/k45-sparse-rs.tsv -->19.7 s per digit", True),
    ("<!-- claim: samples/image docs/results/demo/certify-adaptive.tsv -->3,239 samples", True),
    ("<!-- claim: samples/image docs/results/demo/certify-adaptive.tsv -->3,300 samples", False),
    (f"<!-- claim: wall {DEMO} -->2 min", True),  # 97.9 s of images
    (f"<!-- claim: wall {DEMO} -->1 min 37 s", False),
    (f"<!-- claim: wall {DEMO} -->98 seconds", True),
    (f"<!-- claim: wall {DEMO} -->97 s", False),
    (f"<!-- claim: wall {DEMO} -->1 min\n38 s", True),  # a duration wrapped onto the next line
    (f"<!-- claim: wall {DEMO} -->1 min\n37 s", False),
    (f"<!-- claim: differ {DEMO} docs/results/demo/certify-adaptive.tsv -->4 of 120 rows", True),  # idx 6, 16, 27, 34
    (f"<!-- claim: differ {DEMO} docs/results/demo/certify-adaptive.tsv -->3 of 120 rows", False),
    (f"<!-- claim: differ {DEMO} {DEMO} -->0 rows", True),
    (f"<!-- claim: images {DEMO} -->many digits", None),
    (f"<!-- claim: digits {DEMO} -->120 digits", None),
    ("<!-- claim: images -->120 digits", None),
])
def test_a_claim_the_logs_contradict_fails(text: str, agrees: bool | None):
    """The check is sensitive: a number off by more than its rounding, or a wall time shorter than
    the logs record, is a contradiction; a marker without a number or of an unknown kind is an error."""
    (claim,) = claims(text)
    if agrees is None:
        with pytest.raises(ValueError):
            contradiction(claim)
    else:
        assert (contradiction(claim) is None) == agrees


@pytest.mark.parametrize("text,seconds,half", [
    ("9 min 32 s (572 s)", 572, 0.5), ("572 s", 572, 0.5), ("33 min wall", 1980, 30), ("18 seconds", 18, 0.5),
    ("0 min 56 s", 56, 0.5), ("1 h 2 min", 3720, 30), ("2.5 s", 2.5, 0.05),
])
def test_durations_are_read_to_their_last_unit(text: str, seconds: float, half: float):
    assert stated_value("wall", text) == (seconds, half)
