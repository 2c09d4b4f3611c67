"""Whole jobs as the CLI runs them: a checkpoint, a dataset and settings, certified, predicted or
attacked image by image into a resumable TSV log (sharded under torchrun or ``--shard``).

Everything is checked before the log exists: the classifier ([`load_classifier`][load_classifier] refuses
options its kind does not take), the dataset's labels against the model's classes, the sampling
options against the checkpoint's noise (`check_sampling`: a flag
the classifier does not read is refused, and so are sample counts with which no image can be
certified or predicted), the memory of one batch and the attack's parameters. Errors name the
argument ([`ArgumentError`][smoothcert.certificates.ArgumentError]), which the CLI shows as its flag. [`run_settings`][run_settings] builds the settings that every log records, in one place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from ..attacks.base import L0Attack
from ..attacks.oracles import DeterministicOracle, ModelOracle, Oracle, SmoothedOracle
from ..attacks.substitute import DEFAULT_EPS, DEFAULT_SEED_SIZE, run_substitute, split_seed
from ..checkpoint import checkpoint_lock, load_checkpoint, read_config, weights_sha256
from ..certificates.sequential import Adaptive
from ..classifiers import Classifier, load_classifier
from ..classifiers.checks import check_sampling, refuse_sampling_options
from ..data import ImageDataset, channel_mean, load_dataset
from ..denoisers import DEFAULT_DEPTH, DEFAULT_LR, DEFAULT_WIDTH, train_denoiser
from ..errors import ArgumentError
from ..noises import check_noise_flags, make_noise, noise_class, noise_from_config, noise_kinds
from ..options import DataOptions, RuntimeOptions, SamplingOptions, gather
from ..runtime.distributed import process_group, rank_device
from ..training import refuse_overwrite
from .dataset import WINDOW, run_attack, run_dataset, select_indices
from .log import TsvLog, write_atomically
from .shards import Shard, run_sharded


def run_settings(checkpoint: str | Path, dataset: str, split: str, denoiser: str | Path | None = None,
                 data: ImageDataset | None = None, **extra: Any) -> dict[str, Any]:
    """The settings a certify, predict or attack log records beside its sampling parameters: the
    ``checkpoint`` as the user gave it and its identity (``weights``, the SHA-256 of its weights),
    likewise ``denoiser`` and ``denoiser_weights`` if given, the ``dataset`` and ``split`` (with the
    ``data``, its identity ``data_sha256``: [`fingerprint`][smoothcert.data.ImageDataset.fingerprint]), and
    the ``extra`` entries. A resumed run must record the same settings; a checkpoint counts as the same
    by its identity, wherever it lies now ([`differing`][smoothcert.runner.log.differing])."""
    settings = {"checkpoint": Path(checkpoint).as_posix(), "weights": weights_sha256(checkpoint),
                "dataset": dataset, "split": split}
    if denoiser is not None:
        settings.update(denoiser=Path(denoiser).as_posix(), denoiser_weights=weights_sha256(denoiser))
    if data is not None:
        settings["data_sha256"] = data.fingerprint()
    return {**settings, **extra}


def checkpoint_dataset(config: dict[str, Any], dataset: str | None, split: str,
                       data_root: str | Path | None = None) -> tuple[str, ImageDataset]:
    """The dataset to run on (``dataset``, else the one the checkpoint ``config`` names) and its
    ``split``; ValueError if a label is not one of the checkpoint's ``num_classes`` classes, or if
    the classes of the labels used are named otherwise than the checkpoint's (recorded in training)."""
    dataset = dataset or config.get("dataset")
    if dataset is None:
        raise ValueError("the checkpoint does not name its dataset: pass --dataset")
    data = load_dataset(dataset, split, data_root)
    data.check_labels(config["num_classes"], dataset)
    channels = noise_from_config(config["noise"]).channels(data.channels) if "noise" in config else data.channels
    if "in_channels" in config and channels != config["in_channels"]:
        raise ArgumentError("dataset", dataset, f"{{name}} {{value}} has {data.channels}-channel images ({channels} "
                            f"channels under the checkpoint's noise); the model takes {config['in_channels']}: "
                            "use images of the kind it was trained on (greyscale or colour)")
    trained = config.get("classes")
    if trained is not None:
        used = sorted({int(label) for label in data.y.tolist()})
        renamed = [(data.classes[i], trained[i]) for i in used if i < len(trained) and data.classes[i] != trained[i]]
        if renamed:
            raise ArgumentError("dataset", dataset, "{name} {value} labels its classes otherwise than the checkpoint: "
                                + ", ".join(f"label {data.classes.index(a)} is {a!r} here but {b!r} in training"
                                            for a, b in renamed[:3])
                                + "; name the class folders (or the npz 'classes') as in training")
    return dataset, data


