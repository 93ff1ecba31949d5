"""The ONNX export cache runs nothing another user wrote (issue 14).

The attack: the cache used to fall back to $TMPDIR/kdc_model_onnx/<name>.onnx, a name anyone who
can read the weights can compute, and used a file found there unchecked. A network with its heatmap
logits forced to -50 planted there made the node find 0 people; garbage made every start fail.

Here every planted, tampered or linked file leaves the network's outputs exactly those of the
checkpoint (compared with PyTorch running the same weights), is reported as a warning and replaced,
and no symlink makes the cache write anywhere else. Where the test runs as root, "another user" is
real: a forked child switches to uid 65534 (nobody) to plant files, or a planted file is chowned to
it; elsewhere those parts are skipped (switching or giving away ownership needs root) and the same
checks run on files that group or others can write.
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from kdc_model import KDCNet, Predictor, load_model, save_checkpoint
from kdc_model.inference import runtime
from kdc_model.inference.export import export_onnx, onnx_bytes, weights_sha256
from kdc_model.network.private_files import read_private, write_atomic
from perfect_maps import SIDE, SMALL, SceneNet, people_scene

pytest.importorskip("onnxruntime")

OTHER_UID = 65534   # nobody
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="acting as another user (setuid, chown) needs root; "
                                "the group/other-writable cases cover the same checks without it")


class ForcedHeatmap(nn.Module):
    """`model` with every heatmap logit forced to -50: the network the issue planted (finds no one)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.config = model, model.config

    def forward(self, images):
        out = dict(self.model(images))
        out["heatmap"] = torch.full_like(out["heatmap"], -50.0)
        return out


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    """XDG_CACHE_HOME in a fresh folder (never the real ~/.cache)."""
    cache = tmp_path / "xdg_cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache / "kdc_ros" / "onnx"


@pytest.fixture
def checkpoint(tmp_path):
    torch.manual_seed(4)
    folder = tmp_path / "weights"
    folder.mkdir()
    path = folder / "small.safetensors"
    save_checkpoint(path, KDCNet(SMALL), SMALL)
    return path


def reference_outputs(checkpoint: Path, batch: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.no_grad():
        return {k: v.numpy() for k, v in load_model(checkpoint, device="cpu").model(batch).items()}


def assert_same_network(predictor, expected: dict[str, np.ndarray], batch: torch.Tensor) -> None:
    got = predictor.runner(batch)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key].numpy(), value, atol=1e-3, err_msg=key)


def forged(model: nn.Module, data: bytes, side: int = SIDE) -> bytes:
    """A perfect claim for `data` as the export of `model` (an attacker can compute all of it)."""
    claim = {"exporter": runtime.exporter_id(), "input_side": side, "weights_sha256": weights_sha256(model),
             "onnx_sha256": hashlib.sha256(data).hexdigest()}
    return json.dumps(claim).encode()


