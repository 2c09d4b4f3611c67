"""Issue #17: every subcommand x every kind of bad input ends in one line ``smoothcert: error: ...``
with exit status 2, and writes or destroys nothing.

The CLI runs in-process (``smoothcert.cli.main``) inside a small "world" folder the tests make:
a tiny dataset, a trained classifier, an undefended classifier, a denoiser, a certify log and
broken or wrong-kind files. Each case snapshots every file (content hash) and folder of the world
before and after the command and requires them to be identical.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smoothcert import cli, load_checkpoint, save_checkpoint
from smoothcert.attacks import ATTACK_CLASSES, ATTACK_FLAGS
from smoothcert.classifiers import OPTIONS, DeterministicClassifier, SmoothedClassifier
from smoothcert.classifiers.checks import ADAPTIVE_OPTIONS, SAMPLING_OPTIONS
from smoothcert.cli import main
from smoothcert.noises import certificate_names, noise_class, noise_flags, noise_kinds
from smoothcert.reproductions import FIGURE_OPTIONS
from smoothcert.reproductions import OPTIONS as OPTIONS_OF_TABLES
from smoothcert.runner import TsvLog

QUIET = ["--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_npz):
    root = tmp_path_factory.mktemp("world")
    tiny_npz(root / "tiny.npz", 0, 64, 24)
    x = np.zeros((4, 8, 8), np.float32)
    np.savez(root / "empty.npz", x_train=x[:0], y_train=np.zeros(0, int), x_test=x[:0], y_test=np.zeros(0, int))
    np.savez(root / "small.npz", x=np.zeros((4, 3, 3), np.float32), y=np.arange(4) % 2)  # 3x3: too small for the CNN
    with np.load(root / "tiny.npz") as tiny:  # the tiny task with one label 12, for a 2-class model
        arrays = dict(tiny)
    arrays["y_test"][3] = arrays["y_train"][5] = 12
    np.savez(root / "labels12.npz", **arrays)
    np.savez(root / "wide.npz", x=np.zeros((4, 10, 10), np.float32), y=np.arange(4) % 2)  # 10x10: not the model's 8x8
    np.savez(root / "rgb.npz", x=np.zeros((4, 3, 8, 8), np.float32), y=np.arange(4) % 2)  # colour for a grey model
    np.save(root / "single.npy", x)
    (root / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    for split in ("train", "test"):
        for label in ("left", "right"):
            (root / "folder" / split / label).mkdir(parents=True)
            Image.new("L", (8, 8), 200).save(root / "folder" / split / label / "0.png")
    (root / "folder" / "train" / "right" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    common = ["--dataset", "npz:tiny.npz", "--model", "mnist_cnn", "--epochs", "1", "--batch-size", "32", *QUIET]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", *common, "--k", "16", "--out", "model"]) == 0
        assert main(["train", *common, "--noise", "none", "--out", "clean"]) == 0
        assert main(["train", *common, "--noise", "columns", "--band", "2", "--out", "cols"]) == 0
        assert main(["denoise", "--classifier", "clean", "--epochs", "1", "--batch-size", "16", "--depth", "3",
                     "--width", "4", "--out", "den", *QUIET]) == 0
        assert main(["certify", "--checkpoint", "model", "--n0", "10", "--n", "20", "--max", "2", "--out", "c.tsv",
                     *QUIET]) == 0
    finally:
        os.chdir(cwd)
    for name in ("model", "clean"):  # the weights a diverged training leaves: NaN
        model, config = load_checkpoint(root / name)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.fill_(float("nan"))
        save_checkpoint(root / f"nan-{name}", model, config)
    shutil.copytree(root / "model", root / "broken-weights")
    (root / "broken-weights" / "model.safetensors").write_bytes(b"garbage")
    shutil.copytree(root / "model", root / "broken-config")
    (root / "broken-config" / "config.json").write_text("{not json")
    (root / "bad.tsv").write_text("idx\tlabel\tpredict\tcount\tn\tcorrect\ttime\n0\t1\tseven\t3\t10\t0\t0.1\n")
    (root / "result.json").write_text("{}")
    (root / "header.tsv").write_text((root / "c.tsv").read_text().splitlines()[0] + "\n")
    for name, sidecar in (("listed", "[]"), ("broken-sidecar", "{not json")):  # settings files that are not settings
        shutil.copy(root / "c.tsv", root / f"{name}.tsv")
        (root / f"{name}.tsv.json").write_text(sidecar)
    shutil.copy(root / "c.tsv.json", root / "badrow.tsv.json")
    (root / "badrow.tsv").write_text((root / "c.tsv").read_text() + "x\t1\t1\t3\t20\t0.5\t1\t1\t0.1\n")
    shutil.copytree(root / "model", root / "no-k")
    config = json.loads((root / "no-k" / "config.json").read_text())
    del config["noise"]["k"]
    (root / "no-k" / "config.json").write_text(json.dumps(config))
    return root


def snapshot(root):
    """Every folder and every file's content hash under ``root``."""
    state = {}
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            state[os.path.relpath(os.path.join(folder, d), root)] = "folder"
        for f in files:
            path = os.path.join(folder, f)
            with open(path, "rb") as handle:
                state[os.path.relpath(path, root)] = hashlib.sha256(handle.read()).hexdigest()
    return state


