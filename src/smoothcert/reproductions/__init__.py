"""Reproductions of published tables and figures at a chosen scale, our numbers beside the papers'.

``import smoothcert`` does not import this package: ``smoothcert.reproduce`` and the other
reproductions it names load it on first use. One module per reproduction:

- ``table1``: Levine & Feizi (2020) Table 1 (k sweep) and Table 8 (NULL encodings), ``reproduce``;
  ``demo``, the README's main job (Table 1's k = 45 row), then fixed against adaptive sampling
- ``figure1``: Levine & Feizi (2020) Figure 1, ablated samples with the base classifier's labels
- ``smoothing``: Gaussian training methods beside Jeong & Shin (2020) supplement Table 2
- ``l0_consistency``: randomized ablation trained with and without consistency regularization
- ``table7``: Lee et al.'s (2019) noise against randomized ablation, Levine & Feizi (2020) Table 7
- ``denoised``: denoised smoothing (MSE, stability, DE-CROP supplement Table 1) and denoised ablation
- ``patch``: column smoothing against patches (Levine & Feizi, NeurIPS 2020)
- ``partition``: partition voting (Hammoudeh & Lowd, AAAI 2024) against randomized ablation

``published`` holds the papers' numbers, ``common`` the shared train, certify and table steps, and
[`run`][run] is ``smoothcert reproduce TABLE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..errors import ArgumentError
from ..options import RuntimeOptions, gather
from ..reports import plot_delta
from .common import RUNTIME, check_counts
from .denoised import reproduce_denoised
from .figure1 import figure_samples
from .l0_consistency import reproduce_l0_consistency
from .partition import reproduce_partition
from .patch import reproduce_patch
from .published import (
    CONSISTENCY_MNIST,
    CONSISTENCY_RADII,
    DECROP_TABLE1,
    DENOISED_RADII,
    FPA_MNIST_MEDIAN,
    PATCH_CIFAR10,
    SALMAN_CIFAR10,
    TABLE1,
    TABLE7,
    TABLE8,
)
from .smoothing import reproduce_smoothing
from .table1 import compare_sampling, demo, reproduce
from .table7 import reproduce_table7

OPTIONS: dict[str, tuple[str, ...]] = {
    "table1": ("ks", "recipe", "epochs", "n0", "n", "alpha"),
    "table7": ("ks", "kappas", "ablation_checkpoint", "recipe", "epochs", "n0", "n", "alpha"),
    "table8": ("recipe", "epochs", "n0", "n", "alpha"),
    "smoothing": ("sigmas", "epochs", "n0", "n", "alpha"),
    "l0-consistency": ("recipe", "epochs", "n0", "n", "alpha"),
    "denoised": ("classifier", "n0", "n", "alpha"),
    "patch": ("epochs",),
    "partition": ("groups", "classifier", "epochs", "n0", "n", "alpha"),
}
"""The options each table of ``smoothcert reproduce TABLE`` reads besides ``out``, ``max_images``,
``seed``, ``device`` and ``progress``; [`run`][run] refuses the others (denoised has its own
schedules, patch certifies exactly, smoothing, denoised, patch and partition train with ``fast``)."""

TABLES = tuple(OPTIONS)

FIGURE_OPTIONS: dict[str, tuple[str, ...]] = {"delta": ("d", "ks"),
                                              "samples": ("checkpoint", "dataset", "index", "data_root")}
"""The options each figure of ``smoothcert figure`` reads besides ``out``; [`figure`][figure] refuses the others."""


def _refuse_unread(command: str, reads: Sequence[str], options: dict[str, object]) -> None:
    """[`ArgumentError`][ArgumentError] for the first given (not None, not empty) option that ``command`` does not read."""
    for name, value in options.items():
        if value is not None and value != [] and name not in reads:
            read = ", ".join("--" + option.replace("_", "-") for option in reads) or "none of them"
            raise ArgumentError(name, value, "{name}: " + f"{command} does not read it (it reads {read}); drop {{name}}")


__all__ = [
    "CONSISTENCY_MNIST",
    "CONSISTENCY_RADII",
    "DECROP_TABLE1",
    "DENOISED_RADII",
    "FIGURE_OPTIONS",
    "FPA_MNIST_MEDIAN",
    "OPTIONS",
    "PATCH_CIFAR10",
    "SALMAN_CIFAR10",
    "TABLE1",
    "TABLE7",
    "TABLE8",
    "TABLES",
    "compare_sampling",
    "demo",
    "figure",
    "figure_samples",
    "reproduce",
    "reproduce_denoised",
    "reproduce_l0_consistency",
    "reproduce_partition",
    "reproduce_patch",
    "reproduce_smoothing",
    "reproduce_table7",
    "run",
]


def run(
    table: str, *, out: str | Path | None = None, max_images: int | None = None, n0: int | None = None,
    n: int | None = None, alpha: float | None = None, epochs: int | None = None, recipe: str | None = None,
    ks: Sequence[int] | None = None, kappas: Sequence[float] | None = None, sigmas: Sequence[float] | None = None,
    groups: Sequence[int] | None = None, classifier: str | Path | None = None,
    ablation_checkpoint: str | Path | None = None, runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """``smoothcert reproduce TABLE``: check the options before anything runs, then reproduce ``table``
    (one of `TABLES`) and return its markdown. None (or an empty list) keeps the reproduction's
    default (``recipe``: ``fast``); an option the table does not read ([`OPTIONS`][OPTIONS]) is refused.
    Errors name the arguments ([`ArgumentError`][ArgumentError]; ``max_images`` is the CLI's ``--max``).
    ``runtime`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]: ``seed``, ``device``,
    ``progress``), or its fields as keywords ``options``."""
    (runtime,) = gather(run, options, RUNTIME, runtime=runtime)
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    chosen = {"ks": ks, "kappas": kappas, "sigmas": sigmas, "groups": groups, "classifier": classifier,
              "ablation_checkpoint": ablation_checkpoint, "recipe": recipe}
    _refuse_unread(f"reproduce {table}", OPTIONS[table], {"n0": n0, "n": n, "alpha": alpha, "epochs": epochs, **chosen})
    check_counts(max_images=max_images, n0=n0, n=n, alpha=alpha, epochs=epochs)
    given = {"max_images": max_images, "n0": n0, "n": n, "alpha": alpha, "epochs": epochs, "out": out}
    shared = {k: v for k, v in given.items() if v is not None}
    shared["runtime"] = runtime
    chosen = {k: v for k, v in chosen.items() if v}
    if table == "denoised":
        if classifier is not None:
            read_config(classifier)  # a given classifier must exist (without it one is trained under --out)
        return reproduce_denoised(**shared, **chosen)
    if table == "smoothing":
        return reproduce_smoothing(**shared, **chosen)
    if table == "table7":
        return reproduce_table7(**shared, **{"recipe": "fast", **chosen})
    if table == "patch":
        return reproduce_patch(**shared)
    if table == "partition":
        return reproduce_partition(**shared, **chosen)
    if table == "l0-consistency":
        return reproduce_l0_consistency(**shared, **{"recipe": "fast", **chosen})
    return reproduce(table, **shared, **{"recipe": "fast", **chosen})


def figure(
    which: str, out: str | Path, *, d: int | None = None, ks: Sequence[int] | None = None,
    checkpoint: str | Path | None = None, dataset: str | None = None, index: int | None = None, split: str = "test",
    data_root: str | Path | None = None, seed: int = 0, device: str = "auto",
) -> Path:
    """``smoothcert figure``: Figure 2 (``delta``: Delta(rho) for ``d`` pixels, default 784, and
    ``ks``, default 5..100) or Figure 1 (``samples``: ablations of test image ``index``, default 0,
    of ``dataset`` with the labels of ``checkpoint``'s base classifier) into ``out``; an option the
    figure does not read is refused ([`FIGURE_OPTIONS`][FIGURE_OPTIONS])."""
    if which not in FIGURE_OPTIONS:
        raise ValueError(f"unknown figure {which!r}; choose one of {', '.join(FIGURE_OPTIONS)}")
    _refuse_unread(f"figure {which}", FIGURE_OPTIONS[which],
                   {"d": d, "ks": ks, "checkpoint": checkpoint, "dataset": dataset, "index": index, "data_root": data_root})
    if split != "test":
        raise ArgumentError("split", split, "{name} {value}: " + f"figure {which} shows test images only; drop {{name}}")
    if which == "delta":
        return plot_delta(784 if d is None else d, [5, 10, 20, 45, 70, 100] if ks is None else ks, out)
    if checkpoint is None:
        raise ArgumentError("checkpoint", None, "figure samples needs {name}")
    return figure_samples(checkpoint, dataset, 0 if index is None else index, out, seed=seed, device=device,
                          data_root=data_root)
