import numpy as np
import pytest


@pytest.fixture(scope="session")
def tiny_npz():
    """``make(path, seed, n_train, n_test) -> "npz:PATH"``: 8x8 greyscale 'images' whose class is the
    brighter half (0: left, 1: right), written as an npz dataset the CLI reads."""

    def make(path, seed, n_train, n_test):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 2, n_train + n_test)
        x = rng.uniform(0, 0.3, (n_train + n_test, 8, 8)).astype(np.float32)
        x[y == 0, :, :4] += 0.7
        x[y == 1, :, 4:] += 0.7
        np.savez(path, x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])
        return f"npz:{path}"

    return make


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_npz):
    """(dataset spec, checkpoint dir) of an ablation (k = 16) MNIST CNN trained 2 epochs on tiny_npz's 8x8 task."""
    from smoothcert.training import get_recipe, train_classifier

    root = tmp_path_factory.mktemp("tiny_checkpoint")
    data = tiny_npz(root / "tiny.npz", 0, 256, 24)
    train_classifier(data, root / "model", k=16, recipe=get_recipe("fast", epochs=2, batch_size=32), model="mnist_cnn",
                     device="cpu", progress=False)
    return data, root / "model"