TRAIN = ["train", "--dataset", "npz:tiny.npz", "--epochs", "1", "--out", "new"]
CERTIFY = ["certify", "--checkpoint", "model", "--n0", "10", "--n", "20", "--max", "2", "--out", "new.tsv"]
PREDICT = ["predict", "--checkpoint", "model", "--n", "20", "--max", "2", "--out", "new.tsv"]
ATTACK = ["attack", "--checkpoint", "model", "--n", "20", "--max", "1", "--out", "new.tsv"]
SUBSTITUTE = ["substitute", "--checkpoint", "model", "--seed-size", "4", "--n", "20", "--rounds", "1", "--epochs", "1"]
DENOISE = ["denoise", "--classifier", "clean", "--epochs", "1", "--depth", "3", "--width", "4", "--out", "new"]
NO_CUDA = not torch.cuda.is_available()

# (subcommand, kind of bad input, argv, part of the message)
CASES = [
    # train
    ("train", "existing output (issue #17 case 1)",
     ["train", "--dataset", "mnist5k", "--noise", "ablation", "--k", "45", "--epochs", "1", "--out", "model"],
     "model already holds a classifier checkpoint at epoch 1 of 1: resume it with --resume"),
    ("train", "existing output (a denoiser)", [*TRAIN[:-1], "den"], "den already holds a finished denoiser (mse, 1 epochs)"),
    ("train", "existing output (a file)", [*TRAIN[:-1], "tiny.npz"], "tiny.npz is a file, not a checkpoint folder"),
    ("train", "existing output (a file on the way)", [*TRAIN[:-1], "tiny.npz/model"], "tiny.npz is a file"),
    ("train", "contradictory flags", [*TRAIN[:-1], "model", "--resume", "--overwrite"], "choose one"),
    ("train", "unknown augmentation", [*TRAIN, "--augment", "affine+blur"], "unknown augmentation 'blur' in 'affine+blur'"),
    ("train", "no training images", [*TRAIN, "--max", "0"], "--max must be a positive integer, got 0"),
    ("train", "a resume with other flags", ["train", "--dataset", "npz:tiny.npz", "--model", "mnist_cnn", "--epochs", "2",
                                            "--batch-size", "32", "--k", "12", "--out", "model", "--resume"],
     "cannot resume: the checkpoint was trained with other settings (--k 16 then, 12 now; --epochs 1 then, 2 now)"),
    ("train", "the output is the teacher", ["train", "--dataset", "npz:tiny.npz", "--epochs", "1", "--method",
                                            "distillation", "--method-param", "teacher=model", "--out", "model",
                                            "--overwrite"],
     "--out model would overwrite --method-param teacher model, which this command reads"),
    ("train", "a learning rate that diverges", [*TRAIN, "--lr", "1e30", "--batch-size", "16"],
     "training diverged in epoch 1: the loss became NaN or infinite (nothing was saved); lower --lr"),
    ("train", "more training images than the data has", [*TRAIN, "--max", "100"],
     "cannot train on the first 100 images: npz:tiny.npz has 64 training images"),
    ("train", "missing checkpoint to resume", [*TRAIN, "--resume"], "no smoothcert checkpoint at new"),
    ("train", "wrong-kind checkpoint to resume", [*TRAIN[:-1], "den", "--resume"], "is not a smoothcert checkpoint config"),
    ("train", "missing file", ["train", "--dataset", "npz:missing.npz", "--out", "new"], "npz file not found: missing.npz"),
    ("train", "corrupt file", ["train", "--dataset", "npz:corrupt.npz", "--out", "new"], "corrupt.npz: not a readable .npz archive"),
    ("train", "wrong-kind file", ["train", "--dataset", "npz:single.npy", "--out", "new"], "single array (.npy)"),
    ("train", "unreadable image (issue #17 case 2)", ["train", "--dataset", "folder:folder", "--out", "new"],
     "folder/train/right/1.png: not a readable image"),
    ("train", "missing folder", ["train", "--dataset", "folder:nowhere", "--out", "new"], "image folder not found: nowhere"),
    ("train", "empty dataset", ["train", "--dataset", "npz:empty.npz", "--out", "new"], "holds no images to train on"),
    ("train", "unknown dataset", ["train", "--dataset", "svhn", "--out", "new"], "unknown dataset 'svhn'"),
    ("train", "out-of-range k", [*TRAIN, "--k", "0"], "k must be a positive integer"),
    ("train", "out-of-range k", [*TRAIN, "--k", "65"], "--k=65 exceeds the number of pixels d=8*8=64"),
    ("train", "out-of-range epochs", [*TRAIN[:3], "--epochs", "0", "--out", "new"], "epochs and batch size must be positive"),
    ("train", "out-of-range learning rate", [*TRAIN, "--lr", "-1"], "learning rate must be positive"),
    ("train", "wrong shape", ["train", "--dataset", "npz:small.npz", "--model", "mnist_cnn", "--out", "new"],
     "MnistCNN needs images of at least 4x4"),
    ("train", "missing parameter", [*TRAIN, "--noise", "gaussian"], "sigma"),
    # certify
    ("certify", "missing checkpoint", [*CERTIFY[:2], "nowhere", *CERTIFY[3:]], "no smoothcert checkpoint at nowhere"),
    ("certify", "wrong-kind checkpoint", [*CERTIFY[:2], "den", *CERTIFY[3:]], "is not a smoothcert checkpoint config"),
    ("certify", "wrong-kind checkpoint (a file)", [*CERTIFY[:2], "tiny.npz", *CERTIFY[3:]], "no smoothcert checkpoint at tiny.npz"),
    ("certify", "corrupt weights", [*CERTIFY[:2], "broken-weights", *CERTIFY[3:]], "corrupt checkpoint file"),
    ("certify", "NaN weights", [*CERTIFY[:2], "nan-model", *CERTIFY[3:]], "the base model returned non-finite logits"),
    ("predict", "NaN weights", [*PREDICT[:2], "nan-model", *PREDICT[3:]], "the base model returned non-finite logits"),
    ("certify", "corrupt config", [*CERTIFY[:2], "broken-config", *CERTIFY[3:]], "corrupt smoothcert checkpoint config"),
    ("certify", "wrong-kind denoiser", [*CERTIFY, "--denoiser", "model"], "is not a denoiser checkpoint config"),
    ("certify", "corrupt dataset", [*CERTIFY, "--dataset", "npz:corrupt.npz"], "not a readable .npz archive"),
    ("certify", "empty dataset", [*CERTIFY, "--dataset", "npz:empty.npz"], "the dataset holds no images"),
    ("certify", "wrong shape", [*CERTIFY, "--dataset", "npz:wide.npz"], "MnistCNN was built for 8x8 images, got 10x10"),
    ("certify", "out-of-range alpha", [*CERTIFY, "--alpha", "1.5"], "alpha must be in (0, 1)"),
    ("certify", "out-of-range n", [*CERTIFY, "--n", "0"], "n must be a positive integer"),
    ("certify", "out-of-range skip", [*CERTIFY, "--skip", "0"], "--skip must be a positive integer"),
    ("certify", "absurd batch size (issue #17 case 3)", [*CERTIFY, "--n", "100000000000", "--batch-size", "100000000000",
                                                        "--bound", "looks"], "more than this machine's"),
    ("certify", "n too large for the exact bound", [*CERTIFY, "--n", "100000000000"], "too large for the exact bound"),
    ("certify", "wrong certificate", [*CERTIFY, "--certificate", "cohen"], "--certificate cohen is not a certificate of ablation noise"),
    ("certify", "undefended model", [*CERTIFY[:2], "clean", *CERTIFY[3:]], "certify it through a denoiser"),
    ("certify", "existing output (a log of other settings)", [*CERTIFY[:-1], "c.tsv", "--seed", "1"], "different settings (seed)"),
    ("certify", "existing output (a checkpoint folder)", [*CERTIFY[:-1], "model"], "choose another --out"),
    ("certify", "an output folder where a file is", [*CERTIFY[:-1], "tiny.npz/new.tsv"],
     "--out tiny.npz/new.tsv: tiny.npz is a file, not a folder; choose another --out"),
    ("report", "a plot folder where a file is", ["report", "c.tsv", "--plot", "tiny.npz/p.png"],
     "--plot tiny.npz/p.png: tiny.npz is a file, not a folder"),
    ("certify", "colour images for a greyscale model", [*CERTIFY, "--dataset", "npz:rgb.npz"],
     "--dataset npz:rgb.npz has 3-channel images (6 channels under the checkpoint's noise); the model takes 2"),
    ("certify", "classes named otherwise than in training", [*CERTIFY, "--dataset", "folder:folder"],
     "--dataset folder:folder labels its classes otherwise than the checkpoint: label 0 is 'left' here but '0'"),
    ("certify", "a settings file holding a list", [*CERTIFY[:-1], "listed.tsv"],
     "listed.tsv.json: not a settings file of a smoothcert log (a JSON list, expected an object)"),
    ("certify", "a broken settings file", [*CERTIFY[:-1], "broken-sidecar.tsv"],
     "broken-sidecar.tsv.json: not a settings file of a smoothcert log (Expecting"),
    ("certify", "a damaged row in the log", [*CERTIFY[:-1], "badrow.tsv"], "badrow.tsv:4: idx 'x' is not an image index"),
    ("certify", "a checkpoint config without a noise key", [*CERTIFY[:2], "no-k", *CERTIFY[3:]],
     "does not describe a Ablation noise (Ablation.__init__() missing 1 required positional argument: 'k')"),
    # predict
    ("predict", "missing checkpoint", [*PREDICT[:2], "nowhere", *PREDICT[3:]], "no smoothcert checkpoint at nowhere"),
    ("predict", "wrong-kind checkpoint", [*PREDICT[:2], "den", *PREDICT[3:]], "is not a smoothcert checkpoint config"),
    ("predict", "corrupt config", [*PREDICT[:2], "broken-config", *PREDICT[3:]], "corrupt smoothcert checkpoint config"),
    ("predict", "missing dataset", [*PREDICT, "--dataset", "npz:missing.npz"], "npz file not found"),
    ("predict", "wrong shape", [*PREDICT, "--dataset", "npz:wide.npz"], "built for 8x8 images"),
    ("predict", "out-of-range alpha", [*PREDICT, "--alpha", "0"], "alpha must be in (0, 1)"),
    ("predict", "out-of-range max", [*PREDICT, "--max", "0"], "--max must be a positive integer"),
    ("predict", "out-of-range batch size", [*PREDICT, "--batch-size", "0"], "--batch-size must be a positive integer"),
    ("predict", "existing output (a certify log)", [*PREDICT[:-1], "c.tsv"], "c.tsv"),
    # attack
    ("attack", "missing checkpoint", [*ATTACK[:2], "nowhere", *ATTACK[3:]], "no smoothcert checkpoint at nowhere"),
    ("attack", "corrupt weights", [*ATTACK[:2], "broken-weights", *ATTACK[3:]], "corrupt checkpoint file"),
    ("attack", "NaN weights (smoothed)", [*ATTACK[:2], "nan-model", *ATTACK[3:]], "non-finite logits"),
    ("attack", "NaN weights (undefended)", [*ATTACK[:2], "nan-clean", *ATTACK[5:]], "non-finite logits"),
    ("attack", "wrong-kind checkpoint", [*ATTACK[:2], "den", *ATTACK[3:]], "is not a smoothcert checkpoint config"),
    ("attack", "a patch larger than the images", [*ATTACK, "--attack", "patch", "--patch", "50"],
     "--patch 50: a 50x50 patch does not fit a 8x8 image"),
    ("attack", "a negative count of kicks", [*ATTACK, "--kicks", "-1"], "--kicks must be a non-negative integer, got -1"),
    ("attack", "out-of-range restarts", [*ATTACK, "--restarts", "0"], "restarts must be a positive integer"),
    ("attack", "out-of-range queries", [*ATTACK, "--max-queries", "0"], "--max-queries must be a positive integer"),
    ("attack", "out-of-range budget", [*ATTACK, "--attack", "sparse-rs", "--budget", "1000"], "--budget 1000 exceeds the 64 pixels"),
    ("attack", "flag of the other attack", [*ATTACK, "--budget", "3"], "belongs to --attack sparse-rs"),
    ("attack", "wrong shape", [*ATTACK, "--dataset", "npz:wide.npz"], "built for 8x8 images"),
    ("attack", "existing output (a certify log)", [*ATTACK[:-1], "c.tsv"], "c.tsv"),
    # substitute
    ("substitute", "missing checkpoint", [*SUBSTITUTE[:2], "nowhere", *SUBSTITUTE[3:]], "no smoothcert checkpoint at nowhere"),
    ("substitute", "out-of-range seed size", [*SUBSTITUTE, "--seed-size", "0"], "size must be an integer >= 1"),
    ("substitute", "seed size beyond the data", [*SUBSTITUTE, "--seed-size", "100"], "leaves no heldout images"),
    ("substitute", "out-of-range eps", [*SUBSTITUTE, "--eps", "2"], "eps must lie in (0, 1]"),
    ("substitute", "out-of-range rounds", [*SUBSTITUTE, "--rounds", "0"], "rounds must be an integer >= 1"),
    ("substitute", "existing output (a file)", [*SUBSTITUTE, "--out", "result.json"], "result.json already exists: replace it with --overwrite"),
    ("substitute", "existing output (a folder)", [*SUBSTITUTE, "--out", "model"], "--out model is a folder"),
    # denoise
    ("denoise", "missing classifier", [*DENOISE[:2], "nowhere", *DENOISE[3:]], "no smoothcert checkpoint at nowhere"),
    ("denoise", "wrong-kind classifier", [*DENOISE[:2], "den", *DENOISE[3:]], "is not a smoothcert checkpoint config"),
    ("denoise", "existing output (a denoiser)", [*DENOISE[:-1], "den"], "den already holds a finished denoiser"),
    ("denoise", "the output is the classifier", [*DENOISE[:-1], "clean", "--overwrite"],
     "--out clean would overwrite --classifier clean, which this command reads"),
    ("denoise", "the output inside the classifier", [*DENOISE[:-1], "clean/den"],
     "--out clean/den would overwrite --classifier clean"),
    ("denoise", "existing output (a classifier)", [*DENOISE[:-1], "model"], "model already holds a classifier checkpoint"),
    ("denoise", "existing output with other settings", [*DENOISE[:-1], "den", "--resume", "--sigma", "0.5"],
     "den holds a denoiser trained with different settings"),
    ("denoise", "corrupt dataset", [*DENOISE, "--dataset", "npz:corrupt.npz"], "not a readable .npz archive"),
    ("denoise", "empty dataset", [*DENOISE, "--dataset", "npz:empty.npz"], "holds no images to train on"),
    ("denoise", "out-of-range data fraction", [*DENOISE, "--data-fraction", "0"], "data_fraction must lie in (0, 1]"),
    ("denoise", "out-of-range sigma", [*DENOISE, "--sigma", "-1"], "sigma must be a finite number > 0"),
    ("denoise", "out-of-range depth", [*DENOISE, "--depth", "1"], "a DnCNN needs depth >= 2"),
    ("denoise", "wrong noise", [*DENOISE, "--noise", "none"], "ablation or gaussian, not none"),
    # report
    ("merge", "missing shard log", ["merge", "nowhere.tsv", "--out", "joined.tsv"], "nowhere.tsv"),
    ("merge", "not a shard log", ["merge", "c.tsv", "--out", "joined.tsv"], "not a shard log"),
    ("merge", "a log given twice", ["merge", "c.tsv", "c.tsv", "--out", "joined.tsv"], "given twice"),
    ("report", "missing log", ["report", "nowhere.tsv"], "log file not found: nowhere.tsv"),
    ("report", "wrong-kind file (binary)", ["report", "tiny.npz"], "tiny.npz: not a text log"),
    ("report", "wrong-kind file (a folder)", ["report", "model"], "log file not found: model"),
    ("report", "corrupt log", ["report", "bad.tsv"], "bad.tsv:2"),
    ("report", "log without rows", ["report", "header.tsv"], "header.tsv: no data rows"),
    ("report", "existing output (a folder)", ["report", "c.tsv", "--plot", "model"], "Is a directory"),
    # figure
    ("figure", "out-of-range d", ["figure", "delta", "--d", "0", "--out", "d.png"], "needs 1 <= k <= d"),
    ("figure", "out-of-range k", ["figure", "delta", "--ks", "1000", "--out", "d.png"], "got k=1000 and d=784"),
    ("figure", "missing checkpoint", ["figure", "samples", "--out", "s.png"], "figure samples needs --checkpoint"),
    ("figure", "missing checkpoint folder", ["figure", "samples", "--checkpoint", "nowhere", "--out", "s.png"],
     "no smoothcert checkpoint at nowhere"),
    ("figure", "out-of-range index", ["figure", "samples", "--checkpoint", "model", "--index", "1000", "--out", "s.png"],
     "--index 1000 is outside the test split"),
    ("figure", "corrupt weights", ["figure", "samples", "--checkpoint", "broken-weights", "--out", "s.png"],
     "corrupt checkpoint file"),
    ("figure", "existing output (a folder)", ["figure", "delta", "--out", "model"], "Is a directory"),
    # reproduce
    ("reproduce", "out-of-range max", ["reproduce", "table1", "--max", "0", "--out", "new"], "--max must be a positive integer"),
    ("reproduce", "out-of-range n", ["reproduce", "table8", "--n", "0", "--out", "new"], "--n must be a positive integer"),
    ("reproduce", "out-of-range alpha", ["reproduce", "table8", "--alpha", "3", "--out", "new"], "alpha must be in (0, 1)"),
    ("reproduce", "out-of-range k", ["reproduce", "table1", "--ks", "0", "--max", "1", "--out", "new"], "k must be a positive integer"),
    ("reproduce", "out-of-range sigma", ["reproduce", "smoothing", "--sigmas", "-1", "--max", "1", "--out", "new"],
     "sigma must be a finite number > 0"),
    ("reproduce", "missing classifier", ["reproduce", "denoised", "--classifier", "nowhere", "--out", "new"],
     "no smoothcert checkpoint at nowhere"),
    ("reproduce", "wrong-kind classifier", ["reproduce", "denoised", "--classifier", "den", "--out", "new"],
     "is not a smoothcert checkpoint config"),
    ("reproduce", "flag it does not take", ["reproduce", "denoised", "--epochs", "3", "--out", "new"], "drop --epochs"),
    # demo
    ("demo", "existing output (a file)", ["demo", "--out", "tiny.npz"], "tiny.npz is a file, not a checkpoint folder"),
    ("demo", "out-of-range max", ["demo", "--max", "0", "--out", "new"], "--max must be a positive integer"),
    ("demo", "out-of-range epochs", ["demo", "--epochs", "0", "--out", "new"], "--epochs must be a positive integer"),
]
# CUDA asked for on a machine without it, for every subcommand that picks a device
CUDA_CASES = [(argv[0], "CUDA unavailable", [*argv, "--device", "cuda"], "no CUDA device is available; use --device cpu")
              for argv in (TRAIN, CERTIFY, PREDICT, ATTACK, SUBSTITUTE, DENOISE, ["demo", "--out", "new"])]


