"""BatchNorm folding for inference (kdc_model.inference.fusion) and the torch runner that uses it: same outputs
as the model in eval mode, the model itself untouched, and later in-place weight updates followed."""
import torch
from torch import nn

from kdc_model import KDCNet, Predictor
from kdc_model.inference.fusion import fused_for_inference
from kdc_model.inference.runtime import TorchRunner
from perfect_maps import SMALL


def _trained_looking_network() -> KDCNet:
    """KDCNet(SMALL) with BatchNorm statistics and affine parameters away from their initial 0/1."""
    torch.manual_seed(0)
    model = KDCNet(SMALL)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    return model.eval()


def _outputs_close(got: dict, expected: dict) -> None:
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-4)


def test_folded_copy_gives_the_same_outputs_and_leaves_the_model_alone():
    model = _trained_looking_network()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fused_for_inference(model)
    assert fused is not model
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert batch_norms > 0 and sum(isinstance(m, nn.Identity) for m in fused.modules()) >= batch_norms
    images = torch.randn(2, 3, SMALL.input_size // 32 * 32, SMALL.input_size // 32 * 32)
    with torch.no_grad():
        _outputs_close(fused(images), model(images))
        _outputs_close(fused.to(memory_format=torch.channels_last)(images.contiguous(memory_format=torch.channels_last)),
                       model(images))
    assert model.state_dict().keys() == before.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_a_network_without_batch_norm_is_used_as_given():
    network = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert fused_for_inference(network) is network
    assert TorchRunner(network).model is network


def test_the_torch_runner_follows_in_place_weight_updates():
    model = _trained_looking_network()
    predictor = Predictor(model, device="cpu")
    images = torch.randn(1, 3, 160, 160)
    with torch.inference_mode():
        first = predictor.runner(images)
    with torch.no_grad():
        for parameter in model.heads["heatmap"].parameters():
            parameter.mul_(1.5)  # what an optimiser step or load_state_dict does: in place
        expected = model(images)
    with torch.inference_mode():
        second = predictor.runner(images)
    assert not torch.allclose(second["heatmap"], first["heatmap"])
    _outputs_close(second, expected)
