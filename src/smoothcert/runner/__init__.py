"""The dataset runner: certify, predict or attack a dataset into resumable per-image logs."""

from __future__ import annotations

from .dataset import (
           WINDOW,
           adversarial_path,
           read_adversarial,
           run_attack,
           run_dataset,
           select_indices,
)
from .log import ATTACK_COLUMNS, CERTIFY_COLUMNS, PREDICT_COLUMNS, TsvLog

__all__ = ["ATTACK_COLUMNS", "CERTIFY_COLUMNS", "PREDICT_COLUMNS", "TsvLog", "WINDOW", "adversarial_path", "read_adversarial",
           "run_attack", "run_dataset", "select_indices"]
