import json
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from smoothcert.checkpoint import TRAINING_WEIGHTS, load_checkpoint, load_weights, read_config, save_checkpoint
from smoothcert.data import load_mnist5k
from smoothcert.models import build_model
from smoothcert.noises import Ablation
from smoothcert.training.augment import affine, augment, crop_flip, elastic
from smoothcert.training import (
    RECIPES,
    Recipe,
    fit,
    get_recipe,
    train_classifier,
)

SMALL = dict(epochs=2, batch_size=64)


@pytest.fixture(scope="module")
def digits():
    train, test = load_mnist5k("train"), load_mnist5k("test")
    return train.subset(range(512)), test.subset(range(200))


def _config(model_name="mnist_cnn"):
    return {"model": model_name, "in_channels": 2, "num_classes": 10, "image_size": [28, 28], "dataset": "mnist5k",
            "noise": Ablation(45).config()}


def _model(seed=0):
    torch.manual_seed(seed)
    return build_model("mnist_cnn", 2, 10)


def test_paper_recipes_match_the_appendix_tables():
    mnist = RECIPES["paper-mnist"]
    assert (mnist.epochs, mnist.batch_size, mnist.optimizer, mnist.momentum, mnist.weight_decay) == (400, 128, "sgd", 0.9, 0.0)
    assert mnist.lr_at(0) == 0.01 and mnist.lr_at(199) == 0.01 and mnist.lr_at(200) == pytest.approx(0.001)
    assert mnist.mask_per_batch
    assert RECIPES["paper-cifar10"].weight_decay == 5e-4 and RECIPES["paper-cifar10"].augment == "crop-flip"
    imagenet = RECIPES["paper-imagenet"]
    assert [imagenet.lr_at(e) for e in (20, 21, 30, 31, 35)] == pytest.approx([0.1, 0.01, 0.01, 0.001, 0.001])
    fast = RECIPES["fast"]
    assert fast.lr_at(0) == fast.lr and fast.lr_at(fast.epochs // 2) == pytest.approx(fast.lr / 2)


def test_recipe_validation():
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("paper-svhn")
    with pytest.raises(ValueError, match="positive"):
        get_recipe("fast", epochs=0)
    with pytest.raises(ValueError, match="optimizer"):
        Recipe("x", 1, 1, optimizer="lbfgs")
    assert get_recipe("fast", epochs=3, lr=None).epochs == 3


def test_crop_flip_moves_pixels_without_changing_them():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8) + 1
    out = crop_flip(x, g, pad=2)
    assert out.shape == x.shape
    for i in range(2):
        vals = set(out[i].flatten().tolist()) - {0.0}
        assert vals <= set(x[i].flatten().tolist())  # only original values or zero padding
        assert len(vals) >= 6 * 6 * 3  # at most `pad` rows/columns lost per side


def test_a_recipe_names_its_training_method(tmp_path, digits):
    from smoothcert.training.methods import Consistency

    recipe = get_recipe("mnist-ablation", epochs=1, batch_size=256)
    assert recipe.make_method() == Consistency(m=4, lam=0.5, eta=0.0)
    assert recipe.make_method(lam=2.0) == Consistency(m=4, lam=2.0, eta=0.0)
    assert get_recipe("fast").make_method().name == "noise"
    assert (recipe.model, get_recipe("fast").model) == ("mnist_cnn_bn", None)
    fit(_model(), Ablation(45), digits[0], recipe, device="cpu", out=tmp_path, config=_config(), progress=False)
    assert read_config(tmp_path)["method"] == Consistency(m=4, lam=0.5, eta=0.0).config()
    with pytest.raises(ValueError, match="unknown parameter"):
        Recipe("x", 1, 1, method="noise", method_params=(("lam", 1.0),))


def test_a_recipe_names_its_model_unless_one_is_given(tiny_npz, tmp_path):
    spec = tiny_npz(tmp_path / "tiny.npz", 0, 64, 8)
    recipe = get_recipe("fast", epochs=1, model="mnist_cnn_bn")
    train_classifier(spec, tmp_path / "recipe", k=16, recipe=recipe, device="cpu", progress=False)
    assert read_config(tmp_path / "recipe")["model"] == "mnist_cnn_bn"
    train_classifier(spec, tmp_path / "given", k=16, recipe=recipe, model="mnist_cnn", device="cpu", progress=False)
    assert read_config(tmp_path / "given")["model"] == "mnist_cnn"
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        get_recipe("fast", model="nope")


