"""Checkpoints: safetensors weights plus a JSON config, never pickles.

A checkpoint is a directory holding

- ``model.safetensors``: the model's state dict;
- ``optimizer.safetensors``: the optimizer's tensor state (only for training checkpoints);
- ``config.json``: what the model is (``model``, ``in_channels``, ``num_classes``,
  ``image_size``), how it was trained (``noise``, ``dataset``, ``recipe``, ``method``, ``seed``),
  the last finished ``epoch``, the per-epoch ``history`` and the optimizer's non-tensor state.

A checkpoint is written as a whole (``commit``): every file goes to a temporary name first,
``config.json`` lists the SHA-256 of each tensor file (``files``), and only then are the files
renamed into place, ``config.json`` last. Loading checks the hashes, so a kill between two renames
(epoch e+1's weights beside epoch e's config) is refused instead of silently mixed, and
``recover`` (run by ``--resume``) completes the interrupted renames. A training run holds
``checkpoint.lock`` in its directory, so two runs never write one checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn

from .models import build_model
from .runtime.locking import FileLock

FORMAT = "smoothcert-checkpoint/1"
TRAINING_WEIGHTS = "training.safetensors"
_REQUIRED = ("format", "model", "in_channels", "num_classes", "image_size", "noise")


_STAGED = ".tmp"


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def commit(path: str | Path, tensor_files: dict[str, dict[str, torch.Tensor]], config: dict[str, Any]) -> Path:
    """Write the safetensors files ``tensor_files`` (file name -> tensors) and ``config.json`` (with
    ``files``: file name -> SHA-256) to the directory ``path`` as one checkpoint (see above)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    hashes = {}
    staged = [path / (name + _STAGED) for name in (*tensor_files, "config.json")]
    try:
        for name, tensors in tensor_files.items():
            data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})
            _write_durably(path / (name + _STAGED), data)
            hashes[name] = hashlib.sha256(data).hexdigest()
        _write_durably(path / ("config.json" + _STAGED),
                       json.dumps({**config, "files": hashes}, indent=2, sort_keys=True).encode())
    except OSError as err:  # e.g. a full disk: the committed checkpoint stays as it was, no staged file remains
        for file in staged:
            file.unlink(missing_ok=True)
        raise OSError(err.errno, f"cannot write the checkpoint {path}: {err.strerror or err} (the last saved "
                      "epoch is kept)") from err
    for name in (*tensor_files, "config.json"):
        os.replace(path / (name + _STAGED), path / name)
    return path


def recover(path: str | Path) -> None:
    """Complete a ``commit`` interrupted between its renames: if a staged ``config.json`` is present
    and every file it lists is present (staged or already renamed) with its hash, rename the rest."""
    path = Path(path)
    staged = path / ("config.json" + _STAGED)
    if not staged.is_file():
        return
    try:
        files = json.loads(staged.read_text())["files"]
    except (json.JSONDecodeError, KeyError):
        return  # killed while staging: the committed set is untouched
    def ready(name: str) -> bool:
        for candidate in (path / (name + _STAGED), path / name):
            if candidate.is_file() and hashlib.sha256(candidate.read_bytes()).hexdigest() == files[name]:
                return True
        return False
    if all(ready(name) for name in files):
        for name in (*files, "config.json"):
            if (path / (name + _STAGED)).is_file():
                os.replace(path / (name + _STAGED), path / name)


def checkpoint_lock(path: str | Path) -> FileLock:
    """The lock a training run holds on its checkpoint directory ``path``."""
    return FileLock(Path(path) / "checkpoint.lock", f"checkpoint {path}")