def check_batch_fits(batch_size: int, n: int, shape: tuple[int, int, int]) -> None:
    """Refuse, before any work, a ``batch_size`` whose batch of noisy copies alone (min(batch, n) float32
    inputs of ``shape``) exceeds this machine's memory; smaller batches that still fail are out-of-memory errors."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): leave it to the allocator
        return
    copies = min(batch_size, n)
    need = copies * shape[0] * shape[1] * shape[2] * 4
    if need > memory:
        raise ValueError(f"--batch-size {batch_size}: one batch of {copies:,} noisy copies of a "
                         f"{'x'.join(map(str, shape))} input needs {need / 1e9:,.1f} GB, more than this machine's "
                         f"{memory / 1e9:.1f} GB of memory; lower --batch-size")


ORACLES: dict[str, Callable[..., Oracle]] = {
    "model": lambda classifier, key, **query: ModelOracle(classifier.base, classifier.num_classes,
                                                          device=classifier.device, batch_size=classifier.batch_size),
    "deterministic": lambda classifier, key, **query: DeterministicOracle(classifier),
    "smoothed": lambda classifier, key, **query: SmoothedOracle(classifier, key=key, **query),
}
"""How an attack queries a classifier, by the oracle's ``target``: the model itself, the exact vote,
or PREDICT; the classifier's capabilities choose which (`_query_target`)."""


def _query_target(classifier: Classifier) -> str:
    """The [`ORACLES`][ORACLES] entry attacks query ``classifier`` through, by what it can do (a
    classifier kind that declares ``samples`` and ``certifies`` needs no change here): PREDICT
    (``"smoothed"``) if it samples, its exact vote (``"deterministic"``) if it certifies without
    sampling, else the model itself (``"model"``)."""
    return "smoothed" if classifier.samples else "deterministic" if classifier.certifies else "model"


ORACLE_READS = {"samples": ("n", "alpha", "sampling"),
                "runtime": ("seed", "device", "batch_size", "compile", "channels_last")}
"""The bundle fields [`oracle_factory`][oracle_factory] reads (PREDICT's samples, and how the model runs)."""


def oracle_factory(
    checkpoint: str | Path, *, fixed: bool = True, n_check: int | None = None, vote: str | None = None,
    theta: float | None = None, samples: SamplingOptions | None = None, runtime: RuntimeOptions | None = None,
    **options: Any,
) -> tuple[Callable[[int], Oracle], dict[str, Any]]:
    """``(make_oracle, config)`` for a ``smoothcert train`` checkpoint: ``make_oracle(idx)`` is a fresh
    oracle for image ``idx``: the model itself when it was trained without noise (undefended), the
    exact vote (``vote``, ``theta``) of a columns/blocks/partition model, else its smoothed
    classifier queried through PREDICT (``samples``: ``n`` default 1000, ``alpha`` 0.05, ``sampling``
    fixed) with noise streams keyed by (seed, idx). PREDICT's options are checked by `check_sampling`
    for a smoothed classifier and refused when given for the others. All the oracles share one base
    classifier, accelerated by ``compile`` and ``channels_last``
    ([`prepare_base`][smoothcert.classifiers.base.prepare_base]: ``"auto"`` turns each on once the queries
    have done the evaluations that repay it, for models measured to gain; ``batch_size`` None is the
    fastest measured).

    Args:
        checkpoint: The ``smoothcert train`` checkpoint to attack.
        fixed: Whether every query of an image reuses one set of noise draws.
        n_check: Fresh samples that confirm an adversarial example; None: ``n``.
        vote: The exact vote of a deterministic model: ``"argmax"`` or ``"threshold"``.
        theta: The softmax threshold of the ``threshold`` vote.
        samples: PREDICT's ``n`` (per query; adaptive: at most), ``alpha`` and ``sampling``
            ([`SamplingOptions`][smoothcert.options.SamplingOptions]).
        runtime: ``seed`` (of the noise streams (seed, idx)), ``device``, ``batch_size``, ``compile``
            and ``channels_last`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``samples`` and ``runtime`` one by one (``n=1000``, ``seed=0``).

    Returns:
        ``(make_oracle, config)``: the oracle of image ``idx``, and the checkpoint's config.
    """
    samples, runtime = gather(oracle_factory, options, ORACLE_READS, samples=samples, runtime=runtime)
    _, make_oracle, config = _oracles(checkpoint, samples, runtime, fixed=fixed, n_check=n_check, vote=vote,
                                      theta=theta)
    return make_oracle, config


