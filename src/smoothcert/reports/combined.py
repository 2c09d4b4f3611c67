"""``smoothcert report``: one text for any mix of certify, predict and attack logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .certified import format_table, read_log, summarize
from .empirical import is_attack_log, read_attack_log, table2
from .figures import plot_certified_accuracy


def report(logs: Sequence[str | Path], radii: Sequence[float], *, markdown: bool = False,
           plot: str | Path | None = None) -> str:
    """The summary table of the certify/predict ``logs`` at ``radii`` and, with attack logs, Table 2
    (certified vs empirical median, soundness; Levine & Feizi 2020); with ``plot``, also writes the
    certified-accuracy curves of the certify logs to that PNG (ValueError if there is none).

    Runs are named by their file stem, or by folder and stem when two stems are equal.
    """
    paths = [Path(p) for p in logs]
    stems = [p.stem for p in paths]
    unique = len(set(stems)) == len(stems)  # else runs/a/certify.tsv -> a/certify
    names = {p: None if unique else f"{p.parent.name}/{p.stem}" for p in paths}
    attacks = [read_attack_log(p, names[p]) for p in paths if is_attack_log(p)]
    runs = [read_log(p, names[p]) for p in paths if not is_attack_log(p)]
    certified = [log for log in runs if log.radius is not None]
    if plot is not None and not certified:
        raise ValueError("--plot needs at least one certify log (predict and attack logs have no radii)")
    parts = [format_table([summarize(log, radii) for log in runs], radii, markdown=markdown)] if runs else []
    if attacks:
        parts.append(table2(attacks, runs, markdown=markdown))
    if plot is not None:
        parts.append(f"plot written to {plot_certified_accuracy(certified, plot)}")
    return "\n\n".join(parts)
