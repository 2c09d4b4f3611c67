"""One validation layer: ArgumentError and the scalar checks live in smoothcert.errors, every old
import path still gives the same objects, and models, denoisers and the reproductions check their
counts with the one check_count, so each error names its argument (and the CLI its flag)."""

from __future__ import annotations

import pytest

import smoothcert.certificates
import smoothcert.certificates.checks
import smoothcert.classifiers.checks
import smoothcert.errors
from smoothcert import reproductions
from smoothcert.denoisers import DnCNN
from smoothcert.errors import ArgumentError
from smoothcert.models import build_model


def test_every_old_import_path_gives_the_same_objects():
    for name in ("ArgumentError", "check_alpha", "check_count", "check_integer", "check_positive"):
        shared = getattr(smoothcert.errors, name)
        assert getattr(smoothcert.certificates, name) is shared
        assert getattr(smoothcert.certificates.checks, name) is shared
    assert smoothcert.classifiers.checks.ArgumentError is ArgumentError


@pytest.mark.parametrize(("build", "argument"), [
    (lambda: DnCNN(1, depth=0), "depth"),
    (lambda: DnCNN(1, width=2.5), "width"),
    (lambda: build_model("mnist_cnn", in_channels=1, num_classes=0), "num_classes"),
])
def test_models_and_denoisers_name_the_argument(build, argument):
    with pytest.raises(ArgumentError) as err:
        build()
    assert err.value.argument == argument
    assert err.value.for_flag().startswith(f"--{argument.replace('_', '-')} must be a positive integer, got ")


def test_a_reproduction_count_names_its_flag(tmp_path):
    with pytest.raises(ArgumentError, match=r"^max_images must be a positive integer, got 0$") as err:
        reproductions.run("table1", max_images=0, out=tmp_path / "out", device="cpu", progress=False)
    assert err.value.for_flag() == "--max must be a positive integer, got 0"
    with pytest.raises(ArgumentError, match=r"^n0 must be a positive integer, got 1.5$") as err:
        reproductions.run("smoothing", n0=1.5, out=tmp_path / "out", device="cpu", progress=False)
    assert err.value.for_flag() == "--n0 must be a positive integer, got 1.5"
    assert not (tmp_path / "out").exists()
