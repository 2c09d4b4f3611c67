"""Certified lower bounds beside empirical upper bounds: attack logs, Table 2, soundness.

An attack log (written by ``smoothcert attack``) is tab-separated with the header
``idx label l0 queries success time``; ``l0`` is ``inf`` where the attack failed, 0 where the
image was already misclassified (or abstained on). Its settings file ``<log>.json`` names the
checkpoint and the ``target`` ("model" for an undefended classifier, "smoothed" for PREDICT).

* *median adversarial attack magnitude* (Levine & Feizi 2020, Table 2): the smallest m such
  that the attack succeeded with L0 <= m on at least half the images (``inf`` if it failed on
  half or more) -- the attacker-side mirror of the median certified robustness.
* *soundness*: a certified radius is a lower bound, so no attack may succeed on a correctly
  certified image with L0 <= its radius. ``soundness`` counts such images, split into PREDICT
  returning a wrong class (a contradiction of Theorem 1 at level alpha) and PREDICT abstaining
  (which the theorem does not exclude: near the radius the top class may keep only just over
  half the votes, and PREDICT abstains when a binomial test cannot separate the top two).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..runner import ATTACK_COLUMNS, read_adversarial
from .certified import RunLog, median_certified_robustness


@dataclass(frozen=True, eq=False)
class AttackLog:
    """One parsed attack log; arrays have one entry per image, ``target`` is "model" or "smoothed",
    ``checkpoint`` the path it records and ``run`` the (checkpoint identity, dataset, split) it attacked
    ([`attacked_run`][attacked_run])."""

    path: Path
    name: str
    target: str
    checkpoint: str | None
    idx: np.ndarray
    label: np.ndarray
    l0: np.ndarray
    queries: np.ndarray
    success: np.ndarray
    time: np.ndarray
    run: tuple[str | None, str | None, str | None] = (None, None, None)


def attacked_run(settings: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """What a log's ``settings`` ran on: the checkpoint's identity (its weights' SHA-256; the
    recorded path for a log from before identities), the dataset and the split. A certify log and an
    attack log are compared image by image only when these agree."""
    return settings.get("weights", settings.get("checkpoint")), settings.get("dataset"), settings.get("split")


def is_attack_log(path: str | Path) -> bool:
    """Whether ``path`` is a file whose header is the attack log's."""
    if not Path(path).is_file():
        return False
    with Path(path).open(errors="replace") as f:
        return tuple(f.readline().rstrip("\n").split("\t")) == ATTACK_COLUMNS


