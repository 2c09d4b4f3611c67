"""The ``smoothcert`` command line: train, certify, predict, attack, substitute, denoise, report, figure,
reproduce, demo."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import reproductions
from .attacks import attack_class, attack_flags, attack_names, make_attack
from .attacks.substitute import JacobianAugmentation, format_substitute
from .certificates.sequential import BOUNDS, DEFAULT_BOUND, DEFAULTS, FUTILITY
from .classifiers import SAMPLINGS, VOTES
from .classifiers.checks import sampling_options
from .data import DATASETS
from .denoisers import DEFAULT_SCHEDULE
from .denoisers import METHODS as DENOISER_METHODS
from .errors import ArgumentError
from .models import MODELS
from .noises import certificate_help, certificate_names, noise_class, noise_flags, noise_kinds
from .options import BUNDLES, DataOptions, RuntimeOptions, SamplingOptions
from .reports import (
    read_attack_log,
    read_log,
    report,
    summarize,
    summarize_attack,
)
from .runner import adversarial_path
from .runner.jobs import attack, denoise, evaluate, substitute
from .runner.shards import Shard, merge_logs
from .runtime.distributed import current_world
from .runtime.seeding import resolve_device
from .training import (
    RECIPES,
    describe_checkpoint,
    get_recipe,
    make_method,
    train_classifier,
)
from .training.methods import METHODS


def defaults(function: Callable[..., object]) -> dict[str, object]:
    """The default of each keyword of ``function`` (a job or a class), and of each field of the option
    bundles it takes ([`BUNDLES`][smoothcert.options.BUNDLES]): the library's, which the flags take.

    Args:
        function: The function or class whose signature holds the defaults.
    """
    parameters = inspect.signature(function).parameters
    found = {name: parameter.default for name, parameter in parameters.items()
             if parameter.default is not inspect.Parameter.empty and name not in BUNDLES}
    for name in BUNDLES.keys() & parameters.keys():
        found.update({f.name: f.default for f in dataclasses.fields(BUNDLES[name])})  # type: ignore[arg-type]
    return found


def _add_data(p: argparse.ArgumentParser, default: str | None = "mnist5k", split: str = "test") -> None:
    """``--dataset``, ``--split`` and ``--data-root`` ([`DataOptions`][smoothcert.options.DataOptions])."""
    DataOptions.add_flags(p, ("dataset", "split", "data_root"), defaults={"dataset": default, "split": split},
                          help={"dataset": f"one of {', '.join(DATASETS)}" + (f" (default {default})" if default else
                                                                               " (default: the checkpoint's)")})


def _add_common(p: argparse.ArgumentParser) -> None:
    """``--seed``, ``--device`` and ``--quiet`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions])."""
    RuntimeOptions.add_flags(p, ("seed", "device", "progress"))


RUNTIME = ("seed", "device", "progress")
"""The runtime fields every job reads."""


def _add_noise(p: argparse.ArgumentParser) -> None:
    """``--noise`` and the flags of every registered noise ([`smoothcert.noises`][smoothcert.noises])."""
    p.add_argument("--noise", choices=noise_kinds(), default="ablation")
    for name, spec in noise_flags().items():  # None: not given (the noise's default; another noise refuses it)
        p.add_argument("--" + name.replace("_", "-"), **{**spec, "default": None})


def _add_attack(p: argparse.ArgumentParser) -> None:
    """``--attack`` and the flags of every registered attack
    ([`smoothcert.attacks.registry`][smoothcert.attacks.registry])."""
    p.add_argument("--attack", choices=attack_names(), default="pointwise")
    for name, spec in attack_flags().items():  # None: not given (the attack's default; another attack refuses it)
        p.add_argument("--" + name.replace("_", "-"), **{**spec, "default": None})


def _noise_values(args: argparse.Namespace) -> dict[str, object]:
    """The values of the noise flags, for [`smoothcert.noises.make_noise`][smoothcert.noises.make_noise]."""
    return {name: getattr(args, name) for name in noise_flags()}


def _question_defaults(option: str, looks: bool = True) -> str:
    """The default of an adaptive ``option`` for the largest radius and with ``--radius`` (and, with
    ``looks``, the looks bound's), read from [`DEFAULTS`][smoothcert.certificates.sequential.DEFAULTS]."""
    def pair(bound: str) -> str:
        return f"{DEFAULTS[bound]['largest'][option]:g}, {DEFAULTS[bound]['target'][option]:g}"
    return f"default {pair(DEFAULT_BOUND)} with --radius" + (f" (looks: {pair('looks')})" if looks else "")


def _add_sampling(p: argparse.ArgumentParser, certify: bool) -> None:
    SamplingOptions.add_flags(p, ("sampling",))
    p.add_argument("--bound", choices=tuple(BOUNDS), default=None,
                   help="adaptive: exact = exact group-sequential boundaries (default; a resumed log keeps its "
                        "own), looks = Clopper-Pearson at growing looks with alpha split over them, anytime = "
                        "mixture confidence sequence after every --step samples")
    p.add_argument("--step", type=int, default=None, help="adaptive: first look (exact, looks) or batch between "
                   f"looks (anytime); {_question_defaults('step')}")
    p.add_argument("--beta", type=float, default=None, help="adaptive: futility level (costs power, never validity); "
                   f"{_question_defaults('beta')}")
    p.add_argument("--futility", choices=FUTILITY, default=None,
                   help="adaptive: how a radius is found out of reach: spent (exact bound, default) = futility "
                        "boundaries that stop at most beta of the time at the rate the last look needs; looks and "
                        "anytime: threshold = the futility bound is below its threshold, final (default) = the "
                        "last look could not certify it at that rate")
    if certify:
        n0_help = (f"selection samples (default 1000 as the paper with fixed sampling; adaptive: "
                   f"{_question_defaults('n0', looks=False)}; 0: the exact bound's one-radius test certifies the "
                   "class that leads it)")
        SamplingOptions.add_flags(p, ("n0",), help={"n0": n0_help})
        p.add_argument("--radius", type=float, default=None,
                       help="adaptive: only ask whether each image is certified at this radius (stops much sooner)")
        p.add_argument("--certificate", choices=certificate_names(),
                       default=None, help=f"by noise, the default first: {certificate_help()}")
    SamplingOptions.add_flags(p, ("n", "alpha"))
    DataOptions.add_flags(p, ("skip", "max_images"))
    RuntimeOptions.add_flags(p, ("batch_size",))


def _add_vote(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vote", choices=VOTES, default=None, help="columns/blocks/partition: each copy votes its argmax or "
                   "every class with softmax >= --theta (default: threshold for columns/blocks, argmax for partition)")
    p.add_argument("--theta", type=float, default=None, help="softmax threshold of --vote threshold (default 0.2)")


def _add_oracle(p: argparse.ArgumentParser) -> None:
    SamplingOptions.add_flags(p, ("n", "alpha"), help={
        "n": "noise samples per query of a smoothed classifier (default 1000)",
        "alpha": "PREDICT's abstention level (default 0.05)"})
    RuntimeOptions.add_flags(p, ("batch_size",))


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_shard(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", type=_shard, default=None, metavar="I/N",
                   help="run only shard I of N (0-based) into OUT.shard-I-of-N.tsv, for job arrays without "
                        "torchrun; join the shards with `smoothcert merge`")


def _add_speed(p: argparse.ArgumentParser, amp: bool = True) -> None:
    RuntimeOptions.add_flags(p, ("compile", "channels_last", "amp") if amp else ("compile", "channels_last"))


def cmd_train(args: argparse.Namespace) -> None:
    recipe = get_recipe(args.recipe, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=args.augment)
    params = _method_params(args.method_param)
    method = recipe.make_method(**params) if args.method is None else make_method(args.method, **params)
    train_classifier(
        args.dataset, args.out, noise=args.noise, **_noise_values(args), recipe=recipe, model=args.model,
        method=method, data_root=args.data_root, validation=args.validation, max_images=args.max_images,
        resume=args.resume, overwrite=args.overwrite, runtime=RuntimeOptions.from_args(args, RUNTIME),
    )
    if current_world().main:
        print(f"checkpoint written to {args.out}")


def _evaluate(args: argparse.Namespace, mode: str) -> None:
    sampling = sampling_options(args.sampling, radius=getattr(args, "radius", None), bound=args.bound, beta=args.beta,
                                step=args.step, futility=args.futility)
    log = evaluate(args.checkpoint, args.out, mode=mode, denoiser=args.denoiser,
                   certificate=getattr(args, "certificate", None), vote=args.vote, theta=args.theta,
                   patch=getattr(args, "patch", None), shard=args.shard, data=DataOptions.from_args(args),
                   samples=SamplingOptions.from_args(args, sampling=sampling), runtime=RuntimeOptions.from_args(args))
    if log is not None:  # None: a torchrun rank other than 0
        summary = summarize(read_log(log), radii=())
        print(f"{mode}: {summary['n']} images, accuracy {100 * summary['accuracy']:.2f}%, abstained "
              f"{100 * summary['abstained']:.2f}% -> {log}")


def cmd_attack(args: argparse.Namespace) -> None:
    chosen = make_attack(args.attack, **{flag: getattr(args, flag) for flag in attack_flags()})
    log = attack(args.checkpoint, args.out, chosen, fixed=not args.fresh, n_check=args.n_check, vote=args.vote,
                 theta=args.theta, shard=args.shard, data=DataOptions.from_args(args),
                 samples=SamplingOptions.from_args(args), runtime=RuntimeOptions.from_args(args))
    if log is not None:  # None: a torchrun rank other than 0
        summary = summarize_attack(read_attack_log(log))
        print(f"attack: {summary['n']} images, success {100 * summary['success']:.2f}%, median L0 "
              f"{summary['median_l0']:g}, mean queries {summary['mean_queries']:.0f} -> {log} "
              f"(adversarial examples in {adversarial_path(log)})")


def cmd_merge(args: argparse.Namespace) -> None:
    out = merge_logs(args.out, args.shards)
    print(f"merged {len(args.shards)} shard logs -> {out}")


def cmd_substitute(args: argparse.Namespace) -> None:
    result = substitute(args.checkpoint, seed_size=args.seed_size, eps=args.eps, rounds=args.rounds, lam=args.lam,
                        kappa=args.kappa, epochs=args.epochs, out=args.out, overwrite=args.overwrite,
                        data=DataOptions.from_args(args), samples=SamplingOptions.from_args(args),
                        runtime=RuntimeOptions.from_args(args))
    print(format_substitute(result) + (f"\nwritten to {args.out}" if args.out is not None else ""))


def cmd_denoise(args: argparse.Namespace) -> None:
    out = denoise(args.classifier, args.dataset, split=args.split, method=args.method, data_fraction=args.data_fraction,
                  noise=args.noise, **_noise_values(args), epochs=args.epochs,
                  batch_size=args.batch_size, lr=args.lr, depth=args.depth, width=args.width, out=args.out,
                  data_root=args.data_root, resume=args.resume, overwrite=args.overwrite,
                  runtime=RuntimeOptions.from_args(args, RUNTIME))
    if current_world().main:
        print(f"denoiser written to {out}; certify with: smoothcert certify --checkpoint {args.classifier} --denoiser {out} ...")


def cmd_report(args: argparse.Namespace) -> None:
    print(report(args.logs, args.radii, markdown=args.markdown, plot=args.plot))


def cmd_figure(args: argparse.Namespace) -> None:
    path = reproductions.figure(args.which, args.out, d=args.d, ks=args.ks, checkpoint=args.checkpoint,
                                dataset=args.dataset, index=args.index, split=args.split, data_root=args.data_root,
                                seed=args.seed, device=args.device)
    print(f"figure written to {path}")


def cmd_reproduce(args: argparse.Namespace) -> None:
    options = {"out": args.out, "max_images": args.max_images, "n0": args.n0, "n": args.n, "alpha": args.alpha,
               "epochs": args.epochs, "recipe": args.recipe, "ks": args.ks, "kappas": args.kappas, "sigmas": args.sigmas,
               "groups": args.groups, "classifier": args.classifier, "ablation_checkpoint": args.ablation_checkpoint}
    reproductions.run(args.table, **options, runtime=RuntimeOptions.from_args(args, RUNTIME))


def cmd_demo(args: argparse.Namespace) -> None:
    reproductions.demo(out=args.out, epochs=args.epochs, max_images=args.max_images,
                       runtime=RuntimeOptions.from_args(args, RUNTIME))


def _method_params(pairs: list[str]) -> dict[str, float | str]:
    """--method-param KEY=VALUE pairs: integers, reals, else text (e.g. teacher=PATH)."""
    params: dict[str, float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--method-param expects KEY=VALUE, got {pair!r}")
        params[key.strip()] = _number_or_text(value)
    return params


def _number_or_text(value: str) -> float | str:
    """``value`` as an int, else a float, else as it is."""
    for parse in (int, float):
        try:
            return parse(value)
        except ValueError:
            pass
    return value


def _number_list(parse: Callable[[str], float], kind: str, example: str) -> Callable[[str], list]:
    """An argparse type for a comma-separated list of ``kind`` (``parse`` each item; ``example`` in the error)."""

    def parsed(text: str) -> list:
        try:
            return [parse(t) for t in text.split(",") if t]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of {kind} (e.g. {example})"
                                             ) from None

    return parsed


_int_list = _number_list(int, "integers", "20,45,70")
_float_list = _number_list(float, "numbers", "0,0.25,0.5")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="smoothcert", description="Certified robustness by randomized ablation and smoothing.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a base classifier on noisy inputs")
    _add_data(p)
    _add_noise(p)
    _add_common(p)
    p.add_argument("--model", choices=sorted(MODELS), default=None, help="default: the recipe's model if it names one, else mnist_cnn for 28x28 images and resnet18 for others")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="fast")
    p.add_argument("--method", choices=sorted(METHODS), default=None,
                   help="noise (augmentation), consistency, stability, macer, smoothadv (Gaussian only), "
                        "distillation (needs --method-param teacher=CHECKPOINT); default: the recipe's "
                        "(noise for all but mnist-ablation)")
    p.add_argument("--method-param", action="append", default=[], metavar="KEY=VALUE",
                   help="a method hyperparameter, e.g. lam=5 or teacher=runs/clean (repeatable; defaults from the "
                        "papers or the recipe)")
    p.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    p.add_argument("--batch-size", type=int, default=None, help="override the recipe's batch size")
    p.add_argument("--lr", type=float, default=None, help="override the recipe's learning rate")
    p.add_argument("--augment", default=None, metavar="SPEC",
                   help="override the recipe's data augmentation: none, crop-flip, affine, elastic, or several "
                        "joined by '+' (e.g. affine+elastic)")
    p.add_argument("--validation", type=int, default=0, metavar="N",
                   help="hold out N training images (a fixed draw) for the held-out accuracy instead of the test split")
    DataOptions.add_flags(p, ("max_images",), help={
        "max_images": "train on the first N training images (after --validation's cut), e.g. for a learning curve"})
    p.add_argument("--out", type=Path, default=Path("runs/model"), help="checkpoint directory (default runs/model)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace the checkpoint in --out (refused without it)")
    p.set_defaults(func=cmd_train)

    for name, certify in (("certify", True), ("predict", False)):
        p = sub.add_parser(name, help=f"{name} images with the smoothed classifier")
        p.add_argument("--checkpoint", type=Path, required=True)
        p.add_argument("--denoiser", type=Path, default=None,
                       help="a `smoothcert denoise` checkpoint: smooth denoiser + the --checkpoint classifier "
                            "with the noise the denoiser was trained for")
        _add_data(p, default=None)
        _add_sampling(p, certify)
        _add_vote(p)
        if certify:
            p.add_argument("--patch", type=int, default=None, help="columns/blocks: certify M x M patches (radius M "
                           "or 0; default: the largest certified patch side)")
        _add_common(p)
        p.add_argument("--out", type=Path, required=True, help="TSV log (re-running resumes it)")
        _add_shard(p)
        _add_speed(p)
        p.set_defaults(func=(lambda a, m=name: _evaluate(a, m)))

    p = sub.add_parser("attack", help="L0 attacks on a model or its smoothed classifier (upper bounds)")
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a model trained with --noise none is attacked directly, others through their smoothed PREDICT")
    _add_attack(p)
    _add_data(p, default=None)
    _add_oracle(p)
    p.add_argument("--n-check", type=int, default=None, help="fresh samples to re-check each adversarial example (default --n)")
    _add_vote(p)
    p.add_argument("--fresh", action="store_true", help="fresh noise every query instead of one fixed set per image")
    p.add_argument("--sampling", choices=SAMPLINGS, default=None,
                   help="smoothed: fixed (default): PREDICT on --n samples per query; adaptive: sequential "
                        "PREDICT, at most --n samples, stopping once the answer is settled (as certify)")
    DataOptions.add_flags(p, ("skip", "max_images"))
    _add_common(p)
    p.add_argument("--out", type=Path, required=True, help="TSV log (re-running resumes it); examples go beside it as .npz")
    _add_shard(p)
    _add_speed(p, amp=False)
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("merge", help="join the shard logs of a --shard I/N run into one log (refuses mixed settings)")
    p.add_argument("shards", nargs="+", type=Path, help="the logs of shards 0..N-1 (OUT.shard-I-of-N.tsv)")
    p.add_argument("--out", type=Path, required=True, help="the joined log (rows ordered by idx)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("substitute", help="black-box transfer: JbDA substitute training, then FGSM")
    p.add_argument("--checkpoint", type=Path, required=True, help="the oracle: an undefended model or a smoothed one")
    _add_data(p, default=None)
    job, jbda = defaults(substitute), defaults(JacobianAugmentation)
    p.add_argument("--seed-size", type=int, default=job["seed_size"],
                   help=f"S_0: the first N images of the split (default {job['seed_size']})")
    DataOptions.add_flags(p, ("max_images",), help={"max_images": "at most N held-out images for accuracy and transfer"})
    p.add_argument("--rounds", type=int, default=None, help=f"substitute training rounds rho_max (default {jbda['rounds']})")
    p.add_argument("--lam", type=float, default=None, help=f"augmentation step lambda (default {jbda['lam']})")
    p.add_argument("--kappa", type=int, default=None, help=f"reservoir size (default {jbda['kappa']})")
    p.add_argument("--epochs", type=int, default=None, help=f"substitute epochs per round (default {jbda['epochs']})")
    p.add_argument("--eps", type=float, default=job["eps"], help=f"FGSM L-inf step (default {job['eps']})")
    _add_oracle(p)
    _add_common(p)
    p.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file (refused without it)")
    p.set_defaults(func=cmd_substitute)

    p = sub.add_parser("denoise", help="train a denoiser for a frozen classifier (denoised smoothing, DE-CROP)")
    p.add_argument("--classifier", type=Path, required=True, help="checkpoint of the classifier (stays frozen)")
    job = defaults(denoise)
    p.add_argument("--method", choices=DENOISER_METHODS, default=job["method"],
                   help="mse, stability, mse-stability (MSE then stability) or decrop (DE-CROP)")
    p.add_argument("--data-fraction", type=float, default=job["data_fraction"], help="stratified share of the split "
                   "to train on (DE-CROP: 0.01)")
    _add_data(p, default=None, split="train")
    _add_noise(p)
    p.set_defaults(noise="gaussian")
    (epochs, batch), (decrop_epochs, decrop_batch) = DEFAULT_SCHEDULE[job["method"]], DEFAULT_SCHEDULE["decrop"]
    p.add_argument("--epochs", type=int, default=None, help=f"default {epochs} ({decrop_epochs} for decrop), as the papers")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {batch} ({decrop_batch} for decrop)")
    p.add_argument("--lr", type=float, default=job["lr"], help=f"Adam's learning rate (default {job['lr']:g})")
    p.add_argument("--depth", type=int, default=job["depth"], help=f"DnCNN layers (default {job['depth']}, as the papers)")
    p.add_argument("--width", type=int, default=job["width"], help=f"DnCNN channels (default {job['width']})")
    p.add_argument("--out", type=Path, default=Path(job["out"]), help="denoiser checkpoint directory")
    p.add_argument("--resume", action="store_true", help="reuse the finished denoiser in --out (same settings)")
    p.add_argument("--overwrite", action="store_true", help="replace the denoiser in --out (refused without it)")
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
    p.add_argument("--d", type=int, default=None, help="delta: pixels d (default 784)")
    p.add_argument("--ks", type=_int_list, default=None, help="delta: comma-separated k values (default 5,10,20,45,70,100)")
    p.add_argument("--checkpoint", type=Path, default=None, help="samples: the classifier whose labels are shown")
    p.add_argument("--index", type=int, default=None, help="samples: test image to show (default 0)")
    _add_data(p, default=None)
    _add_common(p)
    p.set_defaults(func=cmd_figure)

    p = sub.add_parser("reproduce", help="reproduce a paper table at a chosen scale, ours beside the paper's")
    p.add_argument("table", choices=reproductions.TABLES,
                   help="table1: k sweep; table7: Lee et al.'s noise vs ablation; table8: encodings; smoothing: "
                        "Gaussian training methods vs Jeong & Shin Table 2; l0-consistency: ablation with vs without "
                        "consistency regularization; denoised: denoisers for a clean classifier (MSE, stability, "
                        "DE-CROP on 1%%) and denoised ablation; patch: column smoothing s=4 vs 5x5 patches (Levine & "
                        "Feizi 2020b); partition: partition voting vs randomized ablation k=45 (Hammoudeh & Lowd 2024)")
    p.add_argument("--classifier", type=Path, default=None, help="denoised: a clean classifier checkpoint to reuse; "
                   "partition: the k=45 ablation checkpoint to compare with (default: train one under --out)")
    p.add_argument("--groups", type=_int_list, default=None, help="T values for partition (default 15,30,60)")
    p.add_argument("--ks", type=_int_list, default=None, help="k values for table1 (default 10,20,45,70,100) and table7 (default 20,45)")
    p.add_argument("--kappas", type=_float_list, default=None, help="kappa values for table7 (default 0.1,0.2,0.3)")
    p.add_argument("--ablation-checkpoint", type=Path, default=None,
                   help="table7: also certify this finished ablation model (e.g. the demo's k=45)")
    p.add_argument("--sigmas", type=_float_list, default=None, help="sigmas for smoothing (default 0.25,0.5)")
    p.add_argument("--recipe", choices=sorted(RECIPES), default=None, help="table1, table7, table8, l0-consistency "
                   "(default fast)")
    p.add_argument("--epochs", type=int, default=None)
    DataOptions.add_flags(p, ("max_images",), help={"max_images": "test images to certify per model (default 100)"})
    SamplingOptions.add_flags(p, ("n0", "n", "alpha"), help={
        "n0": "default 1000 (ablation) / 100 (smoothing, table7)", "n": "default 10000",
        "alpha": "default 0.05 (ablation) / 0.001 (smoothing, table7)"})
    p.add_argument("--out", type=Path, default=None, help="default runs/reproduce, runs/smoothing, runs/table7, runs/demo")
    _add_common(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("demo", help="train k=45 on mnist5k, certify and predict test digits, print the Table-1 row")
    p.add_argument("--epochs", type=int, default=None)
    DataOptions.add_flags(p, ("max_images",), defaults={"max_images": 120},
                          help={"max_images": "test digits to certify and predict (default {default})"})
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    _add_common(p)
    p.set_defaults(func=cmd_demo)
    for p in (parser, *sub.choices.values()):  # `smoothcert --debug train ...` and `smoothcert train ... --debug`
        p.add_argument("--debug", action="store_true", default=False if p is parser else argparse.SUPPRESS,
                       help="show the traceback of an error (or set SMOOTHCERT_DEBUG=1)")
    return parser


# failures a user can cause and fix: bad or missing files and values, no memory, an unavailable device
EXPECTED_ERRORS = (ValueError, OSError, MemoryError)


def _is_out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text))


def _error_line(err: BaseException, args: argparse.Namespace) -> str:
    """One line naming the problem (and what to do) for the message ``smoothcert: error: ...``."""
    text = " ".join(str(err).split())
    if _is_out_of_memory(err):
        size = getattr(args, "batch_size", None)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        return f"out of memory ({first}); lower --batch-size" + (f" (now {size})" if size else "")
    if isinstance(err, ArgumentError) and (err.flag or hasattr(args, err.argument)):
        return " ".join(err.for_flag().split())  # the flag the user typed, not the Python argument
    if isinstance(err, EXPECTED_ERRORS):
        return text or type(err).__name__
    return (f"internal error {type(err).__name__}: {text} (a bug: re-run with --debug for the traceback and "
            "please report it)")


def _interrupted_note(args: argparse.Namespace) -> str:
    """What an interruption left behind and how to continue."""
    if args.command == "train":
        if (args.out / "config.json").is_file():
            return f"{args.out} holds {describe_checkpoint(args.out)}: re-run with --resume to continue it"
        return "no epoch finished: re-run to start again"
    if args.command in ("certify", "predict", "attack", "reproduce", "demo"):
        return "finished work is kept: re-running the same command resumes"
    return "nothing resumable was written: re-run to start again"


def check_output_folders(args: argparse.Namespace) -> None:
    """Refuse an output (``--out``, ``--plot``) whose folder would have to be made where a file is."""
    for name in ("out", "plot"):
        value = getattr(args, name, None)
        if value is None:
            continue
        blocker = next((folder for folder in Path(value).parents if folder.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise ArgumentError(name, value, f"{{name}} {{value}}: {blocker} is a file, not a folder; choose another "
                                "--" + name)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; every failure ends in one line ``smoothcert: error: ...`` (exit status 2
    for expected errors, 1 for a bug, 130 for Ctrl-C); ``--debug`` or SMOOTHCERT_DEBUG=1 adds the traceback."""
    try:
        parser = build_parser()  # noise plugins load here: their errors are one line too
    except argparse.ArgumentError as err:  # a noise or attack flag taken by the command line itself
        flag = err.argument_name.split("/")[0] if err.argument_name else "?"
        name = flag.removeprefix("--").replace("-", "_")
        owners = ([f"the noise {kind}" for kind in noise_kinds() if name in noise_class(kind).flags]
                  + [f"the attack {attack}" for attack in attack_names() if name in attack_class(attack).flags])
        print(f"smoothcert: error: the flag {flag} of {' / '.join(owners) or 'a plugin'} clashes with the command "
              f"line's own {flag}: rename it in its flags", file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - every error becomes one line
        if os.environ.get("SMOOTHCERT_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        print(f"smoothcert: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2 if isinstance(err, EXPECTED_ERRORS) else 1
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("SMOOTHCERT_DEBUG", "") not in ("", "0")
    try:
        if hasattr(args, "device"):
            resolve_device(args.device)  # an unavailable --device cuda fails before any work
        check_output_folders(args)
        args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"smoothcert: interrupted; {_interrupted_note(args)}", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - every error becomes one line; --debug shows the traceback
        if debug:
            traceback.print_exc()
        print(f"smoothcert: error: {_error_line(err, args)}", file=sys.stderr)
        return 2 if isinstance(err, EXPECTED_ERRORS) or _is_out_of_memory(err) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
