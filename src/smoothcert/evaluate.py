"""Certify or predict a whole dataset into a resumable per-image log.

Image ``idx`` is processed with the random stream ``generator(seed, idx)``, so its row does not
depend on which other images are in the run, their order, or an interruption in between.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .certificates import check_alpha
from .data import ImageDataset
from .runlog import CERTIFY_COLUMNS, PREDICT_COLUMNS, TsvLog
from .seeding import generator
from .smooth import SmoothedClassifier, check_count


def select_indices(size: int, skip: int = 1, max_images: int | None = None) -> list[int]:
    """Every ``skip``-th index of a dataset of ``size`` images, at most ``max_images`` of them."""
    if skip < 1:
        raise ValueError(f"--skip must be a positive integer, got {skip}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"--max must be a positive integer, got {max_images}")
    return list(range(0, size, skip))[:max_images]


def run_dataset(
    smoothed: SmoothedClassifier,
    data: ImageDataset,
    out: str | Path,
    *,
    mode: str = "certify",
    n0: int = 1000,
    n: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
    indices: list[int] | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """CERTIFY (``mode="certify"``) or PREDICT (``mode="predict"``) the images ``indices`` of
    ``data`` and append one row each to the TSV log ``out``; finished rows are kept and skipped.

    ``settings`` (model, dataset, ...) are stored beside the log together with the sampling
    parameters; resuming with different ones is refused.
    """
    if mode not in ("certify", "predict"):
        raise ValueError(f"unknown mode {mode!r}; choose certify or predict")
    indices = list(range(len(data))) if indices is None else indices
    bad = [i for i in indices if not 0 <= i < len(data)]
    if bad:
        raise ValueError(f"image indices {bad[:5]} are outside the dataset of {len(data)} images")
    check_alpha(alpha)
    check_count("n", n)
    if mode == "certify":
        check_count("n0", n0)
    if indices:
        smoothed.sample(data.x[indices[0]], 1)  # model/data mismatches fail here, before a log is written
    columns = CERTIFY_COLUMNS if mode == "certify" else PREDICT_COLUMNS
    params = {"mode": mode, "n": n, "alpha": alpha, "seed": seed, "certificate": smoothed.certificate}
    if mode == "certify":
        params["n0"] = n0
    with TsvLog(out, columns, {**(settings or {}), **params, "noise": smoothed.noise.config()}) as log:
        todo = [i for i in indices if i not in log.done]
        for idx in tqdm(todo, desc=mode, unit="image", disable=not progress):
            x, label = data.x[idx], int(data.y[idx])
            g = generator(seed, idx, device=smoothed.device)
            start = time.perf_counter()
            if mode == "certify":
                cert = smoothed.certify(x, n0, n, alpha, g)
                row = {"predict": cert.predict, "count": cert.count, "n": n, "p_lower": cert.p_lower, "radius": cert.radius}
            else:
                counts = smoothed.sample(x, n, g)
                row = {"predict": smoothed.predict_from_counts(counts, alpha), "count": int(counts.max()), "n": n}
            row.update(idx=idx, label=label, correct=int(row["predict"] == label))
            row["time"] = round(time.perf_counter() - start, 4)
            log.write(row)
    return Path(out)
