"""Training base classifiers on noisy inputs, one command for a whole schedule.

A run follows a [`Recipe`][smoothcert.training.recipes.Recipe]. Every epoch draws its randomness from
``generator(seed, epoch)`` and the learning rate is a pure function of the epoch, so a run
resumed from its last checkpoint continues exactly as if it had never stopped.

Under ``torchrun`` the model is trained with DistributedDataParallel: ``batch_size`` is the
global batch, every rank draws the same permutation from ``generator(seed, epoch)`` and takes
its 1/WORLD_SIZE slice of each batch, with noise (and augmentation) from its own stream
``generator(seed, epoch, TRAIN_STREAM, WORLD_SIZE, rank)``; gradients are averaged over ranks,
so the learning rate keeps its single-process meaning, and runs are reproducible for a fixed
world size. Rank 0 evaluates, writes the checkpoints and holds the checkpoint lock.
"""

from __future__ import annotations

import copy
import json
import math
from contextlib import nullcontext
from dataclasses import MISSING, asdict, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..checkpoint import (
    TRAINING_WEIGHTS,
    checkpoint_lock,
    load_optimizer,
    load_weights,
    read_config,
    recover,
    save_checkpoint,
)
from ..data import ImageDataset, channel_mean, load_dataset
from ..errors import call_model
from ..models import build_model
from ..noises import BatchSharedNoise, Noise, check_noise_flags, make_noise, noise_record
from ..options import DataOptions, RuntimeOptions, gather
from ..runtime.distributed import (
    all_reduce_sum,
    barrier,
    broadcast_buffers,
    current_world,
    process_group,
    rank_device,
)
from ..runtime.seeding import generator, stream_seed
from ..runtime.speed import to_device
from .augment import augment
from .methods import METHODS, Method, make_method
from .recipes import Recipe, get_recipe

TRAIN_STREAM, EVAL_STREAM = 0, 1
MODEL_INIT_STREAM = 2**32  # initial weights come from stream (seed, MODEL_INIT_STREAM)


@torch.no_grad()
def accuracy_under_noise(
    model: nn.Module, noise: Noise, data: ImageDataset, g: torch.Generator, batch_size: int = 500
) -> float:
    """Accuracy of the base classifier on one noisy draw of every image in ``data``."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, len(data), batch_size):
        x, y = to_device(data.x[i : i + batch_size], device), to_device(data.y[i : i + batch_size], device)
        correct += int((model(noise(x, g)).argmax(1) == y).sum())
    return correct / len(data)


def describe_checkpoint(path: str | Path) -> str:
    """What the folder ``path`` holds, for messages: "a classifier checkpoint at epoch 3 of 200", ..."""
    try:
        config = json.loads((Path(path) / "config.json").read_text())
    except (OSError, ValueError):
        return "a checkpoint (an unreadable config.json)"
    config = config if isinstance(config, dict) else {}
    if "epoch" in config:
        recipe = config.get("recipe")
        total = recipe.get("epochs") if isinstance(recipe, dict) else None
        return f"a classifier checkpoint at epoch {config['epoch']}" + (f" of {total}" if total else "")
    if "depth" in config and "method" in config:
        return f"a finished denoiser ({config['method']}, {config.get('epochs')} epochs)"
    return f"a checkpoint (format {config.get('format')!r})"


def refuse_overwrite(out: str | Path | None, resume: bool, overwrite: bool,
                     inputs: dict[str, str | Path | None] | None = None) -> None:
    """The rule for every command that writes a checkpoint folder: never replace one silently.

    ValueError if ``out`` is a file, or already holds a checkpoint (its ``config.json``) while
    neither ``resume`` (continue it) nor ``overwrite`` (replace it) is set, or is, lies inside or
    holds one of the ``inputs`` (flag -> path: the checkpoints and folders the command reads);
    call it before any work.
    """
    if resume and overwrite:
        raise ValueError("resume (--resume) continues the checkpoint in the output folder and overwrite "
                         "(--overwrite) replaces it: choose one")
    if out is None:
        return
    out = Path(out)
    existing = next((p for p in (out, *out.parents) if p.exists()), None)  # out or the folder it would go in
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a checkpoint folder: choose another output folder (--out)")
    for flag, given in (inputs or {}).items():
        if given is None:
            continue
        source, target = Path(given).resolve(), Path(out).resolve()
        if source == target or source in target.parents or target in source.parents:
            raise ValueError(f"--out {out} would overwrite {flag} {given}, which this command reads: choose "
                             "another --out")
    if (out / "config.json").exists() and not (resume or overwrite):
        raise ValueError(f"{out} already holds {describe_checkpoint(out)}: resume it with --resume "
                         "(resume=True), replace it with --overwrite (overwrite=True), or choose another --out")


def _field_defaults(cls: type) -> dict[str, Any]:
    """A dataclass's field defaults as they read back from config.json."""
    return json.loads(json.dumps({f.name: f.default for f in fields(cls) if f.init and f.default is not MISSING}))


