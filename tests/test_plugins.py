"""A noise from an installed package: found through its entry point by the stock command line,
trained, certified (fixed and adaptive), predicted, attacked; its checkpoint records the package,
so without the package the error says what to install. No library file is touched."""

from __future__ import annotations

import json

import pytest

import smoothcert.noises.base as registry
from smoothcert.cli import main

PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

from test_toy_noise import Bernoulli


@dataclass(frozen=True)
class Salt(Bernoulli):
    """The toy Bernoulli noise of test_toy_noise.py, published by a package of its own as "salt"."""

    kind: ClassVar[str] = "salt"
'''

CLASHING = '''
from dataclasses import dataclass
from typing import Any, ClassVar

from test_toy_noise import Bernoulli


@dataclass(frozen=True)
class Pepper(Bernoulli):
    kind: ClassVar[str] = "pepper"
    flags: ClassVar[dict[str, dict[str, Any]]] = {"keep_prob": Bernoulli.flags["keep_prob"],
                                                  "lr": {"type": float, "help": "clashes with train's --lr"}}
'''


def install(root, package: str, module: str, source: str, entry: str) -> None:
    """``module`` and the dist-info of ``package`` with one ``smoothcert.noises`` entry point, as pip
    would leave them in site-packages."""
    (root / f"{module}.py").write_text(source)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{registry.PLUGIN_GROUP}]\n{entry}\n")


@pytest.fixture
def fresh_registry(monkeypatch):
    """The built-in noises only, plugins not yet loaded; restored afterwards."""
    builtin = {kind: cls for kind, cls in registry._REGISTRY.items() if kind in registry.noise_kinds(plugins=False)}
    monkeypatch.setattr(registry, "_REGISTRY", builtin)
    monkeypatch.setattr(registry, "_PROVIDERS", {})
    monkeypatch.setattr(registry, "_PLUGINS", {"loaded": False})


def test_the_stock_command_line_runs_a_noise_of_an_installed_package(tmp_path, tiny_npz, monkeypatch,
                                                                    fresh_registry, capsys):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "smoothcert-salt", "salt_noise", PLUGIN, "salt = salt_noise:Salt")
    monkeypatch.syspath_prepend(str(site))
    data = tiny_npz(tmp_path / "tiny.npz", 0, 128, 8)
    model = tmp_path / "model"
    quiet = ["--device", "cpu", "--quiet"]
    assert main(["train", "--dataset", data, "--model", "mnist_cnn", "--noise", "salt", "--keep-prob", "0.3",
                 "--epochs", "1", "--batch-size", "32", "--out", str(model), *quiet]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["noise"] == {"noise": "salt", "keep_prob": 0.3, "provider": "smoothcert-salt"}
    for sampling in ("fixed", "adaptive"):
        assert main(["certify", "--checkpoint", str(model), "--sampling", sampling, "--n0", "10", "--n", "100",
                     "--max", "3", "--out", str(tmp_path / f"certify-{sampling}.tsv"), *quiet]) == 0
    assert main(["predict", "--checkpoint", str(model), "--n", "100", "--max", "3",
                 "--out", str(tmp_path / "predict.tsv"), *quiet]) == 0
    assert main(["attack", "--checkpoint", str(model), "--n", "20", "--restarts", "1", "--start-steps", "5",
                 "--max-queries", "50", "--max", "1", "--out", str(tmp_path / "attack.tsv"), *quiet]) == 0
    for log in ("certify-fixed", "certify-adaptive", "predict", "attack"):
        assert len((tmp_path / f"{log}.tsv").read_text().splitlines()) >= 2, log
    capsys.readouterr()

    monkeypatch.setattr(registry, "_REGISTRY", {k: c for k, c in registry._REGISTRY.items() if k != "salt"})
    monkeypatch.setattr(registry, "_PROVIDERS", {})  # the package is gone: its noise is unknown
    assert main(["certify", "--checkpoint", str(model), "--n0", "10", "--n", "100", "--max", "3",
                 "--out", str(tmp_path / "again.tsv"), *quiet]) == 2
    assert "unknown noise 'salt'" in capsys.readouterr().err
    assert "it comes from the package 'smoothcert-salt'; install it" in str(
        pytest.raises(ValueError, registry.noise_from_config, config["noise"]).value)


def test_a_plugin_flag_that_clashes_with_the_command_line_is_one_line(tmp_path, monkeypatch, fresh_registry, capsys):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "smoothcert-pepper", "pepper_noise", CLASHING, "pepper = pepper_noise:Pepper")
    monkeypatch.syspath_prepend(str(site))
    assert main(["train", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the flag --lr of the noise pepper clashes with the command line's own --lr" in err


def test_a_broken_plugin_is_skipped_with_a_warning_naming_its_package(tmp_path, monkeypatch, fresh_registry):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "smoothcert-broken", "broken_noise", "raise ImportError('no such thing')\n",
            "broken = broken_noise:Broken")
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(UserWarning, match="plugin 'broken' of smoothcert-broken was not loaded"):
        kinds = registry.noise_kinds()
    assert "ablation" in kinds and "broken" not in kinds
