"""A noise and an attack from an installed package: found through their entry points by the stock
command line; the noise is trained, certified (fixed and adaptive), predicted, attacked (by the
library's attack and by the package's own) and denoised; its checkpoint records the package, so
without the package the error says what to install. No library file is touched."""

from __future__ import annotations

import json

import pytest

import smoothcert.attacks.registry as attacks
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
    denoisable: ClassVar[bool] = True
'''

ATTACK = '''
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from smoothcert.attacks.base import MAX_QUERIES_FLAG, L0Attack, best_confirmed
from smoothcert.runtime.seeding import generator


@dataclass(frozen=True)
class Sprinkle(L0Attack):
    """Draws of ``pixels`` random pixels set to black or white; the smallest confirmed adversarial one."""

    name: ClassVar[str] = "sprinkle"
    flags: ClassVar[dict[str, dict[str, Any]]] = {
        "sprinkle_pixels": {"type": int, "attribute": "pixels", "help": "sprinkle: pixels set per draw (default 40)"},
        "max_queries": MAX_QUERIES_FLAG,  # read by the library's attacks too: declared as they declare it
    }
    pixels: int = 40
    max_queries: int = 20

    def attack(self, oracle, x, label, key, spent):
        g = generator(*key)
        c, h, w = x.shape
        found = []
        for _ in range(self.max_queries):
            candidate = x.clone().view(c, h * w)
            chosen = torch.randperm(h * w, generator=g)[:self.pixels]
            candidate[:, chosen] = torch.randint(0, 2, (1, len(chosen)), generator=g).to(x.dtype)
            if int(oracle.decide(oracle.scores(candidate.view(1, c, h, w)))[0]) != label:
                found.append(candidate.view(c, h, w))
        return best_confirmed(oracle, x, label, found, spent)
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


def install(root, package: str, modules: dict[str, str], entries: dict[str, str]) -> None:
    """The ``modules`` (name -> source) and the dist-info of ``package`` with ``entries`` (entry-point
    group -> ``name = module:Class``), as pip would leave them in site-packages."""
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    info = root / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("".join(f"[{group}]\n{entry}\n" for group, entry in entries.items()))


@pytest.fixture
def fresh_registry(monkeypatch):
    """The built-in noises and attacks only, plugins not yet loaded; restored afterwards."""
    builtin = {kind: cls for kind, cls in registry._REGISTRY.items() if kind in registry.noise_kinds(plugins=False)}
    monkeypatch.setattr(registry, "_REGISTRY", builtin)
    monkeypatch.setattr(registry, "_PROVIDERS", {})
    monkeypatch.setattr(registry, "_PLUGINS", {"loaded": False})
    monkeypatch.setattr(attacks, "_REGISTRY", dict(attacks.ATTACK_CLASSES))
    monkeypatch.setattr(attacks, "_PLUGINS", {"loaded": False})


