"""Certify, predict or attack a whole dataset into a resumable per-image log.

Image ``idx`` is processed with the random streams keyed by ``(seed, idx)``, so its row does not
depend on which other images are in the run, their order, or an interruption in between.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..attacks import Oracle, Pointwise, SparseRS
from ..classifiers.base import WINDOW, VotingClassifier, run_packed
from ..certificates.sequential import check_n0
from ..classifiers.smoothed import Sampling, as_sampling
from ..data import ImageDataset
from ..errors import check_alpha, check_count
from ..runtime.seeding import check_seed, generator
from .log import ATTACK_COLUMNS, CERTIFY_COLUMNS, PREDICT_COLUMNS, TsvLog


def select_indices(size: int, skip: int = 1, max_images: int | None = None) -> list[int]:
    """Every ``skip``-th index of a dataset of ``size`` images, at most ``max_images`` of them.

    Args:
        size: The dataset's number of images.
        skip: Take every ``skip``-th image.
        max_images: At most this many; None: all.
    """
    if skip < 1:
        raise ValueError(f"--skip must be a positive integer, got {skip}")
    if max_images is not None and max_images < 1:
        raise ValueError(f"--max must be a positive integer, got {max_images}")
    if size < 1:
        raise ValueError("the dataset holds no images to process")
    return list(range(0, size, skip))[:max_images]


def _check_indices(indices: list[int], size: int) -> None:
    bad = [i for i in indices if not 0 <= i < size]
    if bad:
        raise ValueError(f"image indices {bad[:5]} are outside the dataset of {size} images")


def run_dataset(
    smoothed: VotingClassifier,
    data: ImageDataset,
    out: str | Path,
    *,
    mode: str = "certify",
    n0: int | None = None,
    n: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
    sampling: Sampling = "fixed",
    indices: list[int] | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
    window: int = WINDOW,
) -> Path:
    """CERTIFY (``mode="certify"``) or PREDICT (``mode="predict"``) the images ``indices`` of
    ``data`` and append one row each to the TSV log ``out``; finished rows are kept and skipped.

    ``sampling`` is ``"fixed"`` (``n`` samples) or adaptive (at most ``n``, see
    [`smoothcert.certificates.sequential`][smoothcert.certificates.sequential]). ``n0`` (CERTIFY's selection samples) and the
    adaptive options left unset are the ones recorded in the log when it is resumed, else the
    defaults (n0 1,000 fixed, [`Adaptive.default_n0`][Adaptive.default_n0] adaptive), so changing the defaults
    never stops an old log from resuming. Up to ``window`` images are in flight at once and their samples
    share forward passes ([`run_packed`][smoothcert.classifiers.base.run_packed], as the batch calls of
    ``SmoothedClassifier.certify`` / ``predict``); each image draws its noise from its own stream
    keyed by (seed, idx), so its row does not depend on that packing. Rows are
    written in the order of ``indices``; an image's ``time`` is its share (by samples) of the
    forward passes it took part in. ``settings`` (model, dataset, ...) are stored beside the log
    together with the sampling parameters; resuming with different ones is refused.

    Args:
        smoothed: The classifier (smoothed, deterministic or denoised).
        data: The dataset whose images are run.
        out: The TSV log; its settings go to ``out`` + ``.json``.
        mode: ``"certify"`` or ``"predict"``.
        n0: CERTIFY's selection samples; None: the log's, else the default.
        n: Estimation samples (adaptive: at most).
        alpha: The level of CERTIFY's bound or PREDICT's test.
        seed: The seed of the noise streams (seed, idx).
        sampling: ``"fixed"``, ``"adaptive"`` or an
            [`Adaptive`][smoothcert.certificates.sequential.Adaptive].
        indices: The dataset indices to run; None: all.
        settings: What the log records besides the sampling (checkpoint, dataset, ...).
        progress: Whether to show a progress bar.
        window: Most images in flight at once.

    Returns:
        ``out``.

    Raises:
        ValueError: When resuming a log whose settings differ.
    """
    if mode not in ("certify", "predict"):
        raise ValueError(f"unknown mode {mode!r}; choose certify or predict")
    indices = list(range(len(data))) if indices is None else indices
    _check_indices(indices, len(data))
    check_seed(seed)
    check_alpha(alpha)
    check_count("n", n)
    check_count("window", window)
    recorded = TsvLog.recorded(out)
    options = as_sampling(sampling)
    if options is not None:
        options = options.settled(recorded.get("sampling"), predict=mode == "predict")
        sampling = options
    if mode == "certify":
        if n0 is None:
            n0 = recorded.get("n0", 1000 if options is None else options.default_n0())
        check_n0(n0, options)
    if indices:
        smoothed.sample(data.x[indices[0]], 1)  # model/data mismatches fail here, before a log is written
    columns = CERTIFY_COLUMNS if mode == "certify" else PREDICT_COLUMNS
    params = {"mode": mode, "n": n, "alpha": alpha, "seed": seed, "certificate": smoothed.certificate,
              "sampling": "fixed" if options is None else {"scheme": "adaptive", **options.record()}}
    if mode == "certify":
        params["n0"] = n0
    image_size = tuple(data.x.shape[-2:])

    def steps() -> Generator[int, np.ndarray, dict[str, Any]]:
        if mode == "certify":
            cert = yield from smoothed.certify_steps(image_size, n0, n, alpha, sampling)
            return {"predict": cert.predict, "count": cert.count, "n": cert.n, "p_lower": cert.p_lower,
                    "radius": cert.radius}
        decision, counts = yield from smoothed.predict_steps(n, alpha, sampling)
        return {"predict": decision, "count": int(counts.max()), "n": int(counts.sum())}

    with TsvLog(out, columns, {**(settings or {}), **params, "noise": smoothed.noise.to_config()}) as log:
        todo = [i for i in indices if i not in log.done]
        bar = tqdm(total=len(todo), desc=mode, unit="image", disable=not progress)
        jobs = ((i, data.x[i], steps(), generator(seed, i, device=smoothed.device)) for i in todo)
        for i, outcome, seconds in run_packed(smoothed, jobs, window):
            label = int(data.y[i])
            log.write({**outcome, "idx": i, "label": label, "correct": int(outcome["predict"] == label),
                       "time": round(seconds, 4)})
            bar.update()
        bar.close()
    return Path(out)


def adversarial_path(log: str | Path) -> Path:
    """Where ``run_attack`` keeps the adversarial examples of the log ``log``: ``attack.tsv`` -> ``attack.npz``."""
    return Path(log).with_suffix(".npz")


def read_adversarial(log: str | Path) -> dict[str, np.ndarray]:
    """The adversarial examples of an attack log: ``idx``, ``x_adv`` (N, C, H, W; the clean image where
    the attack failed), ``success`` and the oracle's confirmed ``decision`` (-1 = abstain).

    Args:
        log: The attack log (its ``.npz`` is read).
    """
    path = adversarial_path(log)
    if not path.is_file():
        raise FileNotFoundError(f"no adversarial examples at {path}")
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in ("idx", "x_adv", "success", "decision")}


def write_adversarial(path: Path, rows: dict[int, tuple[np.ndarray, bool, int]]) -> None:
    order = sorted(rows)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp, idx=np.array(order, dtype=np.int64), x_adv=np.stack([rows[i][0] for i in order]).astype(np.float32),
        success=np.array([rows[i][1] for i in order]), decision=np.array([rows[i][2] for i in order], dtype=np.int64),
    )
    os.replace(tmp, path)


def run_attack(
    make_oracle: Callable[[int], Oracle],
    attack: Pointwise | SparseRS,
    data: ImageDataset,
    out: str | Path,
    *,
    seed: int = 0,
    indices: list[int] | None = None,
    settings: dict[str, Any] | None = None,
    progress: bool = True,
) -> Path:
    """Attack the images ``indices`` of ``data`` and append a row ``idx label l0 queries success time``
    per image to the TSV log ``out``; the adversarial examples go to ``out`` with suffix ``.npz``.

    ``make_oracle(idx)`` gives a fresh oracle for image ``idx`` (its own query count and noise
    streams); the attack runs with ``key=(seed, idx)``. Finished rows are kept and skipped; the
    examples are written before their row, so an interruption never leaves a row without one.

    Args:
        make_oracle: ``make_oracle(idx)``: a fresh oracle for image ``idx``
            ([`oracle_factory`][smoothcert.runner.jobs.oracle_factory]).
        attack: The attack ([`make_attack`][smoothcert.attacks.make_attack]).
        data: The dataset whose images are attacked.
        out: The TSV log; the adversarial examples go to its ``.npz``.
        seed: The seed of the attack's streams (seed, idx).
        indices: The dataset indices to attack; None: all.
        settings: What the log records (checkpoint, attack, ...).
        progress: Whether to show a progress bar.

    Returns:
        ``out``.
    """
    indices = list(range(len(data))) if indices is None else indices
    _check_indices(indices, len(data))
    check_seed(seed)
    if indices:
        make_oracle(indices[0]).scores(data.x[indices[:1]])  # model/data mismatches fail here, before a log is written
    npz = adversarial_path(out)
    params = {"mode": "attack", "attack": type(attack).__name__, **vars(attack), "seed": seed}
    with TsvLog(out, ATTACK_COLUMNS, {**(settings or {}), **params}) as log:
        rows: dict[int, tuple[np.ndarray, bool, int]] = {}
        if log.done and npz.is_file():
            saved = read_adversarial(out)
            rows = {int(i): (x, bool(s), int(dec)) for i, x, s, dec in zip(*saved.values(), strict=True) if int(i) in log.done}
        missing = sorted(log.done - rows.keys())
        if missing:
            raise ValueError(f"{out} has rows without adversarial examples in {npz} (e.g. idx {missing[0]}); "
                             "choose another --out")
        todo = [i for i in indices if i not in log.done]
        for idx in tqdm(todo, desc="attack", unit="image", disable=not progress):
            x, label = data.x[idx], int(data.y[idx])
            start = time.perf_counter()
            result = attack(make_oracle(idx), x, label, key=(seed, idx))
            elapsed = round(time.perf_counter() - start, 4)
            rows[idx] = (result.x_adv.cpu().numpy(), result.success, result.decision)
            write_adversarial(npz, rows)
            log.write({"idx": idx, "label": label, "l0": result.l0, "queries": result.queries,
                       "success": int(result.success), "time": elapsed})
    return Path(out)