def _oracles(checkpoint: str | Path, samples: SamplingOptions, runtime: RuntimeOptions, *, fixed: bool,
             n_check: int | None, recorded: Any = None,
             **load: Any) -> tuple[Classifier, Callable[[int], Oracle], dict[str, Any]]:
    """[`oracle_factory`][oracle_factory]'s ``(classifier, make_oracle, config)``, the classifier
    loaded with ``runtime``'s speed options and ``load`` (``vote``, ``theta``): the attack and
    substitute jobs also ask the classifier what it can do. Adaptive PREDICT options left unset
    come from ``recorded`` (the sampling an attack log being resumed recorded), else the defaults."""
    config = read_config(checkpoint)
    classifier = load_classifier(checkpoint, **runtime.speed(), **load)
    n, alpha, sampling = samples.n, samples.alpha, samples.sampling
    if classifier.samples:
        _, n, alpha, sampling = check_sampling(classifier, "predict", tuple(config["image_size"]),
                                               n=1000 if n is None else n, alpha=alpha,
                                               sampling="fixed" if sampling is None else sampling)
    else:
        refuse_sampling_options(classifier, (("n", n), ("alpha", alpha), ("sampling", sampling)))
    if isinstance(sampling, Adaptive):  # a resumed attack log goes on with the PREDICT options it recorded
        sampling = sampling.settled(recorded, predict=True)
    query = {"n": n, "alpha": alpha, "fixed": fixed, "n_check": n_check, "sampling": sampling}
    target = ORACLES[_query_target(classifier)]
    return classifier, (lambda idx: target(classifier, (runtime.seed, idx), **query)), config


EVALUATE_READS = {"data": DataOptions.names(), "samples": SamplingOptions.names(), "runtime": RuntimeOptions.names()}
"""The bundle fields [`evaluate`][evaluate] reads: all of them."""


