import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from smoothcert.checkpoint import checkpoint_lock, save_checkpoint
from smoothcert.data import ImageDataset
from smoothcert.decrop import state_hash
from smoothcert.denoisers import (
    DnCNN,
    KeepChannels,
    denoise,
    denoised_classifier,
    load_denoiser,
    stratified_subset,
    train_denoiser,
)
from smoothcert.classifiers import smoothed_denoised
from smoothcert.models import MnistCNN
from smoothcert.noises import Ablation, Gaussian
from smoothcert.reproductions import reproduce_denoised
from smoothcert.runtime.locking import InUseError

TINY = {"depth": 3, "width": 4, "device": "cpu", "progress": False}


def tiny_data(n_per_class: int = 10, seed: int = 0) -> ImageDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per_class)
    x = (torch.rand(len(y), 1, 8, 8, generator=g) * 0.3 + 0.3 * y.view(-1, 1, 1, 1)).clamp(0, 1)
    return ImageDataset(x, y, ("a", "b", "c"), "tiny")


def tiny_classifier(seed: int = 0) -> MnistCNN:
    torch.manual_seed(seed)
    return MnistCNN(1, 3, (8, 8))


def save_classifier(path, model: MnistCNN, dataset: str = "tiny"):
    config = {"model": "mnist_cnn", "in_channels": 1, "num_classes": 3, "image_size": [8, 8],
              "noise": {"noise": "none"}, "dataset": dataset}
    return save_checkpoint(path, model, config)


@pytest.mark.parametrize("channels", [1, 3])
def test_dncnn_shapes_structure_and_identity_start(channels):
    net = DnCNN(channels, depth=5, width=8)
    x = torch.rand(2, channels, 12, 10)
    out = net(x)
    assert out.shape == x.shape
    assert torch.equal(out, x)  # the last convolution starts at zero: the identity
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 5 and sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 3
    assert convs[0].bias is not None and all(c.bias is None for c in convs[1:-1])
    with torch.no_grad():
        convs[-1].bias.fill_(0.25)
    assert torch.allclose(net(x), x - 0.25)  # residual: x - body(x)


def test_dncnn_on_ablated_multichannel_input_keeps_the_first_channels():
    net = DnCNN(3, depth=3, width=4, in_channels=6)
    x = torch.rand(2, 6, 8, 8)
    assert torch.equal(net(x), x[:, :3])
    with pytest.raises(ValueError, match="expects a batch"):
        net(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="in_channels"):
        DnCNN(3, in_channels=2)
    assert torch.equal(KeepChannels(3)(x), x[:, :3])


def test_stratified_subset_takes_the_fraction_of_every_class():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    idx = stratified_subset(labels, 0.1, seed=3)
    assert torch.equal(idx, idx.sort().values) and len(set(idx.tolist())) == len(idx)
    assert np.bincount(labels[idx].numpy()).tolist() == [5, 3, 2]
    assert torch.equal(idx, stratified_subset(labels, 0.1, seed=3))
    assert not torch.equal(idx, stratified_subset(labels, 0.1, seed=4))
    assert np.bincount(labels[stratified_subset(labels, 0.001)].numpy()).tolist() == [1, 1, 1]
    assert len(stratified_subset(labels, 1.0)) == 100


@pytest.mark.parametrize("fraction", [0, -0.1, 1.5, float("nan")])
def test_bad_data_fraction(fraction):
    with pytest.raises(ValueError, match="data_fraction"):
        stratified_subset(torch.zeros(4, dtype=torch.long), fraction)


@pytest.mark.parametrize("method", ["mse", "stability", "mse-stability", "decrop"])
def test_training_leaves_the_classifier_bit_identical(method, tmp_path):
    classifier = tiny_classifier()
    classifier.train()
    before = {k: v.clone() for k, v in classifier.state_dict().items()}
    denoiser, config = train_denoiser(classifier, tiny_data(), method=method, sigma=0.25, data_fraction=0.5,
                                      epochs=2, batch_size=8, cache_dir=tmp_path, **TINY)
    after = classifier.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert classifier.training and all(p.requires_grad for p in classifier.parameters())
    assert not denoiser.training
    assert config["num_images"] == 15 and len(config["history"]) == 2
    assert config["classifier"]["sha256"] == state_hash(classifier)
    assert config["noise"] == {"noise": "gaussian", "sigma": 0.25}
    assert any(not torch.equal(p, torch.zeros_like(p)) for p in denoiser.body[-1].parameters())  # it trained


