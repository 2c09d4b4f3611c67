import itertools
import math

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from smoothcert.noises import Ablation, ablate, make_noise, sample_keep_mask


def test_exactly_k_kept_per_sample():
    g = torch.Generator().manual_seed(0)
    for d, k in [(784, 45), (10, 1), (10, 10), (1024, 75)]:
        mask = sample_keep_mask(300, d, k, g)
        assert mask.shape == (300, d) and mask.dtype == torch.bool
        assert (mask.sum(1) == k).all()


def test_kept_positions_uniform_chi_square():
    """Each pixel is kept with probability k/d (marginal uniformity), fixed seed."""
    g = torch.Generator().manual_seed(1)
    d, k, n = 784, 45, 20_000
    counts = sample_keep_mask(n, d, k, g).sum(0).numpy()
    assert counts.sum() == n * k
    assert chisquare(counts).pvalue > 1e-3


def test_every_k_subset_equally_likely():
    """Not only the marginals: all C(d, k) subsets appear equally often (d=6, k=3: 20 subsets)."""
    g = torch.Generator().manual_seed(2)
    d, k, n = 6, 3, 40_000
    mask = sample_keep_mask(n, d, k, g).numpy()
    code = mask @ (1 << np.arange(d))
    subsets = [sum(1 << i for i in c) for c in itertools.combinations(range(d), k)]
    counts = np.array([(code == s).sum() for s in subsets])
    assert counts.sum() == n  # nothing outside the k-subsets
    assert len(counts) == math.comb(d, k)
    assert chisquare(counts).pvalue > 1e-3


def test_a_biased_sampler_would_fail_the_subset_test():
    """The chi-square test above has power: a sampler that favours low indices is rejected."""
    rng = np.random.default_rng(3)
    d, k, n = 6, 3, 40_000
    weights = np.linspace(1.0, 1.5, d)
    picks = [rng.choice(d, k, replace=False, p=weights / weights.sum()) for _ in range(n)]
    code = np.array([sum(1 << int(i) for i in p) for p in picks])
    subsets = [sum(1 << i for i in c) for c in itertools.combinations(range(d), k)]
    counts = np.array([(code == s).sum() for s in subsets])
    assert chisquare(counts).pvalue < 1e-6


def test_multichannel_encoding_exact():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(3, 1, 5, 4, generator=g)
    keep = sample_keep_mask(3, 20, 7, g)
    out = ablate(x, keep, "multichannel")
    assert out.shape == (3, 2, 5, 4)
    k = keep.view(3, 5, 4)
    assert torch.equal(out[:, 0][k], x[:, 0][k])
    assert torch.equal(out[:, 1][k], 1 - x[:, 0][k])
    assert (out[:, :, ~k[0]][0] == 0).all()
    assert (out.permute(0, 2, 3, 1)[~k] == 0).all()
    # kept pixels sum to one over the channel pair, NULL to zero (paper, "Encoding S_NULL")
    assert torch.allclose(out.sum(1), k.float())


def test_colour_multichannel_has_six_channels_and_pixel_units():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 3, 4, 4, generator=g)
    keep = sample_keep_mask(2, 16, 5, g)
    out = ablate(x, keep, "multichannel")
    assert out.shape == (2, 6, 4, 4)
    k = keep.view(2, 4, 4)
    for c in range(3):
        assert torch.equal(out[:, c][k], x[:, c][k]) and torch.equal(out[:, c + 3][k], 1 - x[:, c][k])
    assert (out.permute(0, 2, 3, 1)[~k] == 0).all()  # all six channels NULL together
    assert Ablation(5).channels(3) == 6 and Ablation(5, "mean", (0.5, 0.5, 0.5)).channels(3) == 3


def test_mean_encoding_exact():
    g = torch.Generator().manual_seed(6)
    x = torch.rand(2, 3, 4, 4, generator=g)
    keep = sample_keep_mask(2, 16, 5, g)
    mean = (0.1, 0.2, 0.3)
    out = ablate(x, keep, "mean", mean)
    k = keep.view(2, 1, 4, 4).expand_as(x)
    assert torch.equal(out[k], x[k])
    for c in range(3):
        assert (out[:, c][~keep.view(2, 4, 4)] == torch.tensor(mean[c])).all()


def test_ablation_object_per_sample_and_per_batch():
    x = torch.rand(8, 1, 28, 28)
    out = Ablation(45)(x, torch.Generator().manual_seed(7))
    kept = out.sum(1) > 0.5
    assert (kept.flatten(1).sum(1) == 45).all()
    assert len({tuple(m.flatten().tolist()) for m in kept}) == 8  # independent masks
    shared = Ablation(45, per_batch=True)(x, torch.Generator().manual_seed(7)).sum(1) > 0.5
    assert (shared == shared[0]).all()


def test_same_generator_seed_same_samples():
    x = torch.rand(4, 1, 28, 28)
    a = Ablation(45)(x, torch.Generator().manual_seed(8))
    b = Ablation(45)(x, torch.Generator().manual_seed(8))
    c = Ablation(45)(x, torch.Generator().manual_seed(9))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"k": 0}, "positive integer"),
        ({"k": -3}, "positive integer"),
        ({"k": 2.5}, "positive integer"),
        ({"k": 45, "encoding": "zeros"}, "unknown encoding"),
        ({"k": 45, "encoding": "mean"}, "mean"),
    ],
)
def test_bad_ablation_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ablation(**kwargs)


def test_k_larger_than_image_is_an_error():
    with pytest.raises(ValueError, match="k=50 exceeds .* d=7\\*7=49"):
        Ablation(50)(torch.rand(1, 1, 7, 7))
    with pytest.raises(ValueError, match="k=5, d=4"):
        sample_keep_mask(1, 4, 5)


def test_mean_encoding_channel_count_checked():
    with pytest.raises(ValueError, match="one mean value per channel"):
        ablate(torch.rand(1, 3, 2, 2), torch.ones(1, 4, dtype=torch.bool), "mean", (0.5,))


def test_config_round_trip_and_make_noise():
    from smoothcert.noises import noise_from_config

    for noise in [Ablation(45), Ablation(10, "mean", (0.25,))]:
        assert noise_from_config(noise.config()) == noise
    assert make_noise("ablation", k=45) == Ablation(45)
    assert make_noise("ablation", k=3, encoding="mean", train_mean=(0.5,)) == Ablation(3, "mean", (0.5,))
    with pytest.raises(ValueError, match="unknown noise"):
        make_noise("salt", k=3)
