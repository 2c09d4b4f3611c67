"""Does leaving the caller's model untouched cost speed? CERTIFY on mnist5k digits with the MNIST CNN
handed over three ways, interleaved over rounds:

- ``copy``: the model in training mode, so the classifier copies it (eval mode); channels-last
  changes only the input's layout (the library's default since the model is never modified);
- ``weights``: the model already in eval mode with its weights converted to channels-last by the
  caller, used as it is (the layout the library used to force on the caller's model);
- ``eager``: ``channels_last="off"``.

    OMP_NUM_THREADS=1 python benchmarks/bench_user_model.py --images 20 --n 2000 --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from smoothcert import Ablation, SmoothedClassifier, build_model, load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    noise = Ablation(k=45)
    model = build_model("mnist_cnn", noise.channels(1), 10)
    images = load_dataset("mnist5k", "test").x[:args.images]
    arms = {
        "copy": lambda: SmoothedClassifier(model.train(), noise, 10, device="cpu"),
        "weights": lambda: SmoothedClassifier(model.eval().to(memory_format=torch.channels_last), noise, 10,
                                              device="cpu"),
        "eager": lambda: SmoothedClassifier(model.eval(), noise, 10, device="cpu", channels_last="off"),
    }
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    results = {}
    for _ in range(args.rounds):
        for name, make in arms.items():
            start = time.perf_counter()
            results[name] = make().certify(images, 100, args.n, 0.05, seed=0, progress=False)
            seconds[name].append((time.perf_counter() - start) / args.images)
        model.to(memory_format=torch.contiguous_format)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.images} digits, n0 100, "
          f"n {args.n}, {args.rounds} interleaved rounds, median seconds per digit:")
    for name, values in seconds.items():
        median = statistics.median(values)
        print(f"  {name:8s} {median:.4f} s/digit ({statistics.median(seconds['copy']) / median:.2f}x of copy)")
    print("same certificates in every arm:", results["copy"] == results["weights"] == results["eager"])


if __name__ == "__main__":
    main()
