"""Checkpoints round-trip exactly, never run code from the file, and fail with one line naming it."""
import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from kdc_model import CheckpointError, KDCNet, ModelConfig, load_checkpoint, save_checkpoint

SMALL = dict(neck_channels=16, head_channels=16)


def _model(**overrides):
    torch.manual_seed(0)
    config = ModelConfig(**{**SMALL, **overrides})
    return KDCNet(config).eval(), config


def _outputs(model, images):
    with torch.inference_mode():
        return model(images)


def test_round_trip_gives_identical_outputs(tmp_path):
    model, config = _model(output_stride=16, input_size=193)
    path = tmp_path / "kdc.safetensors"
    save_checkpoint(path, model, config, extra_metadata={"epochs": 3})
    loaded_config, state = load_checkpoint(path)
    assert loaded_config == config
    restored = KDCNet(loaded_config).eval()
    restored.load_state_dict(state)
    images = torch.randn(1, 3, 64, 96)
    expected, got = _outputs(model, images), _outputs(restored, images)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_fp16_checkpoint_is_half_the_size_and_close(tmp_path):
    model, config = _model()
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    save_checkpoint(full, model, config)
    save_checkpoint(half, model, config, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    _, state = load_checkpoint(half)
    assert all(v.dtype != torch.float16 for v in state.values())
    restored = KDCNet(config).eval()
    restored.load_state_dict(state)
    images = torch.randn(1, 3, 64, 64)
    expected, got = _outputs(model, images), _outputs(restored, images)
    torch.testing.assert_close(got["heatmap"], expected["heatmap"], rtol=1e-2, atol=1e-2)


def test_torch_file_with_config_and_state_dict_loads(tmp_path):
    model, config = _model()
    path = tmp_path / "kdc.pt"
    torch.save({"config": config.to_dict(), "state_dict": model.state_dict()}, path)
    loaded_config, state = load_checkpoint(path)
    assert loaded_config == config and set(state) == set(model.state_dict())


class _WritesSentinel:
    """Unpickling this calls Path.touch(sentinel): the proof that a loader ran code from the file."""

    def __init__(self, sentinel):
        self.sentinel = sentinel

    def __reduce__(self):
        return (type(self.sentinel).touch, (self.sentinel,))


@pytest.mark.parametrize("name", ["evil.pt", "evil.pth", "evil.safetensors"])
def test_pickled_code_is_refused_without_running(tmp_path, name):
    model, config = _model()
    sentinel = tmp_path / "code_ran"
    payload = {"config": config.to_dict(), "state_dict": model.state_dict(), "hook": _WritesSentinel(sentinel)}
    path = tmp_path / name
    if name.endswith(".safetensors"):
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)
    assert not sentinel.exists()
    with pytest.raises(CheckpointError, match=name):
        load_checkpoint(path)
    assert not sentinel.exists(), "loading the checkpoint executed code from it"


def test_truncated_file_names_the_file(tmp_path):
    model, config = _model()
    path = tmp_path / "cut.safetensors"
    save_checkpoint(path, model, config)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors.*truncated or corrupt"):
        load_checkpoint(path)


def test_truncated_torch_file_names_the_file(tmp_path):
    model, config = _model()
    path = tmp_path / "cut.pt"
    torch.save({"config": config.to_dict(), "state_dict": model.state_dict()}, path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pt"):
        load_checkpoint(path)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nowhere.safetensors.*not found"):
        load_checkpoint(tmp_path / "nowhere.safetensors")


def test_safetensors_without_config_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="plain.safetensors.*not a KDC checkpoint"):
        load_checkpoint(path)


def test_weights_of_another_backbone_are_refused(tmp_path):
    model, _ = _model()  # mobilenet_v2 weights ...
    path = tmp_path / "mixed.safetensors"
    save_checkpoint(path, model, ModelConfig(**SMALL, backbone="resnet50"))  # ... stored as resnet50
    with pytest.raises(CheckpointError, match="mixed.safetensors.*backbone resnet50.*missing.*unexpected"):
        load_checkpoint(path)


def test_wrong_shapes_for_the_config_are_refused(tmp_path):
    model, _ = _model()
    path = tmp_path / "narrow.safetensors"
    save_checkpoint(path, model, ModelConfig(neck_channels=32, head_channels=16))
    with pytest.raises(CheckpointError, match="narrow.safetensors.*has shape"):
        load_checkpoint(path)


def test_missing_weights_are_refused(tmp_path):
    model, config = _model()
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.startswith("heads.seg")}
    path = tmp_path / "partial.safetensors"
    save_file(state, str(path), metadata={"config": json.dumps(config.to_dict())})
    with pytest.raises(CheckpointError, match="partial.safetensors.*missing \\(e.g. heads.seg"):
        load_checkpoint(path)


def test_invalid_stored_config_is_refused(tmp_path):
    path = tmp_path / "badconfig.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"config": json.dumps({"backbone": "vgg"})})
    with pytest.raises(CheckpointError, match="badconfig.safetensors.*invalid model config"):
        load_checkpoint(path)


def test_saving_follows_no_symlink_planted_beside_the_checkpoint(tmp_path):
    """The writer used the predictable name <file>.partial: a symlink planted there (a shared folder)
    made a save overwrite whatever it pointed to."""
    import os

    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    path = tmp_path / "model.safetensors"
    path.with_name(path.name + ".partial").symlink_to(victim)
    path.symlink_to(victim)
    model, config = _model()
    save_checkpoint(path, model, config)
    assert victim.read_bytes() == b"secret"
    assert path.is_file() and not path.is_symlink()
    assert load_checkpoint(path)[0].to_dict() == config.to_dict()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "model.safetensors.partial", "victim"]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask
