"""Gaussian smoothing with each training method on mnist5k beside Jeong & Shin (2020), supplement Table 2."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..options import RuntimeOptions, gather
from ..reports import read_log, summarize
from ..training import make_method
from .common import RUNTIME, markdown, publish, train_and_certify
from .published import CONSISTENCY_MNIST, CONSISTENCY_RADII

# Our-scale settings for the Gaussian comparison (documented in README): fewer noise copies for
# MACER and SmoothAdv and fewer PGD steps, so that ten models train in minutes on a CPU.
SMOOTHING_METHODS: dict[str, dict[float, dict[str, Any]]] = {
    "noise": {0.25: {}, 0.5: {}},
    "consistency": {0.25: {"lam": 10.0}, 0.5: {"lam": 5.0}},  # Jeong & Shin: lam 10 at 0.25, 5 at 0.5
    "stability": {0.25: {}, 0.5: {}},
    "macer": {0.25: {"m": 4}, 0.5: {"m": 4}},
    "smoothadv": {0.25: {"m": 1, "steps": 3, "warmup_epochs": 3}, 0.5: {"m": 1, "steps": 3, "warmup_epochs": 3}},
}


def reproduce_smoothing(
    *, out: str | Path = "runs/smoothing", sigmas: Sequence[float] = (0.25, 0.5),
    methods: Sequence[str] = tuple(SMOOTHING_METHODS), epochs: int = 15, max_images: int = 100, n0: int = 100,
    n: int = 10_000, alpha: float = 0.001, runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """Gaussian smoothing with each training method on mnist5k at each sigma: ACR and certified
    accuracy at r = 0, 0.25, 0.5, 0.75, 1.0, beside Jeong & Shin (2020) supplement Table 2;
    ``runtime`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]: ``seed``, ``device``,
    ``progress``), or its fields as keywords ``options``."""
    (runtime,) = gather(reproduce_smoothing, options, RUNTIME, runtime=runtime)
    out = Path(out)
    radii = CONSISTENCY_RADII
    header = ["sigma", "method", "ours: ACR", *(f"ours: r={r:g}" for r in radii), "paper: ACR", *(f"paper: r={r:g}" for r in radii)]
    rows = []
    for sigma in sigmas:
        for name in methods:
            method = make_method(name, **SMOOTHING_METHODS[name].get(sigma, {}))
            log = read_log(train_and_certify(
                out / f"sigma{sigma:g}-{name}", noise="gaussian", sigma=sigma, method=method, epochs=epochs,
                max_images=max_images, n0=n0, n=n, alpha=alpha, runtime=runtime,
            ), name=f"{name} sigma={sigma:g}")
            ours = summarize(log, radii)
            acr, accs = CONSISTENCY_MNIST.get(sigma, {}).get(name, (None, ()))
            rows.append([
                f"{sigma:g}", name, f"{ours['acr']:.3f}", *(f"{100 * ours['certified_accuracy'][r]:.1f}" for r in radii),
                "-" if acr is None else f"{acr:.3f}", *(f"{a:.1f}" for a in accs or ["-"] * len(radii)),
            ])
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: mnist5k (4,000 training digits), {epochs} epochs of the `fast` recipe per model, the MNIST "
        f"CNN, first {max_images} test digits, n0={n0}, n={n}, alpha={alpha}; MACER with m=4 and SmoothAdv with m=1, "
        "3 PGD steps, 3 warm-up epochs (smaller than the papers' to fit a CPU). Paper: Jeong & Shin 2020, supplement Table 2 "
        "(full MNIST, 90 epochs, LeNet-like model, n=100,000, alpha=0.001).\n"
    )
    return publish(text, out / "smoothing.md")
