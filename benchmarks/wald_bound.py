"""How far below the oracle floor can any valid sequential CERTIFY go? Lower bounds on the expected
sample size, per digit, beside the floor of simulate_adaptive.py.

Both bounds are the change-of-measure inequality for stopping times (Wald 1945; in this form
Kaufmann, Cappé & Garivier 2016, Lemma 1): for any procedure that stops after N votes and any event
A it decides on, under two top-class shares p and p' (the other classes scaled alike, so the votes'
Kullback-Leibler divergence is the Bernoulli one),

    E_p[N] KL(p || p') >= d(P_p(A), P_p'(A)),    d(x, y) = x log(x / y) + (1 - x) log((1 - x) / (1 - y)).

* Certify. To report radius r the procedure must tell p from tau_r, where reporting r is wrong: A =
  "reports r", P_tau_r(A) <= alpha (validity) and P_p(A) >= 1 - beta give
  E_p[N] >= d(1 - beta, alpha) / KL(p || tau_r), Wald's bound for a test of the simple pair. The radius
  r is the one fixed n certifies at the expected count (the one the floor asks for), so beta is the
  share of digits certified lower than fixed n would.
* Give up. A procedure must also stop on a digit whose share p <= tau_s cannot certify radius s (the
  next radius, or the target radius of the one-radius question). Let p*_s be the share at which fixed
  n certifies s half the time. A procedure that certifies s there at least as often as fixed n does
  (P_p*(A) >= 1/2, A = "reports s or more") and is valid at p (P_p(A) <= alpha) draws
  E_p[N] >= d(alpha, 1/2) / KL(p || p*_s) on that digit, whatever its label: the floor counts 0 for it.

Each is a lower bound on the same E_p[N], so their maximum is one too. A procedure that does not know
p, faces the whole null p <= tau_r and selects the class can only need more.

PREDICT (with ``--votes``, the class shares of simulate_adaptive.py): answering the top class c of
shares q is wrong at q' where c is not on top; the nearest such q' merges the top two shares p1, p2
at their mean, so answering with probability 1 - beta costs d(1 - beta, alpha) / KL(q || q'). A
digit fixed n leaves unanswered at its expected counts, with a gap p1 - p2 below g* (where fixed
n answers half the time), may be given up, but a procedure that answers at least as often as fixed
n at gap g* and is valid at the mirrored shares (p2, p1) draws, whatever its answer rate a there,
min over a of max(d(a, alpha) / KL(q || mirrored), d(a, 1/2) / KL(q || gap g*)). The floor
counts only the digits fixed n answers rightly; a procedure cannot see the label, so the
label-blind column also charges the digits fixed n answers wrongly.

    cd benchmarks
    python wald_bound.py ../docs/results/floor/certify-fixed.tsv --votes ../runs/floor/votes.npy
    python wald_bound.py ../docs/results/floor/mnist-ablation-fixed-2000.tsv --votes ../runs/mnist-ablation/votes.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import brentq
from scipy.stats import binom, binomtest

from simulate_adaptive import ALPHA, N_MAX, TAU, class_probabilities, cp_lower, oracle, predict_floor, radius, read_log


def kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Bernoulli Kullback-Leibler divergence KL(p || q)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def wald(p: np.ndarray, tau: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Wald's lower bound on E_p[N] for a test of p = tau against p with errors alpha and beta:
    d(1 - beta, alpha) / KL(p || tau)."""
    return kl(np.array(1 - beta), np.array(alpha)) / kl(p, tau)


def median_share(r: int) -> float:
    """p*_r: the top-class share at which fixed n (Clopper-Pearson at alpha, n = N_MAX) certifies
    radius r with probability 1/2."""
    counts = np.arange(N_MAX + 1.0)
    passing = cp_lower(counts, N_MAX, ALPHA) > TAU[r]
    return brentq(lambda p: binom.pmf(counts, N_MAX, p)[passing].sum() - 0.5, TAU[r], 1 - 1e-9, xtol=1e-7)


def give_up(p: np.ndarray, next_radius: np.ndarray, alpha: float) -> np.ndarray:
    """The give-up bound d(alpha, 1/2) / KL(p || p*_s) per digit, s = ``next_radius`` (0 where s is
    out of reach for fixed n or p > tau_s, where validity does not bind)."""
    reachable = TAU < cp_lower(np.array(float(N_MAX)), N_MAX, ALPHA)
    stars = {s: median_share(s) for s in np.unique(next_radius) if 0 <= s < len(TAU) and reachable[s]}
    out = np.zeros(p.shape)
    for i, s in enumerate(next_radius):
        if s in stars and p[i] <= TAU[s]:
            out[i] = kl(np.array(alpha), np.array(0.5)) / kl(p[i], stars[s])
    return out


def answers(p1: float, p2: float) -> bool:
    """Fixed n's PREDICT (Cohen et al.'s binomial test at alpha) answers the top class at the expected counts."""
    a, b = round(p1 * N_MAX), round(p2 * N_MAX)
    return a > b and binomtest(a, a + b, 0.5).pvalue <= ALPHA


