"""Checkpoints: safetensors weights plus a JSON config, never pickles.

A checkpoint is a directory holding

- ``model.safetensors``: the model's state dict;
- ``optimizer.safetensors``: the optimizer's tensor state (only for training checkpoints);
- ``config.json``: what the model is (``model``, ``in_channels``, ``num_classes``,
  ``image_size``), how it was trained (``noise``, ``dataset``, ``recipe``, ``method``, ``seed``),
  the last finished ``epoch``, the per-epoch ``history`` and the optimizer's non-tensor state.

``config.json`` is written last and atomically, so a directory whose config exists is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .models import build_model
from .noises import Ablation, Bands, Clean, Gaussian, Noise, Partition

FORMAT = "smoothcert-checkpoint/1"
_REQUIRED = ("format", "model", "in_channels", "num_classes", "image_size", "noise")


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def save_checkpoint(
    path: str | Path, model: nn.Module, config: dict[str, Any], optimizer: torch.optim.Optimizer | None = None
) -> Path:
    """Write ``model`` (and ``optimizer``) with ``config`` to the directory ``path``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config = {**config, "format": FORMAT}
    missing = [k for k in _REQUIRED if k not in config]
    if missing:
        raise ValueError(f"checkpoint config lacks {missing}")
    _save_tensors(path / "model.safetensors", model.state_dict())
    if optimizer is not None:
        state = optimizer.state_dict()
        tensors, scalars = {}, {}
        for pid, slots in state["state"].items():
            for name, value in slots.items():
                if torch.is_tensor(value):
                    tensors[f"{pid}.{name}"] = value
                else:
                    scalars[f"{pid}.{name}"] = value
        _save_tensors(path / "optimizer.safetensors", tensors)
        config["optimizer"] = {"param_groups": state["param_groups"], "scalars": scalars}
    _write_json(path / "config.json", config)
    return path


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


def noise_from_config(cfg: dict[str, Any]) -> Noise:
    """Rebuild the noise object recorded by ``Noise.config()``."""
    cfg = dict(cfg)
    kind = cfg.pop("noise", None)
    if kind == "ablation":
        return Ablation(**cfg)
    if kind == "gaussian":
        return Gaussian(**cfg)
    if kind == "none":
        return Clean()
    if kind in ("columns", "blocks"):
        return Bands(kind, **cfg)
    if kind == "partition":
        return Partition(**cfg)
    raise ValueError(f"unknown noise {kind!r} in checkpoint config")


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint file {file} is missing")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"corrupt checkpoint file {file}: {err}") from err


def load_weights(path: str | Path, model: nn.Module) -> None:
    """Load ``model.safetensors`` into ``model``; a mismatch is a ValueError, not a partial load."""
    file = Path(path) / "model.safetensors"
    try:
        model.load_state_dict(_load_tensors(file))
    except RuntimeError as err:
        raise ValueError(f"weights in {file} do not fit the model: {err}") from err


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a checkpoint describes, load its weights, return (model in eval mode, config)."""
    config = read_config(path)
    model = build_model(
        config["model"], config["in_channels"], config["num_classes"], tuple(config["image_size"])
    )
    load_weights(path, model)
    return model.to(device).eval(), config


def load_optimizer(path: str | Path, optimizer: torch.optim.Optimizer, config: dict[str, Any]) -> None:
    """Restore the optimizer state saved by ``save_checkpoint``."""
    tensors = _load_tensors(Path(path) / "optimizer.safetensors")
    saved = config.get("optimizer")
    if saved is None:
        raise ValueError(f"checkpoint {path} holds no optimizer state")
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *saved["scalars"].items()]:
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