def run(argv, capsys):
    """Exit status and stderr of ``smoothcert ARGV`` (quiet where the subcommand has --quiet)."""
    quiet = [] if argv[0] in ("report", "merge") else ["--quiet"]
    code = main([*argv, *quiet])
    return code, capsys.readouterr().err


def refused(world: Path, monkeypatch, capsys, argv: list[str]) -> str:
    """The one-line error of ``smoothcert argv`` run in ``world``, after checking exit status 2 and
    that no file there was created, changed or removed."""
    monkeypatch.chdir(world)
    monkeypatch.delenv("SMOOTHCERT_DEBUG", raising=False)
    before = snapshot(world)
    code, err = run(argv, capsys)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("smoothcert: error: "), err
    assert snapshot(world) == before  # nothing written, nothing destroyed
    return err


@pytest.mark.parametrize(("command", "kind", "argv", "message"),
                         [*CASES, *[pytest.param(*c, marks=pytest.mark.skipif(not NO_CUDA, reason="CUDA present"))
                                    for c in CUDA_CASES]],
                         ids=[f"{c[0]}: {c[1]}" for c in (*CASES, *CUDA_CASES)])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, monkeypatch, capsys, command, kind, argv, message):
    err = refused(world, monkeypatch, capsys, argv)
    assert message in err


