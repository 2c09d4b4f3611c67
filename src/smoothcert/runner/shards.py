"""Split a dataset run into shards and join their logs: torchrun ranks or scheduler job arrays.

Every image's row depends only on ``(seed, idx)`` (see [`smoothcert.runner.dataset`][smoothcert.runner.dataset]), so a
run can be cut into shards that write separate logs, ``certify.tsv`` -> ``certify.shard-0-of-4.tsv``
..., and the rows joined by ``idx`` give the log a single process writes (equal up to the
``time`` column). Shard ``I`` of ``N`` takes every ``N``-th image of the selection from position
``I``; its log records ``"shard": "I/N"`` beside the run's settings, so resuming it with another
split is refused. Each shard log has its own lock, so shards never contend for one.

``run_sharded`` wraps [`run_dataset`][run_dataset] / [`run_attack`][run_attack]: under ``torchrun`` every rank runs
its shard and rank 0 merges the shard logs into ``out`` after a barrier (shard files need a
filesystem all nodes share); with ``shard=Shard(I, N)`` (``--shard I/N``, e.g. a Slurm job array)
it runs one shard and leaves the merge to [`merge_logs`][merge_logs] (``smoothcert merge``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from ..runtime.distributed import barrier, current_world, process_group
from .dataset import adversarial_path, read_adversarial, write_adversarial
from .log import differing, log_lock, read_settings, write_atomically

SHARD_TIMEOUT = timedelta(days=7)
"""How long rank 0 waits at the barrier for the other shards: ranks of a resumed run may finish hours
apart. A rank that dies does not make the others wait: torchrun then stops every rank."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count`` shards.

    Args:
        index: This shard, 0..``count`` - 1.
        count: The number of shards.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"a shard is I/N with 0 <= I < N, got {self.index}/{self.count}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` -> ``Shard(I, N)``."""
        index, sep, count = text.partition("/")
        try:
            if not sep:
                raise ValueError
            return cls(int(index), int(count))
        except ValueError:
            raise ValueError(f"--shard expects I/N with 0 <= I < N (e.g. 0/4), got {text!r}") from None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, indices: Sequence[int]) -> list[int]:
        """This shard's images: every ``count``-th of ``indices`` from position ``index``."""
        return list(indices[self.index :: self.count])

    def path(self, out: str | Path) -> Path:
        """The shard's log beside ``out``: ``certify.tsv`` -> ``certify.shard-I-of-N.tsv``."""
        out = Path(out)
        return out.with_name(f"{out.stem}.shard-{self.index}-of-{self.count}{out.suffix}")


def _settings_path(log: Path) -> Path:
    return log.with_name(log.name + ".json")


def _read_settings(log: Path) -> dict[str, Any]:
    path = _settings_path(log)
    if not log.is_file() or not path.is_file():
        raise FileNotFoundError(f"{log} is not a smoothcert log (missing {log.name if not log.is_file() else path.name})")
    return read_settings(path)


