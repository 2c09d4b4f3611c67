"""End-to-end tests of the ``smoothcert`` command line on a tiny dataset the tests make."""

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from smoothcert.cli import main
from smoothcert.data import load_dataset
from smoothcert.runner import CERTIFY_COLUMNS, PREDICT_COLUMNS, run_dataset
from smoothcert.runner.jobs import run_settings
from smoothcert.runtime.seeding import generator
from smoothcert.certificates.sequential import Adaptive
from smoothcert.classifiers.smoothed import SmoothedClassifier


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_npz):
    """An npz dataset of 8x8 greyscale 'images' whose class is the brighter half, and a model trained on it."""
    root = tmp_path_factory.mktemp("tiny")
    data = tiny_npz(root / "tiny.npz", 0, 256, 24)
    model = root / "model"
    code = main(["train", "--dataset", data, "--model", "mnist_cnn", "--k", "16", "--epochs", "3",
                 "--batch-size", "32", "--device", "cpu", "--out", str(model), "--quiet"])
    assert code == 0
    return {"data": data, "model": str(model), "root": root}


def _certify(tiny, out, *extra):
    return main(["certify", "--checkpoint", tiny["model"], "--n0", "20", "--n", "200", "--alpha", "0.05",
                 "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(out), *extra])


def _rows(path):
    with open(path) as f:
        return list(csv.reader(f, delimiter="\t"))


def _without_time(rows):
    return [row[:-1] for row in rows]


def test_certify_writes_the_pinned_log_format(tiny, tmp_path):
    out = tmp_path / "c.tsv"
    assert _certify(tiny, out, "--sampling", "fixed") == 0
    rows = _rows(out)
    assert tuple(rows[0]) == CERTIFY_COLUMNS
    assert [int(r[0]) for r in rows[1:]] == list(range(24))
    for r in rows[1:]:
        predict, count, n, p_lower, radius, correct = int(r[2]), int(r[3]), int(r[4]), float(r[5]), float(r[6]), int(r[7])
        assert n == 200 and 0 <= count <= n and 0 <= p_lower <= 1
        assert correct == int(predict == int(r[1]))
        assert (predict == -1) == np.isnan(radius)
        assert np.isnan(radius) or radius >= 0
    settings = json.loads((tmp_path / "c.tsv.json").read_text())
    assert settings["n0"] == 20 and settings["n"] == 200 and settings["certificate"] == "cor1"
    assert settings["sampling"] == "fixed"
    accuracy = np.mean([int(r[7]) for r in rows[1:]])
    assert accuracy > 0.7  # the task is easy; the trained model must have learned it


def test_certify_resumes_after_interruption_to_the_same_file(tiny, tmp_path):
    whole = tmp_path / "whole.tsv"
    assert _certify(tiny, whole, "--skip", "2") == 0
    part = tmp_path / "part.tsv"
    assert _certify(tiny, part, "--skip", "2", "--max", "5") == 0
    text = part.read_text()
    part.write_text(text[: len(text) - 7])  # the interruption cut the last row mid-write
    assert _certify(tiny, part, "--skip", "2") == 0
    assert _without_time(_rows(part)) == _without_time(_rows(whole))
    assert [int(r[0]) for r in _rows(part)[1:]] == list(range(0, 24, 2))


def test_certify_refuses_to_mix_settings(tiny, tmp_path, capsys):
    out = tmp_path / "c.tsv"
    assert _certify(tiny, out, "--max", "2") == 0
    assert _certify(tiny, out, "--max", "2", "--seed", "1") == 2
    assert "different settings (seed)" in capsys.readouterr().err


def _certify_with(checkpoint, out, *extra):
    return main(["certify", "--checkpoint", str(checkpoint), "--n0", "20", "--n", "200", "--alpha", "0.05",
                 "--batch-size", "64", "--device", "cpu", "--quiet", "--out", str(out), *extra])


def test_a_log_resumes_from_a_copy_of_its_checkpoint_in_another_folder(tiny, tmp_path, monkeypatch):
    whole = tmp_path / "whole.tsv"
    assert _certify(tiny, whole, "--max", "4") == 0
    first, moved = tmp_path / "first" / "model", tmp_path / "elsewhere" / "renamed"
    shutil.copytree(tiny["model"], first)
    monkeypatch.chdir(tmp_path)
    assert _certify_with("first/model", "part.tsv", "--max", "2") == 0
    settings = json.loads((tmp_path / "part.tsv.json").read_text())
    assert settings["checkpoint"] == "first/model"  # as typed, not resolved
    assert len(settings["weights"]) == 64
    shutil.rmtree(tmp_path / "first")
    assert _certify_with(moved.relative_to(tmp_path), "part.tsv", "--max", "2") == 2  # no weights there yet
    shutil.copytree(tiny["model"], moved)
    assert _certify_with(moved.relative_to(tmp_path), "part.tsv", "--max", "4") == 0
    assert _without_time(_rows(tmp_path / "part.tsv")) == _without_time(_rows(whole))


def test_other_weights_at_the_logged_path_are_refused(tiny, tmp_path, capsys):
    model = tmp_path / "model"
    shutil.copytree(tiny["model"], model)
    out = tmp_path / "c.tsv"
    assert _certify_with(model, out, "--max", "2") == 0
    before = out.read_text()
    assert main(["train", "--dataset", tiny["data"], "--model", "mnist_cnn", "--k", "16", "--epochs", "1",
                 "--batch-size", "32", "--seed", "1", "--device", "cpu", "--out", str(model), "--overwrite",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert _certify_with(model, out, "--max", "4") == 2
    err = capsys.readouterr().err
    assert "holds other weights" in err and "choose another --out" in err
    assert out.read_text() == before


def test_a_log_refuses_other_images_under_the_same_dataset_name(tmp_path, tiny_npz, tiny, capsys):
    data = tiny_npz(tmp_path / "data.npz", 0, 256, 24)
    out = tmp_path / "c.tsv"
    assert _certify(tiny, out, "--dataset", data, "--max", "2") == 0
    assert len(json.loads((tmp_path / "c.tsv.json").read_text())["data_sha256"]) == 64
    tiny_npz(tmp_path / "data.npz", 1, 256, 24)  # another draw written over the same file
    capsys.readouterr()
    assert _certify(tiny, out, "--dataset", data, "--max", "4") == 2
    assert "was written on other images than npz:" in capsys.readouterr().err
    assert len(out.read_text().splitlines()) == 3


def test_a_log_from_before_identities_resumes_and_gains_its_checkpoints_identity(tiny, tmp_path, capsys):
    whole, old = tmp_path / "whole.tsv", tmp_path / "old.tsv"
    assert _certify(tiny, whole, "--max", "4") == 0
    assert _certify(tiny, old, "--max", "2") == 0
    legacy = json.loads((tmp_path / "old.tsv.json").read_text())
    weights = legacy.pop("weights")
    legacy["checkpoint"] = str(Path(tiny["model"]).resolve())  # what logs recorded before identities
    (tmp_path / "old.tsv.json").write_text(json.dumps(legacy))
    other = tmp_path / "copy"
    shutil.copytree(tiny["model"], other)
    assert _certify_with(other, old, "--max", "4") == 2  # the same weights, but the old log only knows a path
    assert "different settings (checkpoint)" in capsys.readouterr().err
    assert _certify(tiny, old, "--max", "4") == 0
    assert _without_time(_rows(old)) == _without_time(_rows(whole))
    upgraded = json.loads((tmp_path / "old.tsv.json").read_text())
    assert upgraded["weights"] == weights and upgraded["checkpoint"] == Path(tiny["model"]).as_posix()


def test_predict_and_report(tiny, tmp_path, capsys):
    cert, pred = tmp_path / "c.tsv", tmp_path / "p.tsv"
    assert _certify(tiny, cert, "--max", "6") == 0
    assert main(["predict", "--checkpoint", tiny["model"], "--n", "200", "--alpha", "0.05", "--max", "6",
                 "--device", "cpu", "--quiet", "--out", str(pred)]) == 0
    assert tuple(_rows(pred)[0]) == PREDICT_COLUMNS
    capsys.readouterr()
    png = tmp_path / "curve.png"
    assert main(["report", str(cert), str(pred), "--radii", "0,1,2", "--markdown", "--plot", str(png)]) == 0
    table = capsys.readouterr().out
    assert "| c " in table and "| p " in table and png.stat().st_size > 0


def test_figures(tiny, tmp_path):
    assert main(["figure", "delta", "--out", str(tmp_path / "delta.png")]) == 0
    assert main(["figure", "samples", "--checkpoint", tiny["model"], "--index", "3", "--device", "cpu",
                 "--out", str(tmp_path / "samples.png")]) == 0
    assert (tmp_path / "delta.png").stat().st_size > 0 and (tmp_path / "samples.png").stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--k", "0", "--epochs", "1"], "k must be a positive integer"),
        (["train", "--k", "785", "--epochs", "1"], "k=785 exceeds"),
        (["train", "--dataset", "svhn", "--epochs", "1"], "unknown dataset"),
        (["train", "--dataset", "npz:/no/such/file.npz", "--epochs", "1"], "/no/such/file.npz"),
        (["certify", "--checkpoint", "/no/such/dir", "--out", "x.tsv"], "no smoothcert checkpoint"),
    ],
)
def test_bad_input_exits_nonzero_with_a_message(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main([*args, "--quiet"]) == 2
    assert message in capsys.readouterr().err


def test_bad_sampling_parameters(tiny, tmp_path, capsys):
    out = tmp_path / "c.tsv"
    assert _certify(tiny, out, "--alpha", "1.5") == 2
    assert "alpha" in capsys.readouterr().err
    assert _certify(tiny, out, "--n", "0") == 2
    assert "positive integer" in capsys.readouterr().err
    assert _certify(tiny, out, "--skip", "0") == 2
    assert not out.exists()  # no half-written log from a rejected run
    # a model trained on 8x8 images cannot certify 10x10 images: a clear error and no log
    np.savez(tmp_path / "wide.npz", x=np.zeros((4, 10, 10), np.float32), y=np.arange(4) % 2)
    assert main(["certify", "--checkpoint", tiny["model"], "--dataset", f"npz:{tmp_path / 'wide.npz'}",
                 "--out", str(out), "--quiet"]) == 2
    assert "10x10" in capsys.readouterr().err
    assert not out.exists()


def test_gaussian_noise_with_a_training_method_end_to_end(tiny, tmp_path):
    model = tmp_path / "gauss"
    assert main(["train", "--dataset", tiny["data"], "--model", "mnist_cnn", "--noise", "gaussian", "--sigma", "0.25",
                 "--method", "consistency", "--method-param", "lam=5", "--epochs", "2", "--batch-size", "32",
                 "--device", "cpu", "--out", str(model), "--quiet"]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["noise"] == {"noise": "gaussian", "sigma": 0.25} and config["in_channels"] == 1
    assert config["method"]["method"] == "consistency" and config["method"]["lam"] == 5.0
    out = tmp_path / "g.tsv"
    assert main(["certify", "--checkpoint", str(model), "--n0", "20", "--n", "200", "--max", "4", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    rows = _rows(out)
    assert json.loads((tmp_path / "g.tsv.json").read_text())["certificate"] == "cohen"
    for r in rows[1:]:
        radius = float(r[6])
        # Cohen et al.: radius = sigma * Phi^-1(p_lower) <= sigma * Phi^-1(alpha^(1/n))
        assert np.isnan(radius) or 0 < radius <= 0.25 * 2.33


def test_train_augment_overrides_the_recipe(tiny, tmp_path):
    model = tmp_path / "augmented"
    assert main(["train", "--dataset", tiny["data"], "--model", "mnist_cnn", "--k", "16", "--epochs", "1",
                 "--augment", "affine+elastic", "--device", "cpu", "--quiet", "--out", str(model)]) == 0
    assert json.loads((model / "config.json").read_text())["recipe"]["augment"] == "affine+elastic"


@pytest.mark.parametrize("name", ["mnist_cnn_interp", "mnist_pixel_transformer"])
def test_kept_pixel_models_end_to_end_and_refused_without_multichannel_ablation(name, tiny, tmp_path, capsys):
    common = ["--dataset", tiny["data"], "--model", name, "--epochs", "1", "--batch-size", "32",
              "--device", "cpu", "--quiet"]
    model = tmp_path / "model"
    assert main(["train", *common, "--k", "16", "--out", str(model)]) == 0
    assert json.loads((model / "config.json").read_text())["model"] == name
    out = tmp_path / "i.tsv"
    assert main(["certify", "--checkpoint", str(model), "--n0", "20", "--n", "200", "--max", "4", "--device", "cpu",
                 "--quiet", "--out", str(out)]) == 0
    assert len(_rows(out)) == 5
    for extra in (["--noise", "gaussian", "--sigma", "0.25"], ["--k", "16", "--encoding", "mean"]):
        assert main(["train", *common, *extra, "--out", str(tmp_path / "refused")]) == 2
        assert "multichannel ablation encoding" in capsys.readouterr().err
        assert not (tmp_path / "refused" / "model.safetensors").exists()


def test_distillation_from_a_teacher_checkpoint(tiny, tmp_path, capsys):
    """--method-param takes the teacher's folder as text; the student (ablation, 2 channels) learns from an
    ordinary classifier (noise none, 1 channel), and its checkpoint records the teacher."""
    teacher, student = tmp_path / "teacher", tmp_path / "student"
    common = ["--dataset", tiny["data"], "--model", "mnist_cnn", "--epochs", "1", "--batch-size", "32", "--device",
              "cpu", "--quiet"]
    assert main(["train", *common, "--noise", "none", "--out", str(teacher)]) == 0
    assert main(["train", *common, "--k", "16", "--method", "distillation", "--method-param", f"teacher={teacher}",
                 "--method-param", "weight=0.7", "--method-param", "m=2", "--out", str(student)]) == 0
    method = json.loads((student / "config.json").read_text())["method"]
    assert method == {"method": "distillation", "teacher": str(teacher), "weight": 0.7, "temperature": 2.0,
                      "m": 2, "lam": 0.5}
    assert main(["train", *common, "--method", "distillation", "--method-param", f"teacher={tmp_path / 'none'}",
                 "--out", str(tmp_path / "s2")]) == 2
    assert "none" in capsys.readouterr().err


def test_method_errors(tiny, tmp_path, capsys):
    base = ["train", "--dataset", tiny["data"], "--model", "mnist_cnn", "--epochs", "1", "--device", "cpu", "--quiet",
            "--out", str(tmp_path / "m")]
    assert main([*base, "--method", "smoothadv"]) == 2  # ablation noise: SmoothAdv is Gaussian-only
    assert "SmoothAdv needs Gaussian noise" in capsys.readouterr().err
    assert main([*base, "--method", "consistency", "--method-param", "lambda=3"]) == 2
    assert "unknown parameter" in capsys.readouterr().err
    assert main([*base, "--noise", "gaussian"]) == 2
    assert "sigma" in capsys.readouterr().err


def test_adaptive_sampling_is_the_default_and_recorded(tiny, tmp_path):
    out = tmp_path / "a.tsv"
    assert _certify(tiny, out, "--step", "50") == 0
    settings = json.loads((tmp_path / "a.tsv.json").read_text())
    assert settings["sampling"] == {"scheme": "adaptive", "bound": "exact", "radius": None, "beta": 0.3,
                                    "step": 50, "growth": 1.3, "futility": "spent", "rho": 1.0}
    used = [int(r[4]) for r in _rows(out)[1:]]
    assert set(used) <= {50, 65, 84, 110, 143, 200}  # the looks of the schedule, at most --n
    assert min(used) < 200  # the easy task stops early


def test_a_log_written_with_older_defaults_resumes_with_them(tiny, tmp_path):
    """The defaults of the adaptive options changed (issue 35): a log records the options it was
    written with, and re-running its command without them goes on with the recorded ones."""
    old = ["--n0", "100", "--beta", "0.2", "--step", "50"]  # n0, beta and step of the old defaults, growth 2
    out, whole = tmp_path / "old.tsv", tmp_path / "whole.tsv"
    before = {"scheme": "adaptive", "bound": "looks", "radius": None, "beta": 0.2, "step": 50, "growth": 2.0}
    smoothed = SmoothedClassifier.from_checkpoint(tiny["model"], batch_size=64, device="cpu")
    for log, images in ((out, 3), (whole, 6)):
        run_dataset(smoothed, load_dataset(tiny["data"], "test"), log, n0=100, n=200, alpha=0.05,
                    indices=list(range(images)),
                    sampling=Adaptive(bound="looks", beta=0.2, step=50, growth=2.0, futility="threshold", last=0.5),
                    settings=run_settings(tiny["model"], tiny["data"], "test"), progress=False)
        assert json.loads(log.with_name(log.name + ".json").read_text())["sampling"] == before
    assert main(["certify", "--checkpoint", tiny["model"], "--dataset", tiny["data"], "--n", "200",
                 "--alpha", "0.05", "--batch-size", "64", "--device", "cpu", "--quiet", "--max", "6",
                 "--out", str(out)]) == 0  # no --n0, --beta, --step: the log's
    assert json.loads((tmp_path / "old.tsv.json").read_text())["n0"] == 100
    assert _without_time(_rows(out)) == _without_time(_rows(whole))
    assert _certify(tiny, out, *old, "--max", "6", "--futility", "final") == 2  # a new value is refused


def test_a_predict_log_written_with_the_old_predict_schedule_resumes_with_it(tiny, tmp_path):
    """Until 2026-12-05 PREDICT's looks under the exact bound were 100, 200, 400, ...: a predict log
    records them, and re-running its command goes on with them, not with today's schedule."""
    out, whole = tmp_path / "old.tsv", tmp_path / "whole.tsv"
    before = {"scheme": "adaptive", "bound": "exact", "radius": None, "beta": 0.2, "step": 100, "growth": 2.0,
              "futility": "spent", "rho": 1.0}
    smoothed = SmoothedClassifier.from_checkpoint(tiny["model"], batch_size=64, device="cpu")
    for log, images in ((out, 3), (whole, 6)):
        run_dataset(smoothed, load_dataset(tiny["data"], "test"), log, mode="predict", n=400, alpha=0.05,
                    indices=list(range(images)), sampling=Adaptive(step=100, growth=2.0),
                    settings=run_settings(tiny["model"], tiny["data"], "test"), progress=False)
        assert json.loads(log.with_name(log.name + ".json").read_text())["sampling"] == before
    assert main(["predict", "--checkpoint", tiny["model"], "--dataset", tiny["data"], "--n", "400",
                 "--alpha", "0.05", "--batch-size", "64", "--device", "cpu", "--quiet", "--max", "6",
                 "--out", str(out)]) == 0  # no schedule given: the log's
    assert json.loads((tmp_path / "old.tsv.json").read_text())["sampling"] == before
    assert _without_time(_rows(out)) == _without_time(_rows(whole))
    assert {int(r[4]) for r in _rows(out)[1:]} <= {100, 200, 400}


def test_a_one_radius_log_written_with_selection_samples_resumes_with_them(tiny, tmp_path):
    """Until 2026-12-05 the one-radius question drew n0 = 30 selection samples and looked first at 10;
    the test now selects the class itself (n0 = 0, first look 20). A log records both, and re-running
    its command goes on with them."""
    out, whole = tmp_path / "old.tsv", tmp_path / "whole.tsv"
    before = {"scheme": "adaptive", "bound": "exact", "radius": 1.0, "beta": 0.6, "step": 10, "growth": 1.3,
              "futility": "spent", "rho": 0.25}
    smoothed = SmoothedClassifier.from_checkpoint(tiny["model"], batch_size=64, device="cpu")
    for log, images in ((out, 3), (whole, 6)):
        run_dataset(smoothed, load_dataset(tiny["data"], "test"), log, n0=30, n=400, alpha=0.05,
                    indices=list(range(images)), sampling=Adaptive(radius=1, step=10),
                    settings=run_settings(tiny["model"], tiny["data"], "test"), progress=False)
        assert json.loads(log.with_name(log.name + ".json").read_text())["sampling"] == before
    assert main(["certify", "--checkpoint", tiny["model"], "--dataset", tiny["data"], "--n", "400", "--radius", "1",
                 "--alpha", "0.05", "--batch-size", "64", "--device", "cpu", "--quiet", "--max", "6",
                 "--out", str(out)]) == 0  # no --n0, no --step: the log's
    settings = json.loads((tmp_path / "old.tsv.json").read_text())
    assert (settings["n0"], settings["sampling"]) == (30, before)
    assert _without_time(_rows(out)) == _without_time(_rows(whole))


def test_no_selection_samples_only_where_the_test_selects(tiny, tmp_path, capsys):
    """--n0 0: the exact bound's one-radius test certifies the class that leads it; a new one-radius
    log does so by default. Elsewhere 0 is refused, naming --n0."""
    assert _certify(tiny, tmp_path / "r.tsv", "--radius", "1", "--max", "3", "--n0", "0") == 0
    assert json.loads((tmp_path / "r.tsv.json").read_text())["n0"] == 0
    assert main(["certify", "--checkpoint", tiny["model"], "--n", "200", "--batch-size", "64", "--device", "cpu",
                 "--quiet", "--radius", "1", "--max", "3", "--out", str(tmp_path / "d.tsv")]) == 0  # no --n0
    assert json.loads((tmp_path / "d.tsv.json").read_text())["n0"] == 0
    assert _without_time(_rows(tmp_path / "r.tsv")) == _without_time(_rows(tmp_path / "d.tsv"))
    capsys.readouterr()
    for extra in ([], ["--sampling", "fixed"], ["--radius", "1", "--bound", "looks"]):
        assert _certify(tiny, tmp_path / "x.tsv", "--n0", "0", "--max", "3", *extra) == 2
        err = capsys.readouterr().err
        assert "--n0 0" in err and "target radius" in err and err.count("\n") == 1
        assert not (tmp_path / "x.tsv").exists()


def test_target_radius_needs_adaptive_sampling(tiny, tmp_path, capsys):
    assert _certify(tiny, tmp_path / "r.tsv", "--radius", "1", "--max", "3") == 0
    assert json.loads((tmp_path / "r.tsv.json").read_text())["sampling"]["radius"] == 1.0
    assert _certify(tiny, tmp_path / "f.tsv", "--radius", "1", "--sampling", "fixed") == 2
    assert "--radius" in capsys.readouterr().err and not (tmp_path / "f.tsv").exists()


@pytest.mark.parametrize("sampling", ["fixed", "adaptive"])
def test_packing_images_into_shared_batches_changes_no_row(tiny, tmp_path, sampling):
    """Each image draws from its own (seed, idx) stream, so the rows equal one image at a time."""
    smoothed = SmoothedClassifier.from_checkpoint(tiny["model"], batch_size=64, device="cpu")
    data = load_dataset(tiny["data"], "test")
    logs = {}
    for window in (1, 7):
        logs[window] = tmp_path / f"w{window}.tsv"
        run_dataset(smoothed, data, logs[window], n0=20, n=200, seed=3, sampling=sampling, window=window,
                    progress=False)
    assert _without_time(_rows(logs[1])) == _without_time(_rows(logs[7]))
    for row in _rows(logs[7])[1:4]:  # and equal CERTIFY called on the image alone
        idx = int(row[0])
        cert = smoothed.certify(data.x[idx], 20, 200, 0.05, generator(3, idx), sampling=sampling)
        assert [int(row[2]), int(row[3]), int(row[4])] == [cert.predict, cert.count, cert.n]



@pytest.mark.parametrize("command, required, shown", [
    ("denoise", ["--classifier", "c"], {"lr", "depth", "width"}),
    ("substitute", ["--checkpoint", "c"], {"seed_size", "eps"}),
])
def test_the_flags_defaults_are_the_jobs_own(command, required, shown):
    """A flag that sets a keyword of the job takes the job's default and its help shows it: no default written twice."""
    import argparse

    from smoothcert import cli
    from smoothcert.attacks.substitute import JacobianAugmentation
    from smoothcert.runner import jobs

    library = cli.defaults(getattr(jobs, command))
    parser = cli.build_parser()
    args = vars(parser.parse_args([command, *required]))
    given = {name: value for name, value in args.items() if name in library and value is not None and name != "noise"}
    assert shown <= set(given) and len(given) >= len(shown) + 2  # and split, seed, device, method, ...
    for name, value in given.items():
        assert value == (Path(library[name]) if name == "out" else library[name]), name
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    helps = {action.dest: action.help for action in sub._actions}
    for name in shown:
        assert f"(default {library[name]:g}" in helps[name], name
    if command == "substitute":  # the substitute's own parameters: None passes them on, the help shows the default
        jbda = cli.defaults(JacobianAugmentation)
        for name in ("rounds", "lam", "kappa", "epochs"):
            assert args[name] is None and f"(default {jbda[name]:g})" in helps[name], name
