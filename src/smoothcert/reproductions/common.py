"""Shared steps of the reproductions: train (or reuse) a model, certify test images into a resumable
log, and format the markdown tables printed beside the papers' numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..errors import check_count
from ..options import DataOptions, RuntimeOptions, SamplingOptions, gather
from ..reports import RunLog, plot_certified_accuracy, read_log
from ..runner.jobs import evaluate
from ..runner.log import TsvLog
from ..training import Method, get_recipe, train_classifier

def check_counts(*, max_images: int | None = None, n0: int | None = None, n: int | None = None,
                 alpha: float | None = None, epochs: int | None = None) -> None:
    """Long runs check their options before starting, each by the bundle that owns it
    ([`DataOptions`][smoothcert.options.DataOptions], [`SamplingOptions`][smoothcert.options.SamplingOptions];
    the error names the command-line flag): None is not given."""
    DataOptions(max_images=max_images)
    SamplingOptions(n0=n0, n=n, alpha=alpha)
    if epochs is not None:
        check_count("epochs", epochs)


def accuracy_cell(summary: dict[str, Any]) -> str:
    return f"{100 * summary['accuracy']:.2f}% ({100 * summary['abstained']:.2f}%)"


def median_cell(summary: dict[str, Any]) -> str:
    return median_text(summary["median"])


def median_text(median: float) -> str:
    return "N/A" if median == -math.inf else f"{median:g}"


RUNTIME = {"runtime": ("seed", "device", "progress")}
"""The bundle fields a reproduction reads: the seed of training and of the noise streams, the
device and the progress bars ([`RuntimeOptions`][smoothcert.options.RuntimeOptions])."""


def train_or_reuse(model_dir: Path, *, recipe: Any, runtime: RuntimeOptions, dataset: str = "mnist5k",
                   **noise: Any) -> Path:
    """Train a model on ``dataset`` into ``model_dir`` with ``recipe``, finishing an interrupted run and
    reusing a finished one; ``noise`` (and ``method``, ``model``) go to ``train_classifier``."""
    done = read_config(model_dir).get("epoch", 0) if (model_dir / "config.json").exists() else None
    if done is None or done < recipe.epochs:
        train_classifier(dataset, model_dir, recipe=recipe, resume=done is not None, runtime=runtime, **noise)
    return model_dir


def train_and_certify(
    run_dir: Path, *, noise: str = "ablation", k: int | None = None, encoding: str | None = None,
    sigma: float | None = None, kappa: float | None = None, levels: int | None = None, method: Method | str | None = None,
    recipe: str = "fast", epochs: int | None = None, max_images: int = 100, n0: int = 1000, n: int = 10_000,
    alpha: float = 0.05, predict: bool = False, runtime: RuntimeOptions | None = None, **options: Any,
) -> Path:
    """Train (or finish training) a model on mnist5k into ``run_dir/model`` and certify the first
    ``max_images`` test digits into ``run_dir/certify.tsv`` (and, with ``predict``, PREDICT them
    into ``run_dir/predict.tsv`` with the same n and alpha); every step resumes. ``runtime`` (``seed``, ``device``,
    ``progress``), or its fields as keywords ``options``. Returns the certify log's path."""
    (runtime,) = gather(train_and_certify, options, RUNTIME, runtime=runtime)
    model_dir = run_dir / "model"
    train_or_reuse(model_dir, recipe=get_recipe(recipe, epochs=epochs), runtime=runtime, noise=noise, k=k,
                   encoding=encoding, sigma=sigma, kappa=kappa, levels=levels, method=method)
    return certify_checkpoint(model_dir, run_dir, max_images=max_images, n0=n0, n=n, alpha=alpha, runtime=runtime,
                              predict=predict)


def certify_checkpoint(
    model_dir: Path, run_dir: Path, *, runtime: RuntimeOptions, max_images: int = 100, n0: int = 1000,
    n: int = 10_000, alpha: float = 0.05, predict: bool = False,
) -> Path:
    """The certify (and predict) half of [`train_and_certify`][train_and_certify] for a finished checkpoint
    ``model_dir``, by the [`evaluate`][smoothcert.runner.jobs.evaluate] job with the paper's fixed
    sampling: logs go to ``run_dir``, never into the checkpoint."""
    data = DataOptions(dataset="mnist5k", max_images=max_images)
    if predict:
        evaluate(model_dir, run_dir / "predict.tsv", mode="predict", data=data, runtime=runtime,
                 samples=SamplingOptions(n=n, alpha=alpha, sampling="fixed"))
    return _finished(evaluate(model_dir, run_dir / "certify.tsv", data=data, runtime=runtime,
                              samples=SamplingOptions(n0=n0, n=n, alpha=alpha, sampling="fixed")))


def certify_deterministic(run_dir: Path, data: DataOptions, runtime: RuntimeOptions, name: str,
                          **options: Any) -> tuple[RunLog, int]:
    """Certify the test images ``data`` names with the deterministic classifier of ``run_dir/model``
    (``options``: ``vote``, ``theta``, ``patch``) into ``run_dir/<name>.tsv`` by the
    [`evaluate`][smoothcert.runner.jobs.evaluate] job; returns the log and the forward passes per image
    (the ``n`` the log records: one per ablation set)."""
    path = _finished(evaluate(run_dir / "model", run_dir / f"{name}.tsv", **options, data=data, runtime=runtime))
    return read_log(path, name=name), TsvLog.recorded(path)["n"]


def _finished(log: Path | None) -> Path:
    """The log a job wrote; a reproduction runs in one process (under torchrun every rank would
    return None but rank 0)."""
    if log is None:
        raise RuntimeError("the reproductions run in one process: start them without torchrun")
    return log


def publish(text: str, path: Path, logs: list[RunLog] | None = None, xlabel: str = "radius (pixels, L0)") -> str:
    """Print ``text``, write it to ``path`` and, given ``logs``, their certified-accuracy plot beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if logs:
        plot_certified_accuracy(logs, path.with_suffix(".png"), xlabel=xlabel)
    print(text)
    return text


def markdown(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]
