"""The results tables of README.md and docs/, regenerated from the committed logs under docs/results/.

A table is framed by two markers; what lies between them must be exactly what its marker renders::

    <!-- results: report docs/results/demo/certify.tsv docs/results/demo/predict.tsv --radii 0,4,8 -->

    | run | n | accuracy (abstained) | ... |

    <!-- /results -->

* ``report LOG... [--radii R,...]`` is ``smoothcert report LOG... --radii R,... --markdown`` (the
  arguments go through the real parser; rows are named as ``smoothcert report`` names them; attack
  logs add Table 2 and its soundness column). A certify or predict log listed in
  ``docs/results/pending.txt`` (a run whose logs are not committed yet) becomes a "run pending" row
  without numbers; every other log must exist.
* ``information LOG... [--radii R,...]`` is Table 7's view of certify logs: per log its noise, CERTIFY
  accuracy, median and certified accuracies, the largest radius its n and alpha can certify and
  the mutual information of one noisy sample (Eq. 20 / 21), all from the log and its settings
  (:func:`smoothcert.reproductions.table7.certifiable_and_information`).
* ``substitute RESULT.json...`` is the black-box attack of ``smoothcert substitute --out``: per result
  its oracle, seed images, rounds, oracle queries, the substitute's accuracy and agreement with
  the oracle, and the FGSM transfer rate on the held-out images.
* ``radii`` is the largest radius each number of samples n can certify (ablation with Corollary 1
  on MNIST at alpha 0.05, Gaussian smoothing at alpha 0.001), computed by the library's certificates.
* ``support`` is the support matrix of the registered noises: their classifier kind, certificates,
  samplings, the training methods whose needs they meet, what an attack queries, denoising.
* ``paper TABLE KEY...`` is a table of the published numbers in
  :mod:`smoothcert.reproductions.published` (``table1 45``, ``table7``, ``consistency``, ``decrop``,
  ``patch``, ``partition``).

A figure is named by a one-line marker above its image::

    <!-- figure: report docs/results/demo/certify.tsv docs/results/demo/certify-adaptive.tsv --plot docs/img/x.png -->

It is what ``smoothcert report LOG... --plot PNG`` draws; the PNG records the digest of the curves it
shows (:func:`smoothcert.reports.figures.curves_digest`), which must equal the digest of the curves
the committed logs give.

``python tests/docs_results.py --write`` rewrites every framed table and every figure from its logs
(after new logs are committed); ``tests/test_docs_results.py`` fails while any table or figure
differs from its rendering.
"""

from __future__ import annotations

import functools
import re
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PENDING = ROOT / "docs/results/pending.txt"
FIGURE = re.compile(r"<!-- figure: (?P<spec>report .*?) -->")
MARKER = re.compile(r"<!-- results: (?P<spec>.*?) -->\n(?P<body>.*?)<!-- /results -->", re.DOTALL)


