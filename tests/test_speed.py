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
        assert fast.model.conv[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(fast(x), eager, atol=1e-4)
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
