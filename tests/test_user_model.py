"""A user's own model: the classifiers never change the module they are handed, take inputs in a
declared space with preprocessing inside, and show progress on batch calls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from smoothcert import Ablation, Bands, Gaussian, load_checkpoint
from smoothcert.classifiers import DeterministicClassifier, SmoothedClassifier, load_classifier
from smoothcert.data import load_dataset
from smoothcert.models import build_model

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def snapshot(module: nn.Module) -> dict:
    """Everything a caller could observe of a module: each submodule's type, mode and attribute
    names, and each tensor's values, dtype, device, layout (strides) and requires_grad."""
    modules = {name: (type(m).__name__, m.training, sorted(vars(m))) for name, m in module.named_modules()}
    tensors = {name: (t.detach().clone(), t.dtype, t.device, t.stride(), t.requires_grad)
               for name, t in [*module.named_parameters(), *module.named_buffers()]}
    return {"modules": modules, "tensors": tensors}


def assert_unchanged(before: dict, module: nn.Module) -> None:
    after = snapshot(module)
    assert after["modules"] == before["modules"]
    assert after["tensors"].keys() == before["tensors"].keys()
    for name, (value, *attributes) in before["tensors"].items():
        now, *now_attributes = after["tensors"][name]
        assert now_attributes == attributes, name
        assert torch.equal(now, value), name  # bit for bit


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_smoothed_classifier_leaves_the_callers_model_as_it_was(mode):
    model = build_model("mnist_cnn", in_channels=2, num_classes=10)  # channels-last pays for it: "auto" is on
    model.train(mode == "train")
    before = snapshot(model)
    smoothed = SmoothedClassifier(model, Ablation(k=45), 10, device="cpu")
    assert_unchanged(before, model)
    images = load_dataset("mnist5k", "test").x[:2]
    smoothed.certify(images, 20, 100, 0.05, progress=False)
    smoothed.predict(images[0], 100, 0.05)
    assert_unchanged(before, model)
    assert getattr(smoothed.base, "channels_last", False)  # the speed-up applies to the library's view


def test_a_model_in_eval_mode_on_the_device_is_used_without_a_copy():
    model = build_model("mnist_cnn", in_channels=2, num_classes=10).eval()
    smoothed = SmoothedClassifier(model, Ablation(k=45), 10, device="cpu")
    assert smoothed.base.model is model


def test_deterministic_classifier_leaves_the_callers_model_as_it_was():
    model = build_model("mnist_cnn", in_channels=2, num_classes=10).train()
    before = snapshot(model)
    classifier = DeterministicClassifier(model, Bands(shape="columns", band=4), 10, (28, 28), device="cpu")
    classifier.certify(load_dataset("mnist5k", "test").x[0])
    assert_unchanged(before, model)


def test_load_classifier_leaves_a_loaded_model_as_it_was(tiny_checkpoint):
    _, path = tiny_checkpoint
    model, _ = load_checkpoint(path)
    before = snapshot(model)
    classifier = load_classifier(path, device="cpu")
    smoothed = SmoothedClassifier(model, classifier.noise, classifier.num_classes, device="cpu")
    smoothed.certify(torch.rand(1, 8, 8), 10, 50, 0.05, generator=torch.Generator().manual_seed(0))
    assert_unchanged(before, model)


