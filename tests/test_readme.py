"""Every example in README.md and in the docs pages (docs/**/*.md) runs, and stays running.

* The ```python blocks of a page run in order, in one namespace per page (as a reader pastes them
  into one session), in a temporary working folder. To take seconds rather than hours they run
  "small": the fixture ``small_settings`` monkeypatches, for the duration of the test only, (1)
  every recipe to 1 epoch, (2) ``load_dataset`` to the first 64 images of a split, (3) the sample
  counts of CERTIFY/PREDICT (``n0``, ``n``) and of smoothed attack oracles (``n``, ``n_check``)
  and the attacks' query budgets (``max_queries``) to small caps. The caps wrap the real
  functions and bind the page's arguments against their real signatures first, so a renamed or
  removed parameter still fails. No test-only switch exists in the library. Checkpoints a block
  reads but the docs make with shell commands (``runs/clean``, ``runs/clean-decrop``) are made
  small here first.
* Every ``smoothcert ...`` command in a fenced shell block (also after ``&&``, behind
  environment assignments, or launched as ``python -m smoothcert`` / ``torchrun ... -m
  smoothcert``) is parsed by the real parser, ``smoothcert.cli.build_parser()``: a renamed flag
  or subcommand fails here. The module a ``-m`` launcher names must exist.
* Inline `smoothcert SUBCOMMAND --flag ...` mentions in the prose name a real subcommand and only
  its flags (they may leave out required arguments); inline `--flag ...` spans name flags some
  subcommand has.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from smoothcert.attacks import Pointwise, SmoothedOracle, SparseRS
from smoothcert.checkpoint import load_checkpoint
from smoothcert.cli import build_parser
from smoothcert.data import load_dataset
from smoothcert.classifiers.smoothed import SmoothedClassifier
from smoothcert.training import RECIPES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TEXTS = {page.relative_to(ROOT).as_posix(): page.read_text() for page in PAGES}
FENCED = re.compile(r"^```([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
PYTHON_BLOCKS = {name: [code for lang, code in FENCED.findall(text) if lang.strip() == "python"]
                 for name, text in TEXTS.items()}
SHELL_BLOCKS = {name: [code for lang, code in FENCED.findall(text) if lang.strip() in ("", "bash", "sh", "shell", "console")]
                for name, text in TEXTS.items()}
INLINE = [(name, " ".join(span.split())) for name, text in TEXTS.items() for span in re.findall(r"`([^`]+)`", FENCED.sub("", text))]
SCRIPT_PAGES = "docs/benchmarks/"  # bare --flag spans there are the benchmark scripts' options
CONTROL = {"&&", "||", ";", "|", "&"}
LAUNCHERS = {"nohup", "time", "env"}


def _commands(block: str) -> list[list[str]]:
    """The ``smoothcert`` argument lists of the shell commands in ``block`` (``-m MODULE ...`` for a
    ``python -m`` or ``torchrun -m`` launch); redirections and comments are dropped."""
    found = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True  # punctuation_chars still splits off && ; | > (comments are dropped)
        segment: list[str] = []
        for token in [*lexer, ";"]:
            if token not in CONTROL:
                segment.append(token)
                continue
            redirect = next((i for i, t in enumerate(segment) if re.fullmatch(r"[<>]+&?", t)), len(segment))
            segment = segment[: redirect - (redirect > 0 and segment[redirect - 1].isdigit())]
            while segment and (segment[0] in LAUNCHERS or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", segment[0])):
                segment.pop(0)
            if segment and Path(segment[0]).name == "smoothcert":
                found.append(segment[1:])
            elif "-m" in segment[:-1] and segment[segment.index("-m") + 1].split(".")[0] == "smoothcert":
                found.append(segment[segment.index("-m"):])
            segment = []
    return found


PAGE_COMMANDS = [(name, command) for name, blocks in SHELL_BLOCKS.items() for block in blocks
                 for command in _commands(block)]
COMMANDS = [command for _, command in PAGE_COMMANDS]


def _subparsers() -> dict[str, object]:
    parser = build_parser()
    return next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices


@pytest.mark.parametrize("page,argv", PAGE_COMMANDS, ids=[f"{p}: {' '.join(c)[:70]}" for p, c in PAGE_COMMANDS])
def test_docs_command_line_parses(page, argv, capsys):
    if argv[0] == "-m":  # python -m smoothcert ... / torchrun ... -m smoothcert ...
        module, argv = argv[1], argv[2:]
        argv = argv[1:] if argv[:1] == ["--"] else argv  # torchrun: "--" ends its own options
        runnable = module if module != "smoothcert" else "smoothcert.__main__"
        assert importlib.util.find_spec(runnable) is not None, f"`-m {module}` cannot run: no module {runnable}"
    try:
        build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"{page}: command `smoothcert {shlex.join(argv)}` does not parse: {capsys.readouterr().err}")


def test_command_extraction():
    block = ("python3 -m venv .venv && . .venv/bin/activate && pip install smoothcert && smoothcert demo\n"
             "# smoothcert train --out commented\n"
             "OMP_NUM_THREADS=1 nohup smoothcert certify --checkpoint m \\\n  --out c.tsv > log.txt 2>&1 &\n"
             "OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m smoothcert certify --checkpoint m --out 'a b.tsv'\n"
             "python -m pytest -q tests/test_readme.py\n"
             "$ smoothcert report c.tsv\n")
    assert _commands(block) == [["demo"], ["certify", "--checkpoint", "m", "--out", "c.tsv"],
                                ["-m", "smoothcert", "certify", "--checkpoint", "m", "--out", "a b.tsv"],
                                ["report", "c.tsv"]]


def test_docs_have_the_commands_under_test():
    """The extraction works: every subcommand appears in some page, the README's tour among them
    (guards against a silent zero)."""
    subcommands = {c[0] for c in COMMANDS if c[0] != "-m"}
    assert set(_subparsers()) <= subcommands
    assert {"train", "certify", "predict", "report", "attack"} <= {c[0] for p, c in PAGE_COMMANDS if p == "README.md"}


def test_inline_mentions_name_real_subcommands_and_flags():
    subparsers = _subparsers()
    every_flag = {flag for p in subparsers.values() for a in p._actions for flag in a.option_strings}
    checked = 0
    for page, span in INLINE:
        tokens = span.split()
        if tokens[0] == "smoothcert" and len(tokens) > 1 and re.fullmatch(r"[a-z][a-z0-9-]*", tokens[1]):  # not <sub>, ...
            assert tokens[1] in subparsers, f"the docs mention `{span}`: no subcommand {tokens[1]!r}"
            flags = {f for a in subparsers[tokens[1]]._actions for f in a.option_strings}
            assert {t for t in tokens if t.startswith("--")} <= flags, f"the docs mention `{span}`: unknown flag"
            checked += 1
        elif tokens[0].startswith("--") and not page.startswith(SCRIPT_PAGES):
            for token in tokens:
                flag = token.split("=")[0]
                assert not flag.startswith("--") or flag in every_flag, f"the docs mention `{span}`: no flag {flag}"
            checked += 1
    assert checked > 10


def _capped(target, **caps: int):
    """``target`` with the arguments ``caps`` names lowered to at most the cap, after binding the
    caller's arguments to ``target``'s real signature (so unknown or renamed arguments still fail)."""
    signature = inspect.signature(target)

    @functools.wraps(target)
    def call(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        for name, cap in caps.items():
            if bound.arguments.get(name) is not None:
                bound.arguments[name] = min(bound.arguments[name], cap)
        return target(*bound.args, **bound.kwargs)

    return call


def _replace_everywhere(monkeypatch, original, replacement) -> None:
    """Point every ``smoothcert`` module attribute bound to ``original`` at ``replacement``."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "smoothcert":
            for attr, value in list(vars(module).items()):
                if value is original:
                    monkeypatch.setattr(module, attr, replacement)