def save_checkpoint(
    path: str | Path, model: nn.Module, config: dict[str, Any], optimizer: torch.optim.Optimizer | None = None,
    training: nn.Module | None = None,
) -> Path:
    """Write ``model`` (and ``optimizer``) with ``config`` to the directory ``path`` as one ``commit``.
    ``training``: the weights being trained when ``model`` is their average (``training.safetensors``,
    read back by ``load_weights(..., file=TRAINING_WEIGHTS)`` to resume).

    Args:
        path: The checkpoint folder.
        model: The model, built by [`build_model`][smoothcert.models.build_model] or described by ``config``.
        config: What the checkpoint records (``config.json``).
        optimizer: The optimizer's state, to resume training; or None.
        training: The weights being trained when ``model`` is their average; or None.
    """
    config = {**config, "format": FORMAT}
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"checkpoint config lacks {missing}")
    files = {"model.safetensors": model.state_dict()}
    if training is not None:
        files[TRAINING_WEIGHTS] = training.state_dict()
    if optimizer is not None:
        state = optimizer.state_dict()
        tensors, scalars = {}, {}
        for pid, slots in state["state"].items():
            for name, value in slots.items():
                if torch.is_tensor(value):
                    tensors[f"{pid}.{name}"] = value
                else:
                    scalars[f"{pid}.{name}"] = value
        files["optimizer.safetensors"] = tensors
        config["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
    return commit(path, files, config)


def read_json_config(path: str | Path, fmt: str, required: Sequence[str], kind: str) -> dict[str, Any]:
    """``path/config.json`` of a ``kind`` checkpoint in format ``fmt`` with the keys ``required``;
    a clear error for a missing, corrupt or foreign directory."""
    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no {kind} checkpoint at {path} (missing {cfg_path.name})")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"corrupt {kind} checkpoint config {cfg_path}: {err}") from err
    if not isinstance(config, dict) or config.get("format") != fmt:
        found = config.get("format") if isinstance(config, dict) else None
        raise ValueError(f"{cfg_path} is not a {kind} checkpoint config ({fmt}); its format is {found!r}")
    missing = [k for k in required if k not in config]
    if missing:
        raise ValueError(f"{kind} checkpoint config {cfg_path} lacks {missing}")
    return config


def read_config(path: str | Path) -> dict[str, Any]:
    """The checkpoint's config, with a clear error for a missing or foreign directory."""
    return read_json_config(path, FORMAT, _REQUIRED, "smoothcert")


WEIGHT_FILES = ("model.safetensors", "denoiser.safetensors")


def weights_sha256(path: str | Path) -> str:
    """A checkpoint's identity: the SHA-256 of its weights (``model.safetensors``, or a denoiser's
    ``denoiser.safetensors``) as its ``config.json`` lists them, hashed from the file for a
    checkpoint written before configs listed hashes. Logs record it, so a log follows its weights
    wherever the checkpoint is copied and refuses other weights at the same path."""
    path = Path(path)
    config = path / "config.json"
    listed = (json.loads(config.read_text()).get("files") or {}) if config.is_file() else {}
    for name in WEIGHT_FILES:
        if name in listed:
            return listed[name]
        if (path / name).is_file():
            return hashlib.sha256((path / name).read_bytes()).hexdigest()
    raise FileNotFoundError(f"no checkpoint weights at {path} (expected one of {', '.join(WEIGHT_FILES)})")


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``file``, checked against the hash its directory's config.json lists."""
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file {file} is missing")
    data = file.read_bytes()
    config = file.parent / "config.json"
    expected = (json.loads(config.read_text()).get("files") or {}).get(file.name) if config.is_file() else None
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise ValueError(f"corrupt checkpoint file {file}: its SHA-256 differs from the one {config} lists (a damaged "
                         "file, or a save killed between two files: resuming the training completes such a save)")
    try:
        return load(data)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"corrupt checkpoint file {file}: {err}") from err


def load_weights(path: str | Path, model: nn.Module, file: str = "model.safetensors") -> None:
    """Load the weights ``file`` of the checkpoint ``path`` into ``model``; a mismatch is a
    ValueError, not a partial load."""
    file = Path(path) / file
    try:
        model.load_state_dict(load_tensors(file))
    except RuntimeError as err:
        raise ValueError(f"weights in {file} do not fit the model: {err}") from err


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, return (model in eval mode, config).

    Args:
        path: The checkpoint folder (``smoothcert train --out``).
        device: Where the model is loaded.
    """
    config = read_config(path)
    model = build_model(
        config["model"], config["in_channels"], config["num_classes"], tuple(config["image_size"]),
        mean=config.get("mean"), std=config.get("std"),
    )
    load_weights(path, model)
    return model.to(device).eval(), config


def load_optimizer(path: str | Path, optimizer: torch.optim.Optimizer, config: dict[str, Any]) -> None:
    """Restore the optimizer state saved by ``save_checkpoint``."""
    tensors = load_tensors(Path(path) / "optimizer.safetensors")
    saved = config.get("optimizer")
    if saved is None:
        raise ValueError(f"checkpoint {path} holds no optimizer state")
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *saved["scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