def test_affine_and_elastic_without_displacement_are_the_identity():
    x = torch.rand(3, 2, 12, 10)
    g = torch.Generator().manual_seed(0)
    assert torch.allclose(affine(x, g, degrees=0, shift=0, scale=0), x, atol=1e-6)
    assert torch.allclose(elastic(x, g, alpha=0), x, atol=1e-6)


def test_affine_shift_moves_a_digit_by_whole_pixels_at_most_the_bound():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 7, 7] = 1.0
    g = torch.Generator().manual_seed(1)
    out = affine(x, g, degrees=0, shift=2, scale=0)
    ys, xs = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    mass = out.sum((1, 2, 3))
    cy, cx = (out[:, 0] * ys).sum((1, 2)) / mass, (out[:, 0] * xs).sum((1, 2)) / mass
    assert torch.allclose(mass, torch.ones(64), atol=1e-4)  # bilinear shifts keep the ink
    assert ((cy - 7).abs() <= 2 + 1e-4).all() and ((cx - 7).abs() <= 2 + 1e-4).all()
    assert (cx - 7).abs().max() > 1  # the bound is used, not just tiny moves


@pytest.mark.parametrize("name", ["affine", "elastic", "affine+elastic", "crop-flip"])
def test_augmentations_keep_shape_range_and_are_seeded(name):
    x = load_mnist5k("train").x[:8]
    a = augment(x, name, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, augment(x, name, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, x) and not torch.equal(a, augment(x, name, torch.Generator().manual_seed(4)))


def test_unknown_augmentation_bad_ema_and_bad_augment_until_are_refused():
    with pytest.raises(ValueError, match="unknown augmentation 'blur' in 'affine\\+blur'"):
        get_recipe("fast", augment="affine+blur")
    with pytest.raises(ValueError, match="ema must be a decay"):
        get_recipe("fast", ema=1.0)
    for until in (0.0, 1.5):
        with pytest.raises(ValueError, match="augment_until must be a fraction of the epochs in \\(0, 1\\]"):
            get_recipe("fast", augment="affine", augment_until=until)


@pytest.mark.parametrize("until, augmented_epochs", [(1.0, [0, 1, 2, 3]), (0.75, [0, 1, 2]), (0.5, [0, 1])])
def test_augment_until_augments_only_the_first_epochs(digits, monkeypatch, until, augmented_epochs):
    import smoothcert.training.loop as train_module

    train, _ = digits
    calls = []
    monkeypatch.setattr(train_module, "augment", lambda x, name, g: calls.append(name) or x)
    recipe = get_recipe("fast", epochs=4, batch_size=256, augment="affine", augment_until=until)
    fit(_model(), Ablation(45), train, recipe, device="cpu", progress=False)
    batches = len(train) // 256
    assert [e for e in range(4) if recipe.augments(e)] == augmented_epochs
    assert calls == ["affine"] * (batches * len(augmented_epochs))


def test_short_training_lowers_loss_and_beats_chance(digits):
    train, test = digits
    # k=300 of 784 pixels learns within a few dozen steps; k=45 first sits at loss 2.30 (feasibility notes)
    history = fit(_model(), Ablation(300), train, get_recipe("fast", epochs=6, batch_size=64), heldout=test,
                  device="cpu", progress=False)
    assert len(history) == 6
    assert history[-1]["loss"] < history[0]["loss"] - 0.3
    assert history[-1]["heldout_acc"] > 0.3  # chance is 0.1


@pytest.mark.parametrize("extra", [{}, {"ema": 0.9, "augment": "affine+elastic"}])
def test_resume_continues_exactly(tmp_path, digits, monkeypatch, extra):
    """Two epochs in one go equal one epoch, an interruption, and a resumed second epoch (with
    weight averaging: both the averaged and the trained weights carry over)."""
    import smoothcert.training.loop as train_module

    train, test = digits
    recipe = get_recipe("paper-mnist", **SMALL, **extra)
    whole = _model()
    h_whole = fit(whole, Ablation(45), train, recipe, heldout=test, device="cpu", out=tmp_path / "a", config=_config(), progress=False)

    real_save = train_module.save_checkpoint

    def save_then_interrupt(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        fit(_model(), Ablation(45), train, recipe, heldout=test, device="cpu", out=tmp_path / "b", config=_config(), progress=False)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert read_config(tmp_path / "b")["epoch"] == 1
    resumed = _model(seed=123)  # weights come from the checkpoint, not from this init
    h_resumed = fit(resumed, Ablation(45), train, recipe, heldout=test, device="cpu", out=tmp_path / "b",
                    config=_config(), resume=True, progress=False)
    assert h_resumed == h_whole
    for key, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


def test_ema_saves_and_returns_the_moving_average(tmp_path, digits):
    train, _ = digits
    one_step = get_recipe("fast", epochs=1, batch_size=len(train), ema=0.75)
    start, plain = _model(), _model()
    fit(plain, Ablation(45), train, replace(one_step, ema=0.0), device="cpu", progress=False)
    averaged = _model()
    fit(averaged, Ablation(45), train, one_step, device="cpu", out=tmp_path, config=_config(), progress=False)
    for name, value in averaged.state_dict().items():  # one step: 0.75 * start + 0.25 * trained
        assert torch.allclose(value, 0.75 * start.state_dict()[name] + 0.25 * plain.state_dict()[name], atol=1e-6), name
    loaded, _ = load_checkpoint(tmp_path)
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in averaged.state_dict().items())
    trained = _model(seed=5)
    load_weights(tmp_path, trained, TRAINING_WEIGHTS)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in plain.state_dict().items())


