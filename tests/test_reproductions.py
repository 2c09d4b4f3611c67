"""The reproductions package: not imported by ``import smoothcert``, still reachable from it, and
``run`` checks a table's options before anything runs (messages name the CLI flags)."""

import pkgutil
import re
import subprocess
import sys

import pytest

import smoothcert
from smoothcert import reproductions
from smoothcert.cli import build_parser


def _python(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_smoothcert_leaves_the_reproductions_unloaded():
    _python("import smoothcert, sys; assert 'smoothcert.reproductions' not in sys.modules")


def test_top_level_names_load_the_reproductions_on_first_use():
    from smoothcert import demo, reproduce, reproduce_denoised, reproduce_partition, reproduce_patch, reproduce_table7

    assert reproduce is reproductions.table1.reproduce and demo is reproductions.table1.demo
    assert (reproduce_denoised, reproduce_partition, reproduce_patch, reproduce_table7) == (
        reproductions.reproduce_denoised, reproductions.reproduce_partition, reproductions.reproduce_patch,
        reproductions.reproduce_table7)
    assert smoothcert.reproduce is reproduce  # importing the package did not rebind the function's name
    with pytest.raises(AttributeError, match="no attribute 'reproduce_everything'"):
        smoothcert.reproduce_everything  # noqa: B018


def test_the_function_reproduce_survives_importing_the_package_first():
    _python("import smoothcert.reproductions, sys; from smoothcert import reproduce; import smoothcert; "
            "assert callable(reproduce) and smoothcert.reproduce is reproduce "
            "and smoothcert.reproductions is sys.modules['smoothcert.reproductions']")


def test_no_reexported_name_shadows_a_module_of_the_package():
    for module in pkgutil.iter_modules(reproductions.__path__):
        assert getattr(reproductions, module.name) is sys.modules[f"smoothcert.reproductions.{module.name}"]


def test_cli_choices_are_the_tables():
    parser = build_parser()
    reproduce = parser._subparsers._group_actions[0].choices["reproduce"]
    table = next(action for action in reproduce._actions if action.dest == "table")
    assert tuple(table.choices) == reproductions.TABLES


@pytest.mark.parametrize(("table", "options", "message"), [
    ("table3", {}, "unknown table 'table3'; choose one of table1, table7"),
    ("table1", {"max_images": 0}, "max_images must be a positive integer, got 0"),
    ("smoothing", {"n0": -1}, "n0 must be a positive integer, got -1"),
    ("table8", {"alpha": 3}, "alpha must be in (0, 1)"),
    ("denoised", {"epochs": 3}, "epochs: reproduce denoised does not read it"),
    ("patch", {"n": 5}, "n: reproduce patch does not read it (it reads --epochs); drop n"),
    ("smoothing", {"ks": [10]}, "ks: reproduce smoothing does not read it"),
])
def test_run_checks_before_it_starts(tmp_path, table, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        reproductions.run(table, out=tmp_path / "out", device="cpu", progress=False, **options)
    assert not (tmp_path / "out").exists()


def test_demo_checks_its_counts(tmp_path):
    for options, message in (({"max_images": 0}, "max_images must"), ({"epochs": 0}, "epochs must")):
        with pytest.raises(ValueError, match=message):
            reproductions.demo(out=tmp_path / "out", device="cpu", progress=False, **options)
    assert not (tmp_path / "out").exists()