def read_attack_log(path: str | Path, name: str | None = None) -> AttackLog:
    """Parse an attack log and its settings, validating every row (``l0`` >= 0, ``inf`` exactly on
    failures, ``success`` 0/1, no duplicated ``idx``).

    Args:
        path: A ``smoothcert attack`` log.
        name: The run's name in reports; None: the file's stem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"log file not found: {path}")
    lines = path.read_text().splitlines()
    if not lines or tuple(lines[0].split("\t")) != ATTACK_COLUMNS:
        raise ValueError(f"{path}:1: not an attack log (expected the header {' '.join(ATTACK_COLUMNS)})")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(ATTACK_COLUMNS):
            raise ValueError(f"{path}:{lineno}: expected {len(ATTACK_COLUMNS)} fields, found {len(fields)}")
        try:
            idx, label, l0, queries, success, seconds = (int(fields[0]), int(fields[1]), float(fields[2]),
                                                        int(fields[3]), int(fields[4]), float(fields[5]))
        except ValueError:
            raise ValueError(f"{path}:{lineno}: cannot parse {line!r}") from None
        if success not in (0, 1) or l0 < 0 or math.isnan(l0) or math.isinf(l0) == bool(success):
            raise ValueError(f"{path}:{lineno}: l0={fields[2]} contradicts success={success}")
        rows.append((idx, label, l0, queries, success, seconds))
    if not rows:
        raise ValueError(f"{path}: no data rows after the header")
    idx = [r[0] for r in rows]
    if len(set(idx)) != len(idx):
        raise ValueError(f"{path}: duplicated idx")
    settings_path = path.with_name(path.name + ".json")
    settings = json.loads(settings_path.read_text()) if settings_path.is_file() else {}
    columns = list(zip(*rows, strict=True))
    return AttackLog(path, path.stem if name is None else name, settings.get("target", "model"),
                     settings.get("checkpoint"), *(np.asarray(c) for c in columns[:2]),
                     np.asarray(columns[2], dtype=float), np.asarray(columns[3]), np.asarray(columns[4], dtype=bool),
                     np.asarray(columns[5], dtype=float), attacked_run(settings))


def median_attack_magnitude(l0: np.ndarray) -> float:
    """Smallest m with L0 <= m on at least half the images; failures are ``inf`` (Table 2).

    Args:
        l0: The pixels each image's attack changed (``inf`` where it failed).
    """
    l0 = np.sort(np.asarray(l0, dtype=float))
    if l0.ndim != 1 or l0.size == 0 or np.isnan(l0).any() or (l0 < 0).any():
        raise ValueError("l0 must be a non-empty 1-D array of values >= 0 (inf for a failed attack)")
    return float(l0[math.ceil(l0.size / 2) - 1])


def summarize_attack(log: AttackLog) -> dict[str, Any]:
    """``name``, ``target``, ``n``, ``success`` (fraction), ``median_l0``, ``mean_queries``, ``seconds_per_image``."""
    return {"name": log.name, "target": log.target, "n": int(log.idx.size), "success": float(log.success.mean()),
            "median_l0": median_attack_magnitude(log.l0), "mean_queries": float(log.queries.mean()),
            "seconds_per_image": float(log.time.mean())}


def soundness(certify: RunLog, attack: AttackLog) -> dict[str, Any]:
    """Images both logs cover that are certified correctly (``compared``) and those among them the
    attack broke within the certified radius: ``inside`` (idx list), ``inside_wrong`` (PREDICT gave a
    wrong class: contradicts the certificate) and ``inside_abstain`` (PREDICT abstained).

    Args:
        certify: The certify log of the attacked checkpoint.
        attack: The attack log.
    """
    if certify.radius is None:
        raise ValueError(f"{certify.path} is a predict log: soundness needs certified radii")
    radius = dict(zip(certify.idx.tolist(), np.where(certify.correct, certify.radius, np.nan).tolist(), strict=True))
    certified = {i for i, r in radius.items() if not math.isnan(r)}
    inside = [int(i) for i, l0, ok in zip(attack.idx, attack.l0, attack.success, strict=True)
              if ok and int(i) in certified and l0 <= radius[int(i)]]
    decision = {}
    if inside:
        saved = read_adversarial(attack.path)
        decision = dict(zip(saved["idx"].tolist(), saved["decision"].tolist(), strict=True))
    return {"compared": len(certified & set(attack.idx.tolist())), "inside": inside,
            "inside_wrong": [i for i in inside if decision[i] != -1],
            "inside_abstain": [i for i in inside if decision[i] == -1]}


def _l0_text(value: float) -> str:
    return "N/A" if value == -math.inf else "none found" if value == math.inf else f"{value:g}"


def table2(attacks: list[AttackLog], certify: list[RunLog], markdown: bool = False) -> str:
    """Table 2 at our scale: per attack log, the certified median of the certify log of the same
    checkpoint, dataset and split (N/A for an undefended model) on the attacked images, the attack's success rate and
    median magnitude, and the soundness count (successes inside a certified radius).

    Args:
        attacks: The attack logs, one row each.
        certify: The certify logs to take each row's certified median from.
        markdown: A Markdown table instead of plain text.
    """
    by_run = {}
    for log in certify:
        settings_path = log.path.with_name(log.path.name + ".json")
        if log.radius is not None and settings_path.is_file():
            by_run[attacked_run(json.loads(settings_path.read_text()))] = log
    header = ["attack log", "target", "images", "certified median", "attack success", "median attack L0",
              "inside certified radius"]
    rows = []
    for log in attacks:
        cert = by_run.get(log.run) if log.target == "smoothed" else None
        certified, inside = "N/A", "-"
        if cert is not None:
            keep = np.isin(cert.idx, log.idx)
            if keep.any():
                certified = _l0_text(median_certified_robustness(cert.radius[keep], cert.correct[keep]))
                check = soundness(cert, log)
                inside = (f"{len(check['inside'])} of {check['compared']} ({len(check['inside_wrong'])} wrong class, "
                          f"{len(check['inside_abstain'])} abstain)")
        s = summarize_attack(log)
        rows.append([log.name, log.target, str(s["n"]), certified, f"{100 * s['success']:.1f}%",
                     _l0_text(s["median_l0"]), inside])
    if markdown:
        return "\n".join("| " + " | ".join(r) + " |" for r in [header, ["---"] * len(header), *rows])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows])