def test_validation_split_is_cut_from_the_train_split(tmp_path):
    full = load_mnist5k("train")
    rest, held = full.holdout(300)
    assert (len(rest), len(held)) == (3700, 300)
    fingerprint = torch.rand(784, dtype=torch.float64)  # the two parts together are the split, each image once
    def keys(*parts):
        return torch.cat([p.x.flatten(1).double() @ fingerprint + 1000 * p.y for p in parts]).sort().values
    assert torch.equal(keys(rest, held), keys(full))
    again_rest, again_held = full.holdout(300)
    assert torch.equal(again_held.x, held.x) and torch.equal(again_rest.y, rest.y)
    assert len(set(held.y.tolist())) == 10  # a random draw, not one class block
    for n in (0, 4000, 2.5):
        with pytest.raises(ValueError, match="validation split needs"):
            full.holdout(n)
    train_classifier("mnist5k", tmp_path, k=45, recipe=get_recipe("fast", epochs=1, batch_size=512), validation=300,
                     device="cpu", progress=False)
    assert read_config(tmp_path)["validation"] == 300


def test_max_images_trains_on_the_first_digits_left_after_the_validation_cut(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("smoothcert.training.loop.fit", lambda net, noise, train, *args, **kwargs: seen.append(train))
    train_classifier("mnist5k", tmp_path / "a", k=45, validation=300, max_images=500, device="cpu", progress=False)
    rest, _ = load_mnist5k("train").holdout(300)
    assert torch.equal(seen[0].x, rest.x[:500]) and torch.equal(seen[0].y, rest.y[:500])
    for n in (0, -1, True, 2.5):
        with pytest.raises(ValueError, match="max_images must be a positive integer"):
            train_classifier("mnist5k", tmp_path / "b", max_images=n, device="cpu", progress=False)
    with pytest.raises(ValueError, match="has 3700 training images after the validation cut of 300"):
        train_classifier("mnist5k", tmp_path / "c", validation=300, max_images=3701, device="cpu", progress=False)
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_resume_refuses_a_different_number_of_training_images(tmp_path):
    recipe = get_recipe("fast", epochs=1, batch_size=512)
    train_classifier("mnist5k", tmp_path, recipe=recipe, validation=300, max_images=200, device="cpu", progress=False)
    assert read_config(tmp_path)["max_images"] == 200
    with pytest.raises(ValueError, match="--max 200 then, 300 now"):
        train_classifier("mnist5k", tmp_path, recipe=replace(recipe, epochs=2), validation=300, max_images=300,
                         device="cpu", resume=True, progress=False)


def test_resume_refuses_different_settings(tmp_path, digits):
    train, _ = digits
    recipe = get_recipe("fast", epochs=1, batch_size=128)
    fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path, config=_config(), progress=False)
    with pytest.raises(ValueError, match="--k 45 then, 30 now"):
        fit(_model(), Ablation(30), train, recipe, device="cpu", out=tmp_path, config=_config(), resume=True, progress=False)
    with pytest.raises(ValueError, match="--seed 0 then, 1 now"):
        fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path, config=_config(), resume=True, seed=1, progress=False)
    with pytest.raises(FileNotFoundError, match="no smoothcert checkpoint"):
        fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path / "none", config=_config(), resume=True, progress=False)


