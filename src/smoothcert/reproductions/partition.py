"""Partition voting (Hammoudeh & Lowd, AAAI 2024) beside randomized ablation on the same digits."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..checkpoint import read_config
from ..options import DataOptions, RuntimeOptions, SamplingOptions, gather
from ..reports import read_log, summarize
from ..runner.jobs import evaluate
from ..training import get_recipe
from .common import (
    RUNTIME,
    certify_deterministic,
    markdown,
    median_cell,
    publish,
    train_and_certify,
    train_or_reuse,
)
from .published import FPA_MNIST_MEDIAN

PARTITION_GROUPS = (15, 30, 60)
PARTITION_RADII = tuple(range(12))


def reproduce_partition(
    *, out: str | Path = "runs/partition", groups: Sequence[int] = PARTITION_GROUPS, epochs: int = 30,
    classifier: str | Path | None = None, max_images: int = 100, n0: int = 1000, n: int = 10_000,
    alpha: float = 0.05, dataset: str = "mnist5k", model: str | None = None, runtime: RuntimeOptions | None = None,
    **options: Any,
) -> str:
    """Partition voting (Hammoudeh & Lowd, AAAI 2024) beside randomized ablation on the same digits:
    one model per T in ``groups`` (mnist5k, ``fast`` recipe, ``epochs``), certified exactly on the
    first ``max_images`` test images of ``dataset``; randomized ablation k = 45 from the checkpoint ``classifier``
    (default: trained on mnist5k under ``out/k45`` with the same recipe and epochs), certified by Corollary 1
    with ``n0``, ``n``, ``alpha``. Median certified L0 radius, certified accuracy at r = 0..11,
    forward passes and seconds per image.

    Args:
        out: The folder of the run's models, logs and tables.
        groups: The numbers T of groups, one model each.
        epochs: Training epochs of each model.
        classifier: The randomized-ablation checkpoint to compare with; None: trained under ``out/k45``.
        max_images: Test images certified.
        n0: Ablation CERTIFY's selection samples.
        n: Ablation CERTIFY's estimation samples.
        alpha: Ablation CERTIFY's level.
        dataset: The dataset.
        model: The architecture's name; None: the dataset's default.
        runtime: The seed of training and of the noise streams, the device and the progress bars.
        **options: The fields of ``runtime`` one by one (``seed=0``, ``device="cpu"``).
    """
    (runtime,) = gather(reproduce_partition, options, RUNTIME, runtime=runtime)
    out = Path(out)
    runs = []
    for t in groups:
        run_dir = out / f"partition-T{t}"
        train_or_reuse(run_dir / "model", recipe=get_recipe("fast", epochs=epochs), dataset=dataset, model=model,
                       noise="partition", groups=t, runtime=runtime)
        log, passes = certify_deterministic(run_dir, DataOptions(dataset=dataset, max_images=max_images), runtime, f"certify-T{t}")
        runs.append((log, f"partition T={t}", passes))
    k = 45 if classifier is None else read_config(classifier)["noise"].get("k")
    if classifier is None:
        if dataset != "mnist5k":
            raise ValueError("pass the randomized ablation checkpoint to compare with (classifier=...) for other datasets")
        path = train_and_certify(out / "k45", k=45, epochs=epochs, max_images=max_images, n0=n0, n=n, alpha=alpha,
                                 runtime=runtime)
    else:
        path = evaluate(classifier, out / f"k{k}" / "certify.tsv", data=DataOptions(dataset=dataset, max_images=max_images),
                        samples=SamplingOptions(n0=n0, n=n, alpha=alpha, sampling="fixed"),
                        runtime=runtime)
    runs.append((read_log(path, name=f"ablation k={k}"), f"randomized ablation k={k}", n0 + n))
    header = ["model", "accuracy %", "median cert. L0", *(f"r={r}" for r in PARTITION_RADII), "forward passes / image",
              "s / image"]
    rows = []
    for log, name, passes in runs:
        ours = summarize(log, PARTITION_RADII)
        rows.append([name, f"{100 * ours['accuracy']:.1f}", median_cell(ours),
                     *(f"{100 * ours['certified_accuracy'][r]:.1f}" for r in PARTITION_RADII), f"{passes:,}",
                     f"{ours['seconds_per_image']:.3f}"])
    source = "trained under out/k45 with the same recipe" if classifier is None else f"the checkpoint {classifier}"
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: {dataset}, first {len(runs[0][0].idx)} test images. Partition: a seeded "
        f"partition of the pixels into T groups (seed {runtime.seed}), one base classifier trained on a random group per image "
        f"({epochs} epochs of the `fast` recipe), every group evaluated, argmax votes, radius floor((n_y - n_y' - "
        f"[y > y']) / 2), exact. Randomized ablation: k={k} ({source}), Corollary 1 with n0={n0}, n={n}, "
        f"alpha={alpha}. Accuracy counts abstentions as wrong; certified accuracy at r = fraction of digits correct "
        "with radius >= r. Paper: Hammoudeh & Lowd, AAAI 2024, full MNIST: median certified L0 radius "
        f"{FPA_MNIST_MEDIAN['feature partition aggregation']} (FPA) vs "
        f"{FPA_MNIST_MEDIAN['previous best']} (previous best).\n"
    )
    return publish(text, out / "partition.md", [r[0] for r in runs])