# ------------------------------------------------------------------ flag combinations (issue 34)
# Generated from the parser, the noise registry, the classifiers' options and the reproductions'
# option tables, so that a new flag, noise, certificate, attack or table is covered without editing
# this list. Each case: (subcommand, kind, argv, parts of the one-line message); the flag the user
# typed is always among the parts.

PARSERS = cli.build_parser()._subparsers._group_actions[0].choices


def _action(command, dest):
    return next(a for a in PARSERS[command]._actions if a.dest == dest)


def _flag(command, dest):
    return _action(command, dest).option_strings[0]


def _value(action_or_spec):
    """A value the flag accepts on its own (the last choice, or a small number or path of its type)."""
    get = action_or_spec.get if isinstance(action_or_spec, dict) else lambda key: getattr(action_or_spec, key, None)
    if get("choices"):
        return str(list(get("choices"))[-1])
    if get("nargs") == 0 or get("const") is True:  # store_true
        return None
    kind = get("type")
    return {int: "2", float: "0.5", cli._int_list: "2", cli._float_list: "0.5"}.get(kind, "model")


def _with(command, dest):
    """[flag, value] (or [flag] for a switch) of the parser's ``dest`` of ``command``."""
    value = _value(_action(command, dest))
    return [_flag(command, dest)] + ([] if value is None else [value])


