"""The ``smoothcert`` command line: train, certify, predict, attack, substitute, denoise, report, figure,
reproduce, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from . import paper
from .attacks import ATTACKS, make_attack, oracle_factory
from .attacks.substitute import run_substitute, split_seed
from .bounds import is_attack_log, read_attack_log, summarize_attack, table2
from .checkpoint import read_config
from .data import DATASETS, load_dataset
from .denoisers import METHODS as DENOISER_METHODS
from .denoisers import denoise, smoothed_denoised
from .methods import METHODS, make_method
from .models import MODELS
from .noises import ENCODINGS, NOISES, Ablation, Gaussian
from .report import (
    format_table,
    plot_certified_accuracy,
    plot_delta,
    read_log,
    summarize,
)
from .runner import adversarial_path, run_attack, run_dataset, select_indices
from .seeding import DEVICES
from .smooth import SmoothedClassifier
from .train import RECIPES, get_recipe, train_classifier


def _add_data(p: argparse.ArgumentParser, default: str | None = "mnist5k", split: str = "test") -> None:
    p.add_argument("--dataset", default=default, help=f"one of {', '.join(DATASETS)}" + (f" (default {default})" if default else " (default: the checkpoint's)"))
    p.add_argument("--split", choices=("train", "test"), default=split)
    p.add_argument("--data-root", type=Path, default=None, help="folder with MNIST/CIFAR-10 files (default $SMOOTHCERT_DATA or ~/.cache/smoothcert/data)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_noise(p: argparse.ArgumentParser) -> None:
    p.add_argument("--noise", choices=NOISES, default="ablation")
    p.add_argument("--k", type=int, default=45, help="pixels kept by randomized ablation (default 45)")
    p.add_argument("--encoding", choices=ENCODINGS, default="multichannel")
    p.add_argument("--sigma", type=float, default=None, help="Gaussian noise level in [0, 1] pixel units (--noise gaussian)")


def _add_sampling(p: argparse.ArgumentParser, certify: bool) -> None:
    if certify:
        p.add_argument("--n0", type=int, default=1000, help="selection samples (default 1000, as the paper)")
        p.add_argument("--certificate", choices=(*Ablation.certificates, *Gaussian.certificates), default=None,
                       help="ablation: cor1 (default), cor2, jia; gaussian: cohen (default), two-class")
    p.add_argument("--n", type=int, default=10_000, help="estimation samples (default 10000, as the paper)")
    p.add_argument("--alpha", type=float, default=0.05, help="failure probability (default 0.05, as the paper)")
    p.add_argument("--skip", type=int, default=1, help="use every N-th image")
    p.add_argument("--max", type=int, default=None, help="at most N images")
    p.add_argument("--batch-size", type=int, default=1000, help="noisy copies per forward pass (memory bound)")


def _add_oracle(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n", type=int, default=1000, help="noise samples per query of a smoothed classifier (default 1000)")
    p.add_argument("--alpha", type=float, default=0.05, help="PREDICT's abstention level (default 0.05)")
    p.add_argument("--batch-size", type=int, default=1000, help="noisy copies per forward pass (memory bound)")


def cmd_train(args: argparse.Namespace) -> None:
    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    method = make_method(args.method, **_method_params(args.method_param))
    train_classifier(
        args.dataset, args.out, noise=args.noise, k=args.k, encoding=args.encoding, sigma=args.sigma, recipe=recipe,
        model=args.model, method=method, seed=args.seed, device=args.device, data_root=args.data_root, resume=args.resume,
        progress=not args.quiet,
    )
    print(f"checkpoint written to {args.out}")


def _evaluate(args: argparse.Namespace, mode: str) -> None:
    config = read_config(args.checkpoint)
    dataset = _dataset_of(args, config)
    data = load_dataset(dataset, args.split, args.data_root)
    options = {"certificate": getattr(args, "certificate", None), "batch_size": args.batch_size, "device": args.device}
    settings = {"checkpoint": str(Path(args.checkpoint).resolve()), "dataset": dataset, "split": args.split}
    if args.denoiser is not None:
        smoothed = smoothed_denoised(args.checkpoint, args.denoiser, **options)
        settings["denoiser"] = str(Path(args.denoiser).resolve())
    else:
        smoothed = SmoothedClassifier.from_checkpoint(args.checkpoint, **options)
    run_dataset(
        smoothed, data, args.out, mode=mode, n0=getattr(args, "n0", 0), n=args.n, alpha=args.alpha, seed=args.seed,
        indices=select_indices(len(data), args.skip, args.max), settings=settings, progress=not args.quiet,
    )
    summary = summarize(read_log(args.out), radii=())
    print(f"{mode}: {summary['n']} images, accuracy {100 * summary['accuracy']:.2f}%, abstained {100 * summary['abstained']:.2f}% -> {args.out}")


def _dataset_of(args: argparse.Namespace, config: dict) -> str:
    dataset = args.dataset or config.get("dataset")
    if dataset is None:
        raise ValueError("the checkpoint does not name its dataset: pass --dataset")
    return dataset


def cmd_attack(args: argparse.Namespace) -> None:
    if args.attack == "pointwise":
        if args.budget is not None or args.start_budget is not None:
            raise ValueError("--budget and --start-budget belong to --attack sparse-rs")
        params = {"restarts": args.restarts, "max_queries": args.max_queries, "steps": args.start_steps,
                  "search_steps": args.search_steps}
    else:
        for flag in ("restarts", "start_steps", "search_steps"):
            if getattr(args, flag) is not None:
                raise ValueError(f"--{flag.replace('_', '-')} belongs to --attack pointwise")
        params = {"budget": args.budget, "max_queries": args.max_queries, "start": args.start_budget}
    attack = make_attack(args.attack, **{k: v for k, v in params.items() if v is not None})
    make_oracle, config = oracle_factory(args.checkpoint, n=args.n, alpha=args.alpha, fixed=not args.fresh,
                                         n_check=args.n_check, seed=args.seed, batch_size=args.batch_size, device=args.device)
    dataset = _dataset_of(args, config)
    data = load_dataset(dataset, args.split, args.data_root)
    settings = {"checkpoint": str(Path(args.checkpoint).resolve()), "dataset": dataset, "split": args.split,
                "target": "model" if config["noise"]["noise"] == "none" else "smoothed"}
    if settings["target"] == "smoothed":
        settings.update(n=args.n, n_check=args.n_check or args.n, alpha=args.alpha, fixed=not args.fresh)
    run_attack(make_oracle, attack, data, args.out, seed=args.seed, indices=select_indices(len(data), args.skip, args.max),
               settings=settings, progress=not args.quiet)
    summary = summarize_attack(read_attack_log(args.out))
    print(f"attack: {summary['n']} images, success {100 * summary['success']:.2f}%, median L0 "
          f"{summary['median_l0']:g}, mean queries {summary['mean_queries']:.0f} -> {args.out} "
          f"(adversarial examples in {adversarial_path(args.out)})")


def cmd_substitute(args: argparse.Namespace) -> None:
    make_oracle, config = oracle_factory(args.checkpoint, n=args.n, alpha=args.alpha, fixed=False, seed=args.seed,
                                         batch_size=args.batch_size, device=args.device)
    data = load_dataset(_dataset_of(args, config), args.split, args.data_root)
    seed_set, heldout = split_seed(data, args.seed_size)
    if args.max is not None:
        heldout = heldout.subset(range(min(args.max, len(heldout))))
    params = {"rounds": args.rounds, "lam": args.lam, "kappa": args.kappa, "epochs": args.epochs}
    result = run_substitute(make_oracle(0), seed_set, heldout, num_classes=config["num_classes"],
                            abstain=config["noise"]["noise"] != "none", eps=args.eps, seed=args.seed, device=args.device,
                            progress=not args.quiet, **{k: v for k, v in params.items() if v is not None})
    print("round  |S_rho|  oracle queries  substitute accuracy  agreement with oracle")
    for h in result["history"]:
        print(f"{h['round']:5d}  {h['size']:7d}  {h['queries']:14d}  {100 * h['accuracy']:18.2f}%  {100 * h['agreement']:20.2f}%")
    print(f"FGSM eps={result['eps']:g} on {result['heldout_size']} held-out images: transfer rate "
          f"{100 * result['transfer_rate']:.2f}% (oracle clean error {100 * result['oracle_clean_error']:.2f}%, "
          f"abstained {100 * result['oracle_abstain_rate']:.2f}%)")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"checkpoint": str(Path(args.checkpoint).resolve()), **result}, indent=2))
        print(f"written to {args.out}")


def cmd_denoise(args: argparse.Namespace) -> None:
    out = denoise(args.classifier, args.dataset, split=args.split, method=args.method, data_fraction=args.data_fraction,
                  sigma=args.sigma, noise=args.noise, k=args.k, encoding=args.encoding, epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, depth=args.depth, width=args.width, out=args.out,
                  seed=args.seed, device=args.device, data_root=args.data_root, progress=not args.quiet)
    print(f"denoiser written to {out}; certify with: smoothcert certify --checkpoint {args.classifier} --denoiser {out} ...")


def cmd_report(args: argparse.Namespace) -> None:
    stems = [p.stem for p in args.logs]
    unique = len(set(stems)) == len(stems)  # else name runs by their folder too: runs/a/certify.tsv -> a/certify
    names = {p: None if unique else f"{p.parent.name}/{p.stem}" for p in args.logs}
    attacks = [read_attack_log(p, names[p]) for p in args.logs if is_attack_log(p)]
    logs = [read_log(p, names[p]) for p in args.logs if not is_attack_log(p)]
    if logs:
        print(format_table([summarize(log, args.radii) for log in logs], args.radii, markdown=args.markdown))
    if attacks:
        print(("\n" if logs else "") + table2(attacks, logs, markdown=args.markdown))
    certified = [log for log in logs if log.radius is not None]
    if args.plot and certified:
        print(f"plot written to {plot_certified_accuracy(certified, args.plot)}")
    elif args.plot:
        raise ValueError("--plot needs at least one certify log (predict and attack logs have no radii)")


def cmd_figure(args: argparse.Namespace) -> None:
    if args.which == "delta":
        path = plot_delta(args.d, args.ks, args.out)
    else:
        if args.checkpoint is None:
            raise ValueError("figure samples needs --checkpoint")
        path = paper.figure_samples(args.checkpoint, args.dataset, args.index, args.out, seed=args.seed, device=args.device, data_root=args.data_root)
    print(f"figure written to {path}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    given = {"max_images": args.max, "n0": args.n0, "n": args.n, "alpha": args.alpha, "epochs": args.epochs}
    run = {k: v for k, v in given.items() if v is not None}
    run.update(seed=args.seed, device=args.device, progress=not args.quiet)
    if args.out is not None:
        run["out"] = args.out
    if args.table == "denoised":
        if "epochs" in run:
            raise ValueError("reproduce denoised has its own schedules (see paper.reproduce_denoised); drop --epochs")
        paper.reproduce_denoised(**run, **({"classifier": args.classifier} if args.classifier else {}))
    elif args.table == "smoothing":
        paper.reproduce_smoothing(**run, **({"sigmas": args.sigmas} if args.sigmas else {}))
    elif args.table == "l0-consistency":
        paper.reproduce_l0_consistency(**run, recipe=args.recipe)
    else:
        paper.reproduce(args.table, **run, recipe=args.recipe, ks=args.ks)


def cmd_demo(args: argparse.Namespace) -> None:
    paper.demo(out=args.out, epochs=args.epochs, max_images=args.max, seed=args.seed, device=args.device, progress=not args.quiet)


def _method_params(pairs: list[str]) -> dict[str, float]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--method-param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = float(value) if "." in value or "e" in value.lower() else int(value)
    return params


def _int_list(text: str) -> list[int]:
    return [int(t) for t in text.split(",") if t]


def _float_list(text: str) -> list[float]:
    return [float(t) for t in text.split(",") if t]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smoothcert", description="Certified robustness by randomized ablation and smoothing.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a base classifier on noisy inputs")
    _add_data(p)
    _add_noise(p)
    _add_common(p)
    p.add_argument("--model", choices=sorted(MODELS), default=None, help="default: mnist_cnn for 28x28 images, else resnet18")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    p.add_argument("--method", choices=sorted(METHODS), default="noise",
                   help="noise (augmentation), consistency, stability, macer, smoothadv (Gaussian only)")
    p.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a method hyperparameter, e.g. lam=5 (repeatable; defaults from the papers)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    p.add_argument("--out", type=Path, default=Path("runs/model"), help="checkpoint directory (default runs/model)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.set_defaults(func=cmd_train)

    for name, certify in (("certify", True), ("predict", False)):
        p = sub.add_parser(name, help=f"{name} images with the smoothed classifier")
        p.add_argument("--checkpoint", type=Path, required=True)
        p.add_argument("--denoiser", type=Path, default=None,
                       help="a `smoothcert denoise` checkpoint: smooth denoiser + the --checkpoint classifier "
                            "with the noise the denoiser was trained for")
        _add_data(p, default=None)
        _add_sampling(p, certify)
        _add_common(p)
        p.add_argument("--out", type=Path, required=True, help="TSV log (re-running resumes it)")
        p.set_defaults(func=(lambda a, m=name: _evaluate(a, m)))

    p = sub.add_parser("attack", help="L0 attacks on a model or its smoothed classifier (upper bounds)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a model trained with --noise none is attacked directly, others through their smoothed PREDICT")
    p.add_argument("--attack", choices=ATTACKS, default="pointwise")
    p.add_argument("--restarts", type=int, default=None, help="pointwise: random restarts, best of R (default 10)")
    p.add_argument("--start-steps", type=int, default=None,
                   help="pointwise: salt-and-pepper draws of each restart's start (default 1000)")
    p.add_argument("--search-steps", type=int, default=None,
                   help="pointwise: binary-search queries per pixel and round (default 10; 0: reset passes only)")
    p.add_argument("--max-queries", type=int, default=None, help="query budget per restart (pointwise, default 5000) "
                   "or per pixel budget tried (sparse-rs, default 1000)")
    p.add_argument("--budget", type=int, default=None, help="sparse-rs: fixed pixel budget (default: search the smallest)")
    p.add_argument("--start-budget", type=int, default=None, help="sparse-rs: first budget of the doubling search (default 1)")
    _add_data(p, default=None)
    _add_oracle(p)
    p.add_argument("--n-check", type=int, default=None, help="fresh samples to re-check each adversarial example (default --n)")
    p.add_argument("--fresh", action="store_true", help="fresh noise every query instead of one fixed set per image")
    p.add_argument("--skip", type=int, default=1, help="use every N-th image")
    p.add_argument("--max", type=int, default=None, help="at most N images")
    _add_common(p)
    p.add_argument("--out", type=Path, required=True, help="TSV log (re-running resumes it); examples go beside it as .npz")
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("substitute", help="black-box transfer: JbDA substitute training, then FGSM")
    p.add_argument("--checkpoint", type=Path, required=True, help="the oracle: an undefended model or a smoothed one")
    _add_data(p, default=None)
    p.add_argument("--seed-size", type=int, default=150, help="S_0: the first N images of the split (default 150)")
    p.add_argument("--max", type=int, default=None, help="at most N held-out images for accuracy and transfer")
    p.add_argument("--rounds", type=int, default=None, help="substitute training rounds rho_max (default 6)")
    p.add_argument("--lam", type=float, default=None, help="augmentation step lambda (default 0.1)")
    p.add_argument("--kappa", type=int, default=None, help="reservoir size (default 400)")
    p.add_argument("--epochs", type=int, default=None, help="substitute epochs per round (default 10)")
    p.add_argument("--eps", type=float, default=0.3, help="FGSM L-inf step (default 0.3)")
    _add_oracle(p)
    _add_common(p)
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    p.set_defaults(func=cmd_substitute)

    p = sub.add_parser("denoise", help="train a denoiser for a frozen classifier (denoised smoothing, DE-CROP)")
    p.add_argument("--classifier", type=Path, required=True, help="checkpoint of the classifier (stays frozen)")
    p.add_argument("--method", choices=DENOISER_METHODS, default="mse",
                   help="mse, stability, mse-stability (MSE then stability) or decrop (DE-CROP)")
    p.add_argument("--data-fraction", type=float, default=1.0, help="stratified share of the split to train on "
                   "(DE-CROP: 0.01)")
    _add_data(p, default=None, split="train")
    _add_noise(p)
    p.set_defaults(noise="gaussian", sigma=0.25)
    p.add_argument("--epochs", type=int, default=None, help="default 90 (600 for decrop), as the papers")
    p.add_argument("--batch-size", type=int, default=None, help="default 256 (200 for decrop)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--depth", type=int, default=17, help="DnCNN layers (default 17, as the papers)")
    p.add_argument("--width", type=int, default=64, help="DnCNN channels (default 64)")
    p.add_argument("--out", type=Path, default=Path("runs/denoiser"), help="denoiser checkpoint directory")
    _add_common(p)
    p.set_defaults(func=cmd_denoise)

    p = sub.add_parser("report", help="summarise certify/predict logs; with attack logs also Table 2 (certified "
                       "vs empirical median, soundness)")
    p.add_argument("logs", nargs="+", type=Path)
    p.add_argument("--radii", type=_float_list, default=[0, 1, 2, 4, 6, 8, 10], help="comma-separated radii")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--plot", type=Path, default=None, help="write certified accuracy vs radius to this PNG")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("figure", help="the paper's Figure 2 (delta) or Figure 1 (ablated samples)")
    p.add_argument("which", choices=("delta", "samples"))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--d", type=int, default=784)
    p.add_argument("--ks", type=_int_list, default=[5, 10, 20, 45, 70, 100])
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--index", type=int, default=0, help="test image to show")
    _add_data(p, default=None)
    _add_common(p)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("reproduce", help="reproduce a paper table at a chosen scale, ours beside the paper's")
    p.add_argument("table", choices=("table1", "table8", "smoothing", "l0-consistency", "denoised"),
                   help="table1: k sweep; table8: encodings; smoothing: Gaussian training methods vs Jeong & Shin "
                        "Table 2; l0-consistency: ablation with vs without consistency regularization; denoised: "
                        "denoisers for a clean classifier (MSE, stability, DE-CROP on 1%%) and denoised ablation")
    p.add_argument("--classifier", type=Path, default=None, help="denoised: a clean classifier checkpoint to reuse "
                   "(default: train one under --out)")
    p.add_argument("--ks", type=_int_list, default=None, help="k values for table1")
    p.add_argument("--sigmas", type=_float_list, default=None, help="sigmas for smoothing (default 0.25,0.5)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max", type=int, default=None, help="test images to certify per model (default 100)")
    p.add_argument("--n0", type=int, default=None, help="default 1000 (ablation) / 100 (smoothing)")
    p.add_argument("--n", type=int, default=None, help="default 10000")
    p.add_argument("--alpha", type=float, default=None, help="default 0.05 (ablation) / 0.001 (smoothing)")
    p.add_argument("--out", type=Path, default=None, help="default runs/reproduce, runs/smoothing, runs/demo")
    _add_common(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("demo", help="train k=45 on mnist5k, certify and predict test digits, print the Table-1 row")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max", type=int, default=120, help="test digits to certify and predict (default 120)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    _add_common(p)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"smoothcert {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
