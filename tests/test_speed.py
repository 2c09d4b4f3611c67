"""--compile, --channels-last and --amp: the same classifier, faster; compile failures fall back."""

import json

import pytest
import torch

from smoothcert.runtime import speed
from smoothcert.cli import main
from smoothcert.models import build_model
from smoothcert.runtime.speed import Accelerated, accelerate


@pytest.fixture(scope="module")
def model_and_inputs():
    torch.manual_seed(0)
    model = build_model("mnist_cnn", 2, 10).eval()
    x = (torch.rand(64, 2, 28, 28) > 0.9).float()
    return model, x


def test_nothing_asked_is_the_model_itself(model_and_inputs):
    model, _ = model_and_inputs
    assert accelerate(model) is model


def test_channels_last_and_bf16_autocast_run_on_cpu(model_and_inputs):
    model, x = model_and_inputs
    with torch.inference_mode():
        eager = model(x)
        fast = Accelerated(build_model("mnist_cnn", 2, 10).eval(), channels_last=True)
        fast.model.load_state_dict(model.state_dict())
        seen = []
        fast.model.conv[0].register_forward_hook(lambda m, args, out: seen.append(args[0]))
        assert torch.allclose(fast(x), eager, atol=1e-4)
        assert fast.channels_last and seen[0].is_contiguous(memory_format=torch.channels_last)
        assert not fast.model.conv[0].weight.is_contiguous(memory_format=torch.channels_last)  # the model is untouched
        half = Accelerated(model, amp="bf16")(x)
    assert half.dtype == torch.float32 and half.shape == eager.shape
    assert torch.allclose(half, eager, atol=0.1 * eager.abs().max().item())  # bf16 keeps ~3 significant digits
    assert Accelerated(model).num_classes == 10  # attributes of the model stay reachable
    with pytest.raises(ValueError, match="unknown --amp"):
        Accelerated(model, amp="fp8")


def test_a_compile_failure_warns_and_runs_eagerly(model_and_inputs, monkeypatch):
    model, x = model_and_inputs

    def broken(module, **options):
        def run(inputs):
            raise RuntimeError("no C++ compiler found")
        return run

    monkeypatch.setattr(speed.torch, "compile", broken)
    fast = Accelerated(model, compile=True)
    with torch.inference_mode():
        with pytest.warns(UserWarning, match="could not compile the base classifier .*no C\\+\\+ compiler.*eagerly"):
            out = fast(x)
        assert torch.equal(out, model(x))
        assert torch.equal(fast(x), model(x))  # no second warning: eager from now on


@pytest.mark.slow
def test_compiled_model_gives_the_eager_logits(model_and_inputs):
    model, x = model_and_inputs
    with torch.inference_mode():
        assert torch.allclose(Accelerated(model, compile=True)(x), model(x), atol=1e-4)


def test_certify_flags_and_amp_in_the_settings(tiny_checkpoint, tmp_path):
    data, model = tiny_checkpoint
    out = tmp_path / "c.tsv"
    assert main(["certify", "--checkpoint", str(model), "--dataset", data, "--n0", "20", "--n", "100", "--max", "3",
                 "--device", "cpu", "--quiet", "--channels-last", "--amp", "bf16", "--out", str(out)]) == 0
    assert json.loads((tmp_path / "c.tsv.json").read_text())["amp"] == "bf16"
    assert len(out.read_text().splitlines()) == 4


def test_switches_on_off_auto(model_and_inputs):
    model, _ = model_and_inputs  # build_model's mnist_cnn on the CPU: a measured model
    measured = speed.BREAK_EVEN["mnist_cnn", "cpu"]["compile"]
    assert speed.plan(model, "auto", "auto") == {"channels_last": 0, "compile": None if measured == float("inf") else measured}
    assert speed.plan(model, True, "off") == speed.plan(model, "on", False) == {"channels_last": None, "compile": 0}
    unknown = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 28 * 28, 10))
    assert accelerate(unknown, compile="auto", channels_last="auto") is unknown  # not measured: stays as it is
    assert isinstance(accelerate(model, compile="off", channels_last="auto"), Accelerated)
    with pytest.raises(ValueError, match="unknown --compile 'yes'"):
        accelerate(model, compile="yes")


