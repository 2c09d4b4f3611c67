"""Deterministic certificates (column/block smoothing, partition voting) against exact enumeration."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert.certificates import certified_against, largest_certified_patch, partition_radius, patch_delta, top_two
from smoothcert.classifiers import DeterministicClassifier
from smoothcert.noises import Bands, Partition, make_noise, noise_from_config, partition_assignment


class BrightAny(nn.Module):
    """Class 1 iff a kept pixel is brighter than 0.5, else class 0 (reads channel 0 of the multichannel
    encoding). On a black image every copy votes 0 and a white patch flips exactly the copies it touches,
    so the certificates are tight for it."""

    def forward(self, z):
        bright = z[:, 0].flatten(1).max(1).values - 0.5
        return torch.stack([-bright, bright], 1) * 10


def _linear(seed, channels, h, w, classes=3):
    """A random linear base classifier whose bias favours some class, so that votes often agree."""
    torch.manual_seed(seed)
    layer = nn.Linear(channels * h * w, classes)
    with torch.no_grad():
        layer.weight.mul_(3.0)
        layer.bias.normal_(0.0, 1.0)
    return nn.Sequential(nn.Flatten(), layer)


# ---------- ablation sets ----------

def test_columns_wrap_around_and_cover_every_pixel_s_times():
    keep = Bands("columns", 2).keep_masks(3, 5).view(5, 3, 5)
    assert keep.shape == (5, 3, 5)
    for j in range(5):
        kept_cols = {c for c in range(5) if keep[j, :, c].all()}
        assert kept_cols == {j, (j + 1) % 5}
        assert keep[j].sum() == 2 * 3
    assert (keep.sum(0) == 2).all()


def test_blocks_wrap_around_and_cover_every_pixel_s_squared_times():
    keep = Bands("blocks", 2).keep_masks(3, 4).view(3, 4, 3, 4)  # (block row, block col, H, W)
    for i, j in itertools.product(range(3), range(4)):
        expected = torch.zeros(3, 4, dtype=torch.bool)
        for a, b in itertools.product(range(2), range(2)):
            expected[(i + a) % 3, (j + b) % 4] = True
        assert torch.equal(keep[i, j], expected)
    assert (keep.sum((0, 1)) == 4).all()


@pytest.mark.parametrize("shape,s,h,w", [("columns", 1, 5, 6), ("columns", 3, 4, 7), ("blocks", 2, 5, 5),
                                         ("blocks", 3, 4, 6)])
def test_patch_delta_is_the_largest_number_of_sets_a_patch_meets(shape, s, h, w):
    """Delta(m) against enumeration of every patch position: the bound is exact, never too small."""
    bands = Bands(shape, s)
    keep = bands.keep_masks(h, w).view(-1, h, w)
    for m in range(1, min(h, w) + 1):
        most = max(int(keep[:, i:i + m, j:j + m].flatten(1).any(1).sum())
                   for i in range(h - m + 1) for j in range(w - m + 1))
        assert patch_delta(m, s, shape, (h, w)) == most
    assert patch_delta(0, s, shape, (h, w)) == 0


def test_band_training_noise_keeps_one_band_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(200, 1, 6, 7, generator=g)
    for bands, count in ((Bands("columns", 3), 7), (Bands("blocks", 2), 42)):
        z = bands(x, g)
        kept = z.sum(1).flatten(1) > 0  # multichannel: (v, 1-v) sums to 1 where kept, 0 where ablated
        sets = bands.keep_masks(6, 7)
        match = (kept[:, None, :] == sets[None]).all(2)
        assert (match.sum(1) == 1).all()  # each image is exactly one of the enumerated sets
        assert len(set(match.float().argmax(1).tolist())) > count // 2  # and the sets vary


def test_partition_groups_are_disjoint_cover_every_pixel_and_are_balanced():
    for d, t in ((16, 5), (784, 30), (784, 784), (10, 1)):
        assignment = np.array(partition_assignment(d, t, seed=3))
        sizes = np.bincount(assignment, minlength=t)
        assert len(sizes) == t and sizes.min() >= d // t and sizes.max() <= -(-d // t)
    part = Partition.create(5, (4, 4), seed=3)
    keep = part.keep_masks(4, 4)
    assert keep.shape == (5, 16)
    assert (keep.sum(0) == 1).all()  # every pixel in exactly one group: disjoint and covering


def test_partition_is_seeded_and_rebuilt_exactly_from_its_config():
    a, b, c = Partition.create(7, (5, 5), 1), Partition.create(7, (5, 5), 1), Partition.create(7, (5, 5), 2)
    assert a.assignment == b.assignment and a.assignment != c.assignment
    assert noise_from_config(a.config()) == a
    assert make_noise("partition", groups=7, image_size=(5, 5), seed=1) == a
    with pytest.raises(ValueError, match="non-empty groups"):
        Partition(3, (2, 2), (0, 1, 1, 0))
    with pytest.raises(ValueError, match="assigns 3 pixels"):
        Partition(2, (2, 2), (0, 1, 1))
    with pytest.raises(ValueError, match="--groups"):
        make_noise("partition", image_size=(5, 5))
    with pytest.raises(ValueError, match="--band"):
        make_noise("columns")


# ---------- the certificates as functions of the votes ----------

@pytest.mark.parametrize("counts,y,runner_up,radius", [
    ([3, 3, 0], 0, 1, 0),       # tie: the smaller index wins and keeps radius 0
    ([2, 5, 5], 1, 2, 0),
    ([5, 2, 7], 2, 0, 0),       # gap 2, but y > y': one changed copy makes a tie that 0 wins
    ([7, 3, 1], 0, 1, 2),       # gap 4, y < y': two changed copies tie, 0 still wins
    ([3, 7, 0, 3], 1, 0, 1),    # the runner-up is the smaller of the tied classes 0 and 3
    ([0, 0, 9], 2, 0, 4),
])
def test_tie_breaks(counts, y, runner_up, radius):
    counts = np.array(counts)
    assert top_two(counts) == (y, runner_up)
    assert partition_radius(counts) == radius
    assert certified_against(counts, radius) and not certified_against(counts, radius + 1)


def test_partition_radius_matches_exhaustive_vote_changes():
    """r copies changed can move the argmax votes to any count vector within r moves of one vote;
    the radius is the largest r for which every such vector keeps the prediction."""
    t, k = 6, 3
    vectors = [np.array(v) for v in itertools.product(range(t + 1), repeat=k) if sum(v) == t]
    for counts in vectors:
        y = top_two(counts)[0]
        safe = [all(top_two(other)[0] == y for other in vectors if np.abs(other - counts).sum() // 2 <= r)
                for r in range(t + 1)]
        assert partition_radius(counts) == max(r for r in range(t + 1) if all(safe[:r + 1]))


def test_largest_certified_patch_is_the_last_certified_side():
    # columns of width 4 on 28x28: an m x m patch meets Delta = min(m + 3, 28) columns
    assert largest_certified_patch(np.array([20, 4, 4]), 4, "columns", (28, 28)) == 5  # gap 16: Delta <= 8
    assert largest_certified_patch(np.array([4, 4, 4]), 4, "columns", (28, 28)) == 0  # a tie survives no change
    assert largest_certified_patch(np.array([28, 0]), 4, "columns", (28, 28)) == 11  # gap 28: Delta <= 14


# ---------- exhaustive soundness on tiny images ----------

def _patched(x, m, i, j, content):
    out = x.clone()
    out[:, i:i + m, j:j + m] = content
    return out


def _patch_flips(classifier, x, m):
    """Whether some m x m patch at some position with content from the corners of [0, 1] changes the prediction."""
    c, h, w = x.shape
    y = classifier.predict(x)
    for bits in itertools.product((0.0, 1.0), repeat=c * m * m):
        content = torch.tensor(bits).view(c, m, m)
        for i, j in itertools.product(range(h - m + 1), range(w - m + 1)):
            if classifier.predict(_patched(x, m, i, j, content)) != y:
                return True
    return False


def test_patch_certificate_is_tight_for_the_bright_pixel_model():
    """Black 5x6 image, columns s=2: all 6 copies vote 0. A white m x m patch flips min(m+1, 6) copies,
    so 1 x 1 and 2 x 2 patches are certified (gap 6 >= 2*3 with the tie-break) and 3 x 3 is not."""
    classifier = DeterministicClassifier(BrightAny(), Bands("columns", 2), 2, (5, 6), vote="argmax", device="cpu")
    x = torch.zeros(1, 5, 6)
    cert = classifier.certify(x)
    assert (cert.predict, cert.count, cert.n, cert.radius) == (0, 6, 6, 2.0) and np.isnan(cert.p_lower)
    assert not _patch_flips(classifier, x, 1) and not _patch_flips(classifier, x, 2)
    assert _patch_flips(classifier, x, 3)  # the exhaustive check finds the attack one size up


@pytest.mark.parametrize("shape,s,h,w,vote", [("columns", 2, 4, 5, "argmax"), ("columns", 1, 4, 5, "threshold"),
                                              ("blocks", 2, 4, 4, "argmax"), ("blocks", 1, 3, 4, "threshold")])
def test_patch_certificate_exhaustively_sound(shape, s, h, w, vote):
    """Random linear base classifiers on random images: no patch of a certified size changes the prediction."""
    certified = 0
    for seed in range(12):
        classifier = DeterministicClassifier(_linear(seed, 2, h, w), Bands(shape, s), 3, (h, w), vote=vote,
                                             theta=0.3, device="cpu")
        x = torch.rand(1, h, w, generator=torch.Generator().manual_seed(seed))
        side = int(classifier.certify(x).radius)
        for m in range(1, min(side, 2) + 1):
            assert not _patch_flips(classifier, x, m), (seed, m)
            certified += 1
        assert classifier.certify(x).radius == largest_certified_patch(classifier.votes(x), s, shape, (h, w))
    assert certified >= 3  # the check above ran on real certificates


def _pixel_flips(classifier, x, r):
    """Whether changing some set of at most r pixels to corners of [0, 1] changes the prediction."""
    c, h, w = x.shape
    y = classifier.predict(x)
    for size in range(1, r + 1):
        for pixels in itertools.combinations(range(h * w), size):
            for bits in itertools.product((0.0, 1.0), repeat=c * size):
                adv = x.clone().view(c, h * w)
                adv[:, list(pixels)] = torch.tensor(bits).view(c, size)
                if classifier.predict(adv.view(c, h, w)) != y:
                    return True
    return False


def test_partition_radius_is_tight_for_the_bright_pixel_model():
    """Black 4x4 image, T=5 groups: all copies vote 0, gap 5, radius 2; three white pixels in three groups flip it."""
    classifier = DeterministicClassifier(BrightAny(), Partition.create(5, (4, 4), 0), 2, (4, 4), device="cpu")
    x = torch.zeros(1, 4, 4)
    assert classifier.certify(x).radius == 2
    assert not _pixel_flips(classifier, x, 2)
    assert _pixel_flips(classifier, x, 3)


@pytest.mark.parametrize("vote", ["argmax", "threshold"])
def test_partition_certificate_exhaustively_sound(vote):
    """Every set of at most r pixels (r the certified radius) with corner values keeps the prediction."""
    certified = 0
    for seed in range(6):
        classifier = DeterministicClassifier(_linear(seed, 2, 3, 4), Partition.create(7, (3, 4), seed), 3, (3, 4),
                                             vote=vote, theta=0.3, device="cpu")
        x = torch.rand(1, 3, 4, generator=torch.Generator().manual_seed(100 + seed))
        r = int(classifier.certify(x).radius)
        assert not _pixel_flips(classifier, x, min(r, 3)), seed
        certified += r > 0
    assert certified >= 3


def test_threshold_votes_count_every_class_above_theta():
    classifier = DeterministicClassifier(_linear(0, 2, 3, 4), Bands("columns", 2), 3, (3, 4), vote="threshold",
                                         theta=0.01, device="cpu")
    votes = classifier.copy_votes(torch.rand(1, 3, 4, generator=torch.Generator().manual_seed(0)))
    assert votes.shape == (4, 3) and votes.sum() > 4  # a low threshold gives some copies several votes


def test_bad_arguments():
    net = _linear(0, 2, 3, 4)
    with pytest.raises(ValueError, match="unknown vote"):
        DeterministicClassifier(net, Bands("columns", 2), 3, (3, 4), vote="mean")
    with pytest.raises(ValueError, match="theta"):
        DeterministicClassifier(net, Bands("columns", 2), 3, (3, 4), vote="threshold", theta=0.0)
    with pytest.raises(ValueError, match="--patch certifies"):
        DeterministicClassifier(net, Partition.create(2, (3, 4)), 3, (3, 4), patch=2)
    with pytest.raises(ValueError, match="band size 5 exceeds"):
        Bands("columns", 5).keep_masks(3, 4)
    with pytest.raises(ValueError, match="deterministic"):
        from smoothcert.classifiers.smoothed import SmoothedClassifier
        SmoothedClassifier(net, Bands("columns", 2), 3)
