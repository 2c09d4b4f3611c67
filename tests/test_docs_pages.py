"""The user-facing pages speak of the product: no internal work-item numbers, no path of the machine
a page or log was made on, a README short enough to read, and CI running exactly the README's test
command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]
WORK_ITEM = re.compile(r"\bissues?\s*#?\s*\d+|(?<![\w&/])#\d+\b|\bPR\s*#?\d+", re.IGNORECASE)
# every committed text a user reads or resumes from: pages, benchmarks, and the logs' settings
COMMITTED = sorted({*PAGES, ROOT / "BENCHMARKS.md", *(ROOT / "benchmarks").rglob("*.py"),
                    *(ROOT / "docs/results").rglob("*.json")})
# an absolute path of a machine: a POSIX path under a home, work or scratch folder, or a drive letter
MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|root|home|Users|tmp|mnt|scratch|private|var/folders)/[\w.-]"
                          r"|\b[A-Z]:\\\\?[\w.-]")
TEST_COMMAND = ('python3 -m venv .venv && . .venv/bin/activate && pip install -c constraints.txt -e ".[test]" '
                "&& python -m pytest")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_no_work_item_numbers(page: Path):
    found = [(n, m[0]) for n, line in enumerate(page.read_text().splitlines(), 1) for m in WORK_ITEM.finditer(line)]
    assert not found, f"{page.relative_to(ROOT)} refers to internal work items: {found}"


def test_the_pattern_catches_work_item_numbers():
    for text in ("the recipe of issue 12", "(issue 10)", "issue #6", "see #13", "Issues 3 and 4", "PR #7"):
        assert WORK_ITEM.search(text), text
    for text in ("Table 1", "Theorem 1", "[link](#section-2)", "k = 45", "&#8212;", "Eq. 20"):
        assert not WORK_ITEM.search(text), text


@pytest.mark.parametrize("path", COMMITTED, ids=[p.relative_to(ROOT).as_posix() for p in COMMITTED])
def test_no_path_of_the_machine_it_was_made_on(path: Path):
    found = [(n, m[0]) for n, line in enumerate(path.read_text().splitlines(), 1) for m in MACHINE_PATH.finditer(line)]
    assert not found, f"{path.relative_to(ROOT)} names paths of the machine it was made on: {found}"


def test_the_pattern_catches_machine_paths():
    for text in ('"checkpoint": "/work/runs/k45/model"', "--out /home/ana/runs", "error: /tmp/tmpx1/locked.tsv",
                 "C:\\Users\\ana\\model", "`/root/.cache/smoothcert`"):
        assert MACHINE_PATH.search(text), text
    for text in ('"checkpoint": "runs/k45/model"', "runs/demo/k45/model", "~/.cache/smoothcert/data", "a/tmp/b",
                 "https://github.com/x/y/work/z", "L0/L2 radii", "Table 1: 4/work"):
        assert not MACHINE_PATH.search(text), text


def test_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in (ROOT / "README.md").read_text()
    assert TEST_COMMAND in (ROOT / ".ci/run").read_text().splitlines()


def test_one_version_everywhere():
    """The package, its metadata, the citation file and the docs name the same version."""
    import tomllib

    import smoothcert

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert smoothcert.__version__ == version
    assert f"\nversion: {version}\n" in (ROOT / "CITATION.cff").read_text()
    citing = (ROOT / "docs/citing.md").read_text()
    assert f"describes smoothcert {version}." in citing and f"version = {{{version}}}" in citing


ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`")
DIRECTIVE = re.compile(r"^::: ([\w.]+)\n(?:    options:\n      members: \[([^\]]*)\]\n)?", re.MULTILINE)


def test_docstrings_use_markdown_cross_references():
    """The API reference renders Markdown: a reStructuredText role would show up raw on the site."""
    found = [(path.relative_to(ROOT).as_posix(), n) for path in sorted((ROOT / "src").rglob("*.py"))
             for n, line in enumerate(path.read_text().splitlines(), 1) if ROLE.search(line)]
    assert not found, f"reStructuredText roles in docstrings (write [`name`][full.path] instead): {found[:10]}"


def _defining_module(name: str) -> str:
    """The module whose source defines ``smoothcert.<name>`` (a constant has no ``__module__``)."""
    import importlib
    import inspect

    import smoothcert

    value = getattr(smoothcert, name)
    module = getattr(value, "__module__", None)
    if module and module.startswith("smoothcert") and (inspect.isclass(value) or inspect.isfunction(value)):
        return module
    for path in sorted((ROOT / "src/smoothcert").rglob("*.py")):
        if re.search(rf"^{re.escape(name)}\b[^=\n]*=", path.read_text(), re.MULTILINE):
            dotted = ".".join(path.relative_to(ROOT / "src").with_suffix("").parts).removesuffix(".__init__")
            if getattr(importlib.import_module(dotted), name, None) is value:
                return dotted
    raise AssertionError(f"cannot find where smoothcert.{name} is defined")


def test_the_reference_renders_every_public_name_once():
    """Each name of ``smoothcert.__all__`` is rendered where it is defined; a package page lists only
    what the package defines itself, so no class appears twice."""
    import smoothcert

    rendered: dict[str, str | None] = {}
    for page in sorted((ROOT / "docs/reference").glob("*.md")):
        for module, members in DIRECTIVE.findall(page.read_text()):
            rendered[module] = members or None
    missing = []
    for name in smoothcert.__all__:
        module = _defining_module(name)
        members = rendered.get(module, "")
        if members == "" or (members is not None and name not in [m.strip() for m in members.split(",")]):
            missing.append(f"{name} ({module})")
    assert not missing, f"public names the API reference does not render: {missing}"
    packages = [m for m, members in rendered.items() if (ROOT / "src" / m.replace(".", "/") / "__init__.py").is_file()
                and any(other.startswith(m + ".") for other in rendered)]
    unrestricted = [m for m in packages if rendered[m] is None]
    assert not unrestricted, f"package pages that would render their submodules' classes again: {unrestricted}"
