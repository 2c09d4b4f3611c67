"""Levine & Feizi (2020), Figure 1: a test image, ablated samples and the base classifier's labels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..checkpoint import read_config
from ..classifiers import SmoothedClassifier
from ..data import load_dataset
from ..reports import plot_ablated_samples
from ..runtime.seeding import generator


@torch.inference_mode()
def figure_samples(
    checkpoint: str | Path, dataset: str | None, index: int, out: str | Path, *, samples: int = 6, seed: int = 0,
    device: str = "auto", data_root: str | Path | None = None,
) -> Path:
    """Figure 1 style: test image ``index`` and ``samples`` ablations with the base classifier's labels."""
    smoothed = SmoothedClassifier.from_checkpoint(checkpoint, device=device)
    noise = smoothed.noise
    data = load_dataset(dataset or read_config(checkpoint)["dataset"], "test", data_root)
    if not 0 <= index < len(data):
        raise ValueError(f"--index {index} is outside the test split of {len(data)} images")
    x = data.x[index].to(smoothed.device)
    c, h, w = x.shape
    if not noise.masks:
        raise ValueError(f"figure samples shows ablated copies: the checkpoint's noise is {noise.kind}, not ablation")
    keep = noise.sample_keep(samples, (h, w), generator(seed, index, device=smoothed.device), smoothed.device)
    batch = x.expand(samples, c, h, w)
    labels = smoothed.base(noise.apply(batch, keep)).argmax(1).cpu().numpy()
    shown = torch.where(keep.view(samples, 1, h, w), batch, torch.nan).permute(0, 2, 3, 1).cpu().numpy()
    image = x.permute(1, 2, 0).cpu().numpy()
    if c == 1:
        shown, image = shown[..., 0], image[..., 0]
    classes = read_config(checkpoint).get("classes") or [str(i) for i in range(smoothed.num_classes)]
    return plot_ablated_samples(
        image, shown, np.array([classes[i] for i in labels]), out,
        title=f"{data.name} #{index} (label {classes[int(data.y[index])]}), k={noise.k}",
    )
