from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from smoothcert.noises.ablation import ablate, sample_keep_mask

from smoothcert.models import (
    MODELS,
    Interpolate,
    MnistCNN,
    Normalize,
    PixelTransformer,
    ResNet18,
    ResNet50,
    build_model,
    count_parameters,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The test machine's 2 cores are shared: intra-op threads then mostly spin-wait.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def resnet18() -> ResNet18:
    torch.manual_seed(1)
    return ResNet18(6, 10)


@pytest.fixture(scope="module")
def resnet50() -> ResNet50:
    torch.manual_seed(1)
    return ResNet50(6, 7)


def _linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _conv(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k + c_out


def _expected_mnist_params(in_channels: int, num_classes: int, height: int, width: int) -> int:
    # Table 9: two 4x4 stride-2 pad-1 convs halve each side (rounding down) twice.
    flat = 128 * (height // 2 // 2) * (width // 2 // 2)
    return (
        _conv(in_channels, 64, 4)
        + _conv(64, 128, 4)
        + _linear(flat, 500)
        + _linear(500, 100)
        + _linear(100, num_classes)
    )


# ---------------------------------------------------------------- shapes and parameter counts


def test_mnist_cnn_matches_table_9() -> None:
    model = MnistCNN(2, 10)
    assert model.hidden[0].in_features == 6272
    assert count_parameters(model) == _expected_mnist_params(2, 10, 28, 28)
    x = torch.rand(3, 2, 28, 28)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, 100)


def test_mnist_cnn_wide_doubles_the_convolutions() -> None:
    model = build_model("mnist_cnn_wide", 2, 10)
    assert [m.out_channels for m in model.conv if isinstance(m, nn.Conv2d)] == [128, 256]
    assert model.hidden[0].in_features == 2 * 6272 and model(torch.rand(2, 2, 28, 28)).shape == (2, 10)
    with pytest.raises(ValueError, match="width"):
        MnistCNN(2, 10, width=0)


def test_mnist_cnn_bn_normalises_every_hidden_layer() -> None:
    model = build_model("mnist_cnn_bn", 2, 10)
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    assert [m.num_features for m in norms] == [64, 128, 500, 100]
    x = torch.rand(4, 2, 28, 28)
    model.train()
    model(x)  # updates the running statistics
    model.eval()
    assert model(x).shape == (4, 10)
    assert torch.allclose(model(x[:1]), model(x)[:1], atol=1e-5)  # eval mode: an image's output does not depend on its batch


@pytest.mark.parametrize("colours", [1, 3])
def test_interpolate_is_normalized_convolution(colours: int) -> None:
    # Independent formula: scipy's Gaussian filter (zero outside the image, kernel radius 3 sigma)
    # of the kept values over that of the mask, per colour channel.
    g = torch.Generator().manual_seed(colours)
    x = torch.rand(3, colours, 28, 20, generator=g)
    keep = sample_keep_mask(3, 28 * 20, 45, g)
    out = Interpolate(2 * colours)(ablate(x, keep))
    assert out.shape == (3, 2 * colours + 3 * colours, 28, 20)
    torch.testing.assert_close(out[:, : 2 * colours], ablate(x, keep), rtol=0, atol=0)
    mask = keep.view(3, 1, 28, 20).double().expand(-1, colours, -1, -1).numpy()
    for i, sigma in enumerate((1.0, 2.0, 4.0)):
        def blur(a: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(a, sigma=(0, 0, sigma, sigma), mode="constant", truncate=3.0)
        den = blur(mask)
        expected = np.where(den > 1e-6, blur(x.double().numpy() * mask) / np.maximum(den, 1e-6), 0.0)
        got = out[:, 2 * colours + i * colours : 2 * colours + (i + 1) * colours].double().numpy()
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_interpolate_fills_in_a_single_kept_pixel() -> None:
    keep = torch.zeros(1, 28 * 28, dtype=torch.bool)
    keep[0, 14 * 28 + 14] = True
    out = Interpolate(2)(ablate(torch.full((1, 1, 28, 28), 0.3), keep))[0]
    for channel, radius in zip(out[2:], (3, 6, 12)):  # 0.3 within 3 sigma of (14, 14), 0 beyond
        near = torch.zeros(28, 28, dtype=torch.bool)
        near[max(0, 14 - radius) : 15 + radius, max(0, 14 - radius) : 15 + radius] = True
        torch.testing.assert_close(channel[near], torch.full((int(near.sum()),), 0.3))
        assert (channel[~near] == 0).all()


def test_mnist_cnn_interp_reads_only_kept_pixels() -> None:
    # The certificate's premise: the base classifier sees nothing of an ablated pixel.
    model = build_model("mnist_cnn_interp", 2, 10).eval()
    g = torch.Generator().manual_seed(0)
    keep = sample_keep_mask(4, 784, 45, g)
    x = torch.rand(4, 1, 28, 28, generator=g)
    other = torch.where(keep.view(4, 1, 28, 28), x, torch.rand(4, 1, 28, 28, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(model(ablate(x, keep)), model(ablate(other, keep)), rtol=0, atol=0)
        assert not torch.equal(model(ablate(x, keep)), model(ablate(x, ~keep)))
    assert model.conv[0].in_channels == 5


def test_interpolate_refuses_other_inputs() -> None:
    with pytest.raises(ValueError, match="multichannel ablation encoding .2C channels., got 3"):
        Interpolate(3)
    with pytest.raises(ValueError, match="sigmas > 0"):
        Interpolate(2, sigmas=(1.0, 0.0))
    with pytest.raises(ValueError, match="sigmas > 0"):
        Interpolate(2, sigmas=())
    model = build_model("mnist_cnn_interp", 2, 10)
    with pytest.raises(ValueError, match="multichannel ablation encoding"):
        model(torch.rand(2, 2, 28, 28))  # e.g. Gaussian noise on a 2-channel image
    with pytest.raises(ValueError, match="multichannel ablation encoding"):
        build_model("mnist_cnn_interp", 1, 10)  # the mean encoding, or no ablation
    normalized = build_model("mnist_cnn_interp", 2, 10, mean=[0.5, 0.5], std=[0.3, 0.3])
    keep = sample_keep_mask(2, 784, 45)
    with pytest.raises(ValueError, match="in pixel units"):
        normalized(ablate(torch.rand(2, 1, 28, 28), keep))


@pytest.mark.parametrize("colours", [1, 3])
def test_pixel_transformer_reads_only_kept_pixels(colours: int) -> None:
    # The certificate's premise: the base classifier sees nothing of an ablated pixel.
    model = build_model("mnist_pixel_transformer", 2 * colours, 10, image_size=(28, 20)).eval()
    g = torch.Generator().manual_seed(colours)
    keep = sample_keep_mask(4, 28 * 20, 45, g)
    x = torch.rand(4, colours, 28, 20, generator=g)
    other = torch.where(keep.view(4, 1, 28, 20), x, torch.rand(4, colours, 28, 20, generator=g))
    with torch.no_grad():
        torch.testing.assert_close(model(ablate(x, keep)), model(ablate(other, keep)), rtol=0, atol=0)
        assert not torch.allclose(model(ablate(x, keep)), model(ablate(x, ~keep)))
        moved = keep.view(4, 28, 20).roll(1, dims=1).flatten(1)  # the same values one row down
        assert not torch.allclose(model(ablate(x, keep)), model(ablate(x.roll(1, dims=2), moved)))


@pytest.mark.parametrize("training", [True, False])
def test_pixel_transformer_ignores_its_batch(training: bool) -> None:
    # Images with fewer kept pixels are padded inside a batch: the padding must not reach any output.
    model = build_model("mnist_pixel_transformer", 2, 10).train(training)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 28, 28, generator=g)
    keep = torch.zeros(3, 784, dtype=torch.bool)
    keep[0] = sample_keep_mask(1, 784, 45, g)[0]
    keep[1, [5, 400, 783]] = True
    z = ablate(x, keep)  # 45, 3 and no kept pixels
    with torch.no_grad():
        together = model(z)
        for i in range(3):
            torch.testing.assert_close(together[i : i + 1], model(z[i : i + 1]), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(together[2], model.fc.bias)  # no kept pixel: features 0, logits fc's bias


def test_pixel_transformer_refuses_other_inputs() -> None:
    with pytest.raises(ValueError, match="multichannel ablation encoding .2C channels., got 1"):
        build_model("mnist_pixel_transformer", 1, 10)
    model = build_model("mnist_pixel_transformer", 2, 10)
    with pytest.raises(ValueError, match="multichannel ablation encoding"):
        model(torch.rand(2, 2, 28, 28))  # e.g. Gaussian noise on a 2-channel image
    with pytest.raises(ValueError, match="built for 28x28 images, got 32x32"):
        model(torch.zeros(2, 2, 32, 32))
    with pytest.raises(ValueError, match="image_size must be"):
        PixelTransformer(2, 10, image_size=(28,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dim must be a multiple of heads, got dim=90, heads=4"):
        PixelTransformer(2, 10, dim=90)
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        PixelTransformer(2, 10, depth=0)


def test_mnist_cnn_other_image_size() -> None:
    model = MnistCNN(1, 4, image_size=(32, 20))
    assert count_parameters(model) == _expected_mnist_params(1, 4, 32, 20)
    assert model(torch.rand(2, 1, 32, 20)).shape == (2, 4)


def test_resnet18_torchvision_count() -> None:
    assert count_parameters(ResNet18(3, 10)) == 11_173_962


def test_resnet18_shapes(resnet18: ResNet18) -> None:
    model = resnet18
    # Only the stem conv grows: 3 extra input channels x 64 filters x 3x3.
    assert count_parameters(model) == 11_173_962 + 3 * 64 * 3 * 3
    x = torch.rand(2, 6, 32, 32)
    assert model(x).shape == (2, 10)
    assert model.features(x).shape == (2, 512)
    assert model.fc.in_features == 512


def test_resnet50_torchvision_count() -> None:
    assert count_parameters(ResNet50(3, 1000)) == 25_557_032


def test_resnet50_shapes(resnet50: ResNet50) -> None:
    # 3 -> 6 input channels adds 3 x 64 x 7x7 to the stem; 1000 -> 7 classes shrinks fc.
    expected = 25_557_032 + 3 * 64 * 7 * 7 - _linear(2048, 1000) + _linear(2048, 7)
    assert count_parameters(resnet50) == expected
    x = torch.rand(2, 6, 48, 40)
    assert resnet50(x).shape == (2, 7)
    assert resnet50.features(x).shape == (2, 2048)


@pytest.fixture
def mnist_cnn() -> MnistCNN:
    return MnistCNN(2, 10)


@pytest.mark.parametrize("fixture", ["mnist_cnn", "resnet18"])
def test_fc_of_features_is_forward(fixture: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture).eval()
    x = torch.rand(2, model.in_channels, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(model.fc(model.features(x)), model(x), rtol=0, atol=0)


def test_fc_of_features_is_forward_resnet50(resnet50: ResNet50) -> None:
    resnet50.eval()
    x = torch.rand(2, 6, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(resnet50.fc(resnet50.features(x)), resnet50(x), rtol=0, atol=0)


@pytest.mark.parametrize(("fixture", "size"), [("mnist_cnn", 28), ("resnet18", 16)])
def test_eval_mode_is_deterministic(
    fixture: str, size: int, request: pytest.FixtureRequest
) -> None:
    model = request.getfixturevalue(fixture).eval()
    x = torch.rand(4, model.in_channels, size, size)
    with torch.no_grad():
        first = model(x)
        second = model(x.clone())
        single = model(x[1:2])
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # In eval mode BatchNorm uses running statistics: an image's logits do not depend on its batch.
    torch.testing.assert_close(first[1:2], single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradients_reach_first_layer(name: str) -> None:
    size = 28 if name == "mnist_cnn" else 32
    model = build_model(name, 2, 5, image_size=(size, size))
    first_conv = next(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))  # the first layer
    # Only the first layer's weight needs a gradient: the signal must still cross every layer.
    for p in model.parameters():
        p.requires_grad_(p is first_conv.weight)
    keep = sample_keep_mask(2, size * size, 100, torch.Generator().manual_seed(0))
    x = ablate(torch.rand(2, 1, size, size), keep).requires_grad_()  # every model reads this encoding
    nn.functional.cross_entropy(model(x), torch.tensor([0, 4])).backward()
    assert first_conv.weight.grad is not None
    assert first_conv.weight.grad.abs().sum() > 0
    assert x.grad is not None and x.grad.abs().sum() > 0


# ---------------------------------------------------------------- input checks


@pytest.mark.parametrize("fixture", ["mnist_cnn", "resnet18"])
def test_channel_mismatch_raises(fixture: str, request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(fixture)
    expected = model.in_channels
    with pytest.raises(ValueError, match=f"expects {expected} input channels, got 3"):
        model(torch.rand(1, 3, 28, 28))
    with pytest.raises(ValueError, match="got 3"):
        model.features(torch.rand(1, 3, 28, 28))


def test_channel_mismatch_raises_resnet50(resnet50: ResNet50) -> None:
    with pytest.raises(ValueError, match="expects 6 input channels, got 3"):
        resnet50(torch.rand(1, 3, 32, 32))


def test_non_batched_input_raises() -> None:
    with pytest.raises(ValueError, match="4-D"):
        MnistCNN(2, 10)(torch.rand(2, 28, 28))


def test_mnist_cnn_size_checks() -> None:
    with pytest.raises(ValueError, match="built for 28x28"):
        MnistCNN(2, 10)(torch.rand(1, 2, 32, 32))
    with pytest.raises(ValueError, match="at least 4x4"):
        MnistCNN(2, 10, image_size=(3, 28))
    assert MnistCNN(1, 2, image_size=(4, 4))(torch.rand(1, 1, 4, 4)).shape == (1, 2)
    with pytest.raises(ValueError, match="image height"):
        MnistCNN(2, 10, image_size=(0, 28))


@pytest.mark.parametrize("cls", [MnistCNN, ResNet18, ResNet50])
def test_constructor_validates_sizes(cls) -> None:
    with pytest.raises(ValueError, match="in_channels"):
        cls(0, 10)
    with pytest.raises(ValueError, match="num_classes"):
        cls(3, 0)


def test_constructor_attributes(resnet18: ResNet18) -> None:
    assert (resnet18.in_channels, resnet18.num_classes) == (6, 10)
    model = MnistCNN(np.int64(2), 10)
    assert model.in_channels == 2 and type(model.in_channels) is int


# ---------------------------------------------------------------- Normalize


def test_normalize_exact_values() -> None:
    mean, std = [0.5, 0.25], [0.5, 2.0]
    x = torch.arange(2 * 2 * 3 * 2, dtype=torch.float32).reshape(2, 2, 3, 2) / 8
    out = Normalize(mean, std)(x)
    expected = x.numpy().copy()
    for c in range(2):
        expected[:, c] = (expected[:, c] - mean[c]) / std[c]
    np.testing.assert_array_equal(out.numpy(), expected)
    # Single (C, H, W) images are accepted too.
    np.testing.assert_array_equal(Normalize(mean, std)(x[0]).numpy(), expected[0])


def test_normalize_buffers_follow_model() -> None:
    norm = Normalize([0.1, 0.2, 0.3], [1.0, 2.0, 3.0])
    assert set(dict(norm.named_buffers())) == {"mean", "std"}
    assert count_parameters(norm) == 0
    assert norm.double().mean.dtype == torch.float64
    assert set(norm.state_dict()) == {"mean", "std"}


@pytest.mark.parametrize(
    ("mean", "std", "match"),
    [
        ([0.5], [0.5, 0.5], "same length"),
        ([], [], "non-empty"),
        ([0.5], [0.0], "std must be finite and > 0"),
        ([0.5], [-1.0], "std must be"),
        ([float("nan")], [1.0], "mean must be finite"),
    ],
)
def test_normalize_rejects_bad_statistics(mean, std, match) -> None:
    with pytest.raises(ValueError, match=match):
        Normalize(mean, std)


def test_normalize_channel_mismatch() -> None:
    with pytest.raises(ValueError, match="expects 3 channels"):
        Normalize([0.0] * 3, [1.0] * 3)(torch.rand(1, 2, 4, 4))


# ---------------------------------------------------------------- build_model / MODELS


def test_models_registry() -> None:
    assert set(MODELS) == {"mnist_cnn", "mnist_cnn_bn", "mnist_cnn_interp", "mnist_cnn_wide", "mnist_pixel_transformer",
                           "resnet18", "resnet50"}


def test_build_model_plain() -> None:
    model = build_model("mnist_cnn", 2, 10)
    assert isinstance(model, MnistCNN)
    assert count_parameters(model) == _expected_mnist_params(2, 10, 28, 28)
    model = build_model("mnist_cnn", 1, 3, image_size=(16, 12))
    assert model(torch.rand(1, 1, 16, 12)).shape == (1, 3)
    assert isinstance(build_model("resnet18", 6, 10, image_size=(32, 32)), ResNet18)


def test_build_model_with_normalization() -> None:
    mean, std = [0.4, 0.6], [0.2, 0.3]
    wrapped = build_model("mnist_cnn", 2, 10, mean=mean, std=std).eval()
    assert isinstance(wrapped, nn.Sequential)
    assert isinstance(wrapped[0], Normalize) and wrapped.model is wrapped[1]
    x = torch.rand(3, 2, 28, 28)
    standardised = (x - torch.tensor(mean).view(1, 2, 1, 1)) / torch.tensor(std).view(1, 2, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(wrapped(x), wrapped.model(standardised))
    with pytest.raises(ValueError, match="expects 2 channels"):
        wrapped(torch.rand(1, 3, 28, 28))


def test_build_model_errors() -> None:
    names = "mnist_cnn, mnist_cnn_bn, mnist_cnn_interp, mnist_cnn_wide, mnist_pixel_transformer, resnet18, resnet50"
    with pytest.raises(ValueError, match=names):
        build_model("vgg16", 3, 10)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="in_channels must be a positive integer"):
            build_model("mnist_cnn", bad, 10)
        with pytest.raises(ValueError, match="num_classes must be a positive integer"):
            build_model("mnist_cnn", 2, bad)
    with pytest.raises(ValueError, match="together"):
        build_model("mnist_cnn", 2, 10, mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="together"):
        build_model("mnist_cnn", 2, 10, std=[0.5, 0.5])
    with pytest.raises(ValueError, match="3 channels but in_channels is 2"):
        build_model("mnist_cnn", 2, 10, mean=[0.5] * 3, std=[0.5] * 3)


def test_resnet_downsampling_layout(resnet18: ResNet18, resnet50: ResNet50) -> None:
    def strided(model: nn.Module) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        return [
            (m.kernel_size, m.stride)
            for m in model.modules()
            if isinstance(m, nn.Conv2d) and m.stride != (1, 1)
        ]

    # CIFAR style: stride-1 3x3 stem, no max-pool; stages 2-4 open with a stride-2 block.
    assert not any(isinstance(m, nn.MaxPool2d) for m in resnet18.modules())
    assert resnet18.body[0].kernel_size == (3, 3)
    assert strided(resnet18) == [((3, 3), (2, 2)), ((1, 1), (2, 2))] * 3
    # ImageNet style: 7x7 stride-2 stem + max-pool; the stride sits on the bottleneck's 3x3.
    assert sum(isinstance(m, nn.MaxPool2d) for m in resnet50.modules()) == 1
    assert strided(resnet50) == [((7, 7), (2, 2))] + [((3, 3), (2, 2)), ((1, 1), (2, 2))] * 3