class HandNormalize(nn.Module):
    """What a user writes without the preprocessing option: the normalisation as the model's first layer."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - MNIST_MEAN) / MNIST_STD


def outcomes(certs: list) -> list[tuple]:
    """Certificates as comparable tuples (an abstention's radius is NaN, which equals nothing)."""
    return [(c.predict, c.count, c.n, c.p_lower, None if math.isnan(c.radius) else c.radius) for c in certs]


@pytest.fixture(scope="module")
def normalised_model() -> nn.Module:
    """A small CNN trained with Gaussian noise (sigma 0.25) on normalised mnist5k digits, as models
    in the wild are: it expects (x - mean) / std of a noisy image x in [0, 1]."""
    torch.manual_seed(0)
    data = load_dataset("mnist5k", "train")
    model = nn.Sequential(nn.Conv2d(1, 8, 5, stride=2), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 12 * 12, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(2):
        for i in range(0, 4000, 100):
            x, y = data.x[i:i + 100], data.y[i:i + 100]
            noisy = x + 0.25 * torch.randn_like(x)
            loss = nn.functional.cross_entropy(model((noisy - MNIST_MEAN) / MNIST_STD), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def test_declared_preprocessing_gives_the_radii_of_the_model_wrapped_by_hand(normalised_model):
    test = load_dataset("mnist5k", "test")
    images, labels = test.x[:12], test.y[:12].tolist()
    declared = SmoothedClassifier(normalised_model, Gaussian(0.25), 10, device="cpu",
                                  preprocessing={"mean": [MNIST_MEAN], "std": [MNIST_STD]})
    by_hand = SmoothedClassifier(nn.Sequential(HandNormalize(), normalised_model), Gaussian(0.25), 10, device="cpu")
    ours = outcomes(declared.certify(images, 50, 500, 0.01, seed=1, progress=False))
    assert ours == outcomes(by_hand.certify(images, 50, 500, 0.01, seed=1, progress=False))
    assert sum(c[0] == y for c, y in zip(ours, labels, strict=True)) >= 9  # the model did learn
    assert sum(c[4] is not None and c[4] > 0.25 for c in ours) >= 6  # and certifies
    as_callable = SmoothedClassifier(normalised_model, Gaussian(0.25), 10, device="cpu",
                                     preprocessing=lambda x: (x - MNIST_MEAN) / MNIST_STD)
    assert outcomes(as_callable.certify(images, 50, 500, 0.01, seed=1, progress=False)) == ours


def test_bounds_declare_the_input_space_where_the_noise_acts_and_the_radius_holds(normalised_model):
    images = load_dataset("mnist5k", "test").x[:6]
    unit = SmoothedClassifier(normalised_model, Gaussian(0.25), 10, device="cpu",
                              preprocessing={"mean": MNIST_MEAN, "std": MNIST_STD})
    with pytest.raises(ValueError, match=r"\[0, 1\].*bounds="):
        unit.certify(images[0] * 255, 50, 500, 0.01)
    bytes_space = SmoothedClassifier(normalised_model, Gaussian(0.25 * 255), 10, device="cpu", bounds=(0, 255),
                                     preprocessing={"mean": MNIST_MEAN * 255, "std": MNIST_STD * 255})
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        bytes_space.certify(images[0] * 300, 50, 500, 0.01)
    in_bytes = bytes_space.certify(images * 255, 50, 500, 0.01, seed=2, progress=False)
    in_unit = unit.certify(images, 50, 500, 0.01, seed=2, progress=False)
    for a, b in zip(in_bytes, in_unit, strict=True):
        assert a.predict == b.predict
        if not math.isnan(b.radius):
            assert a.radius == pytest.approx(255 * b.radius, rel=0.02)  # the same radius, in pixel-value units


@pytest.mark.parametrize("preprocessing, message", [
    ({"mean": [0.1]}, "exactly the keys 'mean' and 'std'"),
    ({"mean": 0.1, "std": 0.0}, "positive stds"),
    ("normalise", "must be None"),
])
def test_bad_preprocessing_is_refused(preprocessing, message):
    with pytest.raises(ValueError, match=message):
        SmoothedClassifier(nn.Linear(4, 2), Gaussian(0.25), 2, device="cpu", preprocessing=preprocessing)


def test_preprocessing_for_other_channels_than_the_model_sees_is_refused():
    smoothed = SmoothedClassifier(build_model("mnist_cnn", in_channels=2, num_classes=10), Ablation(k=45), 10,
                                  device="cpu", preprocessing={"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]})
    with pytest.raises(ValueError, match="3 values for the 2 channels"):
        smoothed.predict(torch.rand(1, 28, 28), 10, 0.05)


@pytest.mark.parametrize("bounds", [(1, 0), (0, float("inf")), ("a", 1), (0,)])
def test_bad_bounds_are_refused(bounds):
    with pytest.raises(ValueError, match="bounds"):
        SmoothedClassifier(nn.Linear(4, 2), Gaussian(0.25), 2, device="cpu", bounds=bounds)


def test_batch_calls_show_progress_unless_asked_not_to(capsys):
    smoothed = SmoothedClassifier(build_model("mnist_cnn", in_channels=2, num_classes=10), Ablation(k=45), 10,
                                  device="cpu")
    images = list(load_dataset("mnist5k", "test").x[:3])
    smoothed.certify(images, 10, 50, 0.05)
    smoothed.predict(images, 50, 0.05)
    err = capsys.readouterr().err
    assert "certify" in err and "predict" in err and "3/3" in err
    smoothed.certify(images, 10, 50, 0.05, progress=False)
    smoothed.predict(images, 50, 0.05, progress=False)
    smoothed.certify(images[0], 10, 50, 0.05)  # one image: no bar
    assert capsys.readouterr().err == ""


class OneRow(nn.Module):
    """A broken model: one row of logits whatever the batch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, 10)


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Flatten(), nn.Linear(2 * 8 * 8, 5)), r"shape \(\d+, 5\) for a batch of \d+; expected \(\d+, 10\)"),
    (OneRow(), r"shape \(1, 10\) for a batch of \d+"),
    (nn.Sequential(nn.Flatten(), nn.Linear(2 * 8 * 8, 10), nn.Dropout(1.0), nn.Softplus(), nn.LogSigmoid()), None),
])
def test_the_models_outputs_are_checked_before_they_vote(model, message):
    smoothed = SmoothedClassifier(model, Ablation(k=16), 10, device="cpu")
    image = torch.rand(1, 8, 8)
    if message is None:  # a well-formed model certifies
        smoothed.certify(image, 10, 50, 0.05, generator=torch.Generator().manual_seed(0))
        return
    with pytest.raises(ValueError, match=message):
        smoothed.certify(image, 10, 50, 0.05, generator=torch.Generator().manual_seed(0))


def test_a_model_with_nan_outputs_certifies_nothing():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 8 * 8, 10)).eval()
    with torch.no_grad():
        model[1].weight.fill_(float("nan"))
    smoothed = SmoothedClassifier(model, Ablation(k=16), 10, device="cpu")
    with pytest.raises(ValueError, match="non-finite logits"):
        smoothed.certify(torch.rand(1, 8, 8), 10, 50, 0.05, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="non-finite logits"):
        smoothed.predict(torch.rand(1, 8, 8), 50, 0.05, generator=torch.Generator().manual_seed(0))


def test_inputs_as_users_hold_them_are_taken_or_refused_with_what_is_expected():
    smoothed = SmoothedClassifier(build_model("mnist_cnn", in_channels=2, num_classes=10), Ablation(k=45), 10,
                                  device="cpu")
    image = load_dataset("mnist5k", "test").x[0]
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    as_float64 = smoothed.certify(image.double(), 10, 50, 0.05, generator=g())
    assert outcomes([as_float64]) == outcomes([smoothed.certify(image, 10, 50, 0.05, generator=g())])
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\): pass x.permute\(2, 0, 1\)"):
        smoothed.certify(image.permute(1, 2, 0), 10, 50, 0.05, generator=g())
    with pytest.raises(ValueError, match="generator must be a torch.Generator.*pass seed= instead"):
        smoothed.certify(image, 10, 50, 0.05, generator=0)
    with pytest.raises(ValueError, match="floating-point image, got dtype torch.uint8"):
        smoothed.certify((image * 255).to(torch.uint8), 10, 50, 0.05, generator=g())


def test_an_attack_refuses_a_label_outside_the_oracles_classes():
    from smoothcert.attacks import ModelOracle, Pointwise

    oracle = ModelOracle(nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)).eval(), 10, device="cpu")
    with pytest.raises(ValueError, match=r"label must be a class index in 0..9 .*got 12"):
        Pointwise(restarts=1)(oracle, load_dataset("mnist5k", "test").x[0], 12)


def test_fit_refuses_a_model_with_fewer_outputs_than_the_data_has_classes():
    from smoothcert import fit, get_recipe

    train = load_dataset("mnist5k", "train").subset(range(64))
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 28 * 28, 5))
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"outputs of shape \(2, 5\) .* labels up to 9: build it with num_classes=10"):
        fit(model, Ablation(k=45), train, get_recipe("fast", epochs=1), device="cpu", progress=False)
    assert_unchanged(before, model)  # refused before the first step


def assert_says_what_the_model_must_accept(message: str) -> None:
    """The one line for a two-layer MNIST model under the multichannel ablation: its input and the fix."""
    assert "\n" not in message
    assert message.startswith("the base model cannot take what ablation noise feeds it: it must accept batches "
                              "(N, 2, 28, 28), 2 channels of 28x28 pixels per copy; the multichannel encoding "
                              "doubles the channels")
    assert 'Ablation(k, encoding="mean", mean=' in message and "--encoding mean) keeps the images' channels" in message


def test_fit_tells_in_the_classifiers_one_line_what_the_model_must_accept():
    """Training a model that cannot take what the noise feeds it stops before the first step with
    the line certify gives (what the model must accept, how to change the encoding), not torch's raw error."""
    from smoothcert import fit, get_recipe

    train = load_dataset("mnist5k", "train").subset(range(16))
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    before, steps = snapshot(model), []
    model.register_forward_pre_hook(lambda module, inputs: steps.append(module.training))
    with pytest.raises(ValueError) as refused:
        fit(model, Ablation(k=45), train, get_recipe("fast", epochs=1, batch_size=8), device="cpu", progress=False)
    message = str(refused.value)
    assert_says_what_the_model_must_accept(message)
    assert message.endswith("(mat1 and mat2 shapes cannot be multiplied (2x1568 and 784x10))")
    assert steps == [False] and model.training  # one trial in eval mode, no training forward pass
    assert_unchanged(before, model)  # no optimizer step


def test_a_model_that_cannot_take_the_noises_samples_is_told_what_they_are_before_any_sampling():
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))
    shapes = []
    model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
    smoothed = SmoothedClassifier(model, Ablation(k=45), 10, device="cpu")
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    for call in (lambda: smoothed.certify(torch.rand(1, 28, 28), 10, 50, 0.05, generator=g),
                 lambda: smoothed.predict(torch.rand(1, 28, 28), 50, 0.05, generator=g)):
        with pytest.raises(ValueError) as refused:
            call()
        message = str(refused.value)
        assert_says_what_the_model_must_accept(message)
        assert "(mat1 and mat2 shapes cannot be multiplied" in message
    assert shapes == [(2, 2, 28, 28)] * 2  # one try of two copies per call, nothing sampled
    assert torch.equal(g.get_state(), state)


def test_a_model_built_for_what_the_noise_feeds_it_certifies():
    image, g = load_dataset("mnist5k", "test").x[0], lambda: torch.Generator().manual_seed(0)  # noqa: E731
    doubled = SmoothedClassifier(nn.Sequential(nn.Flatten(), nn.Linear(2 * 28 * 28, 10)), Ablation(k=45), 10,
                                 device="cpu")
    mean = SmoothedClassifier(nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10)),
                              Ablation(k=45, encoding="mean", mean=(0.13,)), 10, device="cpu")
    for smoothed in (doubled, mean):
        assert smoothed.certify(image, 10, 50, 0.05, generator=g()).n == 50
    untried = SmoothedClassifier(doubled.base, Ablation(k=45), 10, device="cpu")
    assert outcomes([untried.certify(image, 10, 50, 0.05, generator=g())]) == outcomes(
        [doubled.certify(image, 10, 50, 0.05, generator=g())])  # the try draws from a stream of its own


def test_the_command_line_says_in_one_line_what_the_model_must_accept(tiny_checkpoint, tmp_path, capsys):
    from smoothcert.cli import main

    _, path = tiny_checkpoint  # a model for 8x8 images
    images, labels = np.zeros((2, 12, 12), np.float32), np.array([0, 1])
    np.savez(tmp_path / "larger.npz", x_train=images, y_train=labels, x_test=images, y_test=labels)
    larger = f"npz:{tmp_path / 'larger.npz'}"
    code = main(["certify", "--checkpoint", str(path), "--dataset", larger, "--max", "1", "--device", "cpu",
                 "--out", str(tmp_path / "log.tsv"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("smoothcert: error: the base model cannot take what ablation noise feeds it: it must "
                          "accept batches (N, 2, 12, 12)")
    assert not (tmp_path / "log.tsv").exists()
