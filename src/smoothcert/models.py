"""Base classifiers for the certificates (Levine & Feizi 2020, appendix Tables 9-12).

* [`MnistCNN`][MnistCNN] - the MNIST network of appendix Table 9 (Table 1 of the supplement).
* [`PixelTransformer`][PixelTransformer] - a transformer over the kept pixels of an ablated image (not in the paper).
* [`ResNet18`][ResNet18] - "pytorch-cifar" ResNet18 used for CIFAR-10 (3x3 stem, no max-pool).
* [`ResNet50`][ResNet50] - ImageNet ResNet50 (7x7 stride-2 stem + max-pool, Bottleneck blocks).

The paper's only change to the standard networks is the number of input channels (2 for
MNIST, 6 for RGB images: the ablated image plus the "kept" indicator channels), so every model
takes ``in_channels``. Every model exposes ``features(x)`` (the flattened penultimate
representation) and ``forward(x) = self.fc(self.features(x))``; outputs are logits.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import check_count

__all__ = [
    "MODELS",
    "Interpolate",
    "MnistCNN",
    "Normalize",
    "PixelTransformer",
    "ResNet18",
    "ResNet50",
    "build_model",
    "count_parameters",
]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Every channel of ``x`` (B, C, H, W) convolved with a Gaussian of ``sigma`` pixels, truncated
    at ceil(3 sigma) and normalised to sum 1, zero outside the image (separable: rows, then columns)."""
    radius = math.ceil(3 * sigma)
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``, with ``mean`` and ``std`` stored as buffers.

    Placed as a model's first layer, it lets the certificates and attacks work on inputs in
    pixel units while the network sees standardised inputs.

    Args:
        mean: Per-channel means.
        std: Per-channel standard deviations.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.as_tensor(std, dtype=torch.float32)
        if mean_t.dim() != 1 or mean_t.numel() == 0 or mean_t.shape != std_t.shape:
            raise ValueError(
                "mean and std must be non-empty 1-D sequences of the same length, got "
                f"shapes {tuple(mean_t.shape)} and {tuple(std_t.shape)}"
            )
        if not torch.isfinite(mean_t).all():
            raise ValueError(f"mean must be finite, got {mean_t.tolist()}")
        if not (torch.isfinite(std_t).all() and (std_t > 0).all()):
            raise ValueError(f"std must be finite and > 0, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.view(-1, 1, 1))
        self.register_buffer("std", std_t.view(-1, 1, 1))

    @property
    def num_channels(self) -> int:
        return self.mean.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[-3] != self.num_channels:
            raise ValueError(
                f"Normalize expects {self.num_channels} channels in dimension -3, "
                f"got input of shape {tuple(x.shape)}"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class _ImageClassifier(nn.Module):
    """Common interface: input checks, ``features`` and ``forward = fc(features(x))``."""

    fc: nn.Linear
    image_size: tuple[int, int] | None = None  # set by models built for one image size

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.in_channels = check_count("in_channels", in_channels)
        self.num_classes = check_count("num_classes", num_classes)

    def _set_image_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        if len(image_size) != 2:
            raise ValueError(f"image_size must be (height, width), got {image_size!r}")
        self.image_size = (check_count("image height", image_size[0]), check_count("image width", image_size[1]))
        return self.image_size

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D batch (N, C, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects {self.in_channels} input channels, "
                f"got {x.shape[1]} (input shape {tuple(x.shape)})"
            )
        if self.image_size is not None and tuple(x.shape[2:]) != self.image_size:
            raise ValueError(
                f"{type(self).__name__} was built for {self.image_size[0]}x{self.image_size[1]} images, "
                f"got {x.shape[2]}x{x.shape[3]}"
            )

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened penultimate representation, shape ``(N, self.fc.in_features)``."""
        self._check_input(x)
        return self._features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(N, num_classes)``."""
        return self.fc(self.features(x))


def _check_multichannel(in_channels: int, who: str) -> None:
    if in_channels % 2:
        raise ValueError(f"{who} reads the multichannel ablation encoding (2C channels), got {in_channels} channels")


def _kept_mask(z: torch.Tensor, who: str) -> torch.Tensor:
    """The kept-pixel mask, shape ``(N, C, H, W)``, of a batch in the ``multichannel`` ablation encoding.

    Its two halves (``x`` and ``1 - x`` on kept pixels, 0 on ablated ones) sum to the mask; a
    ValueError naming ``who`` refuses any other input (Gaussian noise, a ``Normalize`` in front).
    """
    c = z.shape[1] // 2
    mask = z[:, :c] + z[:, c:]
    if ((mask - mask.clamp(0, 1).round()).abs() > 1e-4).any():
        raise ValueError(
            f"{who} expects the multichannel ablation encoding (x and 1 - x on kept pixels, 0 on "
            "ablated ones, in pixel units): train it with --noise ablation --encoding multichannel"
        )
    return mask


class Interpolate(nn.Module):
    """Fill in ablated pixels by normalized convolution (Knutsson & Westin 1993): a fixed layer.

    Reads the ``multichannel`` ablation encoding (channels ``x`` then ``1 - x`` on kept pixels, 0 on
    ablated ones), whose two halves sum to the mask of kept pixels. For each ``sigma`` it appends
    ``G_sigma * (x mask) / G_sigma * mask``, the Gaussian-weighted average of the kept pixels near each
    pixel (0 where none is within ``3 sigma``): a dense image from the ~6% of MNIST pixels that
    k = 45 keeps. It is a function of the ablated image alone, so the smoothed classifier's
    certificate (Theorem 1) holds as for any base classifier. Output channels:
    ``in_channels + len(sigmas) * in_channels // 2``.

    Args:
        in_channels: Channels of the multichannel encoding (2·C).
        sigmas: The Gaussian widths, in pixels.
    """

    def __init__(self, in_channels: int, sigmas: Sequence[float] = (1.0, 2.0, 4.0)) -> None:
        super().__init__()
        _check_multichannel(in_channels, "Interpolate")
        self.in_channels, self.sigmas = in_channels, tuple(float(s) for s in sigmas)
        if not self.sigmas or min(self.sigmas) <= 0:
            raise ValueError(f"Interpolate needs one or more sigmas > 0, got {sigmas!r}")

    @property
    def out_channels(self) -> int:
        return self.in_channels + len(self.sigmas) * self.in_channels // 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        c = self.in_channels // 2
        mask = _kept_mask(z, "Interpolate")
        both = torch.cat((z[:, :c], mask), 1)
        out = [z]
        for sigma in self.sigmas:
            blur = gaussian_blur(both, sigma)
            out.append(blur[:, :c] / blur[:, c:].clamp_min(1e-6))
        return torch.cat(out, 1)


def _conv_out(size: int, kernel: int = 4, stride: int = 2, padding: int = 1) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class MnistCNN(_ImageClassifier):
    """MNIST base classifier of appendix Table 9 (supplement Table 1).

    Conv(in->64, 4x4, stride 2, pad 1)+ReLU, Conv(64->128, 4x4, s2, p1)+ReLU, Flatten,
    FC 500+ReLU, FC 100+ReLU, FC ``num_classes``; ``width`` multiplies the convolution channels
    (``mnist_cnn_wide``: 2) and ``batch_norm`` puts batch normalisation before every hidden ReLU
    (``mnist_cnn_bn``; not in the paper); ``interpolate`` puts [`Interpolate`][Interpolate] before the
    first convolution (``mnist_cnn_interp``, with batch normalisation; not in the paper). The
    flatten size follows from ``image_size`` (6272 = 128*7*7 for 28x28); ``features`` returns the
    100-d ReLU output.
    The table's final SoftMax is left out: the model returns logits. Weights use He (Kaiming)
    normal initialisation: with PyTorch's default init, training on ablated inputs (~6% of the
    pixels non-zero at k = 45) can sit at loss 2.30 for tens of epochs before it learns.

    Args:
        in_channels: Input channels (2·C under ablation's multichannel encoding).
        num_classes: Output classes.
        image_size: (H, W) of the inputs.
        width: The convolution channels' multiplier.
        batch_norm: Batch normalisation before every hidden ReLU.
        interpolate: An [`Interpolate`][Interpolate] layer first.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: tuple[int, int] = (28, 28), width: int = 1,
        batch_norm: bool = False, interpolate: bool = False,
    ) -> None:
        super().__init__(in_channels, num_classes)
        layer = Interpolate(in_channels) if interpolate else None
        self.interpolate = layer if layer is not None else nn.Identity()
        conv_in = layer.out_channels if layer is not None else in_channels
        width = check_count("width", width)
        out_h, out_w = (_conv_out(_conv_out(s)) for s in self._set_image_size(image_size))
        if out_h < 1 or out_w < 1:
            raise ValueError(f"MnistCNN needs images of at least 4x4, got {self.image_size}")

        def activation(norm: type[nn.Module], size: int) -> list[nn.Module]:
            return [norm(size), nn.ReLU(inplace=True)] if batch_norm else [nn.ReLU(inplace=True)]

        self.conv = nn.Sequential(
            nn.Conv2d(conv_in, 64 * width, kernel_size=4, stride=2, padding=1),
            *activation(nn.BatchNorm2d, 64 * width),
            nn.Conv2d(64 * width, 128 * width, kernel_size=4, stride=2, padding=1),
            *activation(nn.BatchNorm2d, 128 * width),
            nn.Flatten(),
        )
        self.hidden = nn.Sequential(
            nn.Linear(128 * width * out_h * out_w, 500),
            *activation(nn.BatchNorm1d, 500),
            nn.Linear(500, 100),
            *activation(nn.BatchNorm1d, 100),
        )
        self.fc = nn.Linear(100, self.num_classes)
        for layer in self.modules():
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.conv(self.interpolate(x)))


class PixelTransformer(_ImageClassifier):
    """A transformer over the kept pixels: the ablated image read as a set of k tokens (not in the paper).

    Under ablation the input is k (position, value) pairs, so the model embeds each kept pixel
    (its encoded value through a linear layer, plus learned row and column embeddings), runs a
    pre-norm transformer encoder over these tokens alone and averages them into ``features``
    (``dim``-d). Ablated pixels are never read, as in smoothed vision transformers, which drop
    the ablated tokens (Salman et al. 2022); the certificate holds as for any base classifier.
    Reads the ``multichannel`` encoding only (``mnist_pixel_transformer``).

    Args:
        in_channels: Input channels (2·C under ablation's multichannel encoding).
        num_classes: Output classes.
        image_size: (H, W) of the inputs (the row and column embeddings).
        dim: The token width.
        depth: Transformer layers.
        heads: Attention heads.
    """

    def __init__(
        self, in_channels: int, num_classes: int, image_size: tuple[int, int] = (28, 28), dim: int = 96,
        depth: int = 4, heads: int = 4,
    ) -> None:
        super().__init__(in_channels, num_classes)
        _check_multichannel(in_channels, "PixelTransformer")
        height, width = self._set_image_size(image_size)
        dim, depth, heads = (check_count(n, v) for v, n in ((dim, "dim"), (depth, "depth"), (heads, "heads")))
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim={dim}, heads={heads}")
        self.embed = nn.Linear(in_channels, dim)
        self.row = nn.Parameter(0.02 * torch.randn(height, dim))
        self.column = nn.Parameter(0.02 * torch.randn(width, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, self.num_classes)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        mask = _kept_mask(x, "PixelTransformer")[:, 0].flatten(1)  # a colour pixel is one unit
        tokens = max(int(mask.sum(1).max()), 1)
        ranked, order = torch.sort(mask, dim=1, descending=True, stable=True)  # kept first
        kept, order = ranked[:, :tokens] > 0.5, order[:, :tokens]
        values = x.flatten(2).transpose(1, 2).gather(1, order[..., None].expand(-1, -1, x.shape[1]))
        width = self.column.shape[0]
        h = self.embed(values) + self.row[order // width] + self.column[order % width]
        padding = ~kept
        padding[:, 0] = False  # an image without kept pixels attends to one padding token, not to none (NaN)
        h = self.norm(self.encoder(h, src_key_padding_mask=padding))
        return (h * kept[..., None]).sum(1) / kept.sum(1, keepdim=True).clamp_min(1)


def _conv_bn(in_planes: int, planes: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [
        nn.Conv2d(in_planes, planes, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(planes),
    ]


class _ResidualBlock(nn.Module):
    """``relu(residual(x) + shortcut(x))``; the shortcut is a 1x1 conv + BN on a shape change."""

    expansion: int

    def __init__(self, residual: list[nn.Module], in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.residual = nn.Sequential(*residual)
        if stride != 1 or in_planes != out_planes:
            self.shortcut: nn.Module = nn.Sequential(*_conv_bn(in_planes, out_planes, 1, stride))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


class BasicBlock(_ResidualBlock):
    """Two 3x3 convolutions (ResNet18/34)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        residual = [
            *_conv_bn(in_planes, planes, 3, stride),
            nn.ReLU(inplace=True),
            *_conv_bn(planes, planes, 3),
        ]
        super().__init__(residual, in_planes, planes, stride)


class Bottleneck(_ResidualBlock):
    """1x1 reduce, 3x3 (carrying the stride), 1x1 expand by 4 (ResNet50 and deeper)."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        residual = [
            *_conv_bn(in_planes, planes, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(planes, planes, 3, stride),
            nn.ReLU(inplace=True),
            *_conv_bn(planes, planes * self.expansion, 1),
        ]
        super().__init__(residual, in_planes, planes * self.expansion, stride)


class _ResNet(_ImageClassifier):
    """Stem, four stages of widths 64-512 (strides 1, 2, 2, 2), global average pool, ``fc``."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        stem: Callable[[int], list[nn.Module]],
        block: type[_ResidualBlock],
        depths: Sequence[int],
    ) -> None:
        super().__init__(in_channels, num_classes)
        layers = stem(self.in_channels)
        in_planes = 64
        for stage, (planes, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(block(in_planes, planes, stride))
                in_planes = planes * block.expansion
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(in_planes, self.num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _cifar_stem(in_channels: int) -> list[nn.Module]:
    return [*_conv_bn(in_channels, 64, 3), nn.ReLU(inplace=True)]


def _imagenet_stem(in_channels: int) -> list[nn.Module]:
    return [
        *_conv_bn(in_channels, 64, 7, stride=2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    ]


class ResNet18(_ResNet):
    """CIFAR-style ResNet18 ("pytorch-cifar"): 3x3 stride-1 stem, no max-pool, BasicBlocks
    [2, 2, 2, 2]. The CIFAR-10 base classifier of Levine & Feizi (6 input channels).
    Accepts any image size (global average pooling); ``features`` is 512-d.

    Args:
        in_channels: Input channels (2·C under ablation's multichannel encoding).
        num_classes: Output classes.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, num_classes, _cifar_stem, BasicBlock, (2, 2, 2, 2))


class ResNet50(_ResNet):
    """ImageNet ResNet50: 7x7 stride-2 stem + 3x3 max-pool, Bottleneck blocks [3, 4, 6, 3]
    with the stride on the 3x3 conv. The ImageNet base classifier of Levine & Feizi
    (6 input channels). Accepts any image size; ``features`` is 2048-d.

    Args:
        in_channels: Input channels (2·C under ablation's multichannel encoding).
        num_classes: Output classes.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__(in_channels, num_classes, _imagenet_stem, Bottleneck, (3, 4, 6, 3))


MODELS: dict[str, Callable[[int, int, tuple[int, int]], nn.Module]] = {
    "mnist_cnn": MnistCNN,
    "mnist_cnn_wide": lambda in_channels, num_classes, image_size: MnistCNN(in_channels, num_classes, image_size, 2),
    "mnist_cnn_bn": lambda in_channels, num_classes, image_size: MnistCNN(in_channels, num_classes, image_size,
                                                                         batch_norm=True),
    "mnist_cnn_interp": lambda in_channels, num_classes, image_size: MnistCNN(
        in_channels, num_classes, image_size, batch_norm=True, interpolate=True),
    "mnist_pixel_transformer": PixelTransformer,
    "resnet18": lambda in_channels, num_classes, _image_size: ResNet18(in_channels, num_classes),
    "resnet50": lambda in_channels, num_classes, _image_size: ResNet50(in_channels, num_classes),
}
"""Model factories ``(in_channels, num_classes, image_size) -> nn.Module`` by name."""


def check_model(name: str) -> None:
    """ValueError naming the choices unless ``name`` is registered in [`MODELS`][MODELS]."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")


def build_model(
    name: str,
    in_channels: int,
    num_classes: int,
    image_size: tuple[int, int] = (28, 28),
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> nn.Module:
    """Build the model registered as ``name`` in [`MODELS`][MODELS].

    ``image_size`` sets MnistCNN's flatten size; the ResNets pool globally and ignore it.
    Without ``mean``/``std`` the bare model is returned. With both, the result is
    ``nn.Sequential(normalize=Normalize(mean, std), model=model)`` so inputs stay in pixel
    units; reach the classifier (and its ``features``) as ``result.model``. The result's
    ``build_config`` holds these arguments, so a checkpoint can rebuild it (``fit(out=...)``).

    Args:
        name: A name of [`MODELS`][MODELS] (``mnist_cnn``, ``resnet18``, ...).
        in_channels: Input channels (the noise's ``channels(C)``).
        num_classes: Output classes.
        image_size: (H, W) of the inputs.
        mean: Per-channel means of a [`Normalize`][Normalize] first layer, or None.
        std: Per-channel standard deviations, with ``mean``.
    """
    check_model(name)
    model = MODELS[name](
        check_count("in_channels", in_channels),
        check_count("num_classes", num_classes),
        image_size,
    )
    build_config = {"model": name, "in_channels": in_channels, "num_classes": num_classes,
                    "image_size": [int(s) for s in image_size]}
    if mean is not None or std is not None:
        if mean is None or std is None:
            raise ValueError("mean and std must be given together")
        normalize = Normalize(mean, std)
        if normalize.num_channels != in_channels:
            raise ValueError(
                f"mean/std have {normalize.num_channels} channels but in_channels is {in_channels}"
            )
        model = nn.Sequential(OrderedDict(normalize=normalize, model=model))
        build_config.update(mean=normalize.mean.flatten().tolist(), std=normalize.std.flatten().tolist())
    model.build_config = build_config
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of parameter elements (trainable or frozen; shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters())
