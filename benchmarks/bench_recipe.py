"""Screening training recipes for the k = 45 ablation classifier on mnist5k (issue 12).

Run: python benchmarks/bench_recipe.py --out runs/recipe [--epochs 60] [--only NAME ...]

Every variant trains with ``train_classifier(..., validation=1000)``: 1,000 of the 4,000 training
digits are held out (``ImageDataset.holdout``, a fixed draw) and never trained on; the test split
is not read. On the held-out digits it measures the base classifier under ``--draws`` ablations
per digit:

- ``base_acc``: accuracy on single ablations (the screening number of the issue);
- ``vote_acc``: digits whose true class gets more than half of the draws (the digits that get
  a certificate as the draws grow);
- ``plurality_acc``: digits whose true class gets the most draws (what smoothed PREDICT accuracy
  approaches: PREDICT returns the most frequent class once it is significant);
- ``median_p``: the median over digits of the fraction of draws voting for the true class
  (0 for a digit whose vote is lost), and ``proxy_median``: the Corollary 1 radius at that value,
  a point estimate of the median certified radius without any confidence bound, for ranking only.

The ``clean`` variant trains and measures without noise (every draw is the same digit): its
``base_acc`` is the accuracy of an ordinary classifier on the held-out digits, the ceiling the
smoothed classifier is compared with. The ``distill`` variant trains by distillation from the
classifier checkpoint ``--teacher`` (e.g. a ``clean`` variant: it must have been trained on the
same validation split, or the held-out digits leak into training).

With ``--certify N`` the first N held-out digits are also certified (adaptive sampling, n0 = 1,000,
n <= 10,000, alpha = 0.05) into ``OUT/<variant>/certify-validation.tsv``, and ``cert_median`` and
``cert_acc8`` (certified accuracy at radius 8) join the row: the confirmation of a candidate.

One row per variant is appended to ``OUT/screen.tsv`` as it finishes; variants already there are
skipped, so an interrupted screen resumes. Checkpoints go to ``OUT/<variant>/``. ``--rescreen``
measures variants already trained again and prints their rows without training or writing to the
table (with ``--certify N`` it extends their certification log to the first N held-out digits);
``--ensemble CHECKPOINT ...`` measures the ensemble of trained checkpoints (softmax averaged).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from smoothcert.checkpoint import load_checkpoint, read_config
from smoothcert.noises import noise_from_config
from smoothcert.data import ImageDataset, load_dataset
from smoothcert.training.methods import make_method
from smoothcert.reports import read_log, summarize
from smoothcert.runner import run_dataset
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.training import get_recipe, train_classifier

# name -> (recipe overrides, method and its parameters, model); "base" is the demo's recipe
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "affine": {"recipe": {"augment": "affine"}},
    "affine-until0.75": {"recipe": {"augment": "affine", "augment_until": 0.75}},
    "elastic": {"recipe": {"augment": "elastic"}},
    "affine+elastic": {"recipe": {"augment": "affine+elastic"}},
    "wide": {"model": "mnist_cnn_wide"},
    "bn": {"model": "mnist_cnn_bn"},
    "interp": {"model": "mnist_cnn_interp"},
    "pixel-transformer": {"model": "mnist_pixel_transformer"},
    "draws4": {"method": ("consistency", {"m": 4, "lam": 0.0, "eta": 0.0})},
    "consistency": {"method": ("consistency", {"m": 2, "lam": 10.0, "eta": 0.5})},
    "consistency-lam1": {"method": ("consistency", {"m": 2, "lam": 1.0, "eta": 0.0})},
    "consistency-m4": {"method": ("consistency", {"m": 4, "lam": 1.0, "eta": 0.0})},
    "consistency-m8": {"method": ("consistency", {"m": 8, "lam": 1.0, "eta": 0.0})},
    "consistency-m4-lam0.5": {"method": ("consistency", {"m": 4, "lam": 0.5, "eta": 0.0})},
    "macer-m4-lam0": {"method": ("macer", {"m": 4, "lam": 0.0})},  # CE of the mean softmax over 4 ablations
    "label-smoothing": {"method": ("noise", {"label_smoothing": 0.1})},
    "ema": {"recipe": {"ema": 0.995}},
    "batch64": {"recipe": {"batch_size": 64}},
    "lr3e-3": {"recipe": {"lr": 3e-3}},
    "lr5e-4": {"recipe": {"lr": 5e-4}},
    "batch256": {"recipe": {"batch_size": 256}},
    "stability": {"method": ("stability", {"lam": 2.0})},
    "clean": {"noise": "none"},
    "distill": {"method": ("distillation", {"m": 4, "lam": 0.5})},  # the teacher comes from --teacher
}
COLUMNS = ["variant", "epochs", "base_acc", "vote_acc", "plurality_acc", "median_p", "proxy_median", "train_seconds",
           "cert_median", "cert_acc8"]


def parse_variant(name: str) -> dict[str, Any]:
    """A variant of ``VARIANTS`` or several joined by ``,`` (later entries win; augmentations join)."""
    spec: dict[str, Any] = {"recipe": {}}
    for part in name.split(","):
        if part not in VARIANTS:
            raise SystemExit(f"unknown variant {part!r}; choose from {sorted(VARIANTS)} (join with ',')")
        for key, value in VARIANTS[part].items():
            if key == "recipe":
                if "augment" in value and "augment" in spec["recipe"]:
                    value = {**value, "augment": spec["recipe"]["augment"] + "+" + value["augment"]}
                spec["recipe"] = {**spec["recipe"], **value}
            else:
                spec[key] = value
    return spec


def held_out(config: dict[str, Any]) -> ImageDataset:
    """The validation digits a ``train_classifier(..., validation=N)`` checkpoint never trained on."""
    return load_dataset(config["dataset"], "train").holdout(config["validation"])[1]


@torch.no_grad()
def screen(checkpoints: list[Path], draws: int, seed: int) -> dict[str, float]:
    """The held-out numbers of the module docstring for the validation digits of the checkpoints (trained
    on the same split); several checkpoints are measured as their ensemble, which averages their softmax outputs."""
    models, configs = zip(*(load_checkpoint(c) for c in checkpoints))
    config = configs[0]
    if any(c["validation"] != config["validation"] for c in configs):
        raise SystemExit(f"{', '.join(map(str, checkpoints))} were not trained with the same validation split")
    noise = noise_from_config(config["noise"])
    held = held_out(config)
    g = generator(seed, 7)
    votes = torch.zeros(len(held), held.num_classes)
    for _ in range(draws):
        for i in range(0, len(held), 500):
            z = noise(held.x[i : i + 500], g)
            labels = torch.stack([model(z).softmax(1) for model in models]).mean(0).argmax(1)
            votes[i : i + 500] += torch.nn.functional.one_hot(labels, held.num_classes).float()
    p = votes[torch.arange(len(held)), held.y] / draws
    median_p = statistics.median(float(v) if v > 0.5 else 0.0 for v in p)
    certified = noise.certificates and median_p > 0.5  # the clean variant has no certificate
    proxy = noise.radius(median_p, held.image_shape[1:]) if certified else float("nan")
    return {"base_acc": float(p.mean()), "vote_acc": float((p > 0.5).float().mean()),
            "plurality_acc": float((votes.argmax(1) == held.y).float().mean()), "median_p": median_p,
            "proxy_median": proxy}


def certify_validation(checkpoint: Path, images: int, seed: int) -> dict[str, float]:
    """Median certified radius and certified accuracy at 8 on the first ``images`` held-out digits."""
    held = held_out(read_config(checkpoint))
    log = run_dataset(SmoothedClassifier.from_checkpoint(checkpoint, device="cpu"), held.subset(range(images)),
                      checkpoint / "certify-validation.tsv", n0=1000, n=10_000, alpha=0.05, seed=seed,
                      sampling="adaptive", progress=False)
    summary = summarize(read_log(log), (8,))
    return {"cert_median": float(summary["median"]), "cert_acc8": summary["certified_accuracy"][8.0]}


def measure(name: str, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """A trained variant's row: the held-out screen, and its certification when ``--certify`` asks for it."""
    row = {"variant": name, "epochs": args.epochs, **screen([folder], args.draws, args.seed)}
    if args.certify:
        row.update(certify_validation(folder, args.certify, args.seed))
    return row


