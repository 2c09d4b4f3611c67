"""Levine & Feizi (2020), Table 7 at our scale: Lee et al.'s (2019) noise against randomized ablation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..data import load_dataset
from ..noises import noise_from_config
from ..options import RuntimeOptions, gather
from ..reports import read_log, summarize
from .common import (
    RUNTIME,
    accuracy_cell,
    certify_checkpoint,
    markdown,
    median_cell,
    median_text,
    publish,
    train_and_certify,
)
from .published import TABLE7

TABLE7_KAPPAS = (0.1, 0.2, 0.3)
TABLE7_KS = (20, 45)
TABLE7_RADII = (1, 2, 4, 8)


def certifiable_and_information(noise: dict, n: int, alpha: float, image_shape: tuple[int, int, int],
                                levels: int = 256) -> tuple[float, float]:
    """(the largest radius ``n`` and ``alpha`` can certify, the mutual information in bits of one
    noisy sample: Eq. 20 for ablation, Eq. 21 for Lee et al.) of a log's recorded ``noise``."""
    recorded = noise_from_config(noise)
    return recorded.largest_radius(n, alpha, image_shape), recorded.information(image_shape, levels)


def reproduce_table7(
    *, out: str | Path = "runs/table7", kappas: Sequence[float] = TABLE7_KAPPAS, ks: Sequence[int] = TABLE7_KS,
    levels: int = 256, ablation_checkpoint: str | Path | None = None, recipe: str = "fast", epochs: int = 40,
    max_images: int = 100, n0: int = 100, n: int = 10_000, alpha: float = 0.001,
    runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """Table 7 at our scale: Lee et al.'s noise (one model per kappa, ``levels`` values per pixel)
    against randomized ablation (one model per k) on mnist5k, all trained with ``recipe`` for
    ``epochs`` and certified on the same first ``max_images`` test digits with the same CERTIFY
    sampling (default: the footnote's n0 = 100 and alpha = 0.001 with n = 10,000 instead of
    100,000).  ``ablation_checkpoint`` adds a row for a finished ablation model (certified into
    ``out/ablation-reused``).  Columns: CERTIFY accuracy, median certified L0 radius, certified
    accuracy at ``TABLE7_RADII``, the largest radius the sampling allows, and the mutual
    information of Eq. 20 (ablation) and Eq. 21 (Lee et al.).

    Args:
        out: The folder of the run's models, logs and tables.
        kappas: Lee et al.'s keep probabilities, one model each.
        ks: Ablation's kept pixels, one model each.
        levels: Values per pixel of Lee et al.'s noise.
        ablation_checkpoint: A finished ablation model to add as a row, or None.
        recipe: The training recipe's name.
        epochs: Training epochs of each model.
        max_images: Test digits certified.
        n0: CERTIFY's selection samples.
        n: CERTIFY's estimation samples.
        alpha: CERTIFY's level.
        runtime: The seed of training and of the noise streams, the device and the progress bars.
        **options: The fields of ``runtime`` one by one (``seed=0``, ``device="cpu"``).
    """
    (runtime,) = gather(reproduce_table7, options, RUNTIME, runtime=runtime)
    out = Path(out)
    shape = load_dataset("mnist5k", "test").image_shape
    sampling = {"max_images": max_images, "n0": n0, "n": n, "alpha": alpha, "runtime": runtime}
    runs = []  # (row name, "lee" or "ablation", certify log, model config)
    for kappa in kappas:
        run_dir = out / f"lee-kappa{kappa:g}"
        log = train_and_certify(run_dir, noise="lee", kappa=kappa, levels=levels, recipe=recipe, epochs=epochs, **sampling)
        runs.append((f"Lee et al. kappa={kappa:g}", "lee", log, read_config(run_dir / "model")))
    for k in ks:
        run_dir = out / f"ablation-k{k}"
        log = train_and_certify(run_dir, noise="ablation", k=k, recipe=recipe, epochs=epochs, **sampling)
        runs.append((f"ablation k={k}", "ablation", log, read_config(run_dir / "model")))
    if ablation_checkpoint is not None:
        config = read_config(ablation_checkpoint)
        if config["noise"].get("noise") != "ablation":
            raise ValueError(f"--ablation-checkpoint {ablation_checkpoint} was not trained with ablation noise")
        log = certify_checkpoint(Path(ablation_checkpoint), out / "ablation-reused", **sampling)
        runs.append((f"ablation k={config['noise']['k']} (reused)", "ablation", log, config))
    rows, logs, best = [], [], {}
    for name, noise, path, config in runs:
        cap, bits = certifiable_and_information(config["noise"], n, alpha, shape, levels)
        logs.append(read_log(path, name=name))
        ours = summarize(logs[-1], TABLE7_RADII)
        base = config["history"][-1].get("heldout_acc")
        paper_median = TABLE7["MNIST"][noise]
        rows.append([name, str(config["epoch"]), "-" if base is None else f"{100 * base:.1f}%", accuracy_cell(ours),
                     median_cell(ours), *(f"{100 * ours['certified_accuracy'][r]:.1f}" for r in TABLE7_RADII),
                     f"{float(cap):g}", f"{bits:,.0f}", str(paper_median)])
        if noise not in best or ours["median"] > best[noise][1]:
            best[noise] = (name, ours["median"])
    header = ["smoothing", "epochs", "base accuracy under noise", "ours: CERTIFY accuracy (abstained)",
              "ours: median cert.", *(f"ours: r={r}" for r in TABLE7_RADII), "max radius (n, alpha)",
              "I (bits, Eq. 20/21)", "paper: median cert. (MNIST)"]
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: mnist5k (4,000 training digits), the MNIST CNN, `{recipe}` recipe for the epochs shown, first "
        f"{len(logs[0].idx)} test digits, CERTIFY with n0={n0}, n={n}, alpha={alpha} for every row. Lee et al.'s "
        f"noise keeps each pixel with probability kappa, else draws one of the other {levels - 1} values (their "
        "certificate, smoothcert.certificates.lee); ablation keeps k pixels (Corollary 1). Median: misclassified and abstained "
        "digits count as -inf; certified accuracy in %; base accuracy: the base classifier on one noisy copy of "
        "each of the 1,000 test digits after the last epoch; max radius: the largest radius n and alpha allow. "
        f"I: mutual information per noisy sample of a uniform image (d={math.prod(shape)}, |S|={levels}). "
        + ("" if ablation_checkpoint is None else f"The reused ablation model is {ablation_checkpoint}. ")
        + "Paper: Levine & Feizi 2020 Table 7 (full MNIST; the best hyperparameters of each work).\n"
    )
    if "lee" in best and "ablation" in best:
        (lee_name, lee_median), (abl_name, abl_median) = best["lee"], best["ablation"]
        text += (f"Best medians: {abl_name} {median_text(abl_median)} vs {lee_name} {median_text(lee_median)} "
                 f"(ablation {'above' if abl_median > lee_median else 'not above'} Lee et al.; the paper: "
                 f"{TABLE7['MNIST']['ablation']} vs {TABLE7['MNIST']['lee']}).\n")
    return publish(text, out / "table7.md", logs)