def evaluate(
    checkpoint: str | Path, out: str | Path, *, mode: str = "certify", denoiser: str | Path | None = None,
    certificate: str | None = None, vote: str | None = None, theta: float | None = None, patch: int | None = None,
    shard: Shard | None = None, data: DataOptions | None = None, samples: SamplingOptions | None = None,
    runtime: RuntimeOptions | None = None, **options: Any,
) -> Path | None:
    """``smoothcert certify`` / ``predict``: run ``mode`` on the images of ``data`` into the TSV
    log ``out`` (re-running resumes it); returns the log, or None on a torchrun rank other than 0.

    The classifier is the one [`load_classifier`][load_classifier] picks for the checkpoint; ``samples``'
    ``n0``, ``n``, ``alpha`` and ``sampling`` (None: the defaults) are checked against it by `check_sampling`
    (a deterministic one evaluates every ablation set once and refuses them). ``n0`` defaults to the
    resumed log's, else 1000 (the paper's) with fixed sampling and [`Adaptive.default_n0`][Adaptive.default_n0] with
    adaptive sampling (see ``run_dataset``). ``compile`` / ``channels_last`` are ``"auto"``, ``"on"``
    or ``"off"`` ([`accelerate`][smoothcert.runtime.speed.accelerate]); ``batch_size`` None is
    [`auto_batch_size`][smoothcert.runtime.speed.auto_batch_size].

    Args:
        checkpoint: The ``smoothcert train`` checkpoint.
        out: The TSV log (re-running resumes it).
        mode: ``"certify"`` or ``"predict"``.
        denoiser: A ``smoothcert denoise`` checkpoint placed before the classifier.
        certificate: The certificate (by noise; None: the noise's default).
        vote: The exact vote of a deterministic model: ``"argmax"`` or ``"threshold"``.
        theta: The softmax threshold of the ``threshold`` vote.
        patch: Columns/blocks: the patch side certified; None: the largest certified.
        shard: Run only this shard of the images ([`Shard`][smoothcert.runner.shards.Shard]).
        data: The images ([`DataOptions`][smoothcert.options.DataOptions]).
        samples: The noise samples and level ([`SamplingOptions`][smoothcert.options.SamplingOptions]).
        runtime: Seed, device and speed ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``data``, ``samples`` and ``runtime`` one by one (``max_images=10``, ``n=1000``).
    """
    if mode not in ("certify", "predict"):
        raise ValueError(f"mode must be certify or predict, got {mode!r}")
    data, samples, runtime = gather(evaluate, options, EVALUATE_READS, data=data, samples=samples, runtime=runtime)
    config = read_config(checkpoint)
    dataset, images = checkpoint_dataset(config, data.dataset, data.split, data.data_root)
    classifier: Classifier = load_classifier(
        checkpoint, denoiser, certificate=certificate, vote=vote, theta=theta, patch=patch,
        **runtime.speed(), amp=runtime.amp)
    n0, n, alpha, sampling = check_sampling(classifier, mode, tuple(config["image_size"]), n0=samples.n0, n=samples.n,
                                            alpha=samples.alpha, sampling=samples.sampling)
    selection = n0 if n0 is not None else 1000  # run_dataset's default n0: the log's, else 1000 or fewer
    check_batch_fits(classifier.batch_size, WINDOW * (n + (selection if mode == "certify" else 0)),
                     (config["in_channels"], *images.image_shape[1:]))
    settings = run_settings(checkpoint, dataset, data.split, denoiser, images,
                            **({"amp": runtime.amp} if runtime.amp else {}))
    run = partial(run_dataset, classifier, images, mode=mode, n0=n0, n=n, alpha=alpha, seed=runtime.seed,
                  sampling=sampling)
    return run_sharded(run, out, indices=select_indices(len(images), data.skip, data.max_images), settings=settings,
                       shard=shard, progress=runtime.progress)


ATTACK_READS = {"data": DataOptions.names(), "samples": ("n", "alpha", "sampling"),
                "runtime": ("seed", "device", "batch_size", "compile", "channels_last", "progress")}
"""The bundle fields [`attack`][attack] reads."""


def attack(
    checkpoint: str | Path, out: str | Path, attack: L0Attack, *, fixed: bool = True, n_check: int | None = None,
    vote: str | None = None, theta: float | None = None, shard: Shard | None = None, data: DataOptions | None = None,
    samples: SamplingOptions | None = None, runtime: RuntimeOptions | None = None, **options: Any,
) -> Path | None:
    """``smoothcert attack``: run ``attack`` on the images of ``data`` against the checkpoint's
    classifier (the model, its exact vote or its smoothed PREDICT, see `oracle_factory`) into
    the TSV log ``out``, adversarial examples beside it; returns the log (None on other ranks).
    ``samples`` (PREDICT's ``n``, ``alpha``, ``sampling``; None: defaults), ``fixed=False`` and
    ``n_check`` are PREDICT's options: refused for an undefended model or an exact vote, which
    sample nothing.

    Args:
        checkpoint: The ``smoothcert train`` checkpoint.
        out: The TSV log (re-running resumes it).
        attack: The attack ([`make_attack`][smoothcert.attacks.make_attack]).
        fixed: Whether every query of an image reuses one set of noise draws.
        n_check: Fresh samples that confirm an adversarial example; None: ``n``.
        vote: The exact vote of a deterministic model: ``"argmax"`` or ``"threshold"``.
        theta: The softmax threshold of the ``threshold`` vote.
        shard: Run only this shard of the images ([`Shard`][smoothcert.runner.shards.Shard]).
        data: The images ([`DataOptions`][smoothcert.options.DataOptions]).
        samples: PREDICT's ``n``, ``alpha`` and ``sampling`` ([`SamplingOptions`][smoothcert.options.SamplingOptions]).
        runtime: Seed, device and speed, all but ``amp`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``data``, ``samples`` and ``runtime`` one by one (``max_images=10``, ``n=1000``).
    """
    data, samples, runtime = gather("attack", options, ATTACK_READS, data=data, samples=samples, runtime=runtime)
    recorded = TsvLog.recorded(out) or (TsvLog.recorded(shard.path(out)) if shard is not None else {})
    classifier, make_oracle, config = _oracles(checkpoint, samples, runtime, fixed=fixed, n_check=n_check,
                                               recorded=recorded.get("sampling"), vote=vote, theta=theta)
    oracle = make_oracle(0)
    if not classifier.samples:
        refuse_sampling_options(classifier, (("n_check", n_check), ("fixed", None if fixed else fixed)),
                                {"fixed": "--fresh"})
    dataset, images = checkpoint_dataset(config, data.dataset, data.split, data.data_root)
    attack.check_image_size(images.image_shape[1:])
    settings = run_settings(checkpoint, dataset, data.split, data=images, target=oracle.target,
                            **oracle.settings(vote=vote, theta=theta, n_check=n_check))
    return run_sharded(partial(run_attack, make_oracle, attack, images, seed=runtime.seed), out,
                       indices=select_indices(len(images), data.skip, data.max_images), settings=settings,
                       shard=shard, progress=runtime.progress)


