"""Sharded runs without torchrun (``--shard I/N`` + ``smoothcert merge``) and one writer per log."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from smoothcert.cli import main
from smoothcert.runtime.locking import InUseError
from smoothcert.runner import CERTIFY_COLUMNS, TsvLog
from smoothcert.runner.shards import Shard, merge_logs


def _certify(tiny_checkpoint, out, *extra, n="200"):
    data, model = tiny_checkpoint
    return main(["certify", "--checkpoint", str(model), "--dataset", data, "--n0", "20", "--n", n, "--batch-size", "100",
                 "--device", "cpu", "--quiet", "--out", str(out), *extra])


def _without_time(path):
    return [line.split("\t")[:-1] for line in path.read_text().splitlines()]


def test_shard_parse_select_and_path(tmp_path):
    assert Shard.parse("1/3") == Shard(1, 3) and str(Shard(1, 3)) == "1/3"
    assert Shard(1, 3).select(list(range(0, 20, 2))) == [2, 8, 14]
    shards = [Shard(i, 3).select(range(10)) for i in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(10))  # a partition of the selection
    assert Shard(0, 2).path(tmp_path / "certify.tsv") == tmp_path / "certify.shard-0-of-2.tsv"
    for bad in ("2/2", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="I/N"):
            Shard.parse(bad)


def test_job_array_shards_merge_to_the_single_process_log(tiny_checkpoint, tmp_path, capsys):
    single = tmp_path / "single.tsv"
    assert _certify(tiny_checkpoint, single, "--skip", "2") == 0
    out = tmp_path / "c.tsv"
    for i in range(3):
        assert _certify(tiny_checkpoint, out, "--skip", "2", "--shard", f"{i}/3") == 0
    assert not out.exists() and Shard(2, 3).path(out).exists()
    assert main(["merge", "--out", str(out), *(str(Shard(i, 3).path(out)) for i in range(3))]) == 0
    assert _without_time(out) == _without_time(single)
    assert (tmp_path / "c.tsv.json").read_text() == (tmp_path / "single.tsv.json").read_text()
    # merging again is idempotent; the merged log resumes like any log (nothing left to do)
    assert main(["merge", "--out", str(out), *(str(Shard(i, 3).path(out)) for i in range(3))]) == 0
    assert _without_time(out) == _without_time(single)
    assert _certify(tiny_checkpoint, out, "--skip", "2") == 0
    assert _without_time(out) == _without_time(single)


def test_merge_refuses_mismatched_settings_and_incomplete_sets(tiny_checkpoint, tmp_path, capsys):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    for i in range(2):
        assert _certify(tiny_checkpoint, a, "--max", "4", "--shard", f"{i}/2") == 0
    assert _certify(tiny_checkpoint, b, "--max", "4", "--shard", "1/2", n="300") == 0
    a0, a1, b1 = Shard(0, 2).path(a), Shard(1, 2).path(a), Shard(1, 2).path(b)
    out = tmp_path / "out.tsv"
    assert main(["merge", "--out", str(out), str(a0), str(b1)]) == 2
    assert "different settings" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"different settings than .* \(n\)"):
        merge_logs(out, [a0, b1])
    with pytest.raises(ValueError, match="missing 1/2"):
        merge_logs(out, [a0])
    with pytest.raises(ValueError, match="given twice"):
        merge_logs(out, [a0, a0])
    copy = tmp_path / "copy.tsv"
    copy.write_text(a0.read_text())
    (tmp_path / "copy.tsv.json").write_text((tmp_path / (a0.name + ".json")).read_text())
    with pytest.raises(ValueError, match="both shard 0/2"):
        merge_logs(out, [a0, copy])
    assert not out.exists()
    other = tmp_path / "other.tsv"  # an existing log with other settings
    assert _certify(tiny_checkpoint, other, "--max", "2", n="300") == 0
    with pytest.raises(ValueError, match=r"other.tsv was written with different settings"):
        merge_logs(other, [a0, a1])
    merge_logs(out, [a0, a1])
    assert [r.split("\t")[0] for r in _rows(out)] == ["0", "1", "2", "3"]


def test_merge_refuses_shards_of_other_selections_and_interrupted_shards(tiny_checkpoint, tmp_path, capsys):
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    assert _certify(tiny_checkpoint, a, "--max", "6", "--shard", "0/2") == 0
    assert _certify(tiny_checkpoint, b, "--max", "6", "--skip", "2", "--shard", "1/2") == 0
    assert _certify(tiny_checkpoint, a, "--max", "6", "--shard", "1/2") == 0
    a0, a1, b1 = Shard(0, 2).path(a), Shard(1, 2).path(a), Shard(1, 2).path(b)
    out = tmp_path / "out.tsv"
    with pytest.raises(ValueError, match=r"different settings than .* \(selection\)"):
        merge_logs(out, [a0, b1])  # --skip 2 selects 0, 2, 4, ...: another run's images
    lines = a1.read_text().splitlines(keepends=True)
    a1.write_text("".join(lines[:-1]))  # shard 1 lost its last row (idx 5): interrupted
    with pytest.raises(ValueError, match=r"lacks 1 of its images \(idx 5\): the shard was interrupted"):
        merge_logs(out, [a0, a1])
    assert not out.exists()
    assert _certify(tiny_checkpoint, a, "--max", "6", "--shard", "1/2") == 0  # resumed
    merge_logs(out, [a0, a1])
    assert [r.split("\t")[0] for r in _rows(out)] == ["0", "1", "2", "3", "4", "5"]
    assert "selection" not in json.loads((tmp_path / "out.tsv.json").read_text())


def _rows(path):
    return path.read_text().splitlines()[1:]


def test_second_writer_is_refused_at_once_naming_the_holder(tmp_path):
    path = tmp_path / "log.tsv"
    with TsvLog(path, CERTIFY_COLUMNS, {"a": 1}) as log:
        log.write(dict.fromkeys(CERTIFY_COLUMNS, 0))
        with pytest.raises(InUseError, match=f"in use by another smoothcert process \\(pid {os.getpid()}\\)"):
            TsvLog(path, CERTIFY_COLUMNS, {"a": 1})
        log.write({**dict.fromkeys(CERTIFY_COLUMNS, 0), "idx": 1})
    assert [r.split("\t")[0] for r in _rows(path)] == ["0", "1"]  # the first writer's log is intact
    with TsvLog(path, CERTIFY_COLUMNS, {"a": 1}) as log:  # released on close
        assert log.done == {0, 1}


def test_second_certify_is_refused_and_a_killed_holder_does_not_block(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "c.tsv"
    assert _certify(tiny_checkpoint, out, "--max", "2") == 0
    before = out.read_text()
    hold = ("import sys, time, json; from smoothcert.runner import TsvLog, CERTIFY_COLUMNS; "
            "log = TsvLog(sys.argv[1], CERTIFY_COLUMNS, json.load(open(sys.argv[1] + '.json'))); "
            "print('locked', flush=True); time.sleep(60)")
    holder = subprocess.Popen(  # another process holding the log, e.g. a certify run in progress
        [sys.executable, "-c", hold, str(out)], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        assert _certify(tiny_checkpoint, out, "--max", "4") == 2
        assert time.monotonic() - started < 10  # refused at once, not after waiting
        assert f"pid {holder.pid}" in capsys.readouterr().err
        assert out.read_text() == before
        holder.send_signal(signal.SIGKILL)  # kill -9: no cleanup runs
        holder.wait(30)
    finally:
        holder.kill()
    assert _certify(tiny_checkpoint, out, "--max", "4") == 0  # the kernel released the dead process's lock
    assert [r.split("\t")[0] for r in _rows(out)] == ["0", "1", "2", "3"]
    assert json.loads((tmp_path / "c.tsv.json").read_text())["n"] == 200


def test_attack_shards_merge_with_their_adversarial_examples(tiny_checkpoint, tmp_path):
    data, model = tiny_checkpoint
    args = ["attack", "--checkpoint", str(model), "--dataset", data, "--attack", "pointwise", "--restarts", "1",
            "--max-queries", "30", "--n", "20", "--max", "5", "--device", "cpu", "--quiet"]
    single, out = tmp_path / "single.tsv", tmp_path / "a.tsv"
    assert main([*args, "--out", str(single)]) == 0
    for i in range(2):
        assert main([*args, "--shard", f"{i}/2", "--out", str(out)]) == 0
    merge_logs(out, [Shard(i, 2).path(out) for i in range(2)])
    assert _without_time(out) == _without_time(single)
    with np.load(tmp_path / "a.npz") as merged, np.load(tmp_path / "single.npz") as whole:
        assert sorted(merged.files) == sorted(whole.files)
        for key in whole.files:
            assert np.array_equal(merged[key], whole[key])
