"""Certification logs -> the numbers and figures of Levine & Feizi (2020), "Results" section.

A certify log (written by ``smoothcert certify``) is tab-separated with the header
``idx label predict count n p_lower radius correct time``; ``predict = -1`` is an abstention and
its radius is ``nan``.  A predict log has ``idx label predict count n correct time``.  Logs in
Cohen et al.'s reference format (``idx label predict radius correct time``, time as ``H:MM:SS.f``,
abstentions with radius 0) are read too.

Metrics follow the paper's definitions (Results section):

* *certified robustness* of an image: its radius if it is classified correctly, else N/A, which
  counts as -inf (misclassified and abstained images alike);
* *certified accuracy at r*: fraction of images with certified robustness >= r;
* *median certified robustness*: the largest r whose certified accuracy is at least 0.5
  (Table 1, Table 8);
* *ACR* (average certified radius): the mean certified robustness with N/A counted as 0.
Figures are in [`smoothcert.reports.figures`][smoothcert.reports.figures].
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_REQUIRED = ("idx", "label", "predict", "correct", "time")
_INT_COLUMNS = ("idx", "label", "predict", "correct")


@dataclass(frozen=True, eq=False)
class RunLog:
    """One parsed certify or predict log; arrays are read-only, one entry per image.

    ``radius`` is NaN for abstentions and ``None`` for predict logs; ``time`` is in seconds;
    ``samples`` counts the noise samples each image used (selection ``n0`` included, from the
    settings file beside the log), ``None`` for logs without an ``n`` column.
    """

    path: Path
    name: str
    idx: np.ndarray
    label: np.ndarray
    predict: np.ndarray
    correct: np.ndarray
    radius: np.ndarray | None
    time: np.ndarray
    samples: np.ndarray | None = None


def _seconds(text: str) -> float:
    """Seconds from ``12.5`` or from Python's ``timedelta`` text ``0:00:12.5`` (Cohen's logs)."""
    if ":" not in text:
        return float(text)
    hours, minutes, seconds = text.split(":")
    return 3600 * int(hours) + 60 * int(minutes) + float(seconds)


def _parse_row(row: dict[str, str], columns: Sequence[str], where: str) -> dict[str, Any]:
    """Typed values of one log row; an abstention's radius becomes NaN (Cohen's logs write 0)."""
    values: dict[str, Any] = {}
    for col in columns:
        parse = int if col in (*_INT_COLUMNS, "n") else _seconds if col == "time" else float
        try:
            values[col] = parse(row[col])
        except ValueError:
            raise ValueError(f"{where}: column {col!r}: cannot parse {row[col]!r}") from None
    if values["label"] < 0 or values["predict"] < -1:
        raise ValueError(f"{where}: negative label or predict < -1")
    if values["correct"] != int(values["predict"] == values["label"]):
        raise ValueError(f"{where}: correct={values['correct']} contradicts label/predict")
    if "radius" in values:
        if values["predict"] == -1:
            values["radius"] = float("nan")
        elif not (np.isfinite(values["radius"]) and values["radius"] >= 0):
            raise ValueError(f"{where}: radius {row['radius']!r} of a prediction must be finite and >= 0")
    return values


def read_log(path: str | Path, name: str | None = None) -> RunLog:
    """Parse a certify or predict log, validating every row.

    Raises FileNotFoundError for a missing file and ValueError, naming the file and line, for a
    missing column, a malformed or inconsistent row (``correct`` must equal ``predict == label``;
    a non-abstained radius must be finite and >= 0), a duplicated ``idx`` or a log without rows.

    Args:
        path: A ``smoothcert certify`` or ``predict`` log (or one in Cohen et al.'s format).
        name: The run's name in reports; None: the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"log file not found: {path}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text log ({err})") from err
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{path}: empty file, expected a tab-separated header line")
    header = lines[0].split("\t")
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{path}:1: header lacks column(s) {', '.join(missing)}; found {header}")
    has_radius, has_n = "radius" in header, "n" in header
    parsed = (*_REQUIRED, *(["radius"] if has_radius else []), *(["n"] if has_n else []))
    columns: dict[str, list[Any]] = {c: [] for c in (*_REQUIRED, "radius", "n")}
    first_line: dict[int, int] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        fields = line.split("\t")
        if len(fields) != len(header):
            unfinished = lineno == len(lines) and not text.endswith("\n")
            hint = " (unfinished last line: is the run still writing?)" if unfinished else ""
            raise ValueError(f"{where}: expected {len(header)} tab-separated fields, found {len(fields)}{hint}")
        values = _parse_row(dict(zip(header, fields)), parsed, where)
        if values["idx"] in first_line:
            raise ValueError(f"{where}: duplicated idx {values['idx']} (first seen on line {first_line[values['idx']]})")
        first_line[values["idx"]] = lineno
        for col, value in values.items():
            columns[col].append(value)
    if not first_line:
        raise ValueError(f"{path}: no data rows after the header")

    def frozen(values: list[Any], dtype: Any) -> np.ndarray:
        array = np.asarray(values, dtype=dtype)
        array.setflags(write=False)
        return array

    settings_path = path.with_name(path.name + ".json")
    n0 = json.loads(settings_path.read_text()).get("n0") or 0 if settings_path.is_file() else 0
    return RunLog(
        path=path,
        name=path.stem if name is None else name,
        idx=frozen(columns["idx"], np.int64),
        label=frozen(columns["label"], np.int64),
        predict=frozen(columns["predict"], np.int64),
        correct=frozen(columns["correct"], bool),
        radius=frozen(columns["radius"], float) if has_radius else None,
        time=frozen(columns["time"], float),
        samples=frozen(np.asarray(columns["n"], dtype=np.int64) + n0, np.int64) if has_n else None,
    )


def _certified_robustness(radius: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Per-image certified robustness (Results section): radius if correct, else -inf (N/A).

    NaN radii (abstentions) count as N/A whatever ``correct`` says.
    """
    radius = np.asarray(radius, dtype=float)
    correct = np.asarray(correct)
    if radius.ndim != 1 or radius.shape != correct.shape or radius.size == 0:
        raise ValueError(f"radius and correct must be equal-length non-empty 1-D arrays, got shapes "
                         f"{radius.shape} and {correct.shape}")
    if not np.isin(correct, (0, 1)).all():
        raise ValueError("correct must contain only 0/1 (or booleans)")
    answered = ~np.isnan(radius)
    if not (np.isfinite(radius[answered]) & (radius[answered] >= 0)).all():
        raise ValueError("radii must be finite and >= 0, or NaN for an abstention")
    return np.where(answered & correct.astype(bool), radius, -np.inf)


def certified_accuracy(radius: np.ndarray, correct: np.ndarray, r: float | np.ndarray) -> float | np.ndarray:
    """Fraction of images classified correctly with radius >= r; r is a scalar or an array.

    Abstentions (NaN radius) and misclassified images never count.
    """
    r = np.asarray(r, dtype=float)
    if np.isnan(r).any():
        raise ValueError("r must not be NaN")
    robust = np.sort(_certified_robustness(radius, correct))
    fraction = (robust.size - np.searchsorted(robust, r, side="left")) / robust.size
    return float(fraction) if fraction.ndim == 0 else fraction


def median_certified_robustness(radius: np.ndarray, correct: np.ndarray) -> float:
    """The largest r whose certified accuracy is at least 0.5 (Results section, Table 1).

    Only radii present in the data are candidates, since certified accuracy drops just after
    them.  Returns -inf (the paper's "N/A") when fewer than half the images are certified at any
    radius.  For an even count this is the upper of the two middle values, not their mean.
    """
    robust = _certified_robustness(radius, correct)
    candidates = np.unique(robust[np.isfinite(robust)])
    reached = candidates[certified_accuracy(radius, correct, candidates) >= 0.5]
    return float(reached.max()) if reached.size else -np.inf


def average_certified_radius(radius: np.ndarray, correct: np.ndarray) -> float:
    """ACR: mean over images of radius * correct, abstentions and misclassifications giving 0."""
    robust = _certified_robustness(radius, correct)
    return float(np.where(np.isfinite(robust), robust, 0.0).mean())


def summarize(log: RunLog, radii: Sequence[float]) -> dict[str, Any]:
    """The numbers of one run.

    Keys: ``name``, ``n``, ``accuracy`` and ``abstained`` (fractions), ``median`` (-inf = N/A),
    ``certified_accuracy`` ({float(r): fraction}), ``acr``, ``seconds_per_image`` and the mean
    and median noise ``samples_per_image`` (None for logs without them).  For a predict log (no
    radii) ``median``, ``acr`` and every certified accuracy are None.

    Args:
        log: The parsed log ([`read_log`][read_log]).
        radii: The radii at which to give the certified accuracy.
    """
    certify = log.radius is not None
    at_r = (certified_accuracy(log.radius, log.correct, np.asarray(radii, dtype=float)) if certify
            else [None] * len(radii))
    return {
        "name": log.name,
        "n": int(log.idx.size),
        "accuracy": float(log.correct.mean()),
        "abstained": float((log.predict == -1).mean()),
        "median": median_certified_robustness(log.radius, log.correct) if certify else None,
        "certified_accuracy": {float(r): None if a is None else float(a) for r, a in zip(radii, at_r)},
        "acr": average_certified_radius(log.radius, log.correct) if certify else None,
        "seconds_per_image": float(log.time.mean()),
        "samples_per_image": None if log.samples is None else (float(log.samples.mean()), float(np.median(log.samples))),
    }


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.2f}%"


def _radius_text(r: float | None) -> str:
    if r is None:
        return "-"
    if r == -np.inf:
        return "N/A"
    return f"{r:.0f}" if float(r).is_integer() else f"{r:.3f}"


def _samples_text(samples: tuple[float, float] | None) -> str:
    return "-" if samples is None else f"{samples[0]:,.0f} / {samples[1]:,.0f}"


def format_table(summaries: list[dict[str, Any]], radii: Sequence[float], markdown: bool) -> str:
    """One row per run: accuracy (percent abstained) and median as in Table 1, then ACR,
    certified accuracy at each radius, seconds and noise samples (mean / median) per image.
    Percentages have two decimals; a median of -inf prints as "N/A", values a log lacks as "-".
    """
    header = ["run", "n", "accuracy (abstained)", "median", "ACR"]
    header += [f"r={_radius_text(float(r))}" for r in radii] + ["s/image", "samples/image (mean/median)"]
    rows = []
    for s in summaries:
        certified = []
        for r in radii:
            if float(r) not in s["certified_accuracy"]:
                raise ValueError(f"summary of {s['name']!r} has no certified accuracy at r={r}; "
                                 f"pass the same radii to summarize and format_table")
            certified.append(_percent(s["certified_accuracy"][float(r)]))
        rows.append([s["name"], str(s["n"]), f"{_percent(s['accuracy'])} ({_percent(s['abstained'])})",
                     _radius_text(s["median"]), "-" if s["acr"] is None else f"{s['acr']:.3f}",
                     *certified, f"{s['seconds_per_image']:.3f}", _samples_text(s.get("samples_per_image"))])
    if markdown:
        lines = [header, ["---"] + ["---:"] * (len(header) - 1)]
        lines += [[row[0].replace("|", "\\|"), *row[1:]] for row in rows]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
    widths = [max(len(cells[i]) for cells in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])
