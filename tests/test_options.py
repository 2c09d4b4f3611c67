"""The option bundles: each refuses a bad field by name (and the command line by its flag), the
flags are derived from the fields with the fields' defaults, and a job takes a bundle as an object or
its fields as keywords alike."""

import argparse
import dataclasses
import inspect

import pytest

from smoothcert.certificates.sequential import Adaptive
from smoothcert.errors import ArgumentError
from smoothcert.options import BUNDLES, DataOptions, RuntimeOptions, SamplingOptions, gather
from smoothcert.runner.jobs import evaluate


@pytest.mark.parametrize(("cls", "field", "value", "flag"), [
    (DataOptions, "split", "val", "--split"),
    (DataOptions, "skip", 0, "--skip"),
    (DataOptions, "max_images", 0, "--max"),
    (DataOptions, "max_images", 2.5, "--max"),
    (DataOptions, "dataset", 5, "--dataset"),
    (SamplingOptions, "n0", -1, "--n0"),  # 0 is the folded one-radius test (refused where it cannot be)
    (SamplingOptions, "n", -3, "--n"),
    (SamplingOptions, "alpha", 1.5, "--alpha"),
    (RuntimeOptions, "seed", -1, "--seed"),
    (RuntimeOptions, "seed", True, "--seed"),
    (RuntimeOptions, "device", "tpu", "--device"),
    (RuntimeOptions, "batch_size", 0, "--batch-size"),
    (RuntimeOptions, "compile", "yes", "--compile"),
    (RuntimeOptions, "amp", "fp8", "--amp"),
])
def test_a_bad_field_is_refused_by_its_name_and_flag(cls, field, value, flag):
    with pytest.raises(ArgumentError) as err:
        cls(**{field: value})
    assert err.value.argument == field and str(err.value).startswith(field)
    assert err.value.for_flag().startswith(flag + " ")


def test_an_unknown_sampling_is_refused():
    with pytest.raises(ValueError, match="unknown sampling 'sometimes'"):
        SamplingOptions(sampling="sometimes")
    assert SamplingOptions(sampling=Adaptive(radius=4)).sampling == Adaptive(radius=4)


@pytest.mark.parametrize("cls", [DataOptions, SamplingOptions, RuntimeOptions])
def test_the_flags_take_the_fields_defaults_and_parse_back_into_the_bundle(cls):
    parser = argparse.ArgumentParser()
    cls.add_flags(parser)
    assert cls.from_args(parser.parse_args([])) == cls()  # no default written twice
    given = {DataOptions: ["--dataset", "npz:x.npz", "--split", "train", "--skip", "3", "--max", "7"],
             SamplingOptions: ["--n0", "10", "--n", "200", "--alpha", "0.01", "--sampling", "fixed"],
             RuntimeOptions: ["--seed", "4", "--device", "cpu", "--batch-size", "64", "--compile", "--amp", "bf16",
                              "--quiet"]}[cls]
    expected = {DataOptions: DataOptions("npz:x.npz", "train", None, 3, 7),
                SamplingOptions: SamplingOptions(10, 200, 0.01, "fixed"),
                RuntimeOptions: RuntimeOptions(4, "cpu", 64, "on", "auto", "bf16", False)}[cls]
    assert cls.from_args(parser.parse_args(given)) == expected


def test_a_subcommand_may_give_its_own_default_and_help():
    parser = argparse.ArgumentParser()
    DataOptions.add_flags(parser, ("max_images",), defaults={"max_images": 120},
                          help={"max_images": "digits (default {default})"})
    action = next(a for a in parser._actions if a.dest == "max_images")
    assert action.option_strings == ["--max"] and action.default == 120 and action.help == "digits (default 120)"
    assert DataOptions.from_args(parser.parse_args([])) == DataOptions(max_images=120)


READS = {"data": ("dataset", "max_images"), "runtime": ("seed", "device")}


def test_gather_fills_loose_keywords_into_the_bundles():
    data, runtime = gather("job", {"max_images": 5, "seed": 3}, READS)
    assert data == DataOptions(max_images=5) and runtime == RuntimeOptions(seed=3)
    data, runtime = gather("job", {"seed": 3}, READS, data=DataOptions(dataset="mnist5k"))
    assert data == DataOptions(dataset="mnist5k") and runtime.seed == 3


def test_gather_refuses_what_the_job_does_not_read_or_is_given_twice():
    with pytest.raises(TypeError, match=r"job\(\) got an unexpected keyword argument 'skip'"):
        gather("job", {"skip": 2}, READS)
    with pytest.raises(ArgumentError, match="job does not read skip"):
        gather("job", {}, READS, data=DataOptions(skip=2))
    with pytest.raises(ArgumentError, match="max_images is given twice"):
        gather("job", {"max_images": 4}, READS, data=DataOptions(max_images=5))
    with pytest.raises(ArgumentError, match="data must be a DataOptions"):
        gather("job", {}, READS, data=RuntimeOptions())
    *_, rest = gather("job", {"k": 45, "seed": 1}, READS, rest=True)
    assert rest == {"k": 45}


def test_every_job_documents_its_bundles_under_the_keywords_of_BUNDLES():
    from smoothcert.runner import jobs
    from smoothcert.training import train_classifier

    for job in (jobs.evaluate, jobs.attack, jobs.substitute, jobs.denoise, jobs.oracle_factory, train_classifier):
        taken = set(inspect.signature(job).parameters) & {"data", "samples", "runtime"}
        assert taken and taken <= set(BUNDLES), job.__name__


def test_a_job_runs_alike_with_bundles_or_loose_keywords(tiny_checkpoint, tmp_path):
    data_spec, checkpoint = tiny_checkpoint
    loose = evaluate(checkpoint, tmp_path / "loose.tsv", dataset=data_spec, max_images=3, n0=10, n=50,
                     sampling="fixed", device="cpu", progress=False)
    bundled = evaluate(checkpoint, tmp_path / "bundled.tsv", data=DataOptions(dataset=data_spec, max_images=3),
                       samples=SamplingOptions(n0=10, n=50, sampling="fixed"),
                       runtime=RuntimeOptions(device="cpu", progress=False))
    columns = lambda path: [line.split("\t")[:5] for line in path.read_text().splitlines()]  # noqa: E731
    assert columns(loose) == columns(bundled) and len(columns(loose)) == 4
    with pytest.raises(TypeError, match="unexpected keyword argument 'max'"):
        evaluate(checkpoint, tmp_path / "x.tsv", max=3)
    assert not (tmp_path / "x.tsv").exists()


def test_the_bundles_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        DataOptions().skip = 2  # type: ignore[misc]