SUBSTITUTE_READS = {"data": ("dataset", "split", "data_root", "max_images"), "samples": ("n", "alpha"),
                    "runtime": ("seed", "device", "batch_size", "progress")}
"""The bundle fields [`substitute`][substitute] reads (``max_images``: held-out images measured)."""


def substitute(
    checkpoint: str | Path, *, seed_size: int = DEFAULT_SEED_SIZE, eps: float = DEFAULT_EPS, rounds: int | None = None,
    lam: float | None = None, kappa: int | None = None, epochs: int | None = None, out: str | Path | None = None,
    overwrite: bool = False, data: DataOptions | None = None, samples: SamplingOptions | None = None,
    runtime: RuntimeOptions | None = None, **options: Any,
) -> dict[str, Any]:
    """``smoothcert substitute``: Jacobian-based substitute training against the checkpoint's
    classifier (fresh PREDICT noise per query), then FGSM transfer ([`run_substitute`][run_substitute]); the
    first ``seed_size`` images of the split seed it, at most ``max_images`` of the rest measure it.
    With ``out`` the result is also written there as JSON (an existing file only with ``overwrite``).

    Args:
        checkpoint: The oracle's ``smoothcert train`` checkpoint (undefended or smoothed).
        seed_size: S_0: the first images of the split that seed the substitute.
        eps: FGSM's L-infinity step.
        rounds: Substitute training rounds rho_max; None: [`JacobianAugmentation`][JacobianAugmentation]'s.
        lam: The augmentation step lambda; None: the default.
        kappa: The reservoir size; None: the default.
        epochs: Substitute epochs per round; None: the default.
        out: A JSON file for the result; None: not written.
        overwrite: Whether an existing ``out`` may be replaced.
        data: The images; ``max_images`` caps the held-out ones ([`DataOptions`][smoothcert.options.DataOptions]).
        samples: PREDICT's ``n`` and ``alpha`` ([`SamplingOptions`][smoothcert.options.SamplingOptions]).
        runtime: ``seed``, ``device``, ``batch_size``, ``progress``
            ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``data``, ``samples`` and ``runtime`` one by one.
    """
    data, samples, runtime = gather(substitute, options, SUBSTITUTE_READS, data=data, samples=samples, runtime=runtime)
    out = None if out is None else Path(out)
    if out is not None and out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name for the JSON result")
    if out is not None and out.exists() and not overwrite:
        raise ValueError(f"{out} already exists: replace it with --overwrite or choose another --out")
    classifier, make_oracle, config = _oracles(checkpoint, samples, runtime, fixed=False, n_check=None)
    dataset, images = checkpoint_dataset(config, data.dataset, data.split, data.data_root)
    seed_set, heldout = split_seed(images, seed_size)
    if data.max_images is not None:
        heldout = heldout.subset(range(min(data.max_images, len(heldout))))
    params = {"rounds": rounds, "lam": lam, "kappa": kappa, "epochs": epochs}
    result = run_substitute(make_oracle(0), seed_set, heldout, num_classes=config["num_classes"],
                            abstain=classifier.certifies, eps=eps, seed=runtime.seed, device=runtime.device,
                            progress=runtime.progress, **{key: value for key, value in params.items() if value is not None})
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(out, json.dumps({**run_settings(checkpoint, dataset, data.split), **result}, indent=2))
    return result