def _dests(command):
    return {a.dest for a in PARSERS[command]._actions}


def _noise_args(kind):
    """The flags noise ``kind`` needs (those without a default), with values it accepts."""
    specs = noise_class(kind).flags
    return [arg for name, spec in specs.items() if spec.get("default") is None
            for arg in ("--" + name.replace("_", "-"), _value(spec))]


def _foreign_noise_flags(base, kinds):
    """Every noise flag that noise ``kind`` does not read, given with ``--noise kind``: refused by name."""
    return [(base[0], f"--{flag} with --noise {kind}",
             [*base, "--noise", kind, *_noise_args(kind), "--" + flag.replace("_", "-"), _value(spec)],
             ("--" + flag.replace("_", "-"), f"is not a parameter of {kind} noise"))
            for kind in kinds for flag, spec in noise_flags().items() if flag not in noise_class(kind).flags]


def _set(argv, flag, value):
    """``argv`` with the value of ``flag`` replaced."""
    i = argv.index(flag)
    return [*argv[: i + 1], value, *argv[i + 2 :]]


SAMPLES_NOTHING = "samples nothing (it "  # the one refusal of a sampling flag: certify, predict, attack, substitute
CERTIFY_DET = ["certify", "--checkpoint", "cols", "--max", "2", "--out", "new.tsv"]
PREDICT_DET = ["predict", "--checkpoint", "cols", "--max", "2", "--out", "new.tsv"]
ATTACK_ON = {"clean": [*ATTACK[:2], "clean", *ATTACK[5:]], "cols": [*ATTACK[:2], "cols", *ATTACK[5:]]}
SUBSTITUTE_CLEAN = [*SUBSTITUTE[:2], "clean", "--seed-size", "4", "--rounds", "1", "--epochs", "1"]
ABLATION = noise_class("ablation")
DENOISABLE = [kind for kind in noise_kinds() if noise_class(kind).denoisable]
OPTION_FLAGS_OF_TABLES = {option for options in OPTIONS_OF_TABLES.values() for option in options}
# every option a classifier kind can take from load_classifier, refused by the kinds that do not take it
FOREIGN_OPTIONS = {kind: sorted({o for opts in OPTIONS.values() for o in opts} - set(OPTIONS[kind]))
                   for kind in (SmoothedClassifier, DeterministicClassifier)}

