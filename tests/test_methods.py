from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.special import softmax
from scipy.stats import norm
from torch import nn
from torch.distributions import Categorical, kl_divergence

from smoothcert.checkpoint import save_checkpoint
from smoothcert.training.methods import (
    METHODS,
    Consistency,
    Distillation,
    Macer,
    NoiseAugmentation,
    SmoothAdv,
    Stability,
    consistency_kl,
    distillation_kl,
    macer_hinge,
    make_method,
    method_from_config,
    noisy_copies,
    stability_kl,
)
from smoothcert.models import build_model
from smoothcert.noises import Lee, Ablation, Clean, Gaussian

K = 3  # classes
SIDE = 4  # images are 1 x 4 x 4, d = 16


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear(in_channels: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * SIDE * SIDE, K))


class Constant(nn.Module):
    """A classifier that ignores its input: every copy gets the same distribution."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.tensor([0.3, -0.2, 0.5]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(len(x), K)


def synthetic(n: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c brightens pixel rows c (and the rest is dim noise): learnable under both noises."""
    g = gen(seed)
    y = torch.arange(n) % K
    x = 0.2 * torch.rand(n, 1, SIDE, SIDE, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, 0, c] += 0.7
    return x, y


NOISES = {"ablation": Ablation(8), "gaussian": Gaussian(0.25)}


