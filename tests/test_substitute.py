import itertools
import math

import pytest
import torch
from torch import nn

from smoothcert.attacks.substitute import (
    JacobianAugmentation,
    error_rate,
    fgsm,
    jacobian_augment,
    run_substitute,
    split_seed,
    transfer_rate,
)
from smoothcert.data import ImageDataset
from smoothcert.classifiers.smoothed import ABSTAIN

SHAPE = (1, 4, 4)
D = 16
K = 3


def linear_model(seed: int = 0, classes: int = K) -> nn.Module:
    """A fixed linear classifier on 4x4 images, balanced on uniform noise (bias = -W @ 0.5)."""
    g = torch.Generator().manual_seed(seed)
    layer = nn.Linear(D, classes)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(classes, D, generator=g))
        layer.bias.copy_(-layer.weight.sum(1) * 0.5)
    return nn.Sequential(nn.Flatten(), layer).eval()


class CountingOracle:
    """Labels = argmax of a fixed model; records every batch it is asked about."""

    def __init__(self, model: nn.Module, abstain_below: float | None = None) -> None:
        self.model, self.abstain_below = model, abstain_below
        self.batches: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.batches.append(x.clone())
        logits = self.model(x)
        labels = logits.argmax(1)
        if self.abstain_below is not None:
            top2 = logits.topk(2, dim=1).values
            labels[top2[:, 0] - top2[:, 1] < self.abstain_below] = ABSTAIN
        return labels

    @property
    def points(self) -> int:
        return sum(len(b) for b in self.batches)


def uniform_images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def toy_heldout(oracle_model: nn.Module, n: int = 400) -> ImageDataset:
    x = uniform_images(n, seed=99)
    with torch.no_grad():
        y = oracle_model(x).argmax(1)
    return ImageDataset(x, y, tuple(str(c) for c in range(K)), "toy")


def small_attack(**overrides) -> JacobianAugmentation:
    params = {"rounds": 4, "lam": 0.1, "tau": 3, "reservoir_after": 2, "kappa": 50, "epochs": 10, "batch_size": 32, "hidden": 64}
    params.update(overrides)
    return JacobianAugmentation(**params)


def test_substitute_learns_the_oracle_far_above_chance():
    model = linear_model()
    oracle = CountingOracle(model)
    heldout = toy_heldout(model)
    result = small_attack(rounds=5, kappa=200, hidden=200).fit(oracle, uniform_images(40, seed=1), K, heldout=heldout, agreement=True)
    first, last = result.history[0], result.history[-1]
    assert last["agreement"] > 0.75  # chance is about 1/3
    assert last["agreement"] > first["agreement"]
    assert last["accuracy"] == last["agreement"]  # the heldout's true labels are the oracle's
    assert result.substitute(heldout.x[:5]).shape == (5, K)


def test_sizes_follow_doubling_then_kappa_and_each_point_is_queried_once():
    seed_size, sigma, kappa, rounds = 20, 2, 30, 6
    attack = small_attack(rounds=rounds, reservoir_after=sigma, kappa=kappa, batch_size=64)
    expected = [seed_size * 2**rho if rho <= sigma else seed_size * 2**sigma + kappa * (rho - sigma)
                for rho in range(rounds)]
    assert attack.sizes(seed_size) == expected
    oracle = CountingOracle(linear_model())
    seeds = uniform_images(seed_size, seed=2)
    result = attack.fit(oracle, seeds, K)
    assert [r["size"] for r in result.history] == expected
    assert [r["queries"] for r in result.history] == expected
    # one oracle call per round (batch size 64 > every new-point count), each on new points only
    assert [len(b) for b in oracle.batches] == [seed_size] + [b - a for a, b in itertools.pairwise(expected)]
    assert oracle.points == result.queries == expected[-1]
    assert torch.equal(oracle.batches[0], seeds)
    queried = torch.cat(oracle.batches).flatten(1)
    assert len(torch.unique(queried, dim=0)) == len(queried)
    assert result.agreement_queries == 0 and result.heldout_labels is None