def half_gap(total: float) -> float:
    """g*: the gap p1 - p2 (p1 + p2 = ``total``) at which fixed n answers the top class half the time,
    at the expected number m of top-two votes."""
    m = round(total * N_MAX)
    counts = np.arange(m // 2 + 1, m + 1)
    critical = counts[np.minimum(1, 2 * binom.sf(counts - 1, m, 0.5)) <= ALPHA][0]
    return brentq(lambda g: binom.sf(critical - 1, m, (total + g) / (2 * total)) - 0.5, 0, total, xtol=1e-9)


def moved(p1: float, p2: float, a: float, b: float) -> float:
    """KL(q || q'), q' moving the top two shares p1, p2 of q to a, b (the other classes as they are)."""
    return float(p1 * np.log(p1 / a) + p2 * np.log(p2 / b))


def predict_bounds(q: np.ndarray, label: np.ndarray, beta: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PREDICT's floor and lower bounds per digit: answering (charged where fixed n answers rightly, or
    label-blind wherever it answers) and giving up (see the module docstring)."""
    ranked = np.sort(q, 1)
    first, second = ranked[:, -1], ranked[:, -2]
    answered = np.array([answers(a, b) for a, b in zip(first, second)])
    right = answered & (q.argmax(1) == label)
    rates = np.linspace(1e-6, 1 - 1e-6, 20_001)
    answer, give_up = np.zeros(len(q)), np.zeros(len(q))
    for i, (p1, p2) in enumerate(zip(first, second)):
        if answered[i]:
            mean = (p1 + p2) / 2
            answer[i] = kl(np.array(1 - beta), np.array(ALPHA)) / moved(p1, p2, mean, mean)
        elif p1 > p2 and p1 - p2 < (g := half_gap(p1 + p2)):
            mirrored, target = moved(p1, p2, p2, p1), moved(p1, p2, (p1 + p2 + g) / 2, (p1 + p2 - g) / 2)
            give_up[i] = np.min(np.maximum(kl(rates, np.array(ALPHA)) / mirrored, kl(rates, np.array(0.5)) / target))
    floor = predict_floor(q, right)
    return floor, np.minimum(np.where(right, answer, give_up), N_MAX), np.minimum(answer + give_up, N_MAX)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", type=Path, nargs="+", help="fixed-sampling certify logs (their digits are pooled)")
    parser.add_argument("--betas", default="0.5,0.2,0.05", help="miss probabilities to tabulate")
    parser.add_argument("--targets", default="2,4,8", help="target radii of the one-radius question")
    parser.add_argument("--votes", type=Path, nargs="*", default=[],
                        help="one .npy of measured votes per log (simulate_adaptive.py's): also bound PREDICT")
    args = parser.parse_args()
    logs = [read_log(path) for path in args.logs]
    p = np.concatenate([log["p"] for log in logs])
    right = np.concatenate([log["predict"] == log["label"] for log in logs])
    expected = radius(cp_lower(p * N_MAX, N_MAX, ALPHA))
    fixed_radius = np.where(right, expected, -1)
    betas = [float(b) for b in args.betas.split(",")]
    print(f"{len(p)} digits, alpha {ALPHA}, n <= {N_MAX:,}; samples/digit averaged over all digits (0 where "
          "fixed n certifies nothing); x: times the floor")
    print("| question | floor | " + " | ".join(f"certify, beta {b:g}" for b in betas) + " | give up | "
          + " | ".join(f"both, beta {b:g}" for b in betas) + " |")
    print("|---|---:|" + "---:|" * (2 * len(betas) + 1))
    for target in [None, *(int(t) for t in args.targets.split(",") if t)]:
        need = fixed_radius if target is None else np.where(fixed_radius >= target, target, -1)
        floor = oracle(p, need).mean()
        asked = need >= 0
        bounds = [np.where(asked, np.minimum(wald(p, TAU[np.maximum(need, 0)], ALPHA, b), N_MAX), 0) for b in betas]
        next_radius = expected + 1 if target is None else np.where(expected >= target, -1, target)
        futile = np.minimum(give_up(p, next_radius, ALPHA), N_MAX)
        both = [np.maximum(bound, futile) for bound in bounds]
        name = "largest radius" if target is None else f"R = {target}"
        print(f"| {name} | {floor:,.0f} | "
              + " | ".join(f"{b.mean():,.0f} ({b.mean() / floor:.2f}x)" for b in [*bounds, futile, *both]) + " |")
    if args.votes:
        q = np.concatenate([class_probabilities(log, np.load(path), 10, 0.0)
                            for log, path in zip(logs, args.votes, strict=True)])
        label = np.concatenate([log["label"] for log in logs])
        print("\n| PREDICT | floor | " + " | ".join(f"bound, beta {b:g} | label-blind, beta {b:g}" for b in betas[1:])
              + " |")
        print("|---|---:|" + "---:|---:|" * len(betas[1:]))
        cells = []
        for beta in betas[1:]:
            floor, bound, blind = predict_bounds(q, label, beta)
            cells += [f"{b.mean():,.1f} ({b.mean() / floor.mean():.2f}x)" for b in (bound, blind)]
        print(f"| all digits | {floor.mean():,.1f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
