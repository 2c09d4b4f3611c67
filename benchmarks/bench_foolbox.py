"""Our L0 attacks against Foolbox's PointwiseAttack on an undefended model (issue 13).

Run: python benchmarks/bench_foolbox.py --checkpoint runs/clean/model [--images 50] [--skip 0]
     [--restarts 10] [--out runs/attacks/foolbox.tsv]

Needs Foolbox 3.3.4 (``pip install foolbox==3.3.4``), a benchmark-only dependency: the library and
its tests never import it. On ``--images`` test digits of the checkpoint's dataset from test digit
``--skip`` on it runs, each best of ``--restarts`` restarts where it has restarts:

- ``pointwise``: our ``Pointwise`` (Schott et al. 2019: reset passes and per-pixel binary search,
  plus our iterated local search, ``kicks``);
- ``pointwise-reset`` (with ``--reset-only``): the same with ``search_steps=0`` (no binary search);
- ``sparse-rs``: our ``SparseRS`` with its default smallest-budget search (one run);
- ``foolbox``: Foolbox's ``PointwiseAttack`` (salt-and-pepper start, reset loop, then its
  ``l2_binary_search`` loop), one batch of all digits per restart, numpy and torch seeded per
  restart. Foolbox's L0 counts changed values; on 1-channel images pixels are values, and the L0
  here is always counted in pixels (``l0_pixels``). A Foolbox result the model does not
  misclassify counts as a failure (inf). Its queries are counted per image by ``CountingModel``:
  only inputs that changed since the image's previous evaluation count, as if Foolbox ran on that
  image alone (it evaluates the whole batch at every call; the number of calls is printed too).

Our attacks run on one digit at a time, as in the library; to keep the wall time of 50 digits
x 10 restarts within reach of a loaded 2-core machine, each digit runs in its own thread and a
``Batcher`` answers the pending queries of all digits with one forward pass (the attacks, their
randomness and their query counts are unchanged; only the batch around each query differs, which
can change logits in the last bits).

Prints one row per digit (L0 of each attack), then per attack the median L0, the number of
successes, the mean queries per digit (ours: every oracle query, re-checks included), and
wins/ties/losses of each of ours against Foolbox (smaller L0 wins).
"""

from __future__ import annotations

import argparse
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from smoothcert.attacks import AttackResult, ModelOracle, Pointwise, SparseRS, l0_pixels
from smoothcert.checkpoint import load_checkpoint
from smoothcert.data import load_dataset
from smoothcert.runtime.seeding import stream_seed


class Batcher:
    """Answers the queries of ``active`` attacks running in threads: once every running attack
    waits for an answer, one forward pass of ``model`` on all pending images answers them."""

    def __init__(self, model: torch.nn.Module, active: int) -> None:
        self.model, self.active = model, active
        self.pending: list[tuple[torch.Tensor, list[torch.Tensor]]] = []
        self.ready = threading.Condition()

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        answer: list[torch.Tensor] = []
        with self.ready:
            self.pending.append((x, answer))
            self._flush()
            while not answer:
                self.ready.wait()
        return answer[0]

    def finished(self) -> None:
        with self.ready:
            self.active -= 1
            self._flush()

    def _flush(self) -> None:
        if not self.pending or len(self.pending) < self.active:
            return
        with torch.inference_mode():
            out = self.model(torch.cat([x for x, _ in self.pending])).float()
        start = 0
        for x, answer in self.pending:
            answer.append(out[start:start + len(x)])
            start += len(x)
        self.pending = []
        self.ready.notify_all()


class BatchedOracle(ModelOracle):
    """A ``ModelOracle`` (same counting, decisions and confirmation) whose forward passes go
    through a shared ``Batcher``."""

    def __init__(self, batcher: Batcher, model: torch.nn.Module, num_classes: int) -> None:
        super().__init__(model, num_classes, device="cpu")
        self.batcher = batcher

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += len(x)
        return self.batcher.scores(x)


def attack_all(attack: Pointwise | SparseRS, model: torch.nn.Module, num_classes: int, x: torch.Tensor,
               y: torch.Tensor, seed: int) -> list[AttackResult]:
    """``attack`` on every digit ``x[i]`` with key (seed, i), each digit in its own thread."""
    batcher = Batcher(model, len(x))

    def one(i: int) -> AttackResult:
        try:
            return attack(BatchedOracle(batcher, model, num_classes), x[i], int(y[i]), key=(seed, i))
        finally:
            batcher.finished()

    with ThreadPoolExecutor(max_workers=len(x)) as pool:
        return list(pool.map(one, range(len(x))))