def test_mse_denoiser_denoises():
    data = tiny_data(20)
    denoiser, config = train_denoiser(tiny_classifier(), data, method="mse", sigma=0.25, epochs=40, batch_size=20,
                                      lr=1e-2, seed=1, **TINY)
    noisy = data.x + 0.25 * torch.randn(data.x.shape, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        assert F.mse_loss(denoiser(noisy), data.x) < 0.5 * F.mse_loss(noisy, data.x)
    assert [h["phase"] for h in config["history"]] == ["mse"] * 40
    assert config["history"][-1]["lr"] == pytest.approx(1e-4)  # two tenfold steps, after 1/3 and 2/3


def test_two_phase_methods_split_the_epochs():
    _, config = train_denoiser(tiny_classifier(), tiny_data(), method="mse-stability", sigma=0.5, epochs=5,
                               batch_size=30, **TINY)
    assert [h["phase"] for h in config["history"]] == ["mse"] * 3 + ["stability"] * 2
    with pytest.raises(ValueError, match="at least 2 epochs"):
        train_denoiser(tiny_classifier(), tiny_data(), method="decrop", sigma=0.5, epochs=1, **TINY)


def test_denoised_ablation_trains_an_inpainter_on_2c_channels():
    data = tiny_data()
    noise = Ablation(k=10)
    denoiser, config = train_denoiser(tiny_classifier(), data, method="mse", noise=noise, epochs=2, batch_size=10,
                                      **TINY)
    assert denoiser.in_channels == 2 and denoiser.channels == 1
    assert config["noise"]["noise"] == "ablation" and config["noise"]["k"] == 10
    with torch.no_grad():
        assert denoised_classifier(denoiser, tiny_classifier())(noise(data.x[:4])).shape == (4, 3)


def test_bad_inputs_raise_clear_errors():
    classifier, data = tiny_classifier(), tiny_data()
    with pytest.raises(ValueError, match="sigma"):
        train_denoiser(classifier, data, sigma=0.0, epochs=1, **TINY)
    with pytest.raises(ValueError, match="sigma"):
        train_denoiser(classifier, data, sigma=-1.0, epochs=1, **TINY)
    with pytest.raises(ValueError, match="exactly one"):
        train_denoiser(classifier, data, sigma=0.25, noise=Gaussian(0.25), epochs=1, **TINY)
    with pytest.raises(ValueError, match="exactly one"):
        train_denoiser(classifier, data, epochs=1, **TINY)
    with pytest.raises(ValueError, match="unknown denoiser method"):
        train_denoiser(classifier, data, method="bm3d", sigma=0.25, epochs=1, **TINY)
    with pytest.raises(ValueError, match="data_fraction"):
        train_denoiser(classifier, data, sigma=0.25, data_fraction=0.0, epochs=1, **TINY)
    with pytest.raises(ValueError, match="data_fraction"):
        train_denoiser(classifier, data, sigma=0.25, data_fraction=1.01, epochs=1, **TINY)
    with pytest.raises(ValueError, match="epochs"):
        train_denoiser(classifier, data, sigma=0.25, epochs=0, **TINY)
    with pytest.raises(ValueError, match="channels"):
        denoised_classifier(DnCNN(3, depth=2, width=2), classifier)


def test_checkpoint_round_trip_reuse_and_refusal(tmp_path):
    classifier, data = tiny_classifier(), tiny_data()
    out = tmp_path / "den"
    denoiser, config = train_denoiser(classifier, data, sigma=0.25, epochs=2, batch_size=10, out=out, **TINY)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "denoiser.safetensors"]
    loaded, saved = load_denoiser(out)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(loaded(x), denoiser(x))
    assert saved["history"] == config["history"]
    stamp = (out / "denoiser.safetensors").stat().st_mtime_ns
    with pytest.raises(ValueError, match="already holds a finished denoiser .mse, 2 epochs.: resume it with --resume"):
        train_denoiser(classifier, data, sigma=0.25, epochs=2, batch_size=10, out=out, **TINY)
    again, _ = train_denoiser(classifier, data, sigma=0.25, epochs=2, batch_size=10, out=out, resume=True, **TINY)
    assert (out / "denoiser.safetensors").stat().st_mtime_ns == stamp  # reused, not retrained
    with torch.no_grad():
        assert torch.allclose(again(x), denoiser(x))
    with pytest.raises(ValueError, match="different settings.*epochs"):
        train_denoiser(classifier, data, sigma=0.25, epochs=3, batch_size=10, out=out, resume=True, **TINY)
    with pytest.raises(ValueError, match="different settings.*classifier"):
        train_denoiser(tiny_classifier(1), data, sigma=0.25, epochs=2, batch_size=10, out=out, resume=True, **TINY)
    assert (out / "denoiser.safetensors").stat().st_mtime_ns == stamp  # refusals leave it alone
    _, replaced = train_denoiser(classifier, data, sigma=0.25, epochs=3, batch_size=10, out=out, overwrite=True, **TINY)
    assert load_denoiser(out)[1]["epochs"] == 3 == replaced["epochs"]