def pages() -> list[Path]:
    """README.md and every Markdown page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def pending_logs() -> set[str]:
    """The logs (paths relative to the repository) of runs announced but not committed yet."""
    if not PENDING.is_file():
        return set()
    lines = (line.split("#")[0].strip() for line in PENDING.read_text().splitlines())
    return {line for line in lines if line}


def _row_names(paths: list[Path]) -> list[str]:
    """``smoothcert report``'s run names: the file stem, or folder/stem when two stems are equal."""
    stems = [p.stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [f"{p.parent.name}/{p.stem}" for p in paths]


def render_report(argv: list[str]) -> str:
    """The markdown table ``smoothcert report ARGV --markdown`` prints, with pending logs as empty rows."""
    from smoothcert.cli import build_parser
    from smoothcert.reports import format_table, read_log, report, summarize

    args = build_parser().parse_args(["report", *argv])
    pending = pending_logs()
    if not any(path.as_posix() in pending for path in args.logs):  # everything committed: exactly `smoothcert report`
        return report([ROOT / path for path in args.logs], args.radii, markdown=True)
    rows: list[str | None] = []
    logs = []
    for path, name in zip(args.logs, _row_names(args.logs)):
        if path.as_posix() in pending:
            rows.append(f"{name}: run pending")
            continue
        if not (ROOT / path).is_file():
            raise FileNotFoundError(f"{path}: the log a results table names is not committed "
                                    f"(list it in {PENDING.relative_to(ROOT)} if its run is still going)")
        logs.append(read_log(ROOT / path, name))
        rows.append(None)
    if not logs:
        return "\n".join(f"- {row} (its numbers appear here once its logs are committed)" for row in rows)
    table = format_table([summarize(log, args.radii) for log in logs], args.radii, markdown=True).splitlines()
    header, rule, body = table[0], table[1], iter(table[2:])
    width = header.count("|") - 1  # columns
    lines = [header, rule]
    for row in rows:
        if row is None:
            lines.append(next(body))
        else:
            name, note = row.split(": ")
            lines.append("| " + " | ".join([name, note, *[""] * (width - 2)]) + " |")
    return "\n".join(lines)


@functools.cache
def _image_shape(dataset: str, split: str) -> tuple[int, int, int]:
    from smoothcert.data import load_dataset

    return load_dataset(dataset, split).image_shape


def render_information(argv: list[str]) -> str:
    """Table 7's columns for certify logs: noise, accuracy, median, certified accuracies, the
    largest certifiable radius and the mutual information of a noisy sample."""
    import json

    from smoothcert.cli import build_parser
    from smoothcert.reports import read_log, summarize
    from smoothcert.reproductions.table7 import certifiable_and_information

    args = build_parser().parse_args(["report", *argv])
    header = ["run", "noise", "accuracy (abstained)", "median", *(f"r={r:g}" for r in args.radii),
              "largest certifiable radius", "I (bits per sample)"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for path, name in zip(args.logs, _row_names(args.logs)):
        settings = json.loads((ROOT / path).with_name(path.name + ".json").read_text())
        summary = summarize(read_log(ROOT / path, name), args.radii)
        noise = settings["noise"]
        shape = _image_shape(settings["dataset"], settings["split"])
        cap, bits = certifiable_and_information(noise, settings["n"], settings["alpha"], shape)
        kind = f"Lee et al., kappa={noise['kappa']:g}" if noise["noise"] == "lee" else f"ablation, k={noise['k']}"
        median = "N/A" if summary["median"] == float("-inf") else f"{summary['median']:g}"
        cells = [name, kind, f"{100 * summary['accuracy']:.2f}% ({100 * summary['abstained']:.2f}%)", median,
                 *(f"{100 * summary['certified_accuracy'][r]:.2f}%" for r in args.radii), f"{cap:g}", f"{bits:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows])


SAMPLE_COUNTS = (100, 1_000, 10_000, 100_000, 1_000_000)


def render_substitute(argv: list[str]) -> str:
    """One row per ``smoothcert substitute`` result file (JSON)."""
    import json

    rows = []
    for path in argv:
        result = json.loads((ROOT / path).read_text())
        rows.append([Path(path).stem, f"`{result['checkpoint']}`", str(result["seed_size"]), str(len(result["history"])),
                     f"{result['queries']:,}", f"{100 * result['accuracy']:.1f}%", f"{100 * result['agreement']:.1f}%",
                     f"{result['eps']:g}", str(result["heldout_size"]), f"{100 * result['transfer_rate']:.1f}%",
                     f"{100 * result['oracle_clean_error']:.1f}%", f"{100 * result['oracle_abstain_rate']:.1f}%"])
    return _markdown(["result", "oracle", "seed images", "rounds", "oracle queries", "substitute accuracy",
                      "agreement with oracle", "FGSM ε", "held-out images", "transfer rate", "oracle clean error",
                      "oracle abstains"], rows)


def render_radii() -> str:
    """The largest radius each n can certify: ablation (Corollary 1, MNIST d = 784, alpha 0.05) and
    Gaussian smoothing (alpha 0.001), from the library's certificate functions."""
    from smoothcert.certificates import max_certifiable_radius, max_gaussian_radius

    def gaussian(n: int, sigma: float) -> str:
        radius = float(max_gaussian_radius(n, 0.001, sigma))
        return "none" if radius != radius else f"{radius:.2f}"

    rows = [[f"{n:,}", *(f"{int(max_certifiable_radius(n, 0.05, 784, k))}" for k in (20, 45, 70)),
             *(gaussian(n, sigma) for sigma in (0.25, 0.5, 1.0))] for n in SAMPLE_COUNTS]
    return _markdown(["n", "ablation k=20 (pixels)", "k=45", "k=70", "Gaussian σ=0.25 (L2)", "σ=0.5", "σ=1"], rows)


def render_support() -> str:
    """What works with what, from the registries: noises, certificates, samplings, methods, oracles."""
    from smoothcert.noises import noise_class, noise_kinds
    from smoothcert.training.methods import METHODS, supports

    queried = {"smoothed": "PREDICT on noisy copies", "deterministic": "the exact vote", "model": "the model itself"}
    rows = []
    for kind in noise_kinds():
        cls = noise_class(kind)
        methods = [name for name, method in METHODS.items() if supports(method, cls)]
        certificates = ", ".join(cls.certificates) or ("patch side" if getattr(cls, "certifies_patches", None)
                                                       else "L0 vote" if cls.classifier == "deterministic" else "-")
        sampling = ", ".join(cls.samplings) or ("every copy once" if cls.classifier == "deterministic" else "-")
        rows.append([kind, cls.classifier, certificates, sampling,
                     ", ".join(methods) if len(methods) < len(METHODS) else "all",
                     queried[cls.classifier], "yes" if cls.denoisable else "-"])
    return _markdown(["noise (`--noise`)", "classifier", "certificates (`--certificate`)", "sampling",
                      "training methods (`--method`)", "attacks query", "`denoise`"], rows)


def render_paper(argv: list[str]) -> str:
    """A markdown table of published numbers (smoothcert.reproductions.published), with their source."""
    from smoothcert.reproductions import published as p

    def table(header: list[str], rows: list[list[object]]) -> str:
        lines = [header, ["---"] * len(header), *[[str(c) for c in row] for row in rows]]
        return "\n".join("| " + " | ".join(map(str, cells)) + " |" for cells in lines)

    def triple(row: tuple[float, float, int | None]) -> list[object]:
        return [f"{row[0]:.2f}% ({row[1]:.2f}%)", "N/A" if row[2] is None else row[2]]

    what, keys = argv[0], argv[1:]
    if what == "table1":
        return table(["paper: k", "accuracy (abstained)", "median cert.", "source"],
                     [[k, *triple(p.TABLE1[int(k)]), "Levine & Feizi 2020, Table 1 (full MNIST)"] for k in keys])
    if what == "table8":
        return table(["paper: encoding (k=45)", "accuracy (abstained)", "median cert.", "source"],
                     [[e, *triple(row), "Levine & Feizi 2020, Table 8"] for e, row in p.TABLE8.items()])
    if what == "table7":
        return table(["paper: dataset", "Lee et al. 2019: median cert.", "randomized ablation: median cert.", "source"],
                     [[d, medians["lee"], medians["ablation"], "Levine & Feizi 2020, Table 7"] for d, medians in p.TABLE7.items()])
    if what == "consistency":
        radii = [f"r={r:g}" for r in p.CONSISTENCY_RADII]
        return table(["paper: sigma", "method", "ACR", *radii],
                     [[s, m, f"{acr:.3f}", *acc] for s, methods in p.CONSISTENCY_MNIST.items()
                      for m, (acr, acc) in methods.items()])
    if what == "decrop":
        radii = [f"r={r:g}" for r in p.DENOISED_RADII]
        rows = [[f"DE-CROP supplement, Table 1: {name}", *acc] for name, acc in p.DECROP_TABLE1.items()]
        rows += [[f"Salman et al. 2020: {name}", "-", *acc] for name, acc in p.SALMAN_CIFAR10.items()]
        return table(["paper (CIFAR-10, sigma = 0.25)", *radii], rows)
    if what == "patch":
        return table(["paper (CIFAR-10, 5x5 patches)", "clean accuracy %", "certified accuracy %"],
                     [[name, clean, cert] for name, (clean, cert) in p.PATCH_CIFAR10.items()])
    if what == "partition":
        return table(["paper (Hammoudeh & Lowd 2024, full MNIST)", "median certified L0 radius"],
                     [[name, median] for name, median in p.FPA_MNIST_MEDIAN.items()])
    raise ValueError(f"unknown published table {what!r}")


def figure_logs(spec: str) -> tuple[Path, list]:
    """(the PNG, the certify logs it plots, named as ``smoothcert report`` names them) of a figure marker."""
    from smoothcert.cli import build_parser
    from smoothcert.reports import is_attack_log, read_log

    args = build_parser().parse_args(shlex.split(spec))
    if args.plot is None:
        raise ValueError(f"figure marker without --plot: {spec}")
    logs = [read_log(ROOT / path, name) for path, name in zip(args.logs, _row_names(args.logs))
            if not is_attack_log(ROOT / path)]
    return ROOT / args.plot, [log for log in logs if log.radius is not None]


def figure_is_current(spec: str) -> bool:
    """Whether the PNG of a figure marker exists and shows the curves its logs give."""
    from smoothcert.reports.figures import curves_digest, figure_digest

    png, logs = figure_logs(spec)
    return png.is_file() and figure_digest(png) == curves_digest(logs)


def draw_figure(spec: str) -> Path:
    """Draw the PNG of a figure marker from its logs."""
    from smoothcert.reports import plot_certified_accuracy

    png, logs = figure_logs(spec)
    return plot_certified_accuracy(logs, png)


def figures(text: str) -> list[str]:
    """The spec of every figure marker in ``text``."""
    return [m["spec"] for m in FIGURE.finditer(text)]


def render(spec: str) -> str:
    """What a marker's ``spec`` (``report ...`` or ``paper ...``) renders."""
    kind, *argv = shlex.split(spec)
    if kind == "report":
        return render_report(argv)
    if kind == "paper":
        return render_paper(argv)
    if kind == "information":
        return render_information(argv)
    if kind == "radii":
        return render_radii()
    if kind == "substitute":
        return render_substitute(argv)
    if kind == "support":
        return render_support()
    raise ValueError(f"unknown results marker {kind!r}: expected report, information, substitute, radii, support or paper")


def tables(text: str) -> list[tuple[str, str]]:
    """(spec, the text between the markers, stripped) of every framed table in ``text``."""
    return [(m["spec"], m["body"].strip()) for m in MARKER.finditer(text)]


def rewrite(text: str) -> str:
    """``text`` with every framed table replaced by its rendering."""
    return MARKER.sub(lambda m: f"<!-- results: {m['spec']} -->\n\n{render(m['spec'])}\n\n<!-- /results -->", text)


def main(argv: list[str]) -> int:
    """``--write``: rewrite the tables and figures in place; otherwise list those that differ (exit 1)."""
    stale = 0
    for page in pages():
        text = page.read_text()
        for spec in figures(text):
            if not figure_is_current(spec):
                stale += 1
                print(f"{page.relative_to(ROOT)}: figure {spec} {'redrawn' if '--write' in argv else 'differs from its logs'}")
                if "--write" in argv:
                    draw_figure(spec)
        new = rewrite(text)
        if new != text:
            stale += 1
            print(f"{page.relative_to(ROOT)}: {'rewritten' if '--write' in argv else 'differs from its logs'}")
            if "--write" in argv:
                page.write_text(new)
    return 1 if stale and "--write" not in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
