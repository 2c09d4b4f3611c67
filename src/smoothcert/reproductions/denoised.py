"""Denoised smoothing of a clean classifier (Salman et al. 2020; DE-CROP, supplement Table 1) and
denoised randomized ablation, on mnist5k."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..certificates import max_gaussian_radius
from ..checkpoint import checkpoint_lock, load_checkpoint, read_config, weights_sha256
from ..classifiers import SmoothedClassifier
from ..data import load_dataset
from ..denoisers import (
    KeepChannels,
    denoised_classifier,
    stratified_subset,
    train_denoiser,
)
from ..noises import Ablation, Gaussian
from ..options import RuntimeOptions, gather
from ..reports import RunLog, read_log, summarize
from ..runner import run_dataset
from ..training import get_recipe
from .common import RUNTIME, accuracy_cell, markdown, median_cell, publish, train_or_reuse
from .published import DECROP_TABLE1, DENOISED_RADII, SALMAN_CIFAR10

ABLATION_RADII = (0, 1, 2, 4, 6, 8)


def reproduce_denoised(
    *, out: str | Path = "runs/denoised", classifier: str | Path | None = None, dataset: str = "mnist5k",
    sigma: float = 0.25, fraction: float = 0.01, classifier_epochs: int = 30, small_epochs: int = 300, full_epochs: int = 10,
    batch_size: int = 100, depth: int = 7, width: int = 32, max_images: int = 50, n0: int = 100, n: int = 6000,
    alpha: float = 0.001, k: int = 45, ablation_n0: int = 100, ablation_n: int = 2000, ablation_alpha: float = 0.05,
    runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """Denoised smoothing of a classifier trained on clean mnist5k digits.

    Trains (or reuses) the clean classifier of ``dataset`` in ``classifier`` (default
    ``out/classifier``; ``fast`` recipe, ``classifier_epochs``), then DnCNN denoisers (``depth`` x
    ``width``) for Gaussian noise ``sigma``: MSE, MSE-then-stability and DE-CROP on a stratified
    ``fraction`` of the training digits (``small_epochs`` each) and MSE-then-stability on all of them (``full_epochs``), and
    certifies each composition and the bare classifier with Cohen's CERTIFY (``n0``, ``n``,
    ``alpha``) on the first ``max_images`` test digits: certified accuracy at r = 0, 0.25, 0.5, 0.75
    beside the DE-CROP supplement's CIFAR-10 Table 1 (and Salman et al.'s anchors).

    Denoised ablation: an inpainting DnCNN trained with MSE on ablated digits (k of d pixels kept,
    multichannel encoding, all training digits, ``full_epochs``) in front of the clean classifier,
    against the clean classifier certified directly under the same ablation. The direct classifier
    reads the first channel of the multichannel encoding (kept pixels, 0 where ablated): ablated
    pixels then look like MNIST's black background rather than the grey of the mean encoding, and
    both rows share one noise distribution and one random stream per digit, so the comparison is
    paired and only the base classifier differs. Corollary 1 with ``ablation_n0``, ``ablation_n``,
    ``ablation_alpha``; CERTIFY accuracy, median certified L0 radius and certified accuracy.

    Every step resumes: finished checkpoints and log rows are reused. Writes ``denoised.md`` and
    ``denoised-ablation.md`` (with certified-accuracy plots) under ``out``; returns both tables.

    Args:
        out: The folder of the run's models, logs and tables.
        classifier: The clean classifier's checkpoint; None: trained into ``out/classifier``.
        dataset: The dataset (mnist5k).
        sigma: The Gaussian noise's standard deviation.
        fraction: The share of the training digits the small denoisers see.
        classifier_epochs: Epochs of the clean classifier.
        small_epochs: Epochs of each denoiser trained on ``fraction``.
        full_epochs: Epochs of the denoisers trained on every digit.
        batch_size: The denoisers' training batch.
        depth: DnCNN layers.
        width: DnCNN channels.
        max_images: Test digits certified.
        n0: Gaussian CERTIFY's selection samples.
        n: Gaussian CERTIFY's estimation samples.
        alpha: Gaussian CERTIFY's level.
        k: Pixels each ablation keeps.
        ablation_n0: Ablation CERTIFY's selection samples.
        ablation_n: Ablation CERTIFY's estimation samples.
        ablation_alpha: Ablation CERTIFY's level.
        runtime: The seed of training and of the noise streams, the device and the progress bars.
        **options: The fields of ``runtime`` one by one (``seed=0``, ``device="cpu"``).
    """
    (runtime,) = gather(reproduce_denoised, options, RUNTIME, runtime=runtime)
    seed, device, progress = runtime.seed, runtime.device, runtime.progress
    out = Path(out)
    model_dir = Path(classifier) if classifier is not None else out / "classifier"
    train_or_reuse(model_dir, recipe=get_recipe("fast", epochs=classifier_epochs), dataset=dataset,
                   runtime=runtime, noise="none")
    base, base_config = load_checkpoint(model_dir)
    train, test = load_dataset(dataset, "train"), load_dataset(dataset, "test")
    indices = list(range(min(max_images, len(test))))
    common = {"depth": depth, "width": width, "batch_size": batch_size, "seed": seed, "device": device,
              "classifier_path": model_dir, "resume": True, "progress": progress}

    def certify(run: str, model: torch.nn.Module, noise: Any, name: str, **sampling: Any) -> RunLog:
        smoothed = SmoothedClassifier(model, noise, base_config["num_classes"], batch_size=100, device=device)
        settings = {"classifier": model_dir.as_posix(), "weights": weights_sha256(model_dir), "denoiser": run,
                    "dataset": dataset, "split": "test"}
        path = run_dataset(smoothed, test, out / run / "certify.tsv", seed=seed, indices=indices, settings=settings,
                           progress=progress, **sampling)
        return read_log(path, name=name)

    def trained(folder: str, **training: Any) -> torch.nn.Module:
        """The denoiser of ``out/folder`` (trained, or reused when finished); its checkpoint is locked
        meanwhile, so a second run on the same ``out`` is refused instead of writing it too."""
        with checkpoint_lock(out / folder / "denoiser"):
            return train_denoiser(base, train, out=out / folder / "denoiser", **common, **training)[0]

    gaussian = Gaussian(sigma)
    pct = f"{100 * fraction:g}%"
    runs = [  # (folder, row name, method, data fraction, epochs, paper context)
        ("mse-small", f"MSE on {pct}", "mse", fraction, small_epochs, DECROP_TABLE1["baseline"]),
        ("mse-stability-small", f"MSE then stability on {pct}", "mse-stability", fraction, small_epochs,
         DECROP_TABLE1["baseline"]),
        ("decrop-small", f"DE-CROP on {pct}", "decrop", fraction, small_epochs, DECROP_TABLE1["decrop"]),
        ("mse-stability-full", "MSE then stability on 100%", "mse-stability", 1.0, full_epochs,
         (None, *SALMAN_CIFAR10["white-box"])),
    ]
    rows_in = [("none", "no denoiser", base, (None, *SALMAN_CIFAR10["none"]))]
    for folder, name, method, frac, epochs, paper_row in runs:
        denoiser = trained(folder, method=method, sigma=sigma, data_fraction=frac, epochs=epochs,
                           cache_dir=out / "decrop-cache")
        rows_in.append((folder, name, denoised_classifier(denoiser, base), paper_row))
    header = ["denoiser", *(f"ours: r={r:g}" for r in DENOISED_RADII), "ours: ACR",
              *(f"CIFAR-10 paper: r={r:g}" for r in DENOISED_RADII)]
    rows, logs = [], []
    for folder, name, model, paper_row in rows_in:
        log = certify(folder, model, gaussian, name, n0=n0, n=n, alpha=alpha)
        ours = summarize(log, DENOISED_RADII)
        logs.append(log)
        rows.append([name, *(f"{100 * ours['certified_accuracy'][r]:.1f}" for r in DENOISED_RADII), f"{ours['acr']:.3f}",
                     *("-" if p is None else f"{p:.1f}" for p in paper_row)])
    small = len(stratified_subset(train.y, fraction, seed))
    steps = math.ceil(small / batch_size)
    clean_acc = read_config(model_dir)["history"][-1].get("heldout_acc")
    cap = float(max_gaussian_radius(n, alpha, sigma))
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: {dataset}; the classifier is {base_config['model']} trained on the {len(train):,} clean training "
        f"images ({classifier_epochs} epochs of the `fast` recipe, {100 * clean_acc:.1f}% on the {len(test):,} clean test "
        "images) and "
        f"frozen. Denoisers: DnCNN with {depth} layers x {width} channels (the papers use 17 x 64: too slow to "
        f"certify on a CPU), last layer zero-initialised (starts as the identity), Adam lr 1e-3 divided by 10 after "
        f"each third of a phase, batch {batch_size}. {pct} = {small} images, stratified by class, {small_epochs} "
        f"epochs ({steps} step{'s' * (steps > 1)} each); 100% = {len(train):,} images, {full_epochs} epochs. MSE then "
        "stability: first half of the epochs MSE, second half CE to the classifier's clean label, fresh Adam. "
        "DE-CROP: PGD boundary samples (eps 8/255, step 2/255, 20 steps, random start), interpolated samples "
        "(alpha 0.8, Adam lr 1e-3, betas (0.5, 0.999), <= 50 steps, start at x), first half of the epochs L_lc + "
        "4 L_cs + 4 MMD (per sample kind, 5 Gaussian kernels), second half plus the domain discriminator "
        "(GRL weight 2 ramped, Adam lr 1e-5). Certification: Gaussian sigma="
        f"{sigma:g}, Cohen's CERTIFY with n0={n0}, n={n}, alpha={alpha} on the first {len(indices)} test images "
        f"(n={n} caps the radius at {cap:.2f}{'' if cap >= max(DENOISED_RADII) else ', so larger radii read 0'}). "
        "Paper (context only, another "
        "dataset and scale): CIFAR-10, DE-CROP supplement Table 1 (1% of the data, 17-layer DnCNN, 600 epochs; its "
        "baseline is Salman et al.'s denoiser on the same 1%) beside the 1% rows; Salman et al. 2020 (full data, "
        "best sigma per radius, r=0 not reported) beside 'no denoiser' and the 100% row.\n"
    )
    published = publish(text, out / "denoised.md", logs, xlabel="radius (L2, [0, 1] pixel units)")

    ablation = Ablation(k)
    inpainter = trained("inpaint-full", method="mse", noise=ablation, epochs=full_epochs)
    channels = train.channels
    variants = [("ablation-direct", "clean classifier (first channel of the ablated input)",
                 torch.nn.Sequential(KeepChannels(channels), base)),
                ("inpaint-full", "inpainting denoiser + clean classifier", denoised_classifier(inpainter, base))]
    rows, logs = [], []
    for folder, name, model in variants:
        log = certify(folder, model, ablation, name, n0=ablation_n0, n=ablation_n, alpha=ablation_alpha)
        ours = summarize(log, ABLATION_RADII)
        logs.append(log)
        rows.append([name, accuracy_cell(ours), median_cell(ours),
                     *(f"{100 * ours['certified_accuracy'][r]:.1f}" for r in ABLATION_RADII)])
    header = [f"k={k} ablation, base classifier", "CERTIFY accuracy (abstained)", "median cert.",
              *(f"r={r}" for r in ABLATION_RADII)]
    text = "\n".join(markdown(header, rows)) + (
        f"\n\n{dataset}, the same clean classifier, randomized ablation keeping k={k} of "
        f"{train.image_shape[1] * train.image_shape[2]} pixels (multichannel "
        f"encoding), Corollary 1 with n0={ablation_n0}, n={ablation_n}, alpha={ablation_alpha} on the first "
        f"{len(indices)} test images. The inpainting denoiser is a {depth} x {width} DnCNN reading the "
        f"{ablation.channels(channels)}-channel ablated input, trained with MSE to the clean image on all {len(train):,} training images ({full_epochs} epochs, "
        f"batch {batch_size}); the direct row feeds the clean classifier the first channel (kept pixels, 0 elsewhere).\n"
    )
    return published + "\n" + publish(text, out / "denoised-ablation.md", logs)