COMBINATIONS = [
    # train / denoise: a flag of another noise
    *_foreign_noise_flags(TRAIN, noise_kinds()),
    *_foreign_noise_flags(DENOISE, DENOISABLE),
    *[("denoise", f"--noise {kind}", [*DENOISE, "--noise", kind, *_noise_args(kind)], ("--noise", kind))
      for kind in noise_kinds() if kind not in DENOISABLE],
    # certify / predict: a certificate the noise does not compute, or not with adaptive sampling
    *[("certify", f"--certificate {name} with ablation", [*CERTIFY, "--sampling", "fixed", "--certificate", name],
       ("--certificate", name, "is not a certificate of ablation noise"))
      for name in certificate_names() if name not in ABLATION.certificates],
    *[("certify", f"--certificate {name} with --sampling adaptive", [*CERTIFY, "--certificate", name],
       ("--certificate", name, "adaptive sampling certifies with"))
      for name in ABLATION.certificates[1:]],
    # an option of adaptive sampling with --sampling fixed
    *[(command, f"{_flag(command, dest)} with --sampling fixed", [*base, "--sampling", "fixed", *_with(command, dest)],
       (_flag(command, dest), "an option of adaptive sampling"))
      for command, base in (("certify", CERTIFY), ("predict", PREDICT)) for dest in ADAPTIVE_OPTIONS
      if dest in _dests(command)],
    # a sampling option for an exact (deterministic) vote
    *[(command, f"{_flag(command, dest)} with --noise columns", [*base, *_with(command, dest)],
       (_flag(command, dest), SAMPLES_NOTHING, "drop " + _flag(command, dest)))
      for command, base in (("certify", CERTIFY_DET), ("predict", PREDICT_DET)) for dest in SAMPLING_OPTIONS
      if dest in _dests(command)],
    # a classifier option of the other kind (vote, theta, patch / certificate, denoiser)
    *[(command, f"{_flag(command, dest)} for a {cls.__name__}", [*base, *_with(command, dest)], ("drop " + _flag(command, dest),))
      for cls, base_of in ((SmoothedClassifier, {"certify": CERTIFY, "predict": PREDICT}),
                           (DeterministicClassifier, {"certify": CERTIFY_DET, "predict": PREDICT_DET}))
      for command, base in base_of.items() for dest in FOREIGN_OPTIONS[cls] if dest in _dests(command)],
    # targets no run with these --n and --alpha can reach
    ("certify", "--n no image can be certified with", _set(CERTIFY, "--n", "3"), ("--n 3", "certifies no image")),
    ("certify", "--n no image can be certified with (fixed)", [*_set(CERTIFY, "--n", "3"), "--sampling", "fixed"],
     ("--n 3", "certifies no image")),
    ("certify", "--radius beyond the largest certifiable", [*CERTIFY, "--radius", "30"], ("--radius 30", "out of reach")),
    ("predict", "--n no image can be predicted with", _set(PREDICT, "--n", "4"), ("--n 4", "predicts no image")),
    ("attack", "--n no query can be answered with", _set(ATTACK, "--n", "4"), ("--n 4", "predicts no image")),
    ("substitute", "--n no query can be answered with", _set(SUBSTITUTE, "--n", "4"),
     ("--n 4", "predicts no image")),
    # attack: PREDICT's options for targets that sample nothing; a flag of another attack
    *[("attack", f"{_flag('attack', dest)} for the {target} target", [*ATTACK_ON[target], *_with("attack", dest)],
       (_flag("attack", dest), SAMPLES_NOTHING, "drop " + _flag("attack", dest)))
      for target in ATTACK_ON for dest in ("n", "alpha", "sampling", "n_check", "fresh")],
    *[("attack", f"--{flag.replace('_', '-')} with --attack {name}",
       [*ATTACK, "--attack", name, *_with("attack", flag)], (f"--{flag.replace('_', '-')} belongs to --attack",))
      for name, cls in ATTACK_CLASSES.items() for flag in ATTACK_FLAGS if flag not in cls.flags],
    *[("substitute", f"{_flag('substitute', dest)} for an undefended model", [*SUBSTITUTE_CLEAN, *_with("substitute", dest)],
       (_flag("substitute", dest), SAMPLES_NOTHING, "drop " + _flag("substitute", dest))) for dest in ("n", "alpha")],
    # labels outside the model's classes
    *[(argv[0], "labels outside the model's classes", [*argv, "--dataset", "npz:labels12.npz"],
       ("--dataset npz:labels12.npz", "label 12", "num_classes=2"))
      for argv in (CERTIFY, PREDICT, ATTACK, SUBSTITUTE, DENOISE)],
    # figure and reproduce: an option the figure or table does not read
    *[("figure", f"{_flag('figure', dest)} with figure {which}", ["figure", which, "--out", "f.png", *_with("figure", dest)],
       (_flag("figure", dest), f"figure {which} does not read it"))
      for which, reads in FIGURE_OPTIONS.items()
      for dest in sorted({o for opts in FIGURE_OPTIONS.values() for o in opts} - set(reads))],
    *[("figure", f"--split train with figure {which}", ["figure", which, "--out", "f.png", "--split", "train"],
       ("--split train", "test images only")) for which in FIGURE_OPTIONS],
    *[("reproduce", f"{_flag('reproduce', dest)} with reproduce {table}",
       ["reproduce", table, "--out", "new", *_with("reproduce", dest)], (_flag("reproduce", dest), f"reproduce {table} does not read it"))
      for table, reads in OPTIONS_OF_TABLES.items() for dest in sorted(OPTION_FLAGS_OF_TABLES - set(reads))],
    # messages that named the wrong thing (issue 34)
    ("certify", "--beta out of range", [*CERTIFY, "--beta", "1.5"], ("--beta must be in (0, 1), got 1.5",)),
    ("certify", "--step out of range", [*CERTIFY, "--step", "0"], ("--step must be an integer >= 1, got 0",)),
    ("predict", "--beta out of range", [*PREDICT, "--beta", "0"], ("--beta must be in (0, 1), got 0",)),
    # Adaptive checks its own options; the command line shows the flag from its error
    ("certify", "--radius below 0", [*CERTIFY, "--radius", "-1"], ("--radius (the target radius) must be a finite",
                                                                   "got -1")),
    ("predict", "--step out of range", [*PREDICT, "--step", "-3"], ("--step must be an integer >= 1, got -3",)),
    ("attack", "--patch out of range", [*ATTACK, "--attack", "patch", "--patch", "0"], ("--patch must be a positive integer",)),
    ("substitute", "--seed-size out of range", [*SUBSTITUTE, "--seed-size", "0"], ("--seed-size must be an integer >= 1",)),
]


