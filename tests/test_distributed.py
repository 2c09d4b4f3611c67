"""torchrun with 2 CPU ranks (gloo): sharded certify/predict equal the single-process logs, a killed
rank fails the run and the re-run resumes to the same log, DDP training writes a checkpoint that
certifies. Each torchrun start costs several seconds, hence ``slow``."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import smoothcert
from smoothcert.checkpoint import load_checkpoint
from smoothcert.cli import main
from smoothcert.denoisers import load_denoiser
from smoothcert.runner.shards import Shard

pytestmark = pytest.mark.slow
SRC = str(Path(smoothcert.__file__).resolve().parents[1])


def _torchrun_command(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "smoothcert", "--", *args]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


def _torchrun(*args, nproc=2):
    return subprocess.run(_torchrun_command(*args, nproc=nproc), env=_env(), capture_output=True, text=True, timeout=600, check=False)


def _args(mode, tiny_checkpoint, out, *extra):
    data, model = tiny_checkpoint
    sampling = ["--n0", "20"] if mode == "certify" else []
    return [mode, "--checkpoint", str(model), "--dataset", data, *sampling, "--n", "200", "--batch-size", "100",
            "--device", "cpu", "--quiet", "--out", str(out), *extra]


def _without_time(path):
    return [line.split("\t")[:-1] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("mode", ["certify", "predict"])
def test_two_ranks_write_the_single_process_log(mode, tiny_checkpoint, tmp_path):
    single, sharded = tmp_path / "single.tsv", tmp_path / "sharded.tsv"
    assert main(_args(mode, tiny_checkpoint, single)) == 0
    run = _torchrun(*_args(mode, tiny_checkpoint, sharded))
    assert run.returncode == 0, run.stderr
    assert _without_time(sharded) == _without_time(single)
    assert (tmp_path / "sharded.tsv.json").read_text() == (tmp_path / "single.tsv.json").read_text()
    assert sorted(p.name for p in tmp_path.glob("sharded*")) == ["sharded.tsv", "sharded.tsv.json"]  # the lock went with its run
    assert run.stdout.count(f"{mode}: 24 images") == 1  # rank 0 reports


def test_a_failing_rank_fails_the_run_with_its_error(tiny_checkpoint, tmp_path):
    out = tmp_path / "c.tsv"
    assert main(_args("certify", tiny_checkpoint, out, "--max", "2")) == 0
    started = time.monotonic()
    run = _torchrun(*_args("certify", tiny_checkpoint, out, "--alpha", "0.01"))  # refused: other settings
    assert run.returncode != 0 and "different settings" in run.stderr
    assert time.monotonic() - started < 120


def test_a_killed_rank_fails_the_run_and_the_rerun_resumes_to_the_same_log(tiny_checkpoint, tmp_path):
    single, out = tmp_path / "single.tsv", tmp_path / "c.tsv"
    extra = ("--max", "4", "--sampling", "fixed", "--n", "20000", "--batch-size", "5000")  # a second or more per image
    assert main(_args("certify", tiny_checkpoint, single, *extra)) == 0
    run = subprocess.Popen(_torchrun_command(*_args("certify", tiny_checkpoint, out, *extra)), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shard1 = Shard(1, 2).path(out)
    try:
        deadline = time.monotonic() + 300
        while not shard1.exists():  # rank 1 holds its log (a header): the packed images are still sampling
            assert time.monotonic() < deadline and run.poll() is None, "rank 1 opened no log"
            time.sleep(0.05)
        os.kill(int(shard1.with_name(shard1.name + ".lock").read_text()), signal.SIGKILL)  # its holder: rank 1
        _, stderr = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode != 0, stderr
    assert not out.exists()  # no merge without every shard
    rerun = _torchrun(*_args("certify", tiny_checkpoint, out, *extra))
    assert rerun.returncode == 0, rerun.stderr
    assert _without_time(out) == _without_time(single)


def test_ddp_training_writes_a_checkpoint_that_loads_and_certifies(tiny_checkpoint, tmp_path):
    data, _ = tiny_checkpoint
    model = tmp_path / "model"
    run = _torchrun("train", "--dataset", data, "--model", "mnist_cnn", "--k", "16", "--epochs", "2",
                    "--batch-size", "32", "--device", "cpu", "--quiet", "--out", str(model))
    assert run.returncode == 0, run.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["epoch"] == 2 and len(config["history"]) == 2 and "heldout_acc" in config["history"][-1]
    load_checkpoint(model)
    out = tmp_path / "c.tsv"
    assert main(["certify", "--checkpoint", str(model), "--n0", "20", "--n", "200", "--device", "cpu", "--quiet",
                 "--out", str(out)]) == 0
    correct = [int(line.split("\t")[7]) for line in out.read_text().splitlines()[1:]]
    assert len(correct) == 24 and sum(correct) >= 18  # the easy task is learned under DDP too


DDP_SCRIPT = """
import hashlib, sys
from pathlib import Path
import torch
from smoothcert.checkpoint import load_checkpoint
from smoothcert.data import load_dataset
from smoothcert.denoisers import train_denoiser
from smoothcert.runtime.distributed import process_group
from smoothcert.models import build_model
from smoothcert.noises import Ablation, Gaussian
from smoothcert.training import fit, get_recipe