def test_a_checkpoint_from_before_new_settings_still_resumes(tmp_path, digits):
    train, _ = digits
    recipe = get_recipe("fast", epochs=2, batch_size=256)
    fit(_model(), Ablation(45), train, replace(recipe, epochs=1), device="cpu", out=tmp_path, config=_config(),
        progress=False)
    path = tmp_path / "config.json"
    config = json.loads(path.read_text())  # as an older version wrote it: no ema, label_smoothing, validation
    del config["recipe"]["ema"], config["method"]["label_smoothing"]
    config["recipe"]["epochs"] = 2
    config["recipe"]["source"] = "an earlier wording"
    path.write_text(json.dumps(config))
    assert len(fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path, config=_config(), resume=True,
                   progress=False)) == 2
    with pytest.raises(ValueError, match="recipe"):
        fit(_model(), Ablation(45), train, replace(recipe, epochs=3, ema=0.5), device="cpu", out=tmp_path,
            config=_config(), resume=True, progress=False)


def test_checkpoint_round_trip_is_exact(tmp_path, digits):
    train, _ = digits
    model = _model()
    fit(model, Ablation(45), train, get_recipe("fast", epochs=1), device="cpu", out=tmp_path, config=_config(), progress=False)
    loaded, config = load_checkpoint(tmp_path)
    assert config["epoch"] == 1 and config["noise"] == Ablation(45).config() and config["recipe"]["name"] == "fast"
    x = Ablation(45)(train.x[:16], torch.Generator().manual_seed(0))
    assert torch.equal(model.eval()(x), loaded(x))
    assert set(load_file(str(tmp_path / "optimizer.safetensors")))  # optimizer state saved as tensors
    assert not list(tmp_path.glob("*.tmp"))


def test_bad_checkpoints_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no smoothcert checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt smoothcert checkpoint config"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a smoothcert checkpoint config"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, build_model("resnet18", 2, 10), _config())  # config says mnist_cnn, weights are a ResNet
    with pytest.raises(ValueError, match="do not fit the model"):
        load_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint file"):
        load_checkpoint(tmp_path)


def test_channel_mismatch_between_data_and_model(digits):
    train, _ = digits
    with pytest.raises(ValueError, match="expects 3 input channels"):
        fit(build_model("mnist_cnn", 3, 10), Ablation(45), train, get_recipe("fast", epochs=1), device="cpu", progress=False)


def test_train_classifier_builds_model_from_dataset(tmp_path):
    history = train_classifier("mnist5k", tmp_path, k=20, encoding="mean", recipe=get_recipe("fast", epochs=1, batch_size=256),
                               device="cpu", progress=False)
    config = read_config(tmp_path)
    assert config["model"] == "mnist_cnn" and config["in_channels"] == 1 and config["image_size"] == [28, 28]
    assert config["noise"]["encoding"] == "mean" and 0.05 < config["noise"]["mean"][0] < 0.25  # MNIST mean ~0.13
    assert len(history) == 1
    with pytest.raises(ValueError, match="k=900 exceeds"):
        train_classifier("mnist5k", tmp_path / "big", k=900, recipe=get_recipe("fast", epochs=1), device="cpu", progress=False)


