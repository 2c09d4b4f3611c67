"""Shared steps of the reproductions: train (or reuse) a model, certify test images into a resumable
log, and format the markdown tables printed beside the papers' numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..classifiers import DeterministicClassifier, SmoothedClassifier
from ..data import load_dataset
from ..errors import check_count
from ..reports import RunLog, plot_certified_accuracy, read_log
from ..runner import run_dataset
from ..runner.jobs import run_settings
from ..training import Method, get_recipe, train_classifier

# the command-line flag of each count the reproductions check (their messages name what the user typed)
_FLAGS = {"max_images": "--max", "n0": "--n0", "n": "--n", "epochs": "--epochs"}


def check_flag_counts(**counts: int | None) -> None:
    """Long runs check their counts before starting: each given count must be a positive integer
    ([`check_count`][smoothcert.errors.check_count], the error naming the command-line flag)."""
    for name, value in counts.items():
        if value is not None:
            check_count(_FLAGS.get(name, f"--{name.replace('_', '-')}"), value)


def accuracy_cell(summary: dict[str, Any]) -> str:
    return f"{100 * summary['accuracy']:.2f}% ({100 * summary['abstained']:.2f}%)"


def median_cell(summary: dict[str, Any]) -> str:
    return median_text(summary["median"])


def median_text(median: float) -> str:
    return "N/A" if median == -math.inf else f"{median:g}"


def train_or_reuse(model_dir: Path, *, recipe: Any, dataset: str = "mnist5k", seed: int = 0, device: str = "auto",
                   progress: bool = True, **noise: Any) -> Path:
    """Train a model on ``dataset`` into ``model_dir`` with ``recipe``, finishing an interrupted run and
    reusing a finished one; ``noise`` (and ``method``, ``model``) go to ``train_classifier``."""
    done = read_config(model_dir).get("epoch", 0) if (model_dir / "config.json").exists() else None
    if done is None or done < recipe.epochs:
        train_classifier(dataset, model_dir, recipe=recipe, seed=seed, device=device, resume=done is not None,
                         progress=progress, **noise)
    return model_dir


def train_and_certify(
    run_dir: Path, *, noise: str = "ablation", k: int | None = None, encoding: str | None = None,
    sigma: float | None = None, kappa: float | None = None, levels: int | None = None, method: Method | str | None = None,
    recipe: str = "fast", epochs: int | None = None, max_images: int = 100, n0: int = 1000, n: int = 10_000,
    alpha: float = 0.05, seed: int = 0, device: str = "auto", progress: bool = True, predict: bool = False,
) -> Path:
    """Train (or finish training) a model on mnist5k into ``run_dir/model`` and certify the first
    ``max_images`` test digits into ``run_dir/certify.tsv`` (and, with ``predict``, PREDICT them
    into ``run_dir/predict.tsv`` with the same n and alpha); every step resumes. Returns the
    certify log's path."""
    model_dir = run_dir / "model"
    train_or_reuse(model_dir, recipe=get_recipe(recipe, epochs=epochs), noise=noise, k=k, encoding=encoding, sigma=sigma,
                   kappa=kappa, levels=levels, method=method, seed=seed, device=device, progress=progress)
    return certify_checkpoint(model_dir, run_dir, max_images=max_images, n0=n0, n=n, alpha=alpha, seed=seed,
                              device=device, progress=progress, predict=predict)


def certify_checkpoint(
    model_dir: Path, run_dir: Path, *, max_images: int = 100, n0: int = 1000, n: int = 10_000, alpha: float = 0.05,
    seed: int = 0, device: str = "auto", progress: bool = True, predict: bool = False,
) -> Path:
    """The certify (and predict) half of [`train_and_certify`][train_and_certify] for a finished checkpoint
    ``model_dir``: logs go to ``run_dir``, never into the checkpoint."""
    smoothed = SmoothedClassifier.from_checkpoint(model_dir, device=device)
    data = load_dataset("mnist5k", "test")
    settings = run_settings(model_dir, "mnist5k", "test")
    indices = list(range(min(max_images, len(data))))
    if predict:
        run_dataset(smoothed, data, run_dir / "predict.tsv", mode="predict", n=n, alpha=alpha, seed=seed,
                    indices=indices, settings=settings, progress=progress)
    return run_dataset(smoothed, data, run_dir / "certify.tsv", n0=n0, n=n, alpha=alpha, seed=seed,
                       indices=indices, settings=settings, progress=progress)


def certify_deterministic(run_dir: Path, dataset: str, max_images: int, seed: int, device: str, progress: bool,
                           name: str, **options: Any) -> tuple[RunLog, int]:
    """Certify the first ``max_images`` test images of ``dataset`` with the deterministic classifier of
    ``run_dir/model`` into ``run_dir/<name>.tsv``; returns the log and the forward passes per image."""
    classifier = DeterministicClassifier.from_checkpoint(run_dir / "model", device=device, **options)
    data = load_dataset(dataset, "test")
    settings = run_settings(run_dir / "model", dataset, "test")
    path = run_dataset(classifier, data, run_dir / f"{name}.tsv", n0=classifier.copies, n=classifier.copies,
                       seed=seed, indices=list(range(min(max_images, len(data)))), settings=settings, progress=progress)
    return read_log(path, name=name), classifier.copies


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