def _format(row: dict[str, Any]) -> str:
    return "  ".join(f"{c}={v:.4g}" if isinstance(v, float) else f"{c}={v}" for c, v in row.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help="the screen's folder (not needed with --ensemble)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--draws", type=int, default=100, help="ablations per held-out digit")
    parser.add_argument("--validation", type=int, default=1000)
    parser.add_argument("--max-images", type=int, default=None, metavar="N",
                        help="train on the first N of the digits left after the validation cut (a learning curve's "
                             "point; the variant's row and folder get the suffix @N)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--certify", type=int, default=0, metavar="N", help="also certify N held-out digits")
    parser.add_argument("--teacher", type=Path, help="the teacher checkpoint of the distill variant")
    parser.add_argument("--only", nargs="+", default=list(VARIANTS), help="variants, e.g. base affine,ema")
    parser.add_argument("--rescreen", action="store_true",
                        help="measure variants already trained again, print only (with --certify N: extend "
                             "their certification to the first N held-out digits)")
    parser.add_argument("--ensemble", nargs="+", type=Path, metavar="CHECKPOINT",
                        help="measure the ensemble of these trained checkpoints, print only")
    args = parser.parse_args()
    if args.out is None and not args.ensemble:
        parser.error("--out is required (except with --ensemble)")
    torch.set_num_threads(1)
    if args.ensemble:
        print(f"ensemble of {' + '.join(map(str, args.ensemble))}: "
              + _format(screen(args.ensemble, args.draws, args.seed)), flush=True)
        return
    if args.rescreen:
        for variant in args.only:
            name = variant if args.max_images is None else f"{variant}@{args.max_images}"
            folder = args.out / f"{name}-e{args.epochs}"
            if not (folder / "config.json").is_file():
                raise SystemExit(f"{folder} holds no trained variant: train it first (without --rescreen)")
            print(_format(measure(name, folder, args)), flush=True)
        return
    table = args.out / "screen.tsv"
    done = set()
    if table.exists():
        with table.open() as f:
            reader = csv.DictReader(f, delimiter="\t")
            if reader.fieldnames != COLUMNS:
                raise SystemExit(f"{table} has the columns of an older version of this script: move it away or "
                                 "choose another --out")
            done = {(row["variant"], int(row["epochs"])) for row in reader}
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        table.write_text("\t".join(COLUMNS) + "\n")
    for variant in args.only:
        name = variant if args.max_images is None else f"{variant}@{args.max_images}"
        if (name, args.epochs) in done:
            continue
        spec = parse_variant(variant)
        method_name, params = spec.get("method", ("noise", {}))
        if method_name == "distillation":
            if args.teacher is None:
                raise SystemExit(f"variant {name} distills: name its teacher checkpoint with --teacher")
            if read_config(args.teacher).get("validation") != args.validation:
                raise SystemExit(f"the teacher {args.teacher} was not trained on this validation split "
                                 f"(--validation {args.validation}): its held-out digits would leak")
            params = {**params, "teacher": str(args.teacher)}
        folder = args.out / f"{name}-e{args.epochs}"
        start = time.perf_counter()
        recipe = get_recipe("fast", epochs=args.epochs, **spec["recipe"])
        train_classifier("mnist5k", folder, noise=spec.get("noise", "ablation"), k=45, recipe=recipe,
                         model=spec.get("model"), method=make_method(method_name, **params), seed=args.seed,
                         device="cpu", validation=args.validation, max_images=args.max_images, overwrite=True,
                         progress=False)
        seconds = time.perf_counter() - start
        row = {"cert_median": float("nan"), "cert_acc8": float("nan"), **measure(name, folder, args),
               "train_seconds": seconds}
        with table.open("a") as f:
            f.write("\t".join(f"{row[c]:.4f}" if isinstance(row[c], float) else str(row[c]) for c in COLUMNS) + "\n")
        print(_format({c: row[c] for c in COLUMNS}), flush=True)


if __name__ == "__main__":
    main()
