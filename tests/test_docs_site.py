"""The API reference renders what a newcomer needs: a parameter table for every public callable,
no raw reStructuredText, every public name once.

The docstrings are checked in the source (always): each class and function of
``smoothcert.__all__``, and the classifiers' entry points, lists every parameter of its signature
in a Google-style ``Args:`` (or ``Attributes:``) section, the one mkdocstrings renders as a table.
The built site is checked too: ``mkdocs build --strict`` runs once per session into a temporary
folder, and the HTML must contain no reStructuredText role, must show ``SmoothedClassifier``'s
parameters as tables, and must render each public name exactly once. Those tests need the
``docs`` extra (``pip install -c constraints.txt -e ".[docs]"``; CI runs them after installing it)
and are skipped without mkdocs.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import smoothcert
from smoothcert.classifiers import DenoisedClassifier, DeterministicClassifier, SmoothedClassifier, Undefended
from test_docs_pages import _defining_module

ROOT = Path(__file__).resolve().parents[1]
SECTION = re.compile(r"^(?:Args|Attributes):\n((?:(?: {4}.*)?\n)*)", re.MULTILINE)
ITEM = re.compile(r"^ {4}(\*{0,2}\w+)(?: \([^)]*\))?:", re.MULTILINE)
ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):(?:`|<code>|~|\w)")
HEADING = re.compile(r'<h\d id="(smoothcert(?:\.\w+)+)" class="doc doc-heading"')
ENTRY_POINTS = [getattr(cls, method) for cls in (SmoothedClassifier, DeterministicClassifier, DenoisedClassifier,
                                                  Undefended)
                for method in ("from_checkpoint", "certify", "predict", "sample") if method in vars(cls)]


def parameters(obj: object) -> list[str] | None:
    """The parameter names of ``obj``'s signature (``*args``, ``**kwargs`` with their stars; a
    method's ``self`` left out), None when it has no inspectable signature."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    stars = {inspect.Parameter.VAR_POSITIONAL: "*", inspect.Parameter.VAR_KEYWORD: "**"}
    return [stars.get(p.kind, "") + p.name for p in signature.parameters.values() if p.name != "self"]


def documented(obj: object) -> set[str]:
    """The names an ``Args:``/``Attributes:`` section of ``obj``'s docstring describes (a class's own
    ``__init__`` docstring counts: the reference merges it into the class)."""
    docs = [inspect.getdoc(obj) or ""]
    init = vars(obj).get("__init__") if inspect.isclass(obj) else None
    if init is not None and init.__doc__:
        docs.append(inspect.getdoc(init))
    return {name for doc in docs for section in SECTION.findall(doc + "\n") for name in ITEM.findall(section)}


def public_callables() -> dict[str, object]:
    """Every class and function of ``smoothcert.__all__`` that takes parameters, and the classifiers'
    entry points, by name."""
    found = {name: getattr(smoothcert, name) for name in smoothcert.__all__}
    found = {name: obj for name, obj in found.items() if inspect.isclass(obj) or inspect.isfunction(obj)}
    found.update({method.__qualname__: method for method in ENTRY_POINTS})
    return {name: obj for name, obj in found.items() if parameters(obj)}


def undocumented_parameters(obj: object) -> tuple[list[str], list[str]]:
    """(parameters the docstring leaves out, names it describes that are no parameter)."""
    names, described = parameters(obj) or [], documented(obj)
    return [p for p in names if p not in described], sorted(described - set(names))


PUBLIC = public_callables()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_callable_documents_every_parameter(name: str):
    missing, unknown = undocumented_parameters(PUBLIC[name])
    assert not missing and not unknown, (f"{name}: parameters without an Args entry {missing}, "
                                         f"Args entries that are no parameter {unknown}")


