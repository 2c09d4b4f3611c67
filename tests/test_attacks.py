import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert.attacks import (
    AttackResult,
    ModelOracle,
    Pointwise,
    SmoothedOracle,
    SparseRS,
    l0_pixels,
    make_attack,
)
from smoothcert.attacks.oracles import FIXED_STREAM
from smoothcert.attacks.pointwise import _Restart, _Spent
from smoothcert.noises import Ablation, Gaussian, ablate, sample_keep_mask
from smoothcert.runtime.seeding import generator
from smoothcert.classifiers.smoothed import ABSTAIN, SmoothedClassifier

SECRET = [1, 5, 6, 10, 15]  # pixels of a 4x4 image


class Threshold(nn.Module):
    """Class 1 iff at least ``m`` of the SECRET pixels are bright: from a black image the
    minimal L0 adversarial example has exactly ``m`` pixels."""

    def __init__(self, m: int) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = (x.flatten(1)[:, SECRET] > 0.5).sum(1).float()
        return torch.stack([torch.zeros_like(bright), bright - self.m + 0.5], dim=1)


def _random_mlp(in_features: int, classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, 16), nn.ReLU(), nn.Linear(16, classes))


@pytest.mark.parametrize("m", [1, 3, 5])
@pytest.mark.parametrize("attack", [Pointwise(restarts=3), SparseRS(max_queries=300)])
def test_attacks_find_the_known_minimal_l0(attack, m):
    oracle = ModelOracle(Threshold(m), 2, device="cpu")
    x = torch.zeros(1, 4, 4)
    result = attack(oracle, x, 0, key=(0, 7))
    assert result.success and result.decision == 1
    assert result.l0 == m == l0_pixels(result.x_adv, x)
    assert set((result.x_adv != x).flatten().nonzero().squeeze(1).tolist()) <= set(SECRET)
    assert result.queries == oracle.queries  # every query counted, none invisible


def test_already_misclassified_image_costs_nothing():
    oracle = ModelOracle(Threshold(1), 2, device="cpu")
    x = torch.zeros(1, 4, 4)
    x[0, 0, 1] = 1.0
    for attack in (Pointwise(), SparseRS()):
        result = attack(oracle, x, 0)
        assert (result.success, result.l0, result.decision) == (True, 0.0, 1)
        assert torch.equal(result.x_adv, x)


def test_failure_is_reported_with_infinite_l0():
    class Constant(nn.Module):
        def forward(self, x):
            return torch.tensor([[1.0, 0.0]]).expand(len(x), 2)

    oracle = ModelOracle(Constant(), 2, device="cpu")
    x = torch.rand(1, 4, 4)
    for attack in (Pointwise(restarts=2, steps=5), SparseRS(max_queries=5)):
        result = attack(oracle, x, 0)
        assert not result.success and math.isinf(result.l0) and torch.equal(result.x_adv, x)
        assert result.decision == 0


def test_query_budget_is_respected():
    oracle = ModelOracle(Threshold(5), 2, device="cpu")
    x = torch.zeros(1, 4, 4)
    result = Pointwise(restarts=4, max_queries=3)(oracle, x, 0)
    # one query for the clean image, at most 3 per restart, at most one confirmation per success
    assert result.queries <= 1 + 4 * 3 + 4
    result = SparseRS(budget=2, max_queries=10)(oracle, x, 0)  # 2 pixels cannot reach m=5
    assert not result.success and result.queries == 1 + 10


def test_restarts_are_seeded_and_best_of_r():
    model = _random_mlp(36)
    x = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(3))
    label = int(model(x[None]).argmax())

    def run(attack, key):
        return attack(ModelOracle(model, 3, device="cpu"), x, label, key=key)

    one, three = run(Pointwise(restarts=1), (0, 1)), run(Pointwise(restarts=3), (0, 1))
    assert one.success and three.success
    assert three.l0 <= one.l0 and three.queries > one.queries  # restart 0 is shared, best of 3
    again = run(Pointwise(restarts=3), (0, 1))
    assert torch.equal(again.x_adv, three.x_adv) and again.queries == three.queries
    others = [run(Pointwise(restarts=1), (0, key)) for key in range(2, 8)]
    assert len({(r.l0, r.queries) for r in others}) > 1  # different keys, different searches
    for attack in (SparseRS(max_queries=200),):
        a, b = run(attack, (5, 5)), run(attack, (5, 5))
        assert torch.equal(a.x_adv, b.x_adv) and a.queries == b.queries