def test_agreement_labels_the_heldout_once_and_counts_it_apart():
    model = linear_model()
    oracle, heldout = CountingOracle(model), toy_heldout(model, n=50)
    with_agreement = small_attack(rounds=2).fit(oracle, uniform_images(10, 3), K, heldout=heldout, agreement=True)
    assert with_agreement.agreement_queries == 50 and with_agreement.queries == 20
    assert oracle.points == 70
    assert torch.equal(with_agreement.heldout_labels, heldout.y)
    oracle = CountingOracle(model)
    without = small_attack(rounds=2).fit(oracle, uniform_images(10, 3), K, heldout=heldout)
    assert oracle.points == 20 and "agreement" not in without.history[-1] and "accuracy" in without.history[-1]


def test_step_size_sign_flips_every_tau_rounds():
    attack = small_attack(lam=0.25, tau=2)
    assert [attack.step_size(rho) for rho in range(7)] == [0.25, 0.25, -0.25, -0.25, 0.25, 0.25, -0.25]
    attack = small_attack(lam=0.1, tau=3)
    assert [math.copysign(1, attack.step_size(rho)) for rho in range(6)] == [1, 1, 1, -1, -1, -1]


def test_jacobian_augment_follows_the_sign_of_the_log_probability_gradient():
    model = linear_model(seed=4)
    x = 0.2 + 0.6 * uniform_images(16, seed=5)  # interior: no clipping at lambda 0.1
    targets = torch.arange(16) % K
    weight = model[1].weight.detach()
    with torch.no_grad():
        p = torch.softmax(model(x), dim=1)
    # d log p_c / dx = W_c - sum_j p_j W_j for a linear model
    grad = weight[targets] - p @ weight
    for lam in (0.1, -0.1):
        new = jacobian_augment(model, x, targets, lam)
        assert torch.allclose(new, x + lam * grad.sign().view_as(x))
        with torch.no_grad():
            moved = torch.log_softmax(model(new), 1).gather(1, targets.view(-1, 1)).squeeze(1)
            before = torch.log_softmax(model(x), 1).gather(1, targets.view(-1, 1)).squeeze(1)
        assert bool(((moved > before) if lam > 0 else (moved < before)).all())
    clipped = jacobian_augment(model, torch.ones(2, *SHAPE), torch.tensor([0, 1]), 0.5)
    assert float(clipped.min()) >= 0.5 and float(clipped.max()) <= 1.0


def test_abstain_is_the_extra_class():
    model = linear_model()
    always_abstains = CountingOracle(model, abstain_below=math.inf)
    result = small_attack(rounds=2).fit(always_abstains, uniform_images(30, 6), K, abstain=True)
    assert result.substitute(uniform_images(4, 7)).shape == (4, K + 1)
    assert result.substitute(uniform_images(50, 8)).argmax(1).eq(K).all()
    with pytest.raises(ValueError, match="abstain=True"):
        small_attack(rounds=1).fit(always_abstains, uniform_images(5, 6), K)
    # some abstentions among real labels: the substitute can predict both kinds
    mixed = CountingOracle(model, abstain_below=2.0)
    heldout = toy_heldout(model, n=100)
    result = small_attack(rounds=3).fit(mixed, uniform_images(60, 9), K, abstain=True, heldout=heldout, agreement=True)
    assert (result.heldout_labels == ABSTAIN).any() and (result.heldout_labels >= 0).any()
    assert 0.0 <= result.history[-1]["agreement"] <= 1.0


def test_fgsm_stays_in_the_ball_and_raises_the_loss():
    model = linear_model(seed=10)
    x = uniform_images(64, seed=11)
    labels = torch.arange(64) % K
    eps = 0.1
    x_adv = fgsm(model, x, labels, eps)
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    with torch.no_grad():
        ce = nn.functional.cross_entropy
        assert bool((ce(model(x_adv), labels, reduction="none") > ce(model(x), labels, reduction="none")).all())
        # independent direction: d CE / dx = W^T (p - onehot) for a linear model
        p = torch.softmax(model(x), 1)
        grad = (p - nn.functional.one_hot(labels, K).float()) @ model[1].weight
    assert torch.allclose(x_adv, (x + eps * grad.sign().view_as(x)).clamp(0, 1))


def test_transfer_rate_counts_abstain_as_success():
    y = torch.tensor([0, 1, 2, 1])
    x = uniform_images(4, seed=12)
    answers = torch.tensor([0, ABSTAIN, 1, 1])
    assert transfer_rate(lambda batch: answers[: len(batch)], x, y) == 0.5
    assert transfer_rate(lambda batch: torch.full((len(batch),), ABSTAIN), x, y) == 1.0
    assert transfer_rate(lambda batch: y.clone(), x, y) == 0.0
    assert error_rate(answers, y) == 0.5


