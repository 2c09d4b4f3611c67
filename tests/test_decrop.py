import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from smoothcert import decrop
from smoothcert.decrop import (
    DecropObjective,
    Penultimate,
    SampleParams,
    cosine_loss,
    frozen,
    generate_samples,
    grl_coefficient,
    interpolated_samples,
    mmd,
    pgd_linf,
    reverse_gradient,
    state_hash,
)
from smoothcert.denoisers import DnCNN
from smoothcert.models import MnistCNN, build_model
from smoothcert.noises import Gaussian


def tiny_classifier(seed: int = 0) -> MnistCNN:
    torch.manual_seed(seed)
    return MnistCNN(1, 3, (8, 8)).eval()


def images(n: int = 6, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % 3


def numpy_mmd(a: np.ndarray, b: np.ndarray, kernels: int = 5) -> float:
    """Independent MMD^2: explicit double loops over pairs, float64."""
    z = np.concatenate([a, b]).astype(np.float64)
    m = len(z)
    d2 = np.array([[np.sum((z[i] - z[j]) ** 2) for j in range(m)] for i in range(m)])
    h = d2.sum() / (m * m - m)
    def kernel(i: int, j: int) -> float:
        return sum(math.exp(-d2[i, j] / (h * 2.0 ** (q - kernels // 2))) for q in range(kernels))
    n = len(a)
    xx = np.mean([kernel(i, j) for i in range(n) for j in range(n)])
    yy = np.mean([kernel(i, j) for i in range(n, m) for j in range(n, m)])
    xy = np.mean([kernel(i, j) for i in range(n) for j in range(n, m)])
    return xx + yy - 2 * xy


def test_mmd_zero_for_identical_sets_and_positive_otherwise():
    a = F.normalize(torch.randn(7, 5, generator=torch.Generator().manual_seed(0)), dim=1)
    b = F.normalize(torch.randn(7, 5, generator=torch.Generator().manual_seed(1)), dim=1)
    assert abs(float(mmd(a, a.clone()))) < 1e-6
    assert float(mmd(a, b)) > 1e-3
    # the same points in another order are the same empirical distribution
    assert abs(float(mmd(a, a.flip(0)))) < 1e-6


def test_mmd_matches_independent_numpy_computation():
    a = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    b = torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5
    assert float(mmd(a, b)) == pytest.approx(numpy_mmd(a.numpy(), b.numpy()), rel=1e-9)


def test_mmd_rejects_bad_shapes():
    with pytest.raises(ValueError, match="MMD"):
        mmd(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="MMD"):
        mmd(torch.zeros(0, 4), torch.zeros(3, 4))


def test_cosine_loss_on_hand_made_vectors():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    b = torch.tensor([[2.0, 0.0], [0.0, -1.0], [0.0, 1.0]])  # same direction, opposite, orthogonal
    assert float(cosine_loss(a, b)) == pytest.approx((0 + 2 + 1) / 3)


def test_gradient_reversal_flips_and_scales_the_gradient():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    w = torch.tensor([0.5, 1.5, -2.0])
    y = reverse_gradient(x, 0.7)
    assert torch.equal(y, x.detach())
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w)


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.5, 1.0])
def test_grl_ramp_matches_its_formula(p):
    assert grl_coefficient(p) == pytest.approx(2 * (2 / (1 + math.exp(-10 * p)) - 1))
    assert grl_coefficient(p, weight=1.0) == pytest.approx(math.tanh(5 * p))  # the same curve, another form


def test_grl_ramp_rejects_progress_outside_unit_interval():
    with pytest.raises(ValueError, match="progress"):
        grl_coefficient(1.5)


def test_pgd_stays_in_eps_ball_and_unit_box_and_raises_the_loss():
    model = tiny_classifier()
    x, y = images(8)
    x[0] = 0.0  # border cases: the eps-ball leaves [0, 1]
    x[1] = 1.0
    eps = 8 / 255
    x_adv = pgd_linf(model, x, y, eps=eps, generator=torch.Generator().manual_seed(0))
    assert float((x_adv - x).abs().max()) <= eps + 1e-6
    assert float(x_adv.min()) >= 0 and float(x_adv.max()) <= 1
    assert not torch.equal(x_adv, x)
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y)


def test_pgd_rejects_bad_parameters():
    x, y = images(2)
    with pytest.raises(ValueError, match="eps"):
        pgd_linf(tiny_classifier(), x, y, eps=0.0)


def test_interpolated_samples_move_toward_the_mixed_logits():
    model = tiny_classifier()
    x, y = images(6)
    x_b = pgd_linf(model, x, y, eps=0.1, step=0.03, generator=torch.Generator().manual_seed(0))
    x_int = interpolated_samples(model, x, x_b, alpha=0.8, lr=1e-2, tol=0.0, max_steps=30)
    with torch.no_grad():
        target = 0.8 * model(x) + 0.2 * model(x_b)
        assert F.mse_loss(model(x_int), target) < F.mse_loss(model(x), target)
    assert float(x_int.min()) >= 0 and float(x_int.max()) <= 1


def test_interpolation_rejects_alpha_outside_unit_interval():
    x, _ = images(2)
    with pytest.raises(ValueError, match="alpha"):
        interpolated_samples(tiny_classifier(), x, x, alpha=1.5)


def count_pgd(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = decrop.pgd_linf

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decrop, "pgd_linf", counting)
    return calls


def test_sample_cache_is_reused_and_invalidated_by_each_input(tmp_path, monkeypatch):
    calls = count_pgd(monkeypatch)
    model = tiny_classifier()
    x, y = images(4)
    params = SampleParams(steps=2, max_steps=2)
    first = generate_samples(model, x, y, params=params, cache_dir=tmp_path)
    assert len(calls) == 1 and len(list(tmp_path.glob("*.safetensors"))) == 1
    again = generate_samples(model, x, y, params=params, cache_dir=tmp_path)
    assert len(calls) == 1  # loaded, not recomputed
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])

    changed = tiny_classifier()
    with torch.no_grad():
        changed.fc.bias[0] += 1e-3
    generate_samples(changed, x, y, params=params, cache_dir=tmp_path)
    assert len(calls) == 2
    x2 = x.clone()
    x2[0, 0, 0, 0] = 0.5 if x2[0, 0, 0, 0] != 0.5 else 0.25
    generate_samples(model, x2, y, params=params, cache_dir=tmp_path)
    assert len(calls) == 3
    generate_samples(model, x, y, params=SampleParams(eps=4 / 255, steps=2, max_steps=2), cache_dir=tmp_path)
    assert len(calls) == 4
    assert len(list(tmp_path.glob("*.safetensors"))) == 4
    generate_samples(model, x, y, params=params, cache_dir=tmp_path)  # the first one is still there
    assert len(calls) == 4


