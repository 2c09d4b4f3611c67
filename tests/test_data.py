"""Tests for smoothcert.data: tiny datasets written here in each on-disk format."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from smoothcert.data import (
    CIFAR10_CLASSES,
    ImageDataset,
    channel_mean,
    check_images,
    default_root,
    load_cifar10,
    load_dataset,
    load_folder,
    load_mnist,
    load_mnist5k,
    load_npz,
)

RNG = np.random.default_rng(1234)


def _expected(pixels_nchw_uint8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels_nchw_uint8.astype(np.float32) / np.float32(255))


# ---------------------------------------------------------------- ImageDataset / helpers

def test_check_images_rejects_bad_input():
    check_images(torch.rand(2, 1, 4, 4))
    for bad in (torch.rand(1, 4, 4), torch.ones(2, 1, 4, 4, dtype=torch.uint8),
                torch.full((1, 1, 2, 2), 1.5), torch.full((1, 1, 2, 2), -0.1),
                torch.full((1, 1, 2, 2), float("nan")), np.zeros((1, 1, 2, 2))):
        with pytest.raises(ValueError):
            check_images(bad)


def test_channel_mean_matches_numpy():
    x = torch.rand(5, 3, 4, 6, generator=torch.Generator().manual_seed(0))
    expected = x.numpy().astype(np.float64).mean(axis=(0, 2, 3))
    assert channel_mean(x) == pytest.approx(tuple(expected), abs=1e-12)


def test_dataset_properties_and_subset():
    x, y = torch.rand(6, 3, 5, 7), torch.tensor([0, 1, 2, 0, 1, 2])
    ds = ImageDataset(x, y, ("a", "b", "c"), "toy:test")
    assert (len(ds), ds.num_classes, ds.channels, ds.image_shape) == (6, 3, 3, (3, 5, 7))
    sub = ds.subset([4, 1])
    assert sub.name == "toy:test" and sub.classes == ("a", "b", "c")
    assert torch.equal(sub.x, x[[4, 1]]) and sub.y.tolist() == [1, 1]
    assert len(ds.subset(slice(0, 2))) == 2
    assert ds.subset(np.array([True, False] * 3)).y.tolist() == [0, 2, 1]


def test_dataset_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="labels must lie"):
        ImageDataset(torch.rand(2, 1, 2, 2), torch.tensor([0, 3]), ("a", "b"), "t")
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        ImageDataset(torch.rand(2, 1, 2, 2), torch.tensor([0, 1, 1]), ("a", "b"), "t")


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SMOOTHCERT_DATA", str(tmp_path))
    assert default_root() == tmp_path
    monkeypatch.delenv("SMOOTHCERT_DATA")
    assert default_root() == Path.home() / ".cache" / "smoothcert" / "data"


def test_unknown_spec_and_split():
    with pytest.raises(ValueError, match="mnist5k.*cifar10.*npz:PATH"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="npz:PATH"):
        load_dataset("npz:")
    with pytest.raises(ValueError, match="'train', 'test'"):
        load_dataset("mnist5k", split="val")


# ---------------------------------------------------------------- mnist5k

def test_mnist5k_split_contract():
    train, test = load_mnist5k("train"), load_mnist5k("test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.image_shape == test.image_shape == (1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert torch.bincount(train.y, minlength=10).tolist() == [400] * 10
    assert torch.bincount(test.y, minlength=10).tolist() == [100] * 10
    for ds in (train, test):
        assert float(ds.x.min()) == 0.0 and float(ds.x.max()) == 1.0
        # every value is k/255 for an integer k
        k = ds.x * 255
        assert torch.equal(k, k.round())
    assert len(set(test.y[:50].tolist())) >= 8
    # disjoint: no test image equals a train image (pixel rows as bytes)
    train_rows = {row.tobytes() for row in train.x.flatten(1).numpy()}
    assert not any(row.tobytes() in train_rows for row in test.x.flatten(1).numpy())


def test_mnist5k_deterministic_and_not_aliasing_cache():
    a = load_dataset("mnist5k", "test")
    a.x.zero_()
    b, c = load_dataset("mnist5k", "test"), load_mnist5k("test")
    assert float(b.x.sum()) > 0
    assert torch.equal(b.x, c.x) and torch.equal(b.y, c.y) and b.name == "mnist5k:test"


# ---------------------------------------------------------------- mnist (IDX)

def _idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(">u1" if code == 0x08 else ">i4").tobytes()


def _write_mnist(folder: Path, split: str, n: int, gz: bool) -> tuple[np.ndarray, np.ndarray]:
    images = RNG.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = RNG.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
        data, name = _idx_bytes(array), f"{prefix}-{kind}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return images, labels


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("sub", [".", "MNIST/raw", "mnist"])
def test_mnist_idx_roundtrip(tmp_path, gz, sub):
    images, labels = _write_mnist(tmp_path / sub, "test", 7, gz)
    ds = load_dataset("mnist", "test", root=tmp_path)
    assert ds.name == "mnist:test" and ds.classes == tuple("0123456789")
    assert torch.equal(ds.x, _expected(images[:, None]))
    assert ds.y.tolist() == labels.tolist()


def test_mnist_missing_files_lists_locations(tmp_path):
    _write_mnist(tmp_path, "test", 3, gz=False)
    with pytest.raises(FileNotFoundError) as err:
        load_mnist(tmp_path, "train")
    for place in (tmp_path, tmp_path / "MNIST" / "raw", tmp_path / "mnist"):
        assert str(place) in str(err.value)


def test_mnist_truncated_and_corrupt(tmp_path):
    _write_mnist(tmp_path, "test", 4, gz=False)
    image_file = tmp_path / "t10k-images-idx3-ubyte"
    good = image_file.read_bytes()
    image_file.write_bytes(good[:-10])
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, "test")
    image_file.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(ValueError, match="magic"):
        load_mnist(tmp_path, "test")
    image_file.write_bytes(good[:10])  # header cut inside the dimensions
    with pytest.raises(ValueError, match="truncated"):
        load_mnist(tmp_path, "test")
    image_file.unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(ValueError, match="gzip"):
        load_mnist(tmp_path, "test")


def test_mnist_wrong_dtype_and_count_mismatch(tmp_path):
    _write_mnist(tmp_path, "test", 4, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    labels.write_bytes(_idx_bytes(np.arange(5, dtype=np.uint8)))
    with pytest.raises(ValueError, match="4 images but 5 labels"):
        load_mnist(tmp_path, "test")
    labels.write_bytes(_idx_bytes(np.arange(4), code=0x0C))
    with pytest.raises(ValueError, match="unsigned-byte labels"):
        load_mnist(tmp_path, "test")


# ---------------------------------------------------------------- cifar10

class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python-2 str opcodes, as in the real CIFAR-10 batches."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def _cifar_records(n: int) -> tuple[np.ndarray, np.ndarray]:
    return (RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            RNG.integers(0, 10, size=n, dtype=np.int64))


def _write_py_batch(path: Path, data: np.ndarray, labels: np.ndarray, protocol: int,
                    py2: bool = False) -> None:
    batch = {b"batch_label": b"toy", b"data": data, b"labels": labels.tolist(),
             b"filenames": [b"img.png"] * len(labels)}
    if py2:
        stream = io.BytesIO()
        _Py2Pickler(stream, protocol=2).dump(batch)
        # the real files name numpy's pre-2.0 module numpy.core
        path.write_bytes(stream.getvalue().replace(b"numpy._core.", b"numpy.core."))
    else:
        with path.open("wb") as f:
            pickle.dump(batch, f, protocol=protocol)


@pytest.mark.parametrize("protocol,py2", [(2, True), (2, False), (4, False), (5, False)])
def test_cifar_python_batches(tmp_path, protocol, py2):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    train = [_cifar_records(2) for _ in range(5)]
    for i, (data, labels) in enumerate(train, start=1):
        _write_py_batch(folder / f"data_batch_{i}", data, labels, protocol, py2)
    test_data, test_labels = _cifar_records(3)
    _write_py_batch(folder / "test_batch", test_data, test_labels, protocol, py2)

    ds = load_cifar10(tmp_path, "test")
    assert ds.classes == CIFAR10_CLASSES and ds.image_shape == (3, 32, 32)
    assert torch.equal(ds.x, _expected(test_data.reshape(3, 3, 32, 32)))
    assert ds.y.tolist() == test_labels.tolist()
    # channel-planar layout: the first 1024 bytes of a record are the red plane
    assert torch.equal(ds.x[0, 0].flatten(), _expected(test_data[0, :1024]))

    ds = load_dataset("cifar10", "train", root=tmp_path)
    assert len(ds) == 10 and ds.y.tolist() == np.concatenate([lab for _, lab in train]).tolist()
    assert torch.equal(ds.x[8:], _expected(train[4][0].reshape(2, 3, 32, 32)))


def test_cifar_meta_names_and_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    data, labels = _cifar_records(2)
    _write_py_batch(folder / "test_batch", data, labels, protocol=2)
    names = [f"class{i}".encode() for i in range(10)]
    with (folder / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    assert load_cifar10(tmp_path, "test").classes == tuple(f"class{i}" for i in range(10))
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        load_cifar10(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin"):
        load_cifar10(tmp_path / "elsewhere", "test")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > should_not_exist",))


def test_cifar_malicious_pickle_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": _Evil(), b"labels": [0]}, f)
    with pytest.raises(pickle.UnpicklingError, match="system"):
        load_cifar10(tmp_path, "test")
    assert not (tmp_path / "should_not_exist").exists()
    with (folder / "test_batch").open("wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]}, f)
    (folder / "test_batch").write_bytes((folder / "test_batch").read_bytes()[:-30])
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        load_cifar10(tmp_path, "test")


def test_cifar_binary_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = _cifar_records(2)
        records = np.concatenate([labels.astype(np.uint8)[:, None], data], axis=1)
        (folder / f"{name}.bin").write_bytes(records.tobytes())
        batches[name] = (data, labels)
    ds = load_dataset("cifar10", "test", root=tmp_path)
    data, labels = batches["test_batch"]
    assert torch.equal(ds.x, _expected(data.reshape(2, 3, 32, 32)))
    assert ds.y.tolist() == labels.tolist() and ds.classes == CIFAR10_CLASSES
    assert len(load_cifar10(tmp_path, "train")) == 10
    (folder / "batches.meta.txt").write_text("\n".join(f"c{i}" for i in range(10)) + "\n\n")
    assert load_cifar10(tmp_path, "test").classes == tuple(f"c{i}" for i in range(10))
    (folder / "test_batch.bin").write_bytes(records.tobytes()[:-1])
    with pytest.raises(ValueError, match="3073"):
        load_cifar10(tmp_path, "test")


# ---------------------------------------------------------------- npz

@pytest.mark.parametrize("layout", ["NHW", "NHWC1", "NHWC3", "NCHW1", "NCHW3"])
def test_npz_layouts_uint8(tmp_path, layout):
    c = 3 if layout.endswith("3") else 1
    nchw = RNG.integers(0, 256, size=(4, c, 5, 6), dtype=np.uint8)
    stored = {"NHW": nchw[:, 0], "NCHW1": nchw, "NCHW3": nchw}.get(
        layout, nchw.transpose(0, 2, 3, 1))
    y = np.array([0, 1, 2, 1])
    np.savez(tmp_path / "d.npz", x=stored, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", "train")
    assert torch.equal(ds.x, _expected(nchw)) and ds.y.tolist() == y.tolist()
    assert ds.classes == ("0", "1", "2") and ds.name == f"npz:{tmp_path / 'd.npz'}"


def test_npz_split_keys_float_and_classes(tmp_path):
    x_train = RNG.random((3, 2, 2, 3)).astype(np.float32)
    x_test = RNG.random((2, 3, 4, 4))  # float64, NCHW
    path = tmp_path / "s.npz"
    np.savez(path, x_train=x_train, y_train=np.array([0, 1, 0]), x_test=x_test,
             y_test=np.array([3, 3]), classes=np.array(["w", "x", "y", "z"]))
    train, test = load_npz(path, "train"), load_npz(path, "test")
    assert torch.equal(train.x, torch.from_numpy(x_train.transpose(0, 3, 1, 2).copy()))
    assert torch.equal(test.x, torch.from_numpy(x_test.astype(np.float32)))
    assert train.classes == test.classes == ("w", "x", "y", "z")
    assert test.y.tolist() == [3, 3] and test.name == f"npz:{path}:test"
    np.savez(path, x_train=x_train, y_train=np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="x_test"):
        load_npz(path, "test")


def test_npz_num_classes_from_all_splits(tmp_path):
    path = tmp_path / "s.npz"
    x = np.zeros((2, 1, 2, 2), np.uint8)
    np.savez(path, x_train=x, y_train=np.array([0, 4]), x_test=x, y_test=np.array([0, 1]))
    assert load_npz(path, "test").num_classes == 5


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    cases = [
        (dict(x=np.full((2, 4, 4), 1.2, np.float32), y=np.array([0, 1])), "never rescaled"),
        (dict(x=np.full((2, 4, 4), np.nan), y=np.array([0, 1])), "NaN"),
        (dict(x=np.zeros((3, 4, 4), np.uint8), y=np.array([0, 1])), "3 images but 2 labels"),
        (dict(x=np.zeros((2, 5, 4, 4), np.uint8), y=np.array([0, 1])), "shape"),
        (dict(x=np.zeros((2, 4, 4), np.int32), y=np.array([0, 1])), "uint8 or float"),
        (dict(x=np.zeros((2, 4, 4), np.uint8), y=np.array([0.0, 1.0])), "integer"),
        (dict(x=np.zeros((2, 4, 4), np.uint8), y=np.array([0, -1])), "labels must lie"),
        (dict(images=np.zeros((2, 4, 4), np.uint8)), "found \\['images'\\]"),
    ]
    for arrays, message in cases:
        np.savez(path, **arrays)
        with pytest.raises(ValueError, match=message):
            load_npz(path, "test")
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "missing.npz", "test")


# ---------------------------------------------------------------- folder

def _write_pngs(top: Path, images: dict[str, list[np.ndarray]]) -> None:
    for cls, arrays in images.items():
        (top / cls).mkdir(parents=True)
        for i, a in enumerate(arrays):
            Image.fromarray(a).save(top / cls / f"{i:03d}.png")


def test_folder_rgb_with_splits(tmp_path):
    make = lambda: RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)  # noqa: E731
    test_imgs = {"zebra": [make(), make()], "ant": [make()]}
    _write_pngs(tmp_path / "test", test_imgs)
    _write_pngs(tmp_path / "train", {"ant": [make()], "zebra": [make()]})
    (tmp_path / "test" / "ant" / "notes.txt").write_text("not an image")
    ds = load_dataset(f"folder:{tmp_path}", "test")
    assert ds.classes == ("ant", "zebra") and ds.y.tolist() == [0, 1, 1]
    expected = np.stack([test_imgs["ant"][0], *test_imgs["zebra"]]).transpose(0, 3, 1, 2)
    assert torch.equal(ds.x, _expected(expected))
    assert len(load_folder(tmp_path, "train")) == 2


def test_folder_greyscale_without_splits_and_mixed_modes(tmp_path):
    grey = [RNG.integers(0, 256, size=(4, 4), dtype=np.uint8) for _ in range(3)]
    _write_pngs(tmp_path, {"a": grey[:2], "b": grey[2:]})
    ds = load_folder(tmp_path, "train")
    assert ds.channels == 1 and ds.name == f"folder:{tmp_path}"
    assert torch.equal(ds.x, _expected(np.stack(grey)[:, None]))
    colour = RNG.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
    Image.fromarray(colour).save(tmp_path / "b" / "c.png")
    ds = load_folder(tmp_path, "test")
    assert ds.channels == 3
    assert torch.equal(ds.x[0], _expected(np.stack([grey[0]] * 3)))  # L -> RGB repeats
    assert torch.equal(ds.x[3], _expected(colour.transpose(2, 0, 1)))


def test_numbered_class_folders_are_labelled_by_their_number(tmp_path):
    image = lambda: RNG.integers(0, 256, size=(4, 4), dtype=np.uint8)  # noqa: E731
    _write_pngs(tmp_path, {"1": [image()], "2": [image()], "10": [image(), image()], "9": [image()]})  # no 0
    ds = load_folder(tmp_path, "test")
    assert ds.y.tolist() == [1, 2, 9, 10, 10]  # not 0..3 by position, not "10" before "2"
    assert ds.classes == tuple(str(i) for i in range(11))


def test_class_names_other_than_the_checkpoints_are_refused(tmp_path):
    from smoothcert.certificates import ArgumentError
    from smoothcert.runner.jobs import checkpoint_dataset

    image = lambda: RNG.integers(0, 256, size=(4, 4), dtype=np.uint8)  # noqa: E731
    _write_pngs(tmp_path / "words", {"one": [image()], "zero": [image()]})  # sorted: one=0, zero=1
    _write_pngs(tmp_path / "digits", {"0": [image()], "1": [image()]})
    config = {"num_classes": 2, "classes": ["0", "1"]}
    assert checkpoint_dataset(config, f"folder:{tmp_path / 'digits'}", "test")[1].y.tolist() == [0, 1]
    with pytest.raises(ArgumentError, match="label 0 is 'one' here but '0' in training"):
        checkpoint_dataset(config, f"folder:{tmp_path / 'words'}", "test")
    assert checkpoint_dataset({"num_classes": 2}, f"folder:{tmp_path / 'words'}", "test")  # an old checkpoint: no names


def test_folder_size_mismatch_and_empty(tmp_path):
    _write_pngs(tmp_path, {"a": [np.zeros((4, 4), np.uint8)], "b": [np.zeros((4, 5), np.uint8)]})
    with pytest.raises(ValueError, match="000.png"):
        load_folder(tmp_path, "test")
    (tmp_path / "train").mkdir()
    with pytest.raises(FileNotFoundError, match="'test'"):
        load_folder(tmp_path, "test")
    with pytest.raises(ValueError, match="no image files"):
        load_folder(tmp_path, "train")
