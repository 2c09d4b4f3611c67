"""A checkpoint commits as a whole: a kill between two of its files is detected and completed by
--resume (never epoch e+1's weights beside epoch e's config); a training run locks its folder."""

import pytest
import torch

from smoothcert import checkpoint
from smoothcert.checkpoint import checkpoint_lock, load_checkpoint, read_config, recover
from smoothcert.data import load_dataset
from smoothcert.runtime.locking import InUseError
from smoothcert.models import build_model
from smoothcert.noises import Ablation
from smoothcert.training import fit, get_recipe, train_classifier


class Killed(BaseException):
    """Stands in for SIGKILL: nothing catches it and no cleanup code runs."""


@pytest.fixture(scope="module")
def data(tmp_path_factory, tiny_npz):
    spec = tiny_npz(tmp_path_factory.mktemp("commit") / "tiny.npz", 1, 128, 16)
    return load_dataset(spec, "train")


def _fit(data, out, epochs, resume=False):
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 2, 2, (8, 8))
    config = {"model": "mnist_cnn", "in_channels": 2, "num_classes": 2, "image_size": [8, 8], "dataset": "tiny"}
    fit(model, Ablation(16), data, get_recipe("fast", epochs=epochs, batch_size=32), device="cpu", out=out,
        resume=resume, config=config, progress=False)
    return model


def _die_after(renames, monkeypatch):
    done = []
    real = checkpoint.os.replace

    def replace(src, dst):
        if len(done) == renames:
            raise Killed
        done.append(dst)
        real(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", replace)


@pytest.mark.parametrize("renames", [0, 1, 2])
def test_a_kill_between_two_files_is_refused_then_completed_by_resume(data, tmp_path, monkeypatch, renames):
    whole = _fit(data, tmp_path / "whole", 3)
    out = tmp_path / "run"
    _die_after(3 + renames, monkeypatch)  # epoch 1 commits (3 renames); killed after `renames` of epoch 2's 3
    with pytest.raises(Killed):
        _fit(data, out, 3)
    monkeypatch.undo()
    if renames:  # the mixed set (new weights, old config) is refused, not silently loaded
        assert read_config(out)["epoch"] == 1
        with pytest.raises(ValueError, match="SHA-256 differs"):
            load_checkpoint(out)
    else:  # killed while staging: epoch 1 is intact
        load_checkpoint(out)
    resumed = _fit(data, out, 3, resume=True)
    config = read_config(out)
    assert config["epoch"] == 3 and [h["epoch"] for h in config["history"]] == [1, 2, 3]
    for a, b in zip(resumed.state_dict().values(), whole.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # exactly the uninterrupted run: no epoch trained twice
    assert not list(out.glob("*.tmp"))


def test_recover_leaves_a_complete_checkpoint_alone(data, tmp_path):
    out = tmp_path / "run"
    _fit(data, out, 1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    recover(out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_training_run_locks_its_checkpoint_folder(tiny_npz, tmp_path):
    spec = tiny_npz(tmp_path / "tiny.npz", 0, 64, 8)
    out = tmp_path / "model"
    with checkpoint_lock(out), pytest.raises(InUseError, match="checkpoint .*model is in use by another smoothcert"):
        train_classifier(spec, out, k=16, recipe=get_recipe("fast", epochs=1), model="mnist_cnn", device="cpu",
                         progress=False)
    assert not (out / "config.json").exists()
    train_classifier(spec, out, k=16, recipe=get_recipe("fast", epochs=1), model="mnist_cnn", device="cpu", progress=False)
    assert read_config(out)["epoch"] == 1


def _full_disk_after(calls: int, real):
    """``real`` that raises ENOSPC from its ``calls + 1``-th call on, as a disk that fills up."""
    count = {"n": 0}

    def write(*args, **kwargs):
        count["n"] += 1
        if count["n"] > calls:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    return write


def test_a_full_disk_during_a_save_leaves_the_last_checkpoint_and_no_staged_file(data, tmp_path, monkeypatch):
    model = build_model("mnist_cnn", 2, 2, image_size=(8, 8))
    recipe = get_recipe("fast", epochs=2, batch_size=64)
    saved = []
    real_commit = checkpoint.commit
    monkeypatch.setattr(checkpoint, "commit", lambda *a, **k: saved.append(real_commit(*a, **k)) or saved[-1])
    monkeypatch.setattr(checkpoint, "_write_durably", _full_disk_after(3, checkpoint._write_durably))  # epoch 1 fits
    with pytest.raises(OSError, match=f"cannot write the checkpoint {tmp_path}: No space left on device"):
        fit(model, Ablation(16), data, recipe, device="cpu", out=tmp_path, progress=False)
    assert len(saved) == 1 and read_config(tmp_path)["epoch"] == 1  # the last good epoch, loadable
    load_checkpoint(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    fit(build_model("mnist_cnn", 2, 2, image_size=(8, 8)), Ablation(16), data, recipe, device="cpu", out=tmp_path,
        resume=True, progress=False)
    assert read_config(tmp_path)["epoch"] == 2


def test_a_log_created_on_a_full_disk_leaves_nothing_that_blocks_the_rerun(tmp_path, monkeypatch):
    import os

    from smoothcert.runner import CERTIFY_COLUMNS, TsvLog

    out = tmp_path / "c.tsv"
    monkeypatch.setattr(os, "fsync", _full_disk_after(1, os.fsync))  # the settings file fits, the log does not
    with pytest.raises(OSError, match="cannot write .*c.tsv: No space left on device"):
        TsvLog(out, CERTIFY_COLUMNS, {"seed": 0})
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))
    monkeypatch.undo()
    with TsvLog(out, CERTIFY_COLUMNS, {"seed": 0}) as log:
        assert log.done == set()
    assert out.read_text() == "\t".join(CERTIFY_COLUMNS) + "\n"
