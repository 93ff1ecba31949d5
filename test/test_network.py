"""KDCNet builds for every backbone and gives one map per head at input / output_stride."""
import pytest
import torch

from kdc_model import CheckpointError, KDCNet, ModelConfig, load_backbone_weights
from kdc_model.network.config import BACKBONES
from kdc_model.network.heads import HEAD_CHANNELS


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_output_shapes_for_each_stride_on_a_non_square_input(stride):
    torch.manual_seed(0)
    model = KDCNet(ModelConfig(output_stride=stride)).eval()
    with torch.inference_mode():
        outputs = model(torch.randn(2, 3, 128, 96))
    assert set(outputs) == set(HEAD_CHANNELS)
    for key, channels in HEAD_CHANNELS.items():
        assert outputs[key].shape == (2, channels, 128 // stride, 96 // stride), key
        assert torch.isfinite(outputs[key]).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_each_backbone_builds(backbone):
    model = KDCNet(ModelConfig(backbone=backbone))
    assert set(model.heads) == set(HEAD_CHANNELS)


def test_resnet50_runs_on_a_small_input():
    model = KDCNet(ModelConfig(backbone="resnet50", output_stride=16)).eval()
    with torch.inference_mode():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert outputs["heatmap"].shape == (1, 17, 4, 4)


def test_channels_last_gives_the_same_outputs():
    torch.manual_seed(0)
    model = KDCNet(ModelConfig()).eval()
    images = torch.randn(1, 3, 64, 96)
    with torch.inference_mode():
        plain = model(images)
        last = model.to(memory_format=torch.channels_last)(images.to(memory_format=torch.channels_last))
    for key in HEAD_CHANNELS:
        torch.testing.assert_close(plain[key], last[key], rtol=1e-4, atol=1e-4)


def test_offset_heads_start_near_zero_and_logit_heads_near_the_prior():
    model = KDCNet(ModelConfig()).eval()
    with torch.inference_mode():
        outputs = model(torch.randn(1, 3, 64, 64))
    assert outputs["heatmap"].sigmoid().mean() < 0.05
    assert outputs["short"].abs().max() < 0.5 * model.config.radius


def test_imagenet_backbone_weights_load_key_for_key(tmp_path):
    import torchvision

    imagenet = torchvision.models.mobilenet_v2(weights=None)
    path = tmp_path / "mobilenet_v2_imagenet.pth"
    torch.save(imagenet.state_dict(), path)
    model = KDCNet(ModelConfig())
    load_backbone_weights(model, path)
    torch.testing.assert_close(model.backbone.body["0"][0].weight, imagenet.features[0][0].weight)


def test_backbone_weights_of_another_architecture_are_refused_naming_the_file(tmp_path):
    import torchvision

    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(CheckpointError, match="resnet50.pth"):
        load_backbone_weights(KDCNet(ModelConfig()), path)


def test_exports_with_dynamic_input_size():
    """No data-dependent control flow: torch.export captures one graph for every multiple of 32."""
    torch.manual_seed(0)
    model = KDCNet(ModelConfig(neck_channels=16, head_channels=16)).eval()
    step = torch.export.Dim("step_h", min=2, max=64), torch.export.Dim("step_w", min=2, max=64)
    exported = torch.export.export(model, (torch.randn(1, 3, 128, 96),),
                                   dynamic_shapes={"images": {2: 32 * step[0], 3: 32 * step[1]}})
    images = torch.randn(1, 3, 160, 224)
    with torch.inference_mode():
        expected, got = model(images), exported.module()(images)
    for key in HEAD_CHANNELS:
        torch.testing.assert_close(got[key], expected[key], rtol=1e-4, atol=1e-4)
