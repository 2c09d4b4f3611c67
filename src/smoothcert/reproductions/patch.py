"""Column smoothing against patches (Levine & Feizi, NeurIPS 2020) at our scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..options import DataOptions, RuntimeOptions, gather
from ..reports import summarize
from ..training import get_recipe
from .common import RUNTIME, certify_deterministic, markdown, publish, train_or_reuse
from .published import PATCH_CIFAR10


def reproduce_patch(
    *, out: str | Path = "runs/patch", band: int = 4, patch: int = 5, epochs: int = 30, max_images: int = 100,
    dataset: str = "mnist5k", model: str | None = None, runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """Column smoothing (Levine & Feizi, NeurIPS 2020) at our scale: train columns ``band`` on mnist5k
    (``fast`` recipe, ``epochs``), certify the first ``max_images`` test digits against ``patch`` x
    ``patch`` patches with both votes (softmax threshold 0.2, their default, and argmax), beside the
    paper's CIFAR-10 headline numbers (we have no MNIST table from the paper in our sources).

    Args:
        out: The folder of the run's models, logs and tables.
        band: The column band width s.
        patch: The patch side m certified against.
        epochs: Training epochs.
        max_images: Test digits certified.
        dataset: The dataset.
        model: The architecture's name; None: the dataset's default.
        runtime: The seed of training and of the noise streams, the device and the progress bars.
        **options: The fields of ``runtime`` one by one (``seed=0``, ``device="cpu"``).
    """
    (runtime,) = gather(reproduce_patch, options, RUNTIME, runtime=runtime)
    out = Path(out)
    run_dir = out / f"columns-s{band}"
    train_or_reuse(run_dir / "model", recipe=get_recipe("fast", epochs=epochs), dataset=dataset, model=model,
                   noise="columns", band=band, runtime=runtime)
    rows, logs = [], []
    for vote in ("threshold", "argmax"):
        log, passes = certify_deterministic(run_dir, DataOptions(dataset=dataset, max_images=max_images), runtime, f"certify-{vote}",
                                             vote=vote)
        ours = summarize(log, (0, patch))
        logs.append(log)
        rows.append([f"columns s={band}, {vote} vote" + (" (theta 0.2)" if vote == "threshold" else ""),
                     f"{100 * ours['accuracy']:.1f}", f"{100 * ours['certified_accuracy'][patch]:.1f}",
                     str(passes), f"{ours['seconds_per_image']:.3f}"])
    for name, (clean, certified) in PATCH_CIFAR10.items():
        rows.append([f"paper, CIFAR-10: {name}", f"{clean:.1f}", f"{certified:.1f}", "-", "-"])
    header = ["model", "clean accuracy %", f"certified accuracy % ({patch}x{patch} patch)", "forward passes / image",
              "s / image"]
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: {dataset}, the base classifier trained on one random band of {band} columns "
        f"per image ({epochs} epochs of the `fast` recipe), first {len(logs[0].idx)} test images; every one of the {passes} "
        f"bands is evaluated (wrap-around), certified iff n_c - n_c' > 2 Delta (or = with c < c'), Delta = {patch} + "
        f"{band} - 1 = {patch + band - 1}. Clean accuracy is the vote's accuracy. Paper: Levine & Feizi, NeurIPS 2020, "
        "CIFAR-10 (context only: another dataset and scale).\n"
    )
    return publish(text, out / "patch.md", logs, xlabel="patch side (pixels)")
