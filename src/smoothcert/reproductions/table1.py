"""Levine & Feizi (2020), Table 1 (k sweep) and Table 8 (NULL encodings) at our scale, and the demo.

The paper trains on full MNIST (60,000 training and 10,000 test digits); ``reproduce`` runs the
same protocol (n0 = 1,000, n = 10,000, alpha = 0.05, Corollary 1) at a scale chosen by the user, by
default on mnist5k (4,000 training digits) with the CPU recipe, and prints our numbers beside the
paper's. ``demo`` is the README's main job: Table 1's k = 45 row, then the same digits certified
and predicted with adaptive sampling beside the fixed runs (``compare_sampling``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..options import DataOptions, RuntimeOptions, SamplingOptions, gather
from ..reports import format_table, read_log, summarize
from ..runner.jobs import evaluate
from .common import (
    RUNTIME,
    accuracy_cell,
    check_counts,
    markdown,
    median_cell,
    publish,
    train_and_certify,
)
from .published import TABLE1, TABLE8

TABLE1_DEFAULT_KS = (10, 20, 45, 70, 100)


def _paper_cells(row: tuple[float, float, int | None] | None) -> list[str]:
    if row is None:
        return ["-", "-"]
    acc, abstained, median = row
    return [f"{acc:.2f}% ({abstained:.2f}%)", "N/A" if median is None else str(median)]


def reproduce(
    table: str, *, out: str | Path = "runs/reproduce", ks: Sequence[int] | None = None, max_images: int = 100, **run: Any
) -> str:
    """Reproduce Table 1 (one model per k in ``ks``) or Table 8 (both encodings at k = 45) on
    mnist5k; ``run`` goes to ``train_and_certify``. Prints and returns a markdown table with the
    paper's numbers beside ours and writes it, and a certified-accuracy plot, under ``out``.

    Args:
        table: ``"table1"`` or ``"table8"``.
        out: The folder of the run's models, logs and tables.
        ks: Table 1's k values; None: the default sweep.
        max_images: Test digits certified and predicted.
        **run: ``train_and_certify``'s keyword arguments (``epochs``, ``n0``, ``n``, ``alpha``, ``runtime``
            or its fields ``seed``, ``device``, ...).

    Returns:
        The markdown table, ours beside the paper's.
    """
    out = Path(out)
    if table == "table1":
        runs = [(f"k={k}", {"k": k}, TABLE1.get(k)) for k in (ks or TABLE1_DEFAULT_KS)]
        first = "k"
    elif table == "table8":
        runs = [(enc, {"k": 45, "encoding": enc}, TABLE8[enc]) for enc in ("multichannel", "mean")]
        first = "encoding (k=45)"
    else:
        raise ValueError(f"unknown table {table!r}; choose table1 or table8")
    header = [first, "ours: accuracy (abstained)", "ours: median cert.", "ours: CERTIFY accuracy (abstained)",
              "paper: accuracy (abstained)", "paper: median cert."]
    rows, logs = [], []
    for name, params, paper_row in runs:
        run_dir = out / name.replace("=", "")
        log = read_log(train_and_certify(run_dir, **params, max_images=max_images, predict=True, **run), name=name)
        certified = summarize(log, (0,))
        logs.append(log)
        rows.append([name.removeprefix("k="), accuracy_cell(summarize(read_log(run_dir / "predict.tsv"), ())),
                     median_cell(certified), accuracy_cell(certified), *_paper_cells(paper_row)])
    size = len(logs[0].idx)
    text = "\n".join(markdown(header, rows)) + (
        f"\n\nOurs: mnist5k (4,000 training digits), first {size} test digits, n={run.get('n', 10000)}, "
        f"alpha={run.get('alpha', 0.05)}: accuracy (abstained) of PREDICT, median certified robustness of CERTIFY "
        f"(n0={run.get('n0', 1000)}, Corollary 1; misclassified and abstained count as -inf), and CERTIFY's own "
        "accuracy (abstained: p_lower <= 0.5). Paper: full MNIST (60,000 training / 10,000 test digits), "
        f"Levine & Feizi 2020 {'Table 1' if table == 'table1' else 'Table 8'}.\n"
    )
    return publish(text, out / f"{table}.md", logs)


def demo(*, out: str | Path = "runs/demo", **run: Any) -> str:
    """The README's main job: train k = 45 on mnist5k, certify test digits, print the Table-1 row,
    then the same digits certified and predicted with adaptive sampling beside the fixed runs.

    Args:
        out: The folder of the run's models, logs and tables.
        **run: [`reproduce`][reproduce]'s keyword arguments (``max_images``, ``epochs``, ``n``, ...).

    Returns:
        The Table-1 row beside the paper's, then the fixed and adaptive runs side by side.
    """
    check_counts(max_images=run.get("max_images"), epochs=run.get("epochs"))
    table = reproduce("table1", out=out, ks=[45], **run)
    keep = ("max_images", "n", "alpha", "runtime", *RUNTIME["runtime"])
    return table + "\n" + compare_sampling(Path(out) / "k45", **{k: v for k, v in run.items() if k in keep})


def compare_sampling(
    run_dir: Path, *, max_images: int = 100, n: int = 10_000, alpha: float = 0.05,
    radii: Sequence[float] = (0, 2, 4, 6, 8, 10), runtime: RuntimeOptions | None = None, **options: Any,
) -> str:
    """CERTIFY and PREDICT the digits of ``run_dir``'s fixed-sampling logs again with adaptive
    sampling (at most ``n`` samples, same alpha; [`smoothcert.certificates.sequential`][smoothcert.certificates.sequential]) and print the four
    runs side by side with their samples and seconds per image; ``runtime`` ([`RuntimeOptions`][smoothcert.options.RuntimeOptions]:
    ``seed``, ``device``, ``progress``), or its fields as keywords ``options``."""
    (runtime,) = gather(compare_sampling, options, RUNTIME, runtime=runtime)
    data = DataOptions(dataset="mnist5k", max_images=max_images)
    for mode in ("certify", "predict"):
        samples = SamplingOptions(n0=100 if mode == "certify" else None, n=n, alpha=alpha, sampling="adaptive")
        evaluate(run_dir / "model", run_dir / f"{mode}-adaptive.tsv", mode=mode, data=data, samples=samples,
                 runtime=runtime)
    logs = [read_log(run_dir / f"{mode}{kind}.tsv", name=f"{mode}, {name}")
            for mode in ("certify", "predict") for kind, name in (("", "fixed"), ("-adaptive", "adaptive"))]
    text = (format_table([summarize(log, radii) for log in logs], radii, markdown=True)
            + f"\n\nThe same {len(logs[0].idx)} digits with fixed sampling (n0=1000, n={n}) and adaptive sampling "
            f"(n0=100 selection samples, then at most {n}; alpha={alpha} for both). samples/image counts selection too.\n")
    return publish(text, run_dir.parent / "sampling.md")