def plant(path: Path, data: bytes, claim: bytes | None, mode: int = 0o600, uid: int | None = None) -> None:
    for target, content in ((path, data), (runtime.claim_path(path), claim)):
        if content is None:
            continue
        target.unlink(missing_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
        if uid is not None:
            os.chown(target, uid, -1)


def assert_ours_and_verified(path: Path, model: nn.Module) -> None:
    for target in (path, runtime.claim_path(path)):
        info = os.lstat(target)
        assert stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid(), target
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0, oct(info.st_mode)
    assert runtime.cached_export(path, model, SIDE) is not None


def as_other_user(action) -> int:
    """Run `action()` (returning an exit code) in a forked child switched to OTHER_UID; its exit code."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            os.setgroups([])
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            code = action()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# --- where the cache lives ----------------------------------------------------------------------------
def test_a_folder_others_can_write_sends_the_cache_to_the_private_user_folder(checkpoint, private_cache):
    os.chmod(checkpoint.parent, 0o777)  # a shared weights folder (like the temp folder)
    path = runtime.onnx_cache_path(checkpoint, SIDE)
    assert path.parent == private_cache
    batch = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    assert_same_network(load_model(checkpoint, device="cpu", backend="onnxruntime"),
                        reference_outputs(checkpoint, batch), batch)
    for folder in (private_cache, private_cache.parent):
        info = os.stat(folder)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert not list(checkpoint.parent.glob("*.onnx*"))
    model = load_model(checkpoint, device="cpu").model
    assert_ours_and_verified(path, model)
    written = path.stat().st_mtime_ns
    again = load_model(checkpoint, device="cpu", backend="onnxruntime")
    assert again.runner.from_cache and path.stat().st_mtime_ns == written  # the verified file was reused
    assert_same_network(again, reference_outputs(checkpoint, batch), batch)


def test_an_own_folder_keeps_the_cache_beside_the_weights(checkpoint, private_cache):
    os.chmod(checkpoint.parent, 0o755)
    assert runtime.onnx_cache_path(checkpoint, SIDE).parent == checkpoint.parent.resolve()
    assert not private_cache.exists()


@needs_root
def test_a_weights_folder_of_another_user_is_not_used(checkpoint, private_cache):
    os.chmod(checkpoint.parent, 0o755)
    os.chown(checkpoint.parent, OTHER_UID, -1)
    assert runtime.onnx_cache_path(checkpoint, SIDE).parent == private_cache


def test_a_lax_private_folder_of_ours_is_tightened_and_one_of_another_user_refused(private_cache):
    private_cache.mkdir(parents=True, mode=0o775)
    os.chmod(private_cache, 0o775)  # made under umask 002
    folder, problem = runtime.user_cache_folder()
    assert folder == private_cache and problem is None
    assert stat.S_IMODE(os.stat(private_cache).st_mode) == 0o755
    if IS_ROOT:
        os.chown(private_cache, OTHER_UID, -1)
        folder, problem = runtime.user_cache_folder()
        assert folder is None and f"owned by uid {OTHER_UID}" in problem


# --- planted and tampered files -------------------------------------------------------------------------
def poisoned_export(checkpoint: Path) -> tuple[nn.Module, bytes]:
    model = load_model(checkpoint, device="cpu").model
    return model, onnx_bytes(ForcedHeatmap(model), SIDE, dynamic_batch=True, dynamic_size=True)


CASES = {
    "garbage, no claim": lambda model, bad, path: plant(path, b"\x08garbage" * 100, None),
    "garbage with a matching claim (fails to load)":
        lambda model, bad, path: plant(path, b"\x08garbage" * 100, forged(model, b"\x08garbage" * 100)),
    "poisoned network, forged claim, group/other-writable":
        lambda model, bad, path: plant(path, bad, forged(model, bad), mode=0o666),
    "poisoned network over ours, our claim kept (tampered)":
        lambda model, bad, path: path.write_bytes(bad),
    "genuine export of other weights with its genuine claim":
        lambda model, bad, path: plant(path, *_other_weights_export()),
    "symlink to a poisoned export of ours": lambda model, bad, path: _link_to_poison(model, bad, path),
    "FIFO at the name": lambda model, bad, path: (path.unlink(), os.mkfifo(path)),
}
ROOT_CASES = {
    "poisoned network, forged claim, owned by another uid":
        lambda model, bad, path: plant(path, bad, forged(model, bad), uid=OTHER_UID),
}


def _other_weights_export() -> tuple[bytes, bytes]:
    torch.manual_seed(9)
    other = KDCNet(SMALL).eval()
    data = onnx_bytes(other, SIDE, dynamic_batch=True, dynamic_size=True)
    return data, forged(other, data)


def _link_to_poison(model, bad, path: Path) -> None:
    elsewhere = path.parent.parent / "poison.onnx"
    plant(elsewhere, bad, forged(model, bad))
    path.unlink()
    path.symlink_to(elsewhere)
    runtime.claim_path(path).unlink()
    runtime.claim_path(path).symlink_to(runtime.claim_path(elsewhere))


@pytest.mark.parametrize("case", [*CASES, *(pytest.param(c, marks=needs_root) for c in ROOT_CASES)])
def test_planted_or_tampered_cache_files_change_no_result(case, checkpoint, private_cache):
    os.chmod(checkpoint.parent, 0o777)  # the cache goes to the private folder
    batch = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    expected = reference_outputs(checkpoint, batch)
    load_model(checkpoint, device="cpu", backend="onnxruntime")  # a genuine cache entry first
    path = runtime.onnx_cache_path(checkpoint, SIDE)
    model, bad = poisoned_export(checkpoint)
    {**CASES, **ROOT_CASES}[case](model, bad, path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load_model(checkpoint, device="cpu", backend="onnxruntime")
    assert_same_network(predictor, expected, batch)
    assert_ours_and_verified(path, model)  # replaced by a genuine export of ours
    assert read_private(path, 1 << 30) != bad
    reasons = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    if case != "garbage, no claim":  # (a file without claim is an unfinished or old entry: replaced silently)
        assert any(str(path) in r for r in reasons), reasons
    assert all("\n" not in r for r in reasons)


def test_the_issue_attack_no_longer_hides_people(tmp_path):
    """The reproduction of the issue: a poisoned network with a perfect claim at the cache name. The
    control finds people; so must the victim."""
    scene = people_scene(3, 150, 210, people=3)
    network = SceneNet(scene)
    control = Predictor(network, device="cpu", backend="onnxruntime")(scene.image)
    assert len(control) >= 2
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    path = folder / "scene.s160.000000000000.onnx"
    bad = onnx_bytes(ForcedHeatmap(network), SIDE, dynamic_batch=True, dynamic_size=True)
    assert len(Predictor(ForcedHeatmap(network), device="cpu", backend="onnxruntime")(scene.image)) == 0
    planted_by_other = (dict(uid=OTHER_UID) if IS_ROOT else dict(mode=0o666))
    plant(path, bad, forged(network, bad), **planted_by_other)
    with pytest.warns(RuntimeWarning, match="not using the cached ONNX export"):
        victim = Predictor(network, device="cpu", backend="onnxruntime", onnx=path)(scene.image)
    assert len(victim) == len(control)
    np.testing.assert_allclose(victim.keypoints, control.keypoints, atol=1e-3)


# --- symlinks clobber nothing ---------------------------------------------------------------------------
def test_planted_symlinks_clobber_nothing(checkpoint, private_cache, tmp_path):
    victim = tmp_path / "victim_private_file"
    victim.write_bytes(b"secret")
    os.chmod(checkpoint.parent, 0o777)
    path = runtime.onnx_cache_path(checkpoint, SIDE)
    # The old writer's temp names (<name>.<pid>.partial), for this and the next pids, and both final names.
    names = [path.with_name(f"{path.name}.{pid}.partial") for pid in range(os.getpid() - 5, os.getpid() + 50)]
    names += [path, runtime.claim_path(path)]
    for name in names:
        name.symlink_to(victim)
    predictor = load_model(checkpoint, device="cpu", backend="onnxruntime")
    assert victim.read_bytes() == b"secret"
    assert not path.is_symlink() and not runtime.claim_path(path).is_symlink()
    assert_ours_and_verified(path, predictor.model)
    assert all(n.is_symlink() for n in names[:-2])  # left alone, never written through

    out = tmp_path / "export" / "model.onnx"  # the export CLI's writer too
    out.parent.mkdir()
    out.with_name(f"{out.name}.{os.getpid()}.partial").symlink_to(victim)
    out.symlink_to(victim)
    export_onnx(predictor.model, out, SIDE)
    assert victim.read_bytes() == b"secret" and out.is_file() and not out.is_symlink()


def test_write_atomic_never_follows_or_leaves_temporaries(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"secret")
    target = tmp_path / "file"
    target.symlink_to(victim)
    write_atomic(target, b"new")
    assert victim.read_bytes() == b"secret" and target.read_bytes() == b"new" and not target.is_symlink()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "victim"]


# --- another user, for real -----------------------------------------------------------------------------
@needs_root
def test_another_user_can_neither_plant_in_the_private_cache_nor_be_used_from_shared_folders(monkeypatch):
    import shutil
    import tempfile

    # Folders the other user can reach (pytest's own tmp folders are root's 0700).
    base = Path(tempfile.mkdtemp(prefix="kdc_cache_attack_"))
    try:
        os.chmod(base, 0o755)
        shared = base / "shared"        # a world-writable sticky folder, like /tmp, holding the weights
        shared.mkdir()
        os.chmod(shared, 0o1777)
        torch.manual_seed(4)
        checkpoint = shared / "small.safetensors"
        save_checkpoint(checkpoint, KDCNet(SMALL), SMALL)
        old_style = shared / "kdc_model_onnx"   # the former fallback folder, planted before the victim runs
        monkeypatch.setenv("XDG_CACHE_HOME", str(base / "home" / ".cache"))
        (base / "home").mkdir(mode=0o755)
        os.chmod(base / "home", 0o755)
        path = runtime.onnx_cache_path(checkpoint, SIDE)
        assert path.parent == base / "home" / ".cache" / "kdc_ros" / "onnx"
        model, bad = poisoned_export(checkpoint)
        claim = forged(model, bad)

        def attack() -> int:
            # Plant the poisoned network (with a perfect claim) everywhere the attacker can write.
            old_style.mkdir()
            for folder in (old_style, shared):
                (folder / path.name).write_bytes(bad)
                runtime.claim_path(folder / path.name).write_bytes(claim)
            try:
                (path.parent / "planted").write_bytes(b"x")
            except PermissionError:
                return 0
            return 1  # the private folder let another user in

        assert as_other_user(attack) == 0
        assert (shared / path.name).stat().st_uid == OTHER_UID
        batch = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
        assert_same_network(load_model(checkpoint, device="cpu", backend="onnxruntime"),
                            reference_outputs(checkpoint, batch), batch)
        assert_ours_and_verified(path, model)
    finally:
        shutil.rmtree(base, ignore_errors=True)