def test_auto_compiles_once_the_break_even_is_reached(model_and_inputs, monkeypatch):
    model, x = model_and_inputs
    compiled = []

    def fake_compile(module, **options):
        compiled.append(module)
        return module

    monkeypatch.setattr(speed.torch, "compile", fake_compile)
    monkeypatch.setitem(speed.BREAK_EVEN, ("mnist_cnn", "cpu"), {"channels_last": 100, "compile": 150})
    fast = Accelerated(model, compile="auto", channels_last="auto")
    with torch.inference_mode():
        fast(x)  # 64 evaluations: neither has paid yet
        assert not compiled and not fast.channels_last
        fast(x)  # 128: channels-last
        assert not compiled and fast.channels_last
        assert torch.allclose(fast(x), model(x), atol=1e-4)  # 192: compiled, the same logits
    assert compiled == [fast.model] and fast.evaluations == 192


def test_compile_unavailable_warns_once_and_runs_eagerly(model_and_inputs, monkeypatch):
    model, x = model_and_inputs

    def unavailable(module, **options):
        raise RuntimeError("Dynamo is not supported on this Python")

    monkeypatch.setattr(speed.torch, "compile", unavailable)
    with pytest.warns(UserWarning, match="could not compile.*not supported.*eagerly"):
        fast = Accelerated(model, compile="on")
    with torch.inference_mode():
        assert torch.equal(fast(x), model(x))


def test_speed_flags_parse():
    from smoothcert.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["certify", "--checkpoint", "m", "--out", "o", "--compile", "--channels-last"])
    assert (args.compile, args.channels_last) == ("on", "on")  # the old spelling means on
    args = parser.parse_args(["certify", "--checkpoint", "m", "--out", "o"])
    assert (args.compile, args.channels_last) == ("auto", "auto")
    args = parser.parse_args(["attack", "--checkpoint", "m", "--out", "o", "--compile", "off", "--channels-last", "on"])
    assert (args.compile, args.channels_last) == ("off", "on")


def test_attack_oracles_get_the_measured_defaults(tiny_checkpoint):
    from smoothcert.attacks import oracle_factory

    _, model = tiny_checkpoint  # an mnist_cnn: channels-last and the measured batch size by default
    smoothed = oracle_factory(model, device="cpu")[0](0).smoothed
    assert smoothed.batch_size == speed.BATCH_SIZES["mnist_cnn", "cpu"]
    assert isinstance(smoothed.base, Accelerated) and smoothed.base.channels_last
    smoothed = oracle_factory(model, device="cpu", batch_size=1000, compile="off", channels_last="off")[0](0).smoothed
    assert smoothed.batch_size == 1000 and not isinstance(smoothed.base, Accelerated)


def test_a_classifier_built_in_python_gets_the_command_lines_speed_defaults(tiny_checkpoint):
    from smoothcert.classifiers import SmoothedClassifier, load_classifier
    from smoothcert.noises import Ablation

    _, model = tiny_checkpoint  # an mnist_cnn
    for smoothed in (SmoothedClassifier.from_checkpoint(model, device="cpu"), load_classifier(model, device="cpu")):
        assert smoothed.batch_size == speed.BATCH_SIZES["mnist_cnn", "cpu"]
        assert isinstance(smoothed.base, Accelerated) and smoothed.base.channels_last
    plain = SmoothedClassifier.from_checkpoint(model, device="cpu", batch_size=1000, compile="off", channels_last="off")
    assert plain.batch_size == 1000 and not isinstance(plain.base, Accelerated)
    unknown = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(128, 10)).eval()  # no measurements: as it is
    smoothed = SmoothedClassifier(unknown, Ablation(16), 10, device="cpu")
    assert smoothed.base is unknown and smoothed.batch_size == 1000
    training = SmoothedClassifier(unknown.train(), Ablation(16), 10, device="cpu").base  # a copy in eval mode
    assert training is not unknown and not training.training and unknown.training
    with pytest.raises(ValueError, match="--compile"):
        SmoothedClassifier(unknown, Ablation(16), 10, device="cpu", compile="sometimes")