def test_load_denoiser_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no denoiser checkpoint"):
        load_denoiser(tmp_path / "missing")
    save_classifier(tmp_path / "clf", tiny_classifier())
    with pytest.raises(ValueError, match="not a denoiser checkpoint"):
        load_denoiser(tmp_path / "clf")
    out = tmp_path / "den"
    train_denoiser(tiny_classifier(), tiny_data(), sigma=0.25, epochs=1, out=out, **TINY)
    (out / "denoiser.safetensors").rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError, match="missing"):
        load_denoiser(out)
    (out / "denoiser.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="corrupt"):
        load_denoiser(out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "width": 5}))
    (tmp_path / "moved").rename(out / "denoiser.safetensors")
    with pytest.raises(ValueError, match="do not fit"):
        load_denoiser(out)
    (out / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match="corrupt denoiser checkpoint config"):
        load_denoiser(out)


def test_smoothed_denoised_from_checkpoints_and_mismatches(tmp_path):
    classifier = tiny_classifier()
    save_classifier(tmp_path / "clf", classifier)
    train_denoiser(classifier, tiny_data(), sigma=0.25, epochs=1, out=tmp_path / "den",
                   classifier_path=tmp_path / "clf", **TINY)
    smoothed = smoothed_denoised(tmp_path / "clf", tmp_path / "den", device="cpu", batch_size=50)
    assert smoothed.noise == Gaussian(0.25) and smoothed.certificate == "cohen"
    cert = smoothed.certify(tiny_data().x[0], n0=10, n=50, alpha=0.01, generator=torch.Generator().manual_seed(0))
    assert cert.n == 50
    with pytest.raises(ValueError, match="trained for noise"):
        smoothed_denoised(tmp_path / "clf", tmp_path / "den", noise=Gaussian(0.5), device="cpu")
    save_classifier(tmp_path / "other", tiny_classifier(1))
    with pytest.raises(ValueError, match="weights differ"):
        smoothed_denoised(tmp_path / "other", tmp_path / "den", device="cpu")
    with pytest.warns(UserWarning, match="weights differ"):
        smoothed_denoised(tmp_path / "other", tmp_path / "den", strict=False, device="cpu")


def test_denoise_entry_point_for_the_cli(tmp_path):
    data = tiny_data()
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=(data.x.numpy() * 255).astype(np.uint8), y_train=data.y.numpy(),
             x_test=(data.x.numpy() * 255).astype(np.uint8), y_test=data.y.numpy())
    save_classifier(tmp_path / "clf", tiny_classifier(), dataset=f"npz:{npz}")
    out = denoise(tmp_path / "clf", method="decrop", data_fraction=0.2, sigma=0.5, epochs=2, depth=3, width=4,
                  out=tmp_path / "den", device="cpu", progress=False)
    _, config = load_denoiser(out)
    assert config["method"] == "decrop" and config["num_images"] == 6 and config["noise"]["sigma"] == 0.5
    assert config["classifier"]["path"] == str((tmp_path / "clf").resolve())
    assert list((out / "stage1").glob("decrop-*.safetensors"))  # the stage-1 cache
    with pytest.raises(FileNotFoundError):
        denoise(tmp_path / "nothing", out=tmp_path / "x", progress=False)


def test_reproduce_denoised_small_run_resumes(tmp_path, capsys):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(30, 28, 28, generator=g) * 255).to(torch.uint8).numpy()
    y = np.arange(30) % 3
    np.savez(tmp_path / "digits.npz", x_train=x, y_train=y, x_test=x[:6], y_test=y[:6])
    small = {"dataset": f"npz:{tmp_path / 'digits.npz'}", "classifier_epochs": 1, "small_epochs": 2, "full_epochs": 2,
             "depth": 2, "width": 2, "max_images": 2, "n0": 5, "n": 20, "ablation_n0": 5, "ablation_n": 20,
             "device": "cpu", "progress": False}
    text = reproduce_denoised(out=tmp_path, **small)
    assert "| DE-CROP on 1% |" in text and "57.6 | 27.2 | 9.2 | 2.2 |" in text
    assert "1% = 3 images" in text and capsys.readouterr().out.strip() == text.strip()
    assert "| inpainting denoiser + clean classifier |" in text
    for run in ("none", "mse-small", "mse-stability-small", "decrop-small", "mse-stability-full",
                "ablation-direct", "inpaint-full"):
        assert len((tmp_path / run / "certify.tsv").read_text().splitlines()) == 1 + 2
    stamp = (tmp_path / "decrop-small" / "denoiser" / "denoiser.safetensors").stat().st_mtime_ns
    assert reproduce_denoised(out=tmp_path, **small) == text
    assert (tmp_path / "decrop-small" / "denoiser" / "denoiser.safetensors").stat().st_mtime_ns == stamp
    for folder in ("decrop-small", "inpaint-full"):  # a denoiser another run is training is not touched
        with checkpoint_lock(tmp_path / folder / "denoiser"), \
                pytest.raises(InUseError, match=f"{folder}/denoiser is in use by another smoothcert process"):
            reproduce_denoised(out=tmp_path, **small)