def test_same_seed_same_result_and_other_seed_differs():
    model = linear_model()
    seeds = uniform_images(20, seed=13)

    def run(seed: int) -> tuple[list, torch.Tensor]:
        oracle = CountingOracle(model)
        result = small_attack(rounds=4, reservoir_after=1, kappa=15, seed=seed).fit(oracle, seeds, K)
        probe = uniform_images(8, seed=14)
        return torch.cat(oracle.batches), result.substitute(probe).detach()

    (points_a, out_a), (points_b, out_b), (_points_c, out_c) = run(0), run(0), run(1)
    assert torch.equal(points_a, points_b) and torch.equal(out_a, out_b)
    assert not torch.equal(out_a, out_c)


def test_run_substitute_reports_transfer_and_clean_error():
    model = linear_model()
    data = toy_heldout(model, n=120)
    seed_set, heldout = split_seed(data, 30)
    assert len(seed_set) == 30 and len(heldout) == 90 and torch.equal(heldout.x, data.x[30:])
    oracle = CountingOracle(model)
    report = run_substitute(oracle, seed_set, heldout, num_classes=K, eps=0.3, rounds=3, kappa=40,
                            reservoir_after=1, batch_size=64, hidden=64)
    assert [r["size"] for r in report["history"]] == [30, 60, 100]
    assert report["queries"] == 100 and report["heldout_queries"] == 90 and report["transfer_queries"] == 90
    assert oracle.points == 100 + 90 + 90
    assert report["oracle_clean_error"] == 0.0  # true labels are the oracle's own
    x_adv = torch.cat(oracle.batches)[-90:]  # the last queries are the FGSM images
    assert float((x_adv - heldout.x).abs().max()) <= 0.3 + 1e-6
    with torch.no_grad():
        expected_rate = float((model(x_adv).argmax(1) != heldout.y).double().mean())
    assert report["transfer_rate"] == pytest.approx(expected_rate)
    assert report["transfer_rate"] > 0.3  # eps 0.3 on a well-approximated linear oracle transfers
    assert report["accuracy"] == report["history"][-1]["accuracy"]


@pytest.mark.parametrize("params, message", [
    ({"rounds": 0}, "rounds"),
    ({"lam": 0.0}, "lam"),
    ({"lam": -0.1}, "lam"),
    ({"lam": float("nan")}, "lam"),
    ({"tau": 0}, "tau"),
    ({"reservoir_after": -1}, "reservoir_after"),
    ({"kappa": 0}, "kappa"),
    ({"epochs": 0}, "epochs"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"lr": 0}, "lr"),
    ({"hidden": True}, "hidden"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters_raise(params, message):
    with pytest.raises(ValueError, match=message):
        JacobianAugmentation(**params)


def test_bad_inputs_raise():
    model = linear_model()
    x, labels = uniform_images(4, 15), torch.zeros(4, dtype=torch.long)
    for eps in (0.0, -0.1, 1.5, float("inf")):
        with pytest.raises(ValueError, match="eps"):
            fgsm(model, x, labels, eps)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fgsm(model, x * 2, labels, 0.1)
    attack = small_attack(rounds=1)
    with pytest.raises(ValueError, match="empty"):
        attack.fit(CountingOracle(model), x[:0], K)
    with pytest.raises(ValueError, match="num_classes"):
        attack.fit(CountingOracle(model), x, 1)
    with pytest.raises(ValueError, match="int64"):
        attack.fit(lambda batch: torch.zeros(len(batch)), x, K)
    with pytest.raises(ValueError, match=r"lie in 0\.\.1"):
        attack.fit(lambda batch: torch.full((len(batch),), 2), x, 2)
    with pytest.raises(ValueError, match="heldout"):
        attack.fit(CountingOracle(model), x, K, agreement=True)
    with pytest.raises(ValueError, match="no heldout"):
        split_seed(toy_heldout(model, n=10), 10)
    with pytest.raises(ValueError, match="eps"):
        run_substitute(CountingOracle(model), *split_seed(toy_heldout(model, n=10), 5), num_classes=K, eps=2.0)