@pytest.mark.parametrize(("command", "kind", "argv", "parts"), COMBINATIONS,
                         ids=[f"{c[0]}: {c[1]}" for c in COMBINATIONS])
def test_a_flag_combination_that_cannot_be_honoured_is_refused_by_name(world, monkeypatch, capsys, command, kind,
                                                                       argv, parts):
    err = refused(world, monkeypatch, capsys, argv)
    assert all(part in err for part in parts), (parts, err)


def test_a_flag_that_samples_nothing_is_refused_by_one_message(world, monkeypatch, capsys):
    """certify, the attacks' oracles and the attack's own --n-check / --fresh share one refusal:
    the same words but for the flag, naming the checkpoint's noise and saying to drop the flag."""
    cases = [([*CERTIFY_DET, "--n", "20"], "--n 20"), ([*ATTACK_ON["cols"], "--n", "20"], "--n 20"),
             ([*ATTACK_ON["cols"], "--n-check", "5"], "--n-check 5"), ([*ATTACK_ON["cols"], "--fresh"], "--fresh")]
    messages = set()
    for argv, shown in cases:
        err = refused(world, monkeypatch, capsys, argv)
        head, tail = f"smoothcert: error: {shown}: ", f": drop {shown.split()[0]}\n"
        assert err.startswith(head) and err.endswith(tail), err
        messages.add(err.removeprefix(head).removesuffix(tail))
    assert len(messages) == 1, messages
    assert messages.pop().startswith("a checkpoint trained with --noise columns " + SAMPLES_NOTHING)