DENOISE_READS = {"runtime": ("seed", "device", "progress")}
"""The bundle fields [`denoise`][denoise] reads (its ``batch_size`` is the training batch, its own keyword)."""


def denoise(
    classifier: str | Path,
    dataset: str | None = None,
    *,
    split: str = "train",
    method: str = "mse",
    data_fraction: float = 1.0,
    noise: str = "gaussian",
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float = DEFAULT_LR,
    depth: int = DEFAULT_DEPTH,
    width: int = DEFAULT_WIDTH,
    out: str | Path = "runs/denoiser",
    data_root: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    runtime: RuntimeOptions | None = None,
    **options: Any,
) -> Path:
    """``smoothcert denoise``: train a denoiser for the classifier checkpoint ``classifier`` on
    ``split`` of ``dataset`` (default: the checkpoint's) and write it to ``out``; returns ``out``.

    ``noise`` is a denoisable noise (``gaussian`` or ``ablation``) and its flags are given as keywords
    (``sigma``, default 0.25; ``k`` and ``encoding``); ``resume``/``overwrite`` as in ``train_denoiser``.

    Args:
        classifier: The classifier's ``smoothcert train`` checkpoint.
        dataset: The training data; None: the checkpoint's.
        split: The split trained on.
        method: ``"mse"``, ``"stability"``, ``"mse-stability"`` or ``"decrop"``.
        data_fraction: The stratified share of the split trained on.
        noise: ``"gaussian"`` or ``"ablation"``.
        epochs: Training epochs; None: the method's schedule.
        batch_size: Images per step; None: the method's schedule.
        lr: Adam's learning rate.
        depth: DnCNN layers.
        width: DnCNN channels.
        out: The denoiser's checkpoint folder.
        data_root: Where ``mnist`` and ``cifar10`` are kept; None: the default cache.
        resume: As in [`train_denoiser`][smoothcert.denoisers.train_denoiser].
        overwrite: As in [`train_denoiser`][smoothcert.denoisers.train_denoiser].
        runtime: ``seed``, ``device`` and ``progress`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``runtime`` one by one (``seed=0``), and the noise's flags (``sigma``;
            ``k``, ``encoding``).
    """
    runtime, noise_flags = gather(denoise, options, DENOISE_READS, rest=True, runtime=runtime)
    denoisable = [kind for kind in noise_kinds() if noise_class(kind).denoisable]
    if noise not in denoisable:
        raise ArgumentError("noise", noise, "denoise trains for {name} " + " or ".join(denoisable) + ", not {value}")
    check_noise_flags(noise, noise_flags)
    refuse_overwrite(out, resume, overwrite, {"--classifier": classifier})  # before loading anything
    model, cls_config = load_checkpoint(classifier)
    dataset, data = checkpoint_dataset(cls_config, dataset, split, data_root)
    defaults = noise_class(noise).denoise_defaults  # e.g. Salman et al.'s sigma for Gaussian noise
    noise_flags = {**noise_flags, **{name: value for name, value in defaults.items() if noise_flags.get(name) is None}}
    mean = channel_mean(data.x) if len(data) else None  # an empty training set is refused by name below
    smoothing = make_noise(noise, **noise_flags, train_mean=mean)
    backend = "nccl" if rank_device(runtime.device).type == "cuda" else "gloo"
    with process_group(backend) as world, checkpoint_lock(out) if world.main else nullcontext():
        train_denoiser(model, data, method=method, noise=smoothing, data_fraction=data_fraction, epochs=epochs,
                       batch_size=batch_size, lr=lr, depth=depth, width=width, seed=runtime.seed, device=runtime.device,
                       out=out, classifier_path=classifier, resume=resume, overwrite=overwrite,
                       progress=runtime.progress)
    return Path(out)