def test_corrupt_cache_is_reported(tmp_path):
    model = tiny_classifier()
    x, y = images(2)
    params = SampleParams(steps=1, max_steps=1)
    generate_samples(model, x, y, params=params, cache_dir=tmp_path)
    (file,) = tmp_path.glob("*.safetensors")
    file.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="corrupt"):
        generate_samples(model, x, y, params=params, cache_dir=tmp_path)


def test_generation_keeps_the_classifier_frozen_and_unchanged():
    model = tiny_classifier()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = images(3)
    generate_samples(model, x, y, params=SampleParams(steps=2, max_steps=2))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.requires_grad for p in model.parameters())  # flags restored


def test_frozen_sets_and_restores_flags():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    model[0].weight.requires_grad_(False)
    model[1].eval()
    with frozen(model):
        assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert model.training and not model[1].training
    assert [p.requires_grad for p in model.parameters()] == [False, True, True, True]


def test_state_hash_tracks_weights():
    a, b = tiny_classifier(0), tiny_classifier(0)
    assert state_hash(a) == state_hash(b)
    with torch.no_grad():
        b.fc.weight[0, 0] += 1e-6
    assert state_hash(a) != state_hash(b)


def test_penultimate_features_of_our_models_plain_sequentials_and_named_layers():
    x, _ = images(3)
    model = tiny_classifier()
    feats, logits = Penultimate(model)(x)
    assert torch.equal(feats, model.features(x)) and torch.equal(logits, model(x))

    torch.manual_seed(0)
    wrapped = build_model("mnist_cnn", 1, 3, (8, 8), mean=[0.1], std=[0.3]).eval()
    feats, logits = Penultimate(wrapped)(x)
    assert torch.equal(feats, wrapped.model.features((x - 0.1) / 0.3)) and torch.allclose(logits, wrapped(x))

    torch.manual_seed(0)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(64, 5), nn.ReLU(), nn.Linear(5, 3))
    feats, logits = Penultimate(plain)(x)
    assert torch.allclose(feats, torch.relu(plain[1](x.flatten(1)))) and torch.equal(logits, plain(x))
    feats, _ = Penultimate(plain, layer="1")(x)  # a user-named module: its input
    assert torch.equal(feats, x.flatten(1))


def test_penultimate_errors():
    with pytest.raises(ValueError, match="penultimate"):
        Penultimate(nn.Sequential(nn.Conv2d(1, 3, 8), nn.Flatten()))
    with pytest.raises(ValueError, match="no module named"):
        Penultimate(tiny_classifier(), layer="nope")


def test_decrop_objective_trains_the_denoiser_only():
    model = tiny_classifier()
    x, y = images(6)
    x_b, x_int = generate_samples(model, x, y, params=SampleParams(steps=2, max_steps=2))
    denoiser = DnCNN(1, depth=3, width=4)
    with frozen(model):
        objective = DecropObjective(model, x, x_b, x_int)
        disc_before = [p.clone() for p in objective.discriminator.parameters()]
        g = torch.Generator().manual_seed(0)
        idx = torch.arange(6)
        stage2 = objective(denoiser, idx, Gaussian(0.25), g, None)
        stage2.backward()
        assert math.isfinite(stage2.item()) and stage2.item() > 0
        assert denoiser.body[-1].weight.grad.abs().sum() > 0
        assert all(p.grad is None for p in model.parameters())
        denoiser.zero_grad()
        stage3 = objective(denoiser, idx, Gaussian(0.25), g, 0.5)
        stage3.backward()
        objective.step()
    assert stage3.item() > 0
    assert any(not torch.equal(a, b) for a, b in zip(disc_before, objective.discriminator.parameters()))