class CountingModel(torch.nn.Module):
    """``model`` counting Foolbox's queries per image. Foolbox evaluates the whole batch at every
    call (``calls``); an image counts a query (``queries``) only when its input differs from the
    one it had at the previous call: what the same attack run on that image alone would query."""

    def __init__(self, model: torch.nn.Module, images: int) -> None:
        super().__init__()
        self.model = model
        self.calls, self.queries = 0, torch.zeros(images, dtype=torch.long)
        self.last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) != len(self.queries):
            raise ValueError(f"expected the whole batch of {len(self.queries)} images, got {len(x)}")
        self.calls += 1
        self.queries += torch.ones(len(x), dtype=torch.long) if self.last is None else (x != self.last).flatten(1).any(1)
        self.last = x.detach().clone()
        return self.model(x)


def foolbox_pointwise(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, restarts: int,
                      seed: int) -> tuple[list[float], CountingModel]:
    """Best-of-``restarts`` L0 (pixels) of Foolbox's PointwiseAttack on each image of the batch,
    and the model that counted its queries."""
    import foolbox as fb

    counted = CountingModel(model, len(x)).eval()
    fmodel = fb.PyTorchModel(counted, bounds=(0.0, 1.0), device="cpu")
    best = [math.inf] * len(x)
    for r in range(restarts):
        np.random.seed(stream_seed(seed, r) % 2**32)
        torch.manual_seed(stream_seed(seed, r))
        counted.last = None
        adv = fb.attacks.PointwiseAttack().run(fmodel, x, fb.criteria.Misclassification(y))
        with torch.no_grad():
            fooled = model(adv).argmax(1) != y
        for i in range(len(x)):
            if fooled[i]:
                best[i] = min(best[i], float(l0_pixels(adv[i], x[i])))
    return best, counted


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint", type=Path, required=True, help="an undefended model (--noise none)")
    parser.add_argument("--images", type=int, default=50)
    parser.add_argument("--skip", type=int, default=0, help="start at this test digit")
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reset-only", action="store_true", help="also run Pointwise without the binary search")
    parser.add_argument("--out", type=Path, default=None, help="TSV of the per-digit L0s")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, config = load_checkpoint(args.checkpoint)
    if config["noise"]["noise"] != "none":
        raise ValueError(f"{args.checkpoint} was trained with noise {config['noise']['noise']!r}; "
                         "this benchmark compares attacks on an undefended model (--noise none)")
    data = load_dataset(config["dataset"], "test")
    x, y = data.x[args.skip: args.skip + args.images], data.y[args.skip: args.skip + args.images]
    ours = {"pointwise": Pointwise(restarts=args.restarts), "sparse-rs": SparseRS()}
    if args.reset_only:
        ours["pointwise-reset"] = Pointwise(restarts=args.restarts, search_steps=0)
    l0: dict[str, list[float]] = {}
    queries: dict[str, list[int]] = {}
    seconds: dict[str, float] = {}
    for name, attack in ours.items():
        start = time.perf_counter()
        results = attack_all(attack, model, config["num_classes"], x, y, args.seed)
        seconds[name] = time.perf_counter() - start
        l0[name], queries[name] = [r.l0 for r in results], [r.queries for r in results]
        print(f"{name}: {seconds[name]:.0f} s", flush=True)
    start = time.perf_counter()
    l0["foolbox"], counted = foolbox_pointwise(model, x, y, args.restarts, args.seed)
    seconds["foolbox"] = time.perf_counter() - start
    queries["foolbox"] = counted.queries.tolist()

    names = list(l0)
    lines = ["\t".join(["idx", "label", *names])]
    lines += ["\t".join([str(args.skip + i), str(int(y[i])), *(f"{l0[n][i]:g}" for n in names)]) for i in range(len(x))]
    print("\n".join(lines))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")
    print(f"\n{config['dataset']} test digits {args.skip}..{args.skip + len(x) - 1}, {args.restarts} restarts, torch "
          f"{torch.__version__}, {args.threads} thread(s)")
    print("attack            median L0  successes  mean queries  seconds  vs foolbox: wins ties losses")
    for name in names:
        row = f"{name:16s}  {np.median(l0[name]):9g}  {sum(map(math.isfinite, l0[name])):9d}  "
        row += f"{np.mean(queries[name]):12.0f}  " if name in queries else f"{'-':>12s}  "
        row += f"{seconds[name]:7.0f}"
        if name != "foolbox":
            pairs = list(zip(l0[name], l0["foolbox"], strict=True))
            row += f"  {sum(a < b for a, b in pairs):17d} {sum(a == b for a, b in pairs):4d} {sum(a > b for a, b in pairs):6d}"
        print(row)
    print(f"foolbox evaluates every image at each of its {counted.calls} model calls "
          f"({counted.calls / args.restarts:.0f} per restart); mean queries counts only changed inputs")
    best = [min(a, b) for a, b in zip(l0["pointwise"], l0["sparse-rs"], strict=True)]
    print(f"best of pointwise and sparse-rs: median L0 {np.median(best):g}")


if __name__ == "__main__":
    main()