@pytest.fixture
def small_settings(monkeypatch, tmp_path):
    for name, recipe in RECIPES.items():
        monkeypatch.setitem(RECIPES, name, replace(recipe, epochs=1))

    def first_images(spec, split="test", root=None):
        data = load_dataset(spec, split, root)
        return data.subset(range(min(64, len(data))))

    _replace_everywhere(monkeypatch, load_dataset, functools.wraps(load_dataset)(first_images))
    monkeypatch.setattr(SmoothedClassifier, "certify", _capped(SmoothedClassifier.certify, n0=32, n=64))
    monkeypatch.setattr(SmoothedClassifier, "predict", _capped(SmoothedClassifier.predict, n=64))
    _replace_everywhere(monkeypatch, SmoothedOracle, _capped(SmoothedOracle, n=16, n_check=16))
    for attack in (Pointwise, SparseRS):
        _replace_everywhere(monkeypatch, attack, _capped(attack, max_queries=40))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _make_checkpoints_the_shell_commands_make(root: Path) -> None:
    """``runs/clean`` and ``runs/clean-decrop`` through the functions behind ``smoothcert train --noise none``
    and ``smoothcert denoise`` (small: the fixture's 1 epoch on 64 images; a 2-layer MSE denoiser)."""
    from smoothcert import denoise, train_classifier

    train_classifier("mnist5k", root / "runs/clean", noise="none", device="cpu", progress=False)
    denoise(root / "runs/clean", method="mse", epochs=1, depth=2, width=4, out=root / "runs/clean-decrop",
            device="cpu", progress=False)


PYTHON_PAGES = [name for name, blocks in PYTHON_BLOCKS.items() if blocks]


def test_readme_and_docs_have_python_blocks():
    assert "README.md" in PYTHON_PAGES and len(PYTHON_PAGES) >= 3


@pytest.mark.parametrize("page", PYTHON_PAGES)
def test_python_blocks_run(page, small_settings, capsys):
    blocks = PYTHON_BLOCKS[page]
    if any("runs/clean" in block for block in blocks):
        _make_checkpoints_the_shell_commands_make(small_settings)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for number, block in enumerate(blocks, start=1):
        exec(compile(block, f"{page} python block {number}", "exec"), namespace)  # noqa: S102 - our own docs
    for out in re.findall(r"""\bout=["']([^"']+)["']""", "".join(blocks)):  # fit(..., out=...) wrote a checkpoint
        model, config = load_checkpoint(small_settings / out)
        assert config["epoch"] == 1 and isinstance(model, torch.nn.Module)
    assert capsys.readouterr().out.strip()  # the examples print their results