def test_every_subcommand_with_flag_combinations_is_in_the_table():
    """Subcommands whose flags can contradict the checkpoint, the noise or each other (merge, report
    and demo take no such flags)."""
    assert {c[0] for c in COMBINATIONS} == set(PARSERS) - {"merge", "report", "demo"}


def test_every_subcommand_is_in_the_table():
    commands = set(cli.build_parser()._subparsers._group_actions[0].choices)
    assert commands == {case[0] for case in CASES}


def test_out_of_memory_names_the_batch_size(world, monkeypatch, capsys):
    def no_memory(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 313600000000 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.chdir(world)
    monkeypatch.setattr(SmoothedClassifier, "sample", no_memory)
    before = snapshot(world)
    code, err = run([*CERTIFY, "--batch-size", "4096"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("smoothcert: error: out of memory ([enforce fail")
    assert err.rstrip().endswith("lower --batch-size (now 4096)")
    assert snapshot(world) == before


def test_debug_shows_the_traceback(world, monkeypatch, capsys):
    monkeypatch.chdir(world)
    argv = [*CERTIFY[:2], "nowhere", *CERTIFY[3:]]
    for debug_argv, env in (([*argv, "--debug"], None), (["--debug", *argv], None), (argv, "1")):
        if env:
            monkeypatch.setenv("SMOOTHCERT_DEBUG", env)
        code, err = run(debug_argv, capsys)
        assert code == 2
        assert err.startswith("Traceback (most recent call last)") and "FileNotFoundError" in err
        assert err.splitlines()[-1] == "smoothcert: error: no smoothcert checkpoint at nowhere (missing config.json)"


def test_a_bug_is_one_line_that_says_so(world, monkeypatch, capsys):
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.chdir(world)
    monkeypatch.delenv("SMOOTHCERT_DEBUG", raising=False)
    monkeypatch.setattr(cli, "cmd_figure", broken)
    code, err = run(["figure", "delta", "--out", "d.png"], capsys)
    assert code == 1 and err.count("\n") == 1
    assert "internal error TypeError: unsupported operand" in err and "--debug" in err


def test_ctrl_c_leaves_a_resumable_run(world, tmp_path, monkeypatch, capsys):
    """Exit status 130 and a note; re-running the command (train: with --resume) finishes the run."""
    from smoothcert.training import loop as train

    monkeypatch.chdir(world)
    out = tmp_path / "model"
    argv = ["train", "--dataset", "npz:tiny.npz", "--model", "mnist_cnn", "--epochs", "2", "--batch-size", "32",
            "--device", "cpu", "--out", str(out)]
    real_save = train.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_checkpoint", save_then_interrupt)
    code, err = run(argv, capsys)
    assert code == 130
    assert err == f"smoothcert: interrupted; {out} holds a classifier checkpoint at epoch 1 of 2: re-run with --resume to continue it\n"
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    assert run(argv, capsys)[0] == 2  # without --resume the checkpoint is not replaced
    assert run([*argv, "--resume"], capsys)[0] == 0
    assert json.loads((out / "config.json").read_text())["epoch"] == 2

    log = tmp_path / "c.tsv"
    certify = [*CERTIFY[:-1], str(log), "--max", "3"]
    real_write = TsvLog.write
    calls = []

    def write_then_interrupt(self, row):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(1)
        return real_write(self, row)

    monkeypatch.setattr(TsvLog, "write", write_then_interrupt)
    code, err = run(certify, capsys)
    assert code == 130 and err == "smoothcert: interrupted; finished work is kept: re-running the same command resumes\n"
    assert len(log.read_text().splitlines()) == 2  # header and the first image
    monkeypatch.setattr(TsvLog, "write", real_write)
    assert run(certify, capsys)[0] == 0
    assert [row.split("\t")[0] for row in log.read_text().splitlines()[1:]] == ["0", "1", "2"]


@pytest.mark.parametrize("command", ["certify", "predict", "attack", "train"])
def test_a_negative_seed_is_refused_before_any_file(world, monkeypatch, capsys, command):
    argv = {"certify": CERTIFY, "predict": PREDICT, "attack": ATTACK, "train": TRAIN}[command]
    monkeypatch.chdir(world)
    before = snapshot(world)
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--seed", "-1", "--quiet"])
    assert exit_.value.code == 2
    assert "argument --seed: a seed is a non-negative integer, got -1" in capsys.readouterr().err
    assert snapshot(world) == before


def test_a_negative_seed_is_refused_by_the_library_before_the_log(tmp_path, tiny_checkpoint):
    from smoothcert.data import load_dataset
    from smoothcert.runner import run_dataset

    data, model = tiny_checkpoint
    smoothed = SmoothedClassifier.from_checkpoint(model, device="cpu")
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got -1"):
        run_dataset(smoothed, load_dataset(data, "test"), tmp_path / "c.tsv", n0=10, n=20, seed=-1, progress=False)
    assert list(tmp_path.iterdir()) == []