def model_for(noise, seed: int = 0) -> nn.Module:
    return linear(noise.channels(1), seed)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> str:
    """A checkpoint of an ordinary classifier (noise none) for 1 x 4 x 4 images, fitted a little to ``synthetic``."""
    torch.manual_seed(1)
    model = build_model("mnist_cnn", 1, K, (SIDE, SIDE))
    x, y = synthetic(12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(20):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("teacher") / "model"
    save_checkpoint(path, model.eval(), {**model.build_config, "noise": Clean().config()})
    return str(path)


def independent_kl(p: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return kl_divergence(Categorical(probs=p), Categorical(logits=logits))


# --- helpers -------------------------------------------------------------------------------------


def test_noisy_copies_layout_and_distinct_masks():
    x, _ = synthetic(5)
    out = noisy_copies(lambda z, g: z.clone(), x, 3, gen())
    assert out.shape == (15, 1, SIDE, SIDE)
    assert torch.equal(out.view(5, 3, 1, SIDE, SIDE), x.unsqueeze(1).expand(5, 3, 1, SIDE, SIDE))
    # one mask per batch and call: the copies of one image still get different masks
    masked = noisy_copies(Ablation(8, per_batch=True), x, 4, gen()).view(5, 4, 2, SIDE, SIDE)
    kept = masked.abs().sum(2) > 0  # multichannel: a kept pixel has (s, 1 - s) != 0
    assert all(kept[0, i].sum() == 8 for i in range(4))
    assert len({tuple(kept[0, i].flatten().tolist()) for i in range(4)}) > 1


def test_clean_input_formats():
    x, _ = synthetic(4)
    assert torch.equal(Gaussian(0.5).clean_input(x), x)
    assert torch.equal(Ablation(3).clean_input(x), torch.cat((x, 1 - x), dim=1))
    assert torch.equal(Ablation(3, "mean", (0.5,)).clean_input(x), x)
    with pytest.raises(ValueError, match="no clean input"):
        Lee(0.5).clean_input(x)


# --- consistency ---------------------------------------------------------------------------------


def test_consistency_kl_zero_for_identical_copies_and_matches_definition():
    row = torch.tensor([1.0, -0.5, 2.0])
    assert torch.allclose(consistency_kl(row.expand(2, 4, K)), torch.zeros(2), atol=1e-7)
    logits = torch.randn(5, 3, K, generator=gen(1))
    p_hat = logits.softmax(-1).mean(1, keepdim=True).expand(5, 3, K)
    expected = independent_kl(p_hat, logits).mean(1)
    got = consistency_kl(logits)
    assert (got > 0).all()
    assert torch.allclose(got, expected, atol=1e-6)


def test_consistency_loss_with_input_independent_model_has_no_kl_term():
    x, y = synthetic(6)
    model = Constant()
    loss, logits = Consistency(m=3, lam=10.0, eta=0.5)(model, x, y, Ablation(5), gen(), 0)
    p = model.bias.softmax(0)
    expected = F.cross_entropy(model.bias.expand(6, K), y) - 0.5 * (p * p.log()).sum()
    assert torch.allclose(loss, expected, atol=1e-6)
    assert logits.shape == (6, K)


def test_consistency_gradient_flows_through_p_hat():
    logits = torch.randn(4, 2, K, generator=gen(2), requires_grad=True)
    (grad,) = torch.autograd.grad(consistency_kl(logits).sum(), logits)
    p_hat = logits.softmax(-1).mean(1, keepdim=True).expand(4, 2, K)
    (full,) = torch.autograd.grad(independent_kl(p_hat, logits).mean(1).sum(), logits)
    (stopped,) = torch.autograd.grad(independent_kl(p_hat.detach(), logits).mean(1).sum(), logits)
    assert torch.allclose(grad, full, atol=1e-6)
    assert not torch.allclose(grad, stopped, atol=1e-4)  # the test can tell a detach apart
    # a parameter receives gradient from the KL term alone
    x, _ = synthetic(4)
    noise = NOISES["gaussian"]
    model = model_for(noise)
    out = model(noisy_copies(noise, x, 2, gen())).view(4, 2, K)
    consistency_kl(out).mean().backward()
    assert model[1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("method", [NoiseAugmentation(label_smoothing=0.2), Consistency(m=1, lam=0, eta=0, label_smoothing=0.2)])
def test_label_smoothing_is_the_mix_of_cross_entropy_and_the_uniform_target(method) -> None:
    x, y = synthetic()
    model = linear(1)
    loss, logits = method(model, x, y, Gaussian(0.25), gen(2), 0)
    log_p = logits.double().log_softmax(-1).detach().numpy()
    ce = -log_p[np.arange(len(y)), y.numpy()].mean()
    uniform = -log_p.mean()
    assert loss.item() == pytest.approx(0.8 * ce + 0.2 * uniform, rel=1e-5)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_smoothing"):
            NoiseAugmentation(label_smoothing=bad)


def test_consistency_m1_reduces_to_noise_augmentation_plus_entropy():
    x, y = synthetic(6)
    noise = NOISES["ablation"]
    model = model_for(noise)
    loss, logits = Consistency(m=1, lam=10.0, eta=0.0)(model, x, y, noise, gen(3), 0)
    ref_loss, ref_logits = NoiseAugmentation()(model, x, y, noise, gen(3), 0)
    assert torch.allclose(loss, ref_loss, atol=1e-6)
    assert torch.equal(logits, ref_logits)


# --- stability -----------------------------------------------------------------------------------


def test_stability_kl_zero_when_predictions_agree():
    logits = torch.randn(4, K, generator=gen(4))
    assert torch.allclose(stability_kl(logits, logits), torch.zeros(4), atol=1e-7)
    other = torch.randn(4, K, generator=gen(5))
    expected = independent_kl(logits.softmax(-1), other)
    assert torch.allclose(stability_kl(logits, other), expected, atol=1e-6)
    x, y = synthetic(6)
    model = Constant()
    loss, _ = Stability(lam=2.0)(model, x, y, NOISES["gaussian"], gen(), 0)
    assert torch.allclose(loss, F.cross_entropy(model.bias.expand(6, K), y), atol=1e-6)


def test_stability_uses_clean_input_in_model_format():
    x, y = synthetic(6)
    noise = Ablation(16)  # k = d: the noise keeps every pixel, so noisy == clean
    model = model_for(noise)
    loss, logits = Stability(lam=5.0)(model, x, y, noise, gen(), 0)
    clean_logits = model(torch.cat((x, 1 - x), dim=1))
    assert torch.allclose(loss, F.cross_entropy(clean_logits, y), atol=1e-6)
    assert torch.allclose(logits, clean_logits, atol=1e-6)


# --- MACER ---------------------------------------------------------------------------------------


def test_macer_hinge_against_scipy():
    # two images, m = 2 copies each; beta = 2 is the softmax temperature
    logits = torch.tensor([[[1.0, 0.2, -0.5], [0.6, 0.4, 0.0]], [[0.0, 0.3, 0.1], [0.2, 0.25, -1.0]]])
    y = torch.tensor([0, 1])
    p = softmax(2.0 * logits.numpy().astype(np.float64), axis=-1).mean(1)
    p_sorted = np.sort(p, axis=1)[:, ::-1]
    gap = norm.ppf(p_sorted[:, 0]) - norm.ppf(p_sorted[:, 1])
    assert np.argmax(p, 1).tolist() == [0, 1] and (gap < 3).all()
    got = macer_hinge(logits, y, beta=2.0, gamma=3.0, scale=0.125)
    assert np.allclose(got.numpy(), 0.125 * (3.0 - gap), atol=1e-5)
    # inactive once the gap exceeds gamma
    small_gamma = float(gap.min()) / 2
    assert torch.equal(macer_hinge(logits, y, beta=2.0, gamma=small_gamma, scale=1.0), torch.zeros(2))
    # inactive on misclassified inputs
    wrong = macer_hinge(logits, torch.tensor([2, 0]), beta=2.0, gamma=3.0, scale=1.0)
    assert torch.equal(wrong, torch.zeros(2))
    mixed = macer_hinge(logits, torch.tensor([0, 0]), beta=2.0, gamma=3.0, scale=1.0)
    assert mixed[1] == 0 and mixed[0] > 0


def test_macer_loss_terms_and_deferral():
    x, y = synthetic(6)
    noise = NOISES["gaussian"]
    model = model_for(noise)
    method = Macer(m=4, lam=3.0, deferred_epochs=2)
    deferred, _ = method(model, x, y, noise, gen(6), 1)
    active, logits = method(model, x, y, noise, gen(6), 2)
    out = model(noisy_copies(noise, x, 4, gen(6))).view(6, 4, K)
    ce = F.nll_loss(out.softmax(-1).mean(1).log(), y)
    hinge = macer_hinge(out, y, 16.0, 8.0, scale=0.25 / 2).mean()
    assert hinge > 0
    assert torch.allclose(deferred, ce, atol=1e-6)
    assert torch.allclose(active, ce + 3.0 * hinge, atol=1e-5)
    assert torch.equal(logits, out[:, 0])


# --- SmoothAdv -----------------------------------------------------------------------------------


def soft_smoothed_loss(model, x, y, delta, m):
    logits = model(x.repeat_interleave(m, 0) + delta).view(len(x), m, -1)
    return F.nll_loss(logits.softmax(-1).mean(1).log(), y, reduction="none")


def test_smoothadv_attack_stays_in_ball_and_box_and_leaves_model_alone():
    x, y = synthetic(6)
    x[0] = 1.0  # saturated images: the box constraint binds
    x[1] = 0.0
    noise = NOISES["gaussian"]
    model = model_for(noise)
    method = SmoothAdv(epsilon=0.8, steps=5, m=3)
    delta = noise(torch.zeros(18, 1, SIDE, SIDE), gen(7))
    model.train()
    x_adv = method.attack(model, x, y, delta, 0.8)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert not x_adv.requires_grad
    assert ((x_adv - x).flatten(1).norm(dim=1) <= 0.8 + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert (soft_smoothed_loss(model, x_adv, y, delta, 3) >= soft_smoothed_loss(model, x, y, delta, 3)).all()
    model.eval()
    method.attack(model, x, y, delta, 0.8)
    assert not model.training


def test_smoothadv_outer_loss_reuses_noise_and_epsilon_warms_up():
    method = SmoothAdv(epsilon=0.5, warmup_epochs=10)
    assert method.epsilon_at(0) == pytest.approx(0.05)
    assert method.epsilon_at(9) == pytest.approx(0.5) and method.epsilon_at(30) == pytest.approx(0.5)
    assert SmoothAdv(epsilon=0.5, warmup_epochs=0).epsilon_at(0) == 0.5
    x, y = synthetic(6)
    noise = NOISES["gaussian"]
    model = model_for(noise)
    method = SmoothAdv(epsilon=0.5, steps=3, m=2, warmup_epochs=0)
    model.train()
    loss, logits = method(model, x, y, noise, gen(8), 0)
    assert model.training and all(p.grad is None for p in model.parameters())
    delta = noise(torch.zeros(12, 1, SIDE, SIDE), gen(8))  # the same draw as inside the method
    x_adv = method.attack(model, x, y, delta, 0.5)
    expected = model(x_adv.repeat_interleave(2, 0) + delta)
    assert torch.allclose(loss, F.cross_entropy(expected, y.repeat_interleave(2)), atol=1e-6)
    assert torch.allclose(logits, expected.view(6, 2, K)[:, 0], atol=1e-6)


def test_smoothadv_refuses_ablation():
    x, y = synthetic(4)
    noise = NOISES["ablation"]
    with pytest.raises(ValueError, match="L0"):
        SmoothAdv()(model_for(noise), x, y, noise, gen(), 0)


def test_distillation_kl_against_torch_distributions():
    g = gen(3)
    t, s = torch.randn(5, K, generator=g), torch.randn(5, K, generator=g)
    for temperature in (1.0, 2.0, 4.0):
        expected = temperature**2 * independent_kl((t / temperature).softmax(-1), s / temperature)
        torch.testing.assert_close(distillation_kl(t, s, temperature), expected)
    assert distillation_kl(t, t, 2.0).abs().max() < 1e-6


def test_distillation_without_teacher_weight_is_consistency(teacher):
    x, y = synthetic(6)
    noise = Ablation(8)
    model = model_for(noise)
    distill, _ = Distillation(teacher, weight=0.0, m=3, lam=0.7)(model, x, y, noise, gen(4), 0)
    consistency, _ = Consistency(m=3, lam=0.7, eta=0.0)(model, x, y, noise, gen(4), 0)
    torch.testing.assert_close(distill, consistency)


def test_distillation_targets_are_the_teachers_on_the_clean_image(teacher):
    """weight 1, lam 0: the loss is T^2 KL from the teacher's softmax on x (its own input format: the
    teacher was trained without noise) to the student's on each ablated copy, computed here with scipy."""
    x, y = synthetic(6)
    noise = Ablation(8)  # the student sees two channels, the teacher one
    model = model_for(noise)
    method = Distillation(teacher, weight=1.0, temperature=3.0, m=2, lam=0.0)
    loss, _ = method(model, x, y, noise, gen(5), 0)
    teacher_model = build_model("mnist_cnn", 1, K, (SIDE, SIDE))
    teacher_model.load_state_dict(method._teacher[0].state_dict())
    with torch.no_grad():
        t = teacher_model.eval()(x).double().numpy()
        s = model(noisy_copies(noise, x, 2, gen(5))).double().numpy()
    p, q = softmax(t / 3.0, axis=1).repeat(2, axis=0), softmax(s / 3.0, axis=1)
    assert float(loss.detach()) == pytest.approx(9.0 * float(np.mean(np.sum(p * np.log(p / q), axis=1))), rel=1e-5)
    assert not any(w.requires_grad for w in method._teacher[0].parameters())


def test_distillation_refuses_a_missing_teacher_or_other_classes(teacher, tmp_path):
    with pytest.raises(ValueError, match="teacher must name a classifier checkpoint"):
        make_method("distillation")
    with pytest.raises((ValueError, FileNotFoundError), match="nowhere"):
        make_method("distillation", teacher=str(tmp_path / "nowhere"))
    x = torch.rand(4, 1, SIDE, SIDE)
    five_classes = nn.Sequential(nn.Flatten(), nn.Linear(2 * SIDE * SIDE, 5))
    with pytest.raises(ValueError, match="teacher .* has 3 classes, the model 5"):
        Distillation(teacher)(five_classes, x, torch.zeros(4, dtype=torch.long), Ablation(8), gen(), 0)


# --- training ------------------------------------------------------------------------------------

SMALL = {
    "noise": {},
    "consistency": {"m": 2, "lam": 1.0},
    "stability": {},
    "macer": {"m": 4, "lam": 1.0},
    "smoothadv": {"epsilon": 0.25, "steps": 2, "m": 2, "warmup_epochs": 0},
    "distillation": {"m": 2, "lam": 1.0},
}
CASES = [(m, n) for m in METHODS for n in NOISES if not (m == "smoothadv" and n == "ablation")]


@pytest.mark.parametrize("name,noise_name", CASES)
def test_loss_decreases_under_sgd(name, noise_name, teacher):
    x, y = synthetic(12)
    noise = NOISES[noise_name]
    model = model_for(noise)
    method = make_method(name, **SMALL[name], **({"teacher": teacher} if name == "distillation" else {}))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    before, _ = method(model, x, y, noise, gen(100), 5)
    for step in range(15):
        loss, logits = method(model, x, y, noise, gen(step), 5)
        assert logits.shape == (12, K) and torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after, _ = method(model, x, y, noise, gen(100), 5)
    assert after < 0.8 * before


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,params",
    [
        ("noise", {}),
        ("consistency", {"m": 4, "lam": 5, "eta": 0.0}),
        ("stability", {"lam": 1.5}),
        ("macer", {"m": 8, "beta": 4.0, "gamma": 2, "lam": 6.0, "deferred_epochs": 30}),
        ("smoothadv", {"epsilon": 1.0, "steps": 4, "m": 8, "warmup_epochs": 5}),
        ("distillation", {"weight": 0.25, "temperature": 4.0, "m": 3, "lam": 0.0}),
    ],
)
def test_config_round_trip(name, params, teacher):
    params = {**params, "teacher": teacher} if name == "distillation" else params
    method = make_method(name, **params)
    cfg = method.config()
    assert cfg["method"] == name
    assert {k: cfg[k] for k in params} == params
    restored = method_from_config(json.loads(json.dumps(cfg)))
    assert restored == method and restored.config() == cfg


def test_defaults_from_the_papers():
    assert Consistency().config() == {"method": "consistency", "m": 2, "lam": 10.0, "eta": 0.5, "label_smoothing": 0.0}
    assert Stability().lam == 2.0
    assert Macer().config() == {"method": "macer", "m": 16, "beta": 16.0, "gamma": 8.0, "lam": 16.0, "deferred_epochs": 0}
    assert SmoothAdv().config() == {"method": "smoothadv", "epsilon": 0.5, "steps": 10, "m": 4, "warmup_epochs": 10}


@pytest.mark.parametrize(
    "name,params,match",
    [
        ("consistency", {"m": 0}, "m must be an integer >= 1"),
        ("consistency", {"m": 2.0}, "m must be an integer"),
        ("consistency", {"m": True}, "m must be an integer"),
        ("consistency", {"lam": -1.0}, "lam must be a finite number >= 0"),
        ("consistency", {"eta": math.nan}, "eta"),
        ("stability", {"lam": "2"}, "lam"),
        ("macer", {"m": 0}, "m must be"),
        ("macer", {"beta": 0.0}, "beta must be a finite number > 0"),
        ("macer", {"gamma": -1.0}, "gamma"),
        ("macer", {"deferred_epochs": -1}, "deferred_epochs"),
        ("smoothadv", {"epsilon": -0.1}, "epsilon"),
        ("smoothadv", {"steps": 0}, "steps"),
        ("smoothadv", {"m": 0}, "m must be"),
        ("smoothadv", {"warmup_epochs": -1}, "warmup_epochs"),
        ("noise", {"lam": 1.0}, "unknown parameter"),
        ("consistency", {"sigma": 0.5}, r"valid parameters: \['m', 'lam', 'eta', 'label_smoothing'\]"),
        ("mixup", {}, "unknown training method 'mixup'; choose one of"),
    ],
)
def test_bad_parameters_rejected(name, params, match):
    with pytest.raises(ValueError, match=match):
        make_method(name, **params)


@pytest.mark.parametrize(
    "params,match",
    [({"weight": 1.5}, r"weight must lie in \[0, 1\]"), ({"weight": -0.1}, "weight"),
     ({"temperature": 0.0}, "temperature must be a finite number > 0"), ({"m": 0}, "m must be"),
     ({"lam": -1.0}, "lam"), ({"_teacher": None}, "unknown parameter")],
)
def test_bad_distillation_parameters_rejected(teacher, params, match):
    with pytest.raises(ValueError, match=match):
        make_method("distillation", teacher=teacher, **params)


def test_config_without_method_rejected():
    with pytest.raises(ValueError, match="'method'"):
        method_from_config({"lam": 2.0})
    assert isinstance(method_from_config({"method": "noise"}), NoiseAugmentation)
    assert Consistency(m=1).m == 1  # allowed: the KL term vanishes