def digest(module):
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in module.state_dict().values())).hexdigest()

data, root = load_dataset(sys.argv[1], "train"), Path(sys.argv[2])
config = {"model": "mnist_cnn", "num_classes": 2, "image_size": [8, 8], "dataset": "tiny"}
with process_group() as world:
    for method in ("noise", "consistency", "stability", "macer", "smoothadv"):
        noise = Gaussian(0.25) if method == "smoothadv" else Ablation(16)
        torch.manual_seed(0)
        model = build_model("mnist_cnn", noise.channels(1), 2, (8, 8))
        fit(model, noise, data, get_recipe("fast", epochs=1, batch_size=32), method=method, device="cpu",
            out=root / method, config={**config, "in_channels": noise.channels(1)}, progress=False)
        (root / f"{method}-{world.rank}.sha").write_text(digest(model))
    denoiser, _ = train_denoiser(model, data, method="mse-stability", sigma=0.25, epochs=2, batch_size=32, depth=3,
                                 width=8, device="cpu", out=root / "denoiser", progress=False)
    (root / f"denoiser-{world.rank}.sha").write_text(digest(denoiser))
"""


def _torchrun_script(source: str, data: str, root) -> subprocess.CompletedProcess:
    """Run the Python ``source`` as a script on 2 torchrun ranks with arguments ``data root``."""
    script = root / "script.py"
    script.write_text(source)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script), data,
               str(root)]
    return subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=600, check=False)


def test_every_training_method_and_the_denoiser_train_under_ddp(tiny_checkpoint, tmp_path):
    run = _torchrun_script(DDP_SCRIPT, tiny_checkpoint[0], tmp_path)
    assert run.returncode == 0, run.stderr
    for name in ("noise", "consistency", "stability", "macer", "smoothadv", "denoiser"):
        rank0, rank1 = ((tmp_path / f"{name}-{rank}.sha").read_text() for rank in range(2))
        assert rank0 == rank1, name  # DDP kept the replicas identical
        saved = load_denoiser(tmp_path / name)[0] if name == "denoiser" else load_checkpoint(tmp_path / name)[0]
        assert _digest(saved) == rank0, name  # rank 0 wrote them


def _digest(module):
    return hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in module.state_dict().values())).hexdigest()


RESUME_SCRIPT = """
import dataclasses, sys
from pathlib import Path
import torch
from smoothcert.checkpoint import load_checkpoint
from smoothcert.data import load_dataset
from smoothcert.runtime.distributed import process_group
from smoothcert.models import build_model
from smoothcert.noises import Ablation
from smoothcert.training import Recipe, fit, get_recipe

class Stop(Exception):
    pass

@dataclasses.dataclass(frozen=True)
class StopAtEpoch1(Recipe):  # every rank stops at the start of epoch 1 (0-based): an interruption
    def lr_at(self, epoch):
        if epoch == 1:
            raise Stop
        return super().lr_at(epoch)

data, root = load_dataset(sys.argv[1], "train"), Path(sys.argv[2])
config = {"model": "mnist_cnn", "in_channels": 2, "num_classes": 2, "image_size": [8, 8], "dataset": "tiny"}
recipe = get_recipe("fast", epochs=3, batch_size=32)

def run(out, recipe, resume=False):
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 2, 2, (8, 8))
    fit(model, Ablation(16), data, recipe, device="cpu", out=out, resume=resume, config=config, progress=False)

with process_group() as world:
    run(root / "whole", recipe)
    try:
        run(root / "resumed", StopAtEpoch1(**dataclasses.asdict(recipe)))
        raise AssertionError("not interrupted")
    except Stop:
        pass
    run(root / "resumed", recipe, resume=True)
"""


def test_ddp_training_resumes_exactly(tiny_checkpoint, tmp_path):
    run = _torchrun_script(RESUME_SCRIPT, tiny_checkpoint[0], tmp_path)
    assert run.returncode == 0, run.stderr
    whole, resumed = (json.loads((tmp_path / name / "config.json").read_text()) for name in ("whole", "resumed"))
    assert resumed["history"] == whole["history"] and resumed["epoch"] == 3
    assert _digest(load_checkpoint(tmp_path / "resumed")[0]) == _digest(load_checkpoint(tmp_path / "whole")[0])