def test_the_stock_command_line_runs_a_noise_of_an_installed_package(tmp_path, tiny_npz, monkeypatch,
                                                                    fresh_registry, capsys):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "smoothcert-salt", {"salt_noise": PLUGIN, "sprinkle_attack": ATTACK},
            {registry.PLUGIN_GROUP: "salt = salt_noise:Salt",
             attacks.PLUGIN_GROUP: "sprinkle = sprinkle_attack:Sprinkle"})
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
    assert main(["attack", "--checkpoint", str(model), "--attack", "sprinkle", "--sprinkle-pixels", "30",
                 "--max-queries", "5", "--n", "20", "--max", "1", "--out", str(tmp_path / "sprinkle.tsv"), *quiet]) == 0
    settings = json.loads((tmp_path / "sprinkle.tsv.json").read_text())
    assert (settings["attack"], settings["pixels"], settings["max_queries"]) == ("Sprinkle", 30, 5)
    clean = tmp_path / "clean"  # denoised smoothing: a classifier of clean images, a denoiser of salt noise
    assert main(["train", "--dataset", data, "--model", "mnist_cnn", "--noise", "none", "--epochs", "1",
                 "--batch-size", "32", "--out", str(clean), *quiet]) == 0
    assert main(["denoise", "--classifier", str(clean), "--noise", "salt", "--keep-prob", "0.3", "--epochs", "1",
                 "--batch-size", "32", "--depth", "2", "--width", "8", "--out", str(tmp_path / "denoiser"),
                 *quiet]) == 0
    assert main(["certify", "--checkpoint", str(clean), "--denoiser", str(tmp_path / "denoiser"), "--sampling",
                 "fixed", "--n0", "10", "--n", "100", "--max", "3", "--out", str(tmp_path / "denoised.tsv"),
                 *quiet]) == 0
    for log in ("certify-fixed", "certify-adaptive", "predict", "attack", "sprinkle", "denoised"):
        assert len((tmp_path / f"{log}.tsv").read_text().splitlines()) >= 2, log
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["attack", "--help"])
    assert "--sprinkle-pixels SPRINKLE_PIXELS" in capsys.readouterr().out

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
    install(site, "smoothcert-pepper", {"pepper_noise": CLASHING},
            {registry.PLUGIN_GROUP: "pepper = pepper_noise:Pepper"})
    monkeypatch.syspath_prepend(str(site))
    assert main(["train", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "the flag --lr of the noise pepper clashes with the command line's own --lr" in err


def test_a_broken_plugin_is_skipped_with_a_warning_naming_its_package(tmp_path, monkeypatch, fresh_registry):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "smoothcert-broken", {"broken_noise": "raise ImportError('no such thing')\n"},
            {registry.PLUGIN_GROUP: "broken = broken_noise:Broken"})
    monkeypatch.syspath_prepend(str(site))
    with pytest.warns(UserWarning, match="plugin 'broken' of smoothcert-broken was not loaded"):
        kinds = registry.noise_kinds()
    assert "ablation" in kinds and "broken" not in kinds


def test_an_attack_flag_that_clashes_with_the_command_line_is_one_line(tmp_path, monkeypatch, fresh_registry, capsys):
    source = ATTACK.replace('"sprinkle_pixels": {', '"n": {')
    install(tmp_path, "smoothcert-sprinkle", {"clashing_attack": source},
            {attacks.PLUGIN_GROUP: "sprinkle = clashing_attack:Sprinkle"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["attack", "--help"]) == 2
    err = capsys.readouterr().err
    assert err == ("smoothcert: error: the flag --n of the attack sprinkle clashes with the command line's own --n: "
                   "rename it in its flags\n")


def test_an_attack_is_refused_at_registration_naming_its_flag(fresh_registry):
    from dataclasses import dataclass as frozen
    from typing import Any, ClassVar

    from smoothcert.attacks import Pointwise, make_attack, register_attack

    def attack(name: str, **flags: dict[str, Any]) -> type:
        fields = {"__annotations__": {"pixels": int, "name": ClassVar[str], "flags": ClassVar[dict]}, "pixels": 1}
        return frozen(frozen=True)(type(name.title(), (Pointwise,), {**fields, "name": name, "flags": flags}))

    with pytest.raises(ValueError, match=r"^flag --dots of the attack dots sets 'dot', which is not a parameter of "
                                         r"Dots \(its parameters: restarts, .*, pixels\)$"):
        register_attack(attack("dots", dots={"type": int, "attribute": "dot"}))
    with pytest.raises(ValueError, match="^flag --max-queries of the attack greedy differs from the one another"):
        register_attack(attack("greedy", max_queries={"type": int, "help": "greedy: queries"}))
    with pytest.raises(ValueError, match=r"^attack 'patch' is registered already \(by PatchAttack\)$"):
        register_attack(attack("patch"))
    register_attack(attack("dots", dots={"type": int, "attribute": "pixels"}))
    assert make_attack("dots", dots=3).pixels == 3
    with pytest.raises(ValueError, match="^--dots belongs to --attack dots$"):
        make_attack("pointwise", dots=3)
    with pytest.raises(ValueError, match=r"unknown attack 'salt'; choose one of \('pointwise', 'sparse-rs', 'patch', "
                                         r"'dots'\)"):
        make_attack("salt")
