"""Resumable tab-separated logs: one row per image, flushed as soon as it is written.

Next to ``run.tsv`` a ``run.tsv.json`` records the settings of the run. Opening an existing log
checks that the settings are the same (otherwise continuing would mix two experiments in one
file), drops a last line cut off by an interruption, and reports the finished indices, so a
re-run appends exactly the missing rows and ends with the file an uninterrupted run writes.
A log has one writer at a time: ``run.tsv.lock`` holds an exclusive lock while it is open.

A checkpoint in the settings is recorded twice: the path as the user gave it and its identity, the
SHA-256 of its weights (``checkpoint``/``weights``, ``denoiser``/``denoiser_weights``). Only the
identity must match: a log resumes from a copy of its checkpoint in another folder or on another
machine, and refuses other weights at the same path. A log written before identities were recorded
(an absolute path, no hash) resumes from that path and gains the identity then.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..certificates.sequential import upgraded_record
from ..runtime.locking import FileLock

CERTIFY_COLUMNS = ("idx", "label", "predict", "count", "n", "p_lower", "radius", "correct", "time")
PREDICT_COLUMNS = ("idx", "label", "predict", "count", "n", "correct", "time")
ATTACK_COLUMNS = ("idx", "label", "l0", "queries", "success", "time")


# path key -> identity key of each checkpoint a log's settings may name ("classifier": the frozen
# classifier of ``reproduce denoised``)
IDENTITIES = {"checkpoint": "weights", "classifier": "weights", "denoiser": "denoiser_weights"}


# settings that logs record since a later version, or only where they are known (the dataset's identity
# in the command line's jobs): compared only when both sides record them, so older logs still resume
LATER_KEYS = ("selection", "data_sha256")


def differing(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The keys whose values differ between a log's recorded settings ``saved`` and a run's
    ``current`` ones, comparing each checkpoint by its identity (see above), not by its path, and
    an old form of the sampling by what it stands for ([`upgraded_record`][smoothcert.certificates.sequential.upgraded_record])."""
    saved, current = dict(saved), dict(current)
    for settings in (saved, current):
        if "sampling" in settings:
            settings["sampling"] = upgraded_record(settings["sampling"])
    for key in LATER_KEYS:
        if key not in saved or key not in current:
            saved.pop(key, None), current.pop(key, None)
    for path_key, id_key in IDENTITIES.items():
        if id_key not in saved and path_key in saved and path_key in current:  # a log from before identities
            current.pop(id_key, None)
            if Path(saved[path_key]).resolve() == Path(current[path_key]).resolve():
                saved.pop(path_key), current.pop(path_key)
        elif id_key in saved and id_key in current:
            saved.pop(path_key, None), current.pop(path_key, None)
    return sorted(k for k in saved.keys() | current.keys() if saved.get(k) != current.get(k))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place; on failure (a full
    disk) nothing is left behind and the OSError names ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write {path}: {err.strerror or err}") from err


def read_settings(path: Path) -> dict[str, Any]:
    """The settings file ``path`` of a log, a JSON object; ValueError naming the file otherwise."""
    try:
        settings = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a settings file of a smoothcert log ({err}); restore it or choose another "
                         "--out") from None
    if not isinstance(settings, dict):
        raise ValueError(f"{path}: not a settings file of a smoothcert log (a JSON {type(settings).__name__}, "
                         "expected an object); restore it or choose another --out")
    return settings


def _format(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else "inf" if math.isinf(value) else f"{value:.6g}"
    return str(value)


def log_lock(path: str | Path) -> FileLock:
    """The lock of the log ``path``: the file ``path`` + ``.lock`` beside it."""
    path = Path(path)
    return FileLock(path.with_name(path.name + ".lock"), str(path))


class TsvLog:
    """Append-only TSV log with the given ``columns`` at ``path``; use as a context manager."""

    def __init__(self, path: str | Path, columns: Sequence[str], settings: dict[str, Any]) -> None:
        self.path = Path(path)
        self.columns = tuple(columns)
        self.settings_path = self.path.with_name(self.path.name + ".json")
        self.done: set[int] = set()
        settings = json.loads(json.dumps(settings))  # normalise tuples etc. as they read back
        self._lock = log_lock(self.path).acquire()
        try:
            if self.path.exists():
                self._reopen(settings)
            else:  # each file appears whole or not at all: a full disk leaves nothing that blocks a rerun
                write_atomically(self.settings_path, json.dumps(settings, indent=2, sort_keys=True))
                write_atomically(self.path, "\t".join(self.columns) + "\n")
            self._file = self.path.open("a")
        except BaseException:
            self._lock.release()
            raise

    @staticmethod
    def recorded(path: str | Path) -> dict[str, Any]:
        """The settings recorded beside the log ``path`` ({} when there is no such log yet)."""
        path = Path(path)
        settings = path.with_name(path.name + ".json")
        return read_settings(settings) if path.exists() and settings.is_file() else {}

    def _reopen(self, settings: dict[str, Any]) -> None:
        if not self.settings_path.exists():
            raise ValueError(f"{self.path} exists but has no {self.settings_path.name}: not a smoothcert log; choose another --out")
        saved = read_settings(self.settings_path)
        diff = differing(saved, settings)
        for path_key, id_key in IDENTITIES.items():
            if id_key in diff and id_key in saved:
                raise ValueError(f"{self.path} was written with the weights of {saved.get(path_key)} (SHA-256 "
                                 f"{saved[id_key][:12]}...), but {settings.get(path_key)} holds other weights "
                                 f"({str(settings.get(id_key))[:12]}...): its rows would mix two models; "
                                 "choose another --out")
        if "data_sha256" in diff:
            raise ValueError(f"{self.path} was written on other images than {settings.get('dataset')} "
                             f"({settings.get('split')}) holds now (the dataset file changed): its rows would mix two "
                             "datasets; choose another --out")
        if diff:
            raise ValueError(f"{self.path} was written with different settings ({', '.join(diff)}); choose another --out")
        if any(id_key in settings and id_key not in saved for id_key in IDENTITIES.values()):
            write_atomically(self.settings_path, json.dumps(settings, indent=2, sort_keys=True))  # gains the identity
        text = self.path.read_text()
        if not text.endswith("\n"):  # a row cut off mid-write
            text = text[: text.rfind("\n") + 1]
            self.path.write_text(text)
        lines = text.splitlines()
        if not lines or tuple(lines[0].split("\t")) != self.columns:
            raise ValueError(f"{self.path} does not start with the header {' '.join(self.columns)}")
        for number, line in enumerate(lines[1:], start=2):
            fields = line.split("\t")
            if len(fields) != len(self.columns):
                raise ValueError(f"{self.path}:{number}: {len(fields)} fields, expected {len(self.columns)}")
            try:
                self.done.add(int(fields[0]))
            except ValueError:
                raise ValueError(f"{self.path}:{number}: idx {fields[0]!r} is not an image index; the log was edited "
                                 "or damaged: repair that line or choose another --out") from None

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (keys = columns) and flush it to disk."""
        self._file.write("\t".join(_format(row[c]) for c in self.columns) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done.add(int(row["idx"]))

    def close(self) -> None:
        self._file.close()
        self._lock.release()

    def __enter__(self) -> TsvLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