class _Exact(nn.Module):
    """Class 1 iff at least ``m`` SECRET pixels are exactly 1: no point strictly between a pixel's
    original (0) and adversarial value (1) is adversarial, so the binary search never moves one."""

    def __init__(self, m: int) -> None:
        super().__init__()
        self.m = m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = (x.flatten(1)[:, SECRET] == 1.0).sum(1).float()
        return torch.stack([torch.zeros_like(full), full - self.m + 0.5], dim=1)


class _Band(nn.Module):
    """On a 1x2x2 image with pixels a = 0 and b = 1: class 1 iff (a > 1/2 and b > 1/2) or
    3/10 < b < 7/10. From black, salt-and-pepper needs both a and b (salt b = 1 alone is outside
    the band) and neither reset is adversarial; only after the binary search moves b into the
    band can a be reset: the minimal L0 is 1, the reset passes alone end at 2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.flatten(1)[:, 0], x.flatten(1)[:, 1]
        fooled = ((a > 0.5) & (b > 0.5)) | ((b > 0.3) & (b < 0.7))
        return torch.stack([torch.zeros_like(a), 2 * fooled.float() - 1], dim=1)


def test_binary_search_moves_a_pixel_to_the_edge_and_counts_its_queries():
    x = torch.zeros(1, 4, 4)
    oracle = ModelOracle(Threshold(1), 2, device="cpu")
    run = _Restart(oracle, x, 0, max_queries=100)
    start = x.clone()
    start.view(16)[[SECRET[0], 0]] = torch.tensor([1.0, 0.6])  # a SECRET pixel and an irrelevant one
    run.accept(start)
    assert Pointwise(search_steps=7)._search_pass(run, torch.Generator().manual_seed(0))
    assert run.used == oracle.queries == 2 * 7  # 7 queries per perturbed pixel
    # bright means > 1/2: bisection on [0, 1] ends at 1/2 + 2^-7; the irrelevant pixel at 0.6 * 2^-7
    assert run.adv.view(16)[SECRET[0]] == 0.5 + 2**-7
    assert run.adv.view(16)[0] == pytest.approx(0.6 * 2**-7)
    assert l0_pixels(run.adv, x) == 2  # the search lowers values, never L0 by itself


def test_full_loop_finds_the_minimum_the_reset_passes_miss():
    x = torch.zeros(1, 2, 2)
    for seed in range(5):
        full = Pointwise(restarts=1)(ModelOracle(_Band(), 2, device="cpu"), x, 0, key=(seed,))
        reset_only = Pointwise(restarts=1, search_steps=0)(ModelOracle(_Band(), 2, device="cpu"), x, 0, key=(seed,))
        assert (full.success, full.l0, reset_only.l0) == (True, 1.0, 2.0)
        assert 0.3 < float(full.x_adv.view(4)[1]) < 0.7 and full.x_adv.view(4)[0] == 0


@pytest.mark.parametrize("m", [1, 3])
def test_a_round_that_improves_nothing_stops(m):
    x = torch.zeros(1, 4, 4)

    def run(search_steps):
        oracle = ModelOracle(_Exact(m), 2, device="cpu")
        return Pointwise(restarts=1, search_steps=search_steps)(oracle, x, 0, key=(0, 3)), oracle

    (full, oracle), (reset_only, _) = run(10), run(0)
    assert full.l0 == reset_only.l0 == m and torch.equal(full.x_adv, reset_only.x_adv)
    # the same start and reset passes, then one search pass over the m pixels that moves nothing: stop
    assert full.queries - reset_only.queries == 10 * m
    assert full.queries == oracle.queries


class _Rejecting(ModelOracle):
    """A model oracle whose fresh re-check rejects candidates with fewer than ``minimum`` pixels."""

    def __init__(self, model, minimum):
        super().__init__(model, 2, device="cpu")
        self.minimum, self.checked = minimum, []

    def confirm(self, x, label):
        self.checked.append(int((x != 0).sum()))
        if self.checked[-1] < self.minimum:
            return False, label
        return super().confirm(x, label)


def test_recheck_rejects_unconfirmed_candidates_and_backs_off():
    x = torch.zeros(1, 4, 4)
    oracle = _Rejecting(Threshold(2), minimum=3)
    result = Pointwise(restarts=1)(oracle, x, 0, key=(1,))
    # the reduction ends at 2 pixels, moved to the edge by the search pass (rejected); then the
    # first image with 2 pixels (rejected); then the first image with 3 pixels
    assert oracle.checked == [2, 2, 3]
    assert result.success and result.l0 == 3 and result.decision == 1
    oracle = _Rejecting(Threshold(2), minimum=99)
    result = Pointwise(restarts=3)(oracle, x, 0)
    assert not result.success and math.isinf(result.l0) and torch.equal(result.x_adv, x)
    assert oracle.checked == sorted(oracle.checked) and len(oracle.checked) > 3  # every back-off tried, smallest first


def _ablation_smoothed(k=5, seed=1):
    torch.manual_seed(seed)
    base = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    return SmoothedClassifier(base, Ablation(k), 3, batch_size=64, device="cpu")


def test_fixed_ablation_votes_are_cached_exactly():
    smoothed = _ablation_smoothed()
    oracle = SmoothedOracle(smoothed, n=200, alpha=0.05, key=(0, 4))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 6, 6, generator=g)
    keep = sample_keep_mask(200, 36, 5, generator(0, 4, FIXED_STREAM), "cpu")
    for step in range(12):
        if step:  # change a few pixels, as attacks do
            pixels = torch.randperm(36, generator=g)[: 1 + step % 4]
            x = x.clone()
            x.view(1, 36)[:, pixels] = torch.rand(1, len(pixels), generator=g)
        direct = torch.bincount(smoothed.base(ablate(x.expand(200, 1, 6, 6), keep)).argmax(1), minlength=3)
        assert torch.equal(oracle.scores(x[None])[0].long(), direct)
    accepted = x.clone()
    for pixel in range(0, 36, 5):  # attacks alternate one-pixel trials around an accepted image
        trial = accepted.clone()
        trial.view(36)[pixel] = 1.0 - trial.view(36)[pixel]
        direct = torch.bincount(smoothed.base(ablate(trial.expand(200, 1, 6, 6), keep)).argmax(1), minlength=3)
        assert torch.equal(oracle.scores(trial[None])[0].long(), direct)
        if pixel % 10 == 0:
            accepted = trial
    assert oracle.queries == 12 + 8


def test_adaptive_queries_are_sequential_predict_on_the_fixed_ablations():
    smoothed = SmoothedClassifier(_Brightness(5), Ablation(5), 2, batch_size=64, device="cpu")  # votes near 50/50
    oracle = SmoothedOracle(smoothed, n=3000, alpha=0.05, key=(0, 4), sampling="adaptive")
    keep = sample_keep_mask(3000, 36, 5, generator(0, 4, FIXED_STREAM), "cpu")
    g = torch.Generator().manual_seed(0)
    x, used = torch.rand(1, 6, 6, generator=g), set()
    for step in range(16):
        if step:  # change a few pixels, as attacks do
            pixels = torch.randperm(36, generator=g)[: 1 + step % 3]
            x = x.clone()
            x.view(1, 36)[:, pixels] = torch.rand(1, len(pixels), generator=g)
        votes = smoothed.base(ablate(x.expand(3000, 1, 6, 6), keep)).argmax(1)  # every fixed draw, uncached
        steps, seen = smoothed.predict_steps(3000, 0.05, "adaptive"), 0
        try:  # sequential PREDICT fed the draws in order
            num = next(steps)
            while True:
                block = torch.bincount(votes[seen:seen + num], minlength=2).numpy()
                seen, num = seen + num, steps.send(block)
        except StopIteration as done:
            decision, counts = done.value
        scores = oracle.scores(x[None])
        assert np.array_equal(scores[0].long().numpy(), counts) and int(oracle.decide(scores)[0]) == decision
        used.add(int(counts.sum()))
    assert len(used) > 2 and min(used) < 3000  # queries stopped at different looks


def test_fixed_noise_is_the_same_every_query_and_fresh_noise_is_not():
    smoothed = _ablation_smoothed()
    x = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(2))
    fixed = SmoothedOracle(smoothed, n=100, key=(3,))
    expected = smoothed.sample(x, 100, generator(3, FIXED_STREAM))  # one batch: the same masks
    assert np.array_equal(fixed.scores(x[None])[0].numpy(), expected)
    fresh = SmoothedOracle(smoothed, n=100, fixed=False, key=(3,))
    votes = [fresh.scores(x[None])[0] for _ in range(4)]
    assert any(not torch.equal(votes[0], v) for v in votes[1:])
    gaussian = SmoothedClassifier(nn.Sequential(nn.Flatten(), nn.Linear(36, 3)), Gaussian(0.5), 3, device="cpu")
    fixed = SmoothedOracle(gaussian, n=50, key=(1,))
    assert torch.equal(fixed.scores(x[None]), fixed.scores(x[None]))


class _Split(nn.Module):
    """Votes class 0 on kept-pixel sets that contain pixel 0, else class 1: about a 50/50 vote."""

    def forward(self, x):
        kept0 = x[:, :, 0, 0].abs().sum(1) > 0  # multichannel: a kept pixel has (s, 1-s), never all zero
        return torch.stack([kept0.float(), (~kept0).float()], dim=1)


def test_abstaining_counts_as_adversarial():
    smoothed = SmoothedClassifier(_Split(), Ablation(18), 2, device="cpu")  # P(keep pixel 0) = 18/36 = 1/2
    oracle = SmoothedOracle(smoothed, n=400, alpha=0.05, key=(0, 0))
    x = torch.rand(1, 6, 6, generator=torch.Generator().manual_seed(0))
    assert int(oracle(x[None])[0]) == ABSTAIN
    result = Pointwise(restarts=1)(oracle, x, 0)
    assert (result.success, result.l0, result.decision) == (True, 0.0, ABSTAIN)
    assert oracle.checks == 1  # the fresh re-check confirmed the abstention


class _Brightness(nn.Module):
    """On multichannel ablated input: class 1 iff the kept pixels are bright on average."""

    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        mean = x[:, 0].flatten(1).sum(1) / self.k
        return torch.stack([0.5 - mean, mean - 0.5], dim=1)


def test_smoothed_attack_result_is_confirmed_with_fresh_samples():
    smoothed = SmoothedClassifier(_Brightness(12), Ablation(12), 2, device="cpu")
    x = torch.full((1, 6, 6), 0.2)
    assert smoothed.predict(x, 500, 0.05, generator(9)) == 0
    oracle = SmoothedOracle(smoothed, n=300, key=(0, 1))
    result = Pointwise(restarts=2)(oracle, x, 0, key=(0, 1))
    assert result.success and result.decision != 0 and oracle.checks >= 1
    assert 10 <= result.l0 <= 30  # salt on ~half the pixels flips the average brightness
    assert result.queries == oracle.queries + oracle.checks
    votes = smoothed.sample(result.x_adv, 2000, generator(10))
    assert votes[1] / 2000 > 0.4  # far from the clean image's vote (~0% class 1): near or past the boundary
    assert smoothed.sample(x, 2000, generator(10))[1] / 2000 < 0.05


def test_sparse_rs_swaps_follow_the_authors_schedule():
    # fra31/sparse-rs, RSAttack.p_selection for norm='L0' with resc_schedule: at step it the
    # fraction is p_init / {2, 4, 5, 6, 8, 10, 12, 15, 20} by it / n_queries * 10,000 in
    # (0, 50], (50, 200], (200, 500], ..., (8000, inf); swapped pixels max(int(p * eps), 1)
    attack = SparseRS(max_queries=10000, p_init=0.3)
    steps = [1, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001, 6000, 6001, 8000, 8001, 9999]
    assert [attack.swaps(it, 200) for it in steps] == [30, 30, 15, 15, 12, 12, 10, 10, 7, 7, 6, 6, 5, 5, 4, 4, 3, 3]
    assert attack.swaps(1, 5) == 1 and attack.swaps(9999, 5) == 1  # at least one pixel
    short = SparseRS(max_queries=100, p_init=0.3)  # rescaled: step 1 is 1% of the run, past 0.5%
    assert [short.swaps(it, 200) for it in (1, 2, 3, 5, 6, 10, 11, 81)] == [15, 15, 12, 12, 10, 10, 7, 3]


def test_sparse_rs_single_new_pixel_gets_a_new_colour():
    g = torch.Generator().manual_seed(0)
    for current in (torch.zeros(1, 1), torch.ones(1, 1), torch.tensor([[0.0], [1.0], [1.0]])):
        assert all(not torch.equal(SparseRS._colours(current, g), current) for _ in range(50))
    draws = [SparseRS._colours(torch.zeros(1, 2), g) for _ in range(50)]
    assert any(torch.equal(d, torch.zeros(1, 2)) for d in draws)  # only a single pixel is redrawn


def test_bad_parameters_and_inputs():
    with pytest.raises(ValueError, match="restarts"):
        Pointwise(restarts=0)
    with pytest.raises(ValueError, match="search_steps"):
        Pointwise(search_steps=-1)
    with pytest.raises(ValueError, match="kicks"):
        Pointwise(kicks=-1)
    with pytest.raises(ValueError, match="kick must be a positive integer"):
        Pointwise(kick=0)
    with pytest.raises(ValueError, match="p_init"):
        SparseRS(p_init=1.5)
    with pytest.raises(ValueError, match="budget"):
        SparseRS(budget=0)
    with pytest.raises(ValueError, match="unknown attack"):
        make_attack("carlini")
    assert make_attack("sparse-rs", budget=4) == SparseRS(budget=4)
    oracle = ModelOracle(Threshold(1), 2, device="cpu")
    with pytest.raises(ValueError, match="shape"):
        Pointwise()(oracle, torch.zeros(4, 4), 0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Pointwise()(oracle, torch.full((1, 4, 4), 2.0), 0)
    with pytest.raises(ValueError, match="exceeds"):
        SparseRS(budget=17)(oracle, torch.zeros(1, 4, 4), 0)
    with pytest.raises(ValueError, match="alpha"):
        SmoothedOracle(_ablation_smoothed(), alpha=1.5)
    assert isinstance(Pointwise(restarts=1)(oracle, torch.zeros(1, 4, 4), 0), AttackResult)


class _Either(nn.Module):
    """Class 1 iff SECRET pixels 1 and 5 are both bright or pixel 15 is: from {1, 5} no single
    reset is adversarial (1-minimal, 2 pixels), but the minimum is {15}."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.flatten(1) > 0.5
        fooled = (bright[:, 1] & bright[:, 5]) | bright[:, 15]
        return torch.stack([torch.zeros(len(x)), 2 * fooled.float() - 1], dim=1)