def test_clean_training_gives_an_undefended_checkpoint(tmp_path, digits):
    from smoothcert.noises import noise_from_config
    from smoothcert.noises import Clean
    from smoothcert.classifiers.smoothed import SmoothedClassifier

    train, test = digits
    history = fit(build_model("mnist_cnn", 1, 10), Clean(), train, get_recipe("fast", epochs=2, batch_size=64),
                  heldout=test, device="cpu", out=tmp_path, progress=False,
                  config={**_config(), "in_channels": 1})
    assert history[-1]["heldout_acc"] > 0.5  # clean MNIST learns fast; chance is 0.1
    model, config = load_checkpoint(tmp_path)
    assert config["noise"] == {"noise": "none"} and noise_from_config(config["noise"]) == Clean()
    x = test.x[:4]
    assert torch.equal(Clean()(x), x)
    with pytest.raises(ValueError, match="no certificate"):
        SmoothedClassifier(model, Clean(), 10)


def test_fit_saves_a_model_from_build_model_without_a_config(tmp_path, digits):
    """Issue #14: the README's fit(build_model(...), ..., out=...) with no config."""
    train, _ = digits
    for name, extra in (("bare", {}), ("normalized", {"mean": [0.13, 0.5], "std": [0.3, 0.5]})):
        torch.manual_seed(0)
        model = build_model("mnist_cnn", 2, 10, **extra)
        fit(model, Ablation(45), train, get_recipe("fast", epochs=1, batch_size=128), device="cpu",
            out=tmp_path / name, progress=False)
        loaded, config = load_checkpoint(tmp_path / name)
        assert config["model"] == "mnist_cnn" and config["image_size"] == [28, 28] and config["epoch"] == 1
        x = Ablation(45)(train.x[:8], torch.Generator().manual_seed(0))
        assert torch.equal(model.eval()(x), loaded(x))


def test_fit_refuses_an_unknown_module_before_the_first_step(tmp_path, digits):
    train, _ = digits
    calls = []

    class Mine(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(2 * 28 * 28, 10)

        def forward(self, x):
            calls.append(len(x))
            return self.fc(x.flatten(1))

    with pytest.raises(ValueError, match=r"rebuild this Mine: missing \['model', 'in_channels', 'num_classes', 'image_size'\]"):
        fit(Mine(), Ablation(45), train, get_recipe("fast", epochs=1), device="cpu", out=tmp_path / "mine", progress=False)
    assert calls == [] and not (tmp_path / "mine").exists()
    fit(Mine(), Ablation(45), train, get_recipe("fast", epochs=1), device="cpu", progress=False)  # without out it trains
    assert calls


def test_fit_never_replaces_a_checkpoint_silently(tmp_path, digits):
    train, _ = digits
    recipe = get_recipe("fast", epochs=1, batch_size=128)
    fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path, progress=False)
    weights = (tmp_path / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=f"{tmp_path} already holds a classifier checkpoint at epoch 1 of 1: resume it "
                                         r"with --resume \(resume=True\), replace it with --overwrite"):
        fit(_model(1), Ablation(45), train, recipe, device="cpu", out=tmp_path, progress=False)
    with pytest.raises(ValueError, match="choose one"):
        fit(_model(1), Ablation(45), train, recipe, device="cpu", out=tmp_path, resume=True, overwrite=True, progress=False)
    assert (tmp_path / "model.safetensors").read_bytes() == weights
    fit(_model(1), Ablation(45), train, recipe, device="cpu", out=tmp_path, overwrite=True, progress=False)
    assert (tmp_path / "model.safetensors").read_bytes() != weights  # replaced, as asked
    with pytest.raises(ValueError, match="is a file, not a checkpoint folder"):
        fit(_model(), Ablation(45), train, recipe, device="cpu", out=tmp_path / "model.safetensors", progress=False)


def test_channel_mismatch_is_found_for_a_normalized_model_too(digits):
    train, _ = digits
    model = build_model("mnist_cnn", 3, 10, mean=[0.5] * 3, std=[0.5] * 3)  # Sequential(normalize, model)
    with pytest.raises(ValueError, match="the model expects 3 input channels but"):  # fit's check, before a step
        fit(model, Ablation(45), train, get_recipe("fast", epochs=1), device="cpu", progress=False)