def _read_rows(log: Path) -> tuple[list[str], dict[int, list[str]]]:
    """(header, {idx: fields}) of a log; a last line cut off by an interruption is ignored."""
    text = log.read_text()
    lines = text[: text.rfind("\n") + 1].splitlines()
    if not lines:
        raise ValueError(f"{log} has no header")
    header, rows = lines[0].split("\t"), {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != len(header):
            raise ValueError(f"{log} line {number} has {len(fields)} fields, expected {len(header)}")
        idx = int(fields[0])
        if idx in rows:
            raise ValueError(f"{log} holds image idx {idx} twice")
        rows[idx] = fields
    return header, rows


def _check_same_settings(expected: dict[str, Any], found: dict[str, Any], where: str, reference: Path) -> None:
    diff = differing(expected, found)
    if diff:
        raise ValueError(f"{where} was written with different settings than {reference} ({', '.join(diff)}); "
                         "refusing to merge")


def merge_logs(out: str | Path, shards: Sequence[str | Path], *, remove: bool = False) -> Path:
    """Join the shard logs ``shards`` (all shards 0..N-1 of one run) into the log ``out``, rows
    ordered by ``idx``; adversarial examples of attack logs are joined too.

    Shard logs whose settings differ (apart from the ``shard`` key) are refused, as is an
    existing ``out`` with other settings; rows already in ``out`` are kept, and a shard row for
    the same image must agree with them in every column but ``time``. ``out`` is replaced in one
    rename. ``remove=True`` deletes the shard files afterwards (torchrun runs do).

    Args:
        out: The merged log.
        shards: The logs of shards 0..N-1 of one run.
        remove: Whether to delete the shard logs afterwards.

    Returns:
        ``out``.
    """
    out, paths = Path(out), [Path(p) for p in shards]
    if not paths:
        raise ValueError("merge needs at least one shard log")
    seen: set[Path] = set()
    for p in (out, *paths):
        if p.resolve() in seen:
            raise ValueError(f"{p} is given twice")
        seen.add(p.resolve())
    with ExitStack() as stack:
        for log in (out, *paths):
            stack.enter_context(log_lock(log))
        settings = {p: _read_settings(p) for p in paths}
        base = {k: v for k, v in settings[paths[0]].items() if k != "shard"}
        found: dict[str, Path] = {}
        for p, s in settings.items():
            _check_same_settings(base, {k: v for k, v in s.items() if k != "shard"}, str(p), paths[0])
            if "shard" not in s:
                raise ValueError(f"{p} is not a shard log (its settings have no 'shard')")
            if s["shard"] in found:
                raise ValueError(f"{p} and {found[s['shard']]} are both shard {s['shard']}")
            found[s["shard"]] = p
        count = Shard.parse(next(iter(found))).count
        missing = [str(Shard(i, count)) for i in range(count) if str(Shard(i, count)) not in found]
        if missing or any(Shard.parse(s).count != count for s in found):
            raise ValueError(f"the shard logs are not shards 0..{count - 1} of one run of {count} "
                             f"(missing {', '.join(missing) or 'none'}; found {', '.join(sorted(found))})")
        selection = base.pop("selection", None)  # the merged log is no shard: its rows are the whole selection
        header, rows = _read_rows(paths[0])[0], {}
        origin: dict[int, Path] = {}
        if out.exists():
            _check_same_settings({k: v for k, v in _read_settings(out).items() if k != "selection"}, base, str(out),
                                 paths[0])
            out_header, rows = _read_rows(out)
            if out_header != header:
                raise ValueError(f"{out} has the columns {' '.join(out_header)}, {paths[0]} has {' '.join(header)}")
            origin = dict.fromkeys(rows, out)
        for p in paths:
            shard_header, shard_rows = _read_rows(p)
            if shard_header != header:
                raise ValueError(f"{p} has the columns {' '.join(shard_header)}, {paths[0]} has {' '.join(header)}")
            timeless = [i for i, c in enumerate(header) if c != "time"]
            for idx, fields in shard_rows.items():
                if idx in rows and origin[idx] != out:
                    raise ValueError(f"image idx {idx} is in both {origin[idx]} and {p}")
                if idx in rows and [rows[idx][i] for i in timeless] != [fields[i] for i in timeless]:
                    raise ValueError(f"image idx {idx} differs between {out} and {p}; refusing to merge")
                if idx not in rows:
                    rows[idx], origin[idx] = fields, p
        if selection is not None:
            _check_complete(selection, count, found, rows)
        examples = _join_examples(out, paths)
        if examples is not None:
            lacking = sorted(rows.keys() - examples.keys())
            if lacking:
                raise ValueError(f"image idx {lacking[0]} has a row but no adversarial example; refusing to merge")
            write_adversarial(adversarial_path(out), {i: examples[i] for i in rows})
        if not out.exists():
            write_atomically(_settings_path(out), json.dumps(base, indent=2, sort_keys=True))
        tmp = out.with_name(out.name + ".merging")
        tmp.write_text("".join("\t".join(fields) + "\n" for fields in [header, *(rows[i] for i in sorted(rows))]))
        os.replace(tmp, out)
        if remove:
            for p in paths:
                for f in (p, _settings_path(p), adversarial_path(p) if examples is not None else None):
                    if f is not None:
                        f.unlink(missing_ok=True)
                p.with_name(p.name + ".lock").unlink(missing_ok=True)  # held by us: nobody else can be using it
    return out


def describe_selection(indices: Sequence[int]) -> dict[str, Any]:
    """The images a sharded run covers, as its shard logs record them: ``{"start", "stop", "step"}``
    for a range (``--skip``/``--max``), else ``{"indices": [...]}``."""
    indices = [int(i) for i in indices]
    step = indices[1] - indices[0] if len(indices) > 1 else 1
    if indices and step > 0 and indices == list(range(indices[0], indices[0] + step * len(indices), step)):
        return {"start": indices[0], "stop": indices[0] + step * len(indices), "step": step}
    return {"indices": indices}


def _selected(selection: dict[str, Any]) -> list[int]:
    if "indices" in selection:
        return [int(i) for i in selection["indices"]]
    return list(range(selection["start"], selection["stop"], selection["step"]))


def _check_complete(selection: dict[str, Any], count: int, found: dict[str, Path], rows: dict[int, list[str]]) -> None:
    """Refuse to merge while a shard lacks rows of its images (an interrupted shard: resume it first)."""
    for index in range(count):
        lacking = [i for i in Shard(index, count).select(_selected(selection)) if i not in rows]
        if lacking:
            shown = ", ".join(map(str, lacking[:5])) + (", ..." if len(lacking) > 5 else "")
            raise ValueError(f"{found[str(Shard(index, count))]} lacks {len(lacking)} of its images (idx {shown}): "
                             "the shard was interrupted; run it again with the same command, then merge")


def _join_examples(out: Path, paths: Sequence[Path]) -> dict[int, tuple[np.ndarray, bool, int]] | None:
    """The adversarial examples of ``out`` and the shards by idx, or None for logs without any."""
    sources = [p for p in (out, *paths) if adversarial_path(p).is_file()]
    if not sources:
        return None
    joined: dict[int, tuple[np.ndarray, bool, int]] = {}
    for p in sources:
        saved = read_adversarial(p)
        for i, x, s, d in zip(*saved.values(), strict=True):
            joined.setdefault(int(i), (x, bool(s), int(d)))
    return joined


def run_sharded(run: Callable[..., Path], out: str | Path, *, indices: Sequence[int],
                settings: dict[str, Any] | None = None, shard: Shard | None = None, progress: bool = True,
                **kwargs: Any) -> Path | None:
    """``run(out=..., indices=..., settings=..., progress=..., **kwargs)`` (``run_dataset`` or
    ``run_attack`` with their leading arguments bound), split into shards.

    Without torchrun and ``shard``: one process, the log ``out``. With ``shard``: that shard's
    images into its own log (returned). Under torchrun: rank r runs shard r/WORLD_SIZE into its
    log, skipping images already in ``out``; after a barrier rank 0 merges the shard logs into
    ``out`` and returns it (other ranks return None). A killed run resumes from the shard logs
    when restarted with the same number of ranks.

    Args:
        run: ``run_dataset`` or ``run_attack`` with their leading arguments bound.
        out: The log of the whole run.
        indices: The dataset indices to run.
        settings: What the log records.
        shard: Run only this shard; None: all (or this rank's, under torchrun).
        progress: Whether to show a progress bar.
        **kwargs: Further arguments of ``run``.

    Returns:
        The log written (a shard's, or ``out``); None on the other ranks under torchrun.
    """
    world = current_world()
    if shard is not None and world.distributed:
        raise ValueError("--shard is for runs without torchrun; under torchrun every rank takes its own shard")
    if shard is None and not world.distributed:
        return run(out=out, indices=list(indices), settings=settings, progress=progress, **kwargs)
    out = Path(out)
    settings = {**(settings or {}), "selection": describe_selection(indices)}
    if shard is not None:
        return _run_shard(run, out, shard, shard.select(indices), settings, progress, kwargs)
    with process_group("gloo", SHARD_TIMEOUT) as world:
        done = set(_read_rows(out)[1]) if out.exists() else set()
        mine = [i for i in Shard(world.rank, world.size).select(indices) if i not in done]
        _run_shard(run, out, Shard(world.rank, world.size), mine, settings, progress and world.main, kwargs)
        barrier()
        if not world.main:
            return None
        return merge_logs(out, [Shard(r, world.size).path(out) for r in range(world.size)], remove=True)


def _run_shard(run: Callable[..., Path], out: Path, shard: Shard, indices: list[int],
               settings: dict[str, Any] | None, progress: bool, kwargs: dict[str, Any]) -> Path:
    """Run ``indices`` into the log of ``shard``; refuses before any work if ``out`` exists with
    other settings (the shard log is opened empty first, which writes its settings)."""
    path, shard_settings = shard.path(out), {**(settings or {}), "shard": str(shard)}
    if out.exists():
        run(out=path, indices=[], settings=shard_settings, progress=False, **kwargs)
        shard_saved = {k: v for k, v in _read_settings(path).items() if k != "shard"}
        _check_same_settings(_read_settings(out), shard_saved, str(out), path)
    return run(out=path, indices=indices, settings=shard_settings, progress=progress, **kwargs)