def test_the_parameter_check_reads_google_sections():
    """The check is sensitive: prose naming a parameter is not a section; a section's entries are."""
    def prose(x: int, y: int) -> None:
        """Uses ``x`` and ``y``.

        x: not a section entry, this is prose.
        """

    def sectioned(x: int, *rest: int, **options: int) -> None:
        """Uses them.

        Args:
            x (int): The first.
            *rest: More.
            **options: Keywords, described over
                two lines.
            z: No such parameter.

        Returns:
            y: not an argument.
        """

    assert undocumented_parameters(prose) == (["x", "y"], [])
    assert undocumented_parameters(sectioned) == ([], ["z"])


def test_the_role_pattern_catches_raw_roles():
    for text in (":func:`smoothcert.make_noise`", ":class:<code>~smoothcert.Ablation</code>", ":meth:~x.y",
                 ":attr:name", ":mod:`smoothcert`"):
        assert ROLE.search(text), text
    for text in ("Table 1: class", "radius:func", "key: value", "<code>func</code>:"):
        assert not ROLE.search(text), text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs site, built once with ``mkdocs build --strict``."""
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip('mkdocs is not installed: pip install -c constraints.txt -e ".[docs]" to build the site')
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True)
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr[-3000:]}"
    return out


def pages(site: Path) -> dict[str, str]:
    return {page.relative_to(site).as_posix(): page.read_text() for page in sorted(site.rglob("*.html"))}


def test_built_site_has_no_raw_roles(site: Path):
    found = [(name, m[0]) for name, html in pages(site).items() for m in ROLE.finditer(html)]
    assert not found, f"raw reStructuredText roles in the built site: {found[:10]}"


def rendered_parameters(html: str, anchor: str) -> list[str]:
    """The names in the first column of the Parameters table of the object ``anchor`` (its own
    docstring, up to the next object's heading)."""
    start = html.index(f'id="{anchor}" class="doc doc-heading"')
    after = HEADING.search(html, start + 1)
    own = html[start:after.start() if after else len(html)]
    title = own.find('<span class="doc-section-title">Parameters:</span>')
    if title == -1:
        return []
    table = own[title:own.index("</table>", title)]
    return re.findall(r'<tr class="doc-section-item">\s*<td>\s*<code>([^<]+)</code>', table)


@pytest.mark.parametrize("member", ["", ".from_checkpoint", ".certify", ".predict", ".sample"])
def test_smoothed_classifier_shows_its_parameters(site: Path, member: str):
    """SmoothedClassifier's constructor (merged into the class) and entry points render their
    parameters as a table, in signature order."""
    html = (site / "reference/classifiers/index.html").read_text()
    obj = getattr(SmoothedClassifier, member[1:]) if member else SmoothedClassifier
    assert rendered_parameters(html, f"smoothcert.classifiers.smoothed.SmoothedClassifier{member}") == parameters(obj)


def test_every_public_name_is_rendered_once(site: Path):
    """Each name of ``smoothcert.__all__`` has exactly one heading in the built site, wherever it is
    defined (a heading counts when its path resolves to the same object)."""
    counts: Counter[str] = Counter()
    for html in pages(site).values():
        for path in HEADING.findall(html):
            name = path.rsplit(".", 1)[1]
            if name in smoothcert.__all__ and resolve(path) is getattr(smoothcert, name):
                counts[name] += 1
    wrong = {name: counts[name] for name in smoothcert.__all__ if counts[name] != 1}
    assert not wrong, f"public names rendered other than once (name: headings): {wrong}"


def resolve(path: str) -> object:
    """The object a dotted path names (a module, or attributes of one); None if there is none."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part, None)
        return obj
    return None


def test_reference_pages_render_every_defining_module(site: Path):
    """The anchors the rendering check looks for exist: every public name's defining module is a
    heading of the reference (guards the check above against a changed anchor scheme)."""
    headings = {path for html in pages(site).values() for path in HEADING.findall(html)}
    missing = [name for name in smoothcert.__all__ if f"{_defining_module(name)}.{name}" not in headings]
    assert not missing, f"public names without a heading at their defining module: {missing}"