def _comparable(run: dict[str, Any]) -> dict[str, Any]:
    """A run's settings as resuming compares them: settings added in later versions take their
    defaults (older checkpoints lack them), and a recipe's ``source`` only describes it."""
    run = {"validation": 0, "max_images": None, **run}
    if isinstance(run.get("recipe"), dict):
        run["recipe"] = {**_field_defaults(Recipe), **run["recipe"], "source": None}
    if isinstance(run.get("method"), dict) and run["method"].get("method") in METHODS:
        run["method"] = {**_field_defaults(METHODS[run["method"]["method"]]), **run["method"]}
    return run


# the command-line flag of each setting a resumed training must repeat (messages name what the user typed)
RESUME_FLAGS = {"model": "--model", "dataset": "--dataset", "validation": "--validation", "max_images": "--max",
                "seed": "--seed", "epochs": "--epochs", "batch_size": "--batch-size", "lr": "--lr",
                "augment": "--augment", "name": "--recipe", "method": "--method", "noise": "--noise", "k": "--k",
                "encoding": "--encoding", "sigma": "--sigma", "kappa": "--kappa", "levels": "--levels",
                "band": "--band", "groups": "--groups"}


def _check_resumable(saved: dict[str, Any], config: dict[str, Any]) -> None:
    saved, config = _comparable(saved), _comparable(config)
    keys = ("model", "noise", "dataset", "validation", "max_images", "recipe", "method", "seed", "in_channels",
            "num_classes")
    changes = []
    for key in keys:
        before, now = saved.get(key), config.get(key)
        if isinstance(before, dict) and isinstance(now, dict):  # recipe, method, noise: name the fields
            changes += [(RESUME_FLAGS.get(f, f"{key} {f}"), before.get(f), now.get(f))
                        for f in sorted(before.keys() | now.keys()) if before.get(f) != now.get(f)]
        elif before != now:
            changes.append((RESUME_FLAGS.get(key, key), before, now))
    if changes:
        details = "; ".join(f"{name} {before!r} then, {now!r} now" for name, before, now in changes)
        raise ValueError(f"cannot resume: the checkpoint was trained with other settings ({details}); resume with "
                         "the settings it was started with, or train into another --out")


def check_finite(finite: bool, epoch: int, out: str | Path | None, what: str) -> None:
    """Stop a diverged training: ValueError unless ``finite`` (the loss, or every weight, in
    ``epoch``, 0-based); the checkpoint ``out`` keeps the last finished epoch."""
    if finite:
        return
    kept = f"{out} keeps epoch {epoch}, the last good one" if out is not None and epoch else "nothing was saved"
    raise ValueError(f"training diverged in epoch {epoch + 1}: the {what} became NaN or infinite ({kept}); "
                     "lower --lr (the recipe's learning rate) and train again")


@torch.no_grad()
def _check_outputs(model: nn.Module, noise: Noise, train_set: ImageDataset, device: torch.device) -> None:
    """Refuse, before the first step, a model that cannot take what ``noise`` feeds it (the classifiers'
    one-line message, [`model_input_error`][smoothcert.errors.model_input_error]) or whose outputs cannot
    be logits of the dataset's classes (one noisy copy of two images, in eval mode, with its own
    generator: training draws are unchanged)."""
    probe = train_set.x[:2].to(device)
    batch = noise(probe, torch.Generator(device).manual_seed(0))
    training = model.training
    model.eval()
    try:
        logits = call_model(model, batch, noise)
    finally:
        model.train(training)
    classes = int(train_set.y.max()) + 1
    if logits.dim() != 2 or logits.shape[0] != len(probe) or logits.shape[1] < classes:
        raise ValueError(f"the model gives outputs of shape {tuple(logits.shape)} for {len(probe)} images, but "
                         f"{train_set.name} has labels up to {classes - 1}: build it with num_classes="
                         f"{train_set.num_classes} (one logit per class)")