def _restart_from(pixels, max_queries=10_000):
    x = torch.zeros(1, 4, 4)
    oracle = ModelOracle(_Either(), 2, device="cpu")
    run = _Restart(oracle, x, 0, max_queries=max_queries)
    start = x.clone()
    start.view(16)[pixels] = 1.0
    run.accept(start)
    return run, oracle


def test_kicks_escape_a_one_minimal_set_and_never_increase_l0():
    run, oracle = _restart_from([1, 5])
    g = torch.Generator().manual_seed(0)
    Pointwise._reset_passes(run, g)
    assert l0_pixels(run.adv, run.x) == 2  # the reset passes alone are stuck
    attack, sizes = Pointwise(kick=5), []
    for _ in range(30):
        attack._kick(run, g)
        sizes.append(l0_pixels(run.adv, run.x))
        assert int(oracle.decide(oracle.scores(run.adv[None]))[0]) == 1  # always adversarial
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == 1  # never larger; ends at {15}
    assert run.adv.view(16).nonzero().squeeze(1).tolist() == [15]


def test_a_kick_cut_short_by_the_budget_restores_the_image_before_it():
    run, _ = _restart_from([1, 5])
    before = run.adv
    run.max_queries = run.used + 1  # the kicked image is queried, its reset passes are not
    with pytest.raises(_Spent):
        Pointwise(kick=5)._kick(run, torch.Generator().manual_seed(0))
    assert run.adv is before and l0_pixels(run.path[-2], run.x) == 7  # kicked, then restored


def test_kicks_respect_the_budget_and_are_seeded():
    x = torch.zeros(1, 4, 4)

    def run(kicks, max_queries=10_000, key=(0, 2)):
        oracle = ModelOracle(_Either(), 2, device="cpu")
        return Pointwise(restarts=1, kicks=kicks, max_queries=max_queries)(oracle, x, 0, key=key), oracle

    (none, _), (many, oracle) = run(0), run(500)
    assert many.l0 == 1 <= none.l0 and many.queries == oracle.queries
    assert many.queries > none.queries  # the kicks cost queries
    again, _ = run(500)
    assert torch.equal(again.x_adv, many.x_adv) and again.queries == many.queries
    capped, oracle = run(500, max_queries=60)
    confirmed = 1 if capped.success else 0  # the model oracle confirms by one more query
    assert capped.queries == oracle.queries == 1 + 60 + confirmed  # the clean image, the budget, the check
