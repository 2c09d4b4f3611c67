"""torchrun with 2 CPU ranks (gloo): sharded certify/predict equal the single-process logs, a killed
rank fails the run and the re-run resumes to the same log, DDP training writes a checkpoint that
certifies. Each torchrun start costs several seconds, hence ``slow``."""

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
from smoothcert.runner.shards import Shard

pytestmark = pytest.mark.slow
SRC = str(Path(smoothcert.__file__).resolve().parents[1])


def _torchrun_command(*args, nproc=2):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "smoothcert", "--", *args]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}


def _torchrun(*args, nproc=2):
    return subprocess.run(_torchrun_command(*args, nproc=nproc), env=_env(), capture_output=True, text=True, timeout=600)


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
    assert sorted(p.name for p in tmp_path.glob("sharded*")) == ["sharded.tsv", "sharded.tsv.json", "sharded.tsv.lock"]
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
    extra = ("--max", "4", "--n", "20000", "--batch-size", "5000")  # a second or more per image
    assert main(_args("certify", tiny_checkpoint, single, *extra)) == 0
    run = subprocess.Popen(_torchrun_command(*_args("certify", tiny_checkpoint, out, *extra)), env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shard1 = Shard(1, 2).path(out)
    try:
        deadline = time.monotonic() + 300
        while not (shard1.exists() and len(shard1.read_text().splitlines()) >= 2):  # a header and a row
            assert time.monotonic() < deadline and run.poll() is None, "rank 1 wrote no row"
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