def fit(
    model: nn.Module,
    noise: Noise,
    train_set: ImageDataset,
    recipe: Recipe,
    *,
    heldout: ImageDataset | None = None,
    method: Method | str | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    out: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    config: dict[str, Any] | None = None,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train ``model`` on ``noise(x)`` for ``recipe.epochs`` epochs; returns the per-epoch history.

    With ``out`` a checkpoint directory is written after every epoch (see ``checkpoint``), with
    ``config`` (dataset, ...) merged into its ``config.json``; a model from ``build_model`` describes
    itself (``model.build_config``), any other module needs ``config`` to name a registered model,
    its channels, classes and image size. ``method`` None trains with the recipe's method. With
    ``recipe.ema`` the model ends with (and the checkpoint holds) the averaged weights.
    ``resume=True`` continues from the checkpoint in ``out`` and refuses if its settings differ; a
    checkpoint already in ``out`` is otherwise refused unless ``overwrite=True`` (see
    ``refuse_overwrite``). Both refusals come before the first step. Under torchrun call it inside
    ``distributed.process_group()`` (``train_classifier`` does).

    Args:
        model: The base classifier to train (changed in place).
        noise: The noise it is trained under (e.g. ``make_noise("ablation", k=45)``).
        train_set: The training images.
        recipe: The optimisation schedule ([`get_recipe`][smoothcert.training.recipes.get_recipe]).
        heldout: Images whose accuracy under noise is measured after each epoch, or None.
        method: A training method or its name; None: the recipe's.
        seed: The seed of the noise and shuffling streams.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        out: The checkpoint folder, or None to keep nothing.
        resume: Continue the checkpoint in ``out``.
        overwrite: Replace the checkpoint in ``out``.
        config: What the checkpoint records besides the model (dataset, ...).
        progress: Whether to show a progress bar.

    Returns:
        One record per epoch: ``epoch``, ``lr``, ``loss``, ``train_acc`` and, with ``heldout``,
        ``heldout_acc``.

    Raises:
        ValueError: For a checkpoint in ``out`` without ``resume`` or ``overwrite``, or one whose
            settings differ from these when resuming.
    """
    refuse_overwrite(out, resume, overwrite)
    if len(train_set) == 0:
        raise ValueError(f"{train_set.name} holds no images to train on")
    method = recipe.make_method() if method is None else make_method(method) if isinstance(method, str) else method
    expected = getattr(model, "in_channels", getattr(model, "build_config", {}).get("in_channels"))
    if expected is not None and noise.channels(train_set.channels) != expected:
        raise ValueError(
            f"the model expects {expected} input channels but {train_set.name} under this noise "
            f"gives {noise.channels(train_set.channels)}"
        )
    world = current_world()
    device = rank_device(device, world)
    model.to(device)
    optimizer = recipe.make_optimizer(model.parameters())
    # the checkpoint records the noise to certify with (independent masks); training may share one mask per batch
    config = {**getattr(model, "build_config", {}), **(config or {}), "recipe": asdict(recipe),
              "method": method.config(), "seed": seed, "noise": noise_record(noise)}
    config = json.loads(json.dumps(config))  # as it reads back from config.json (tuples become lists)
    missing = [key for key in ("model", "in_channels", "num_classes", "image_size") if key not in config]
    if out is not None and missing:
        raise ValueError(
            f"fit(out=...) writes a checkpoint that load_checkpoint rebuilds, but nothing says how to rebuild this "
            f"{type(model).__name__}: missing {missing}. Build the model with smoothcert.build_model(...), or pass "
            "config={'model': NAME, 'in_channels': C, 'num_classes': K, 'image_size': [H, W]} naming a model of "
            "smoothcert.models.MODELS; for a model of your own, train without out and save model.state_dict() yourself"
        )
    _check_outputs(model, noise, train_set, device)
    if recipe.mask_per_batch and isinstance(noise, BatchSharedNoise):
        noise = replace(noise, per_batch=True)
    history: list[dict[str, float]] = []
    if resume:
        if out is None:
            raise ValueError("resume needs the output directory of the interrupted run")
        if world.main:
            recover(out)  # complete a checkpoint save a kill interrupted
        barrier()
        saved = read_config(out)
        _check_resumable(saved, config)
        load_weights(out, model, TRAINING_WEIGHTS if recipe.ema else "model.safetensors")
        load_optimizer(out, optimizer, saved)
        history = saved.get("history", [])
    # the weights evaluated and saved: the moving average of the trained ones with recipe.ema
    average = copy.deepcopy(model) if recipe.ema else model
    if resume and recipe.ema:
        load_weights(out, average)
    start = len(history)
    x_all, y_all = to_device(train_set.x, device), to_device(train_set.y, device)
    net = model
    if world.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    bar = tqdm(range(start, recipe.epochs), initial=start, total=recipe.epochs, desc="train", unit="epoch",
               disable=not (progress and world.main))
    for epoch in bar:
        g = generator(seed, epoch, TRAIN_STREAM, device=device)
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr_at(epoch)
        model.train()
        order = torch.randperm(len(train_set), generator=g, device=device)
        if world.distributed:  # same permutation everywhere, noise per rank
            g = generator(seed, epoch, TRAIN_STREAM, world.size, world.rank, device=device)
        total_loss = total_correct = seen = 0.0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            if world.distributed:
                if len(idx) < world.size:  # a last batch too small to give every rank an image
                    continue
                idx = idx.tensor_split(world.size)[world.rank]
            x, y = x_all[idx], y_all[idx]
            if recipe.augments(epoch):
                x = augment(x, recipe.augment, g)
            loss, logits = method(net, x, y, noise, g, epoch)
            value = loss.item()
            check_finite(math.isfinite(value), epoch, out, "loss")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if recipe.ema:
                _update_average(average, model, recipe.ema)
            total_loss += value * len(idx)
            total_correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        total_loss, total_correct, seen = all_reduce_sum([total_loss, total_correct, seen], device)
        record = {
            "epoch": epoch + 1, "lr": recipe.lr_at(epoch),
            "loss": total_loss / seen, "train_acc": total_correct / seen,
        }
        if heldout is not None and world.main:
            eval_g = generator(seed, epoch, EVAL_STREAM, device=device)
            record["heldout_acc"] = accuracy_under_noise(average, noise, heldout, eval_g)
        history.append(record)
        bar.set_postfix({k: round(v, 4) for k, v in record.items() if k != "epoch"})
        if progress and world.main:
            bar.write("  ".join(f"{k} {v:.4g}" for k, v in record.items()))
        check_finite(all(bool(torch.isfinite(p).all()) for p in average.parameters()), epoch, out, "weights")
        if out is not None and world.main:
            save_checkpoint(out, average, {**config, "epoch": epoch + 1, "history": history}, optimizer,
                            training=model if recipe.ema else None)
    broadcast_buffers(model)
    if recipe.ema:
        model.load_state_dict(average.state_dict())
    return history


@torch.no_grad()
def _update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """One step of the exponential moving average ``average = decay * average + (1 - decay) * model``
    over parameters and floating-point buffers (integer buffers are copied)."""
    for avg, new in zip([*average.parameters(), *average.buffers()], [*model.parameters(), *model.buffers()]):
        if avg.is_floating_point():
            avg.lerp_(new, 1 - decay)
        else:
            avg.copy_(new)


TRAIN_READS = {"runtime": ("seed", "device", "progress")}
"""The bundle fields [`train_classifier`][train_classifier] reads (the recipe holds the batch size)."""


def train_classifier(
    dataset: str,
    out: str | Path,
    *,
    noise: str = "ablation",
    recipe: Recipe | str = "fast",
    model: str | None = None,
    method: Method | str | None = None,
    data_root: str | Path | None = None,
    validation: int = 0,
    max_images: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    runtime: RuntimeOptions | None = None,
    **options: Any,
) -> list[dict[str, float]]:
    """``smoothcert train``: build the model for ``dataset`` under the named noise, train it on the
    train split and checkpoint every epoch into ``out``. The held-out accuracy is measured on the
    test split, or with ``validation`` = N on N digits cut from the train split
    (``ImageDataset.holdout``) and not trained on, so that choosing a recipe never looks at the test split.
    ``max_images`` = N trains on the first N of the training digits left (a learning curve's point).

    ``model`` defaults to the recipe's, else the paper's MNIST CNN for 28x28 images and ResNet18. A
    checkpoint already in ``out`` is refused unless ``resume`` or ``overwrite`` (``fit``).
    The noise's flags are given as keywords (``k=45``, ``encoding="mean"``, ``sigma=0.25``, ...; see
    [`smoothcert.noises.make_noise`][smoothcert.noises.make_noise]).

    Args:
        dataset: ``mnist5k``, ``mnist``, ``cifar10``, ``npz:PATH`` or ``folder:PATH``.
        out: The checkpoint folder.
        noise: The ``--noise`` name (``ablation``, ``gaussian``, ``none``, ...).
        recipe: A [`Recipe`][smoothcert.training.recipes.Recipe] or its name (``fast``,
            ``mnist-ablation``, ``paper-mnist``, ...).
        model: A name of [`MODELS`][smoothcert.models.MODELS]; None: the recipe's, else the default.
        method: A training method or its name (``noise``, ``consistency``, ``macer``, ...); None:
            the recipe's.
        data_root: Where ``mnist`` and ``cifar10`` are kept; None: the default cache.
        validation: Digits cut from the train split to measure held-out accuracy on; 0: the test split.
        max_images: Train on the first N training images only; None: all.
        resume: Continue the checkpoint in ``out``.
        overwrite: Replace the checkpoint in ``out``.
        runtime: ``seed``, ``device`` and ``progress`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]).
        **options: The fields of ``runtime`` one by one (``seed=0``), and the noise's flags (``k=45``,
            ``encoding="mean"``, ``sigma=0.25``, ...).

    Returns:
        The per-epoch history, as [`fit`][fit] returns it.
    """
    runtime, noise_flags = gather(train_classifier, options, TRAIN_READS, rest=True, runtime=runtime)
    seed, device = runtime.seed, runtime.device
    DataOptions(max_images=max_images)  # checks it, naming --max
    check_noise_flags(noise, noise_flags)
    teacher = getattr(make_method(method) if isinstance(method, str) else method, "teacher", None) or None
    data_path = dataset.split(":", 1)[1] if dataset.startswith(("folder:", "npz:")) else None
    refuse_overwrite(out, resume, overwrite, {"--method-param teacher": teacher, "--dataset": data_path})  # first
    if resume:
        read_config(out)  # a missing or foreign checkpoint is refused before the lock creates anything
    train = load_dataset(dataset, "train", data_root)
    if validation:
        train, heldout = train.holdout(validation)
    else:
        heldout = load_dataset(dataset, "test", data_root)
    if max_images is not None:
        if max_images > len(train):
            raise ValueError(f"cannot train on the first {max_images} images: {dataset} has {len(train)} training images"
                             + (f" after the validation cut of {validation}" if validation else ""))
        train = train.subset(range(max_images))
    mean = channel_mean(train.x) if len(train) else None  # an empty training set is refused by fit, by name
    smoothing = make_noise(noise, **noise_flags, train_mean=mean, image_size=train.image_shape[1:], seed=seed)
    recipe = get_recipe(recipe) if isinstance(recipe, str) else recipe
    model = model or recipe.model or ("mnist_cnn" if train.image_shape[1:] == (28, 28) else "resnet18")
    in_channels = smoothing.channels(train.channels)
    torch.manual_seed(stream_seed(seed, MODEL_INIT_STREAM))
    net = build_model(model, in_channels, train.num_classes, train.image_shape[1:])
    config = {"dataset": dataset, "classes": list(train.classes), "validation": validation, "max_images": max_images}
    backend = "nccl" if rank_device(device).type == "cuda" else "gloo"
    with process_group(backend) as world, checkpoint_lock(out) if world.main else nullcontext():
        return fit(net, smoothing, train, recipe, heldout=heldout, method=method, seed=seed, device=device,
                   out=out, resume=resume, overwrite=overwrite, config=config, progress=runtime.progress)
