"""Checkpoint files: round trips, strict key checks, corrupt and unsafe files, hub download offline."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from sam2kit.build import build_model
from sam2kit.checkpoints import (
    CheckpointDownloadError,
    CheckpointError,
    CheckpointMismatchError,
    download_checkpoint,
    load_checkpoint,
    read_state_dict,
    save_checkpoint,
)
from sam2kit.config import get_config

SIZE = 256  # no parameter depends on the image size; small inputs keep the forward passes fast


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(get_config("sam2.1_hiera_tiny").replace(image_size=SIZE), device="cpu")


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_model: torch.nn.Module, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(tiny_model, path)
    return path


@pytest.fixture(scope="module")
def tiny_outputs(tiny_model: torch.nn.Module) -> list[torch.Tensor]:
    return _outputs(tiny_model)


def _outputs(model: torch.nn.Module) -> list[torch.Tensor]:
    """Image features and decoder outputs for a fixed input and prompt."""
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, 3, SIZE, SIZE, generator=generator)
    with torch.inference_mode():
        features = model.forward_image(image)
        embed = model.image_embedding_without_memory(features)
        points = (torch.tensor([[[100.0, 120.0]]]), torch.tensor([[1]], dtype=torch.int32))
        sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=None)
        decoded = model.sam_mask_decoder(
            image_embeddings=embed,
            image_pe=model.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
            repeat_image=False,
            high_res_features=features.high_res_features(),
        )
    return [*features.vision_feats, embed, decoded.masks, decoded.iou_pred, decoded.object_score_logits]


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_round_trip(
    tiny_model: torch.nn.Module, tiny_outputs: list[torch.Tensor], tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"model{suffix}"
    save_checkpoint(tiny_model, path)
    assert path.is_file() and not list(tmp_path.glob(".*")), "temporary files left behind"
    loaded = build_model(tiny_model.config, checkpoint=path, device="cpu")
    expected_state, state = tiny_model.state_dict(), loaded.state_dict()
    assert sorted(state) == sorted(expected_state)
    for key, value in expected_state.items():
        assert torch.equal(state[key], value), key
    for expected, actual in zip(tiny_outputs, _outputs(loaded), strict=True):
        assert torch.equal(expected, actual)


def test_pt_has_official_layout(tiny_model: torch.nn.Module, tiny_checkpoint: Path) -> None:
    payload = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    assert list(payload) == ["model"]
    assert sorted(payload["model"]) == sorted(tiny_model.state_dict())
    assert all(value.dtype == torch.float32 for value in payload["model"].values() if value.is_floating_point())


def test_bare_state_dict_accepted(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    path = tmp_path / "bare.pt"
    torch.save(tiny_model.state_dict(), path)
    assert sorted(read_state_dict(path)) == sorted(tiny_model.state_dict())


# ----------------------------------------------------------------------------- strict key checks
def test_checkpoint_of_another_size(tmp_path: Path) -> None:
    """Small weights into tiny: the extra Hiera blocks and the blocks whose stage changed are named,
    with the config and the path."""
    torch.manual_seed(0)
    small = build_model(get_config("sam2.1_hiera_small").replace(image_size=SIZE), device="cpu")
    path = tmp_path / "small.pt"
    save_checkpoint(small, path)
    with pytest.raises(CheckpointMismatchError) as info:
        build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    message = str(info.value)
    assert "sam2.1_hiera_tiny" in message and str(path) in message
    assert "unexpected keys: image_encoder.trunk.blocks.12." in message
    # tiny's last stage starts at block 10 (a dim-changing block with a projection), small's at 14
    assert "missing keys: image_encoder.trunk.blocks.10.proj.bias" in message
    assert "mis-shaped keys: image_encoder.trunk.blocks." in message
    assert "another size" in message
    errors = info.value
    for key in [*errors.unexpected, *errors.missing, *(k for k, _, _ in errors.mismatched)]:
        assert key.startswith("image_encoder.trunk.blocks."), key


def test_missing_unexpected_and_misshaped_keys(tiny_model: torch.nn.Module, tmp_path: Path) -> None:
    state = dict(tiny_model.state_dict())
    del state["no_mem_embed"]
    state["sam_mask_decoder.extra_head.weight"] = torch.zeros(3)
    state["obj_ptr_proj.layers.0.weight"] = torch.zeros(128, 256)
    path = tmp_path / "edited.pt"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointMismatchError) as info:
        build_model(tiny_model.config, checkpoint=path, device="cpu")
    message = str(info.value)
    assert "missing keys: no_mem_embed" in message
    assert "unexpected keys: sam_mask_decoder.extra_head.weight" in message
    assert "mis-shaped keys: obj_ptr_proj.layers.0.weight (checkpoint (128, 256) vs model (256, 256))" in message
    assert info.value.missing == ["no_mem_embed"]
    assert info.value.unexpected == ["sam_mask_decoder.extra_head.weight"]
    assert info.value.mismatched == [("obj_ptr_proj.layers.0.weight", (128, 256), (256, 256))]
    # strict=False loads every key that fits and leaves the rest alone.
    loaded = build_model(tiny_model.config, checkpoint=path, device="cpu", strict=False)
    assert torch.equal(loaded.sam_mask_decoder.iou_token.weight, tiny_model.sam_mask_decoder.iou_token.weight)


def test_checkpoint_of_another_width_is_misshaped(tmp_path: Path) -> None:
    """Base-plus (embed_dim 112) weights into tiny (96): mis-shaped keys, message lists a few."""
    torch.manual_seed(0)
    base_plus = build_model(get_config("sam2.1_hiera_base_plus").replace(image_size=SIZE), device="cpu")
    path = tmp_path / "base_plus.pt"
    save_checkpoint(base_plus, path)
    model = build_model(get_config("sam2.1_hiera_tiny").replace(image_size=SIZE), device="cpu")
    with pytest.raises(CheckpointMismatchError, match=r"mis-shaped keys: .*\(checkpoint \(112,") as info:
        load_checkpoint(model, path, config_name="sam2.1_hiera_tiny")
    assert "image_encoder.trunk.patch_embed.proj.weight" in [key for key, _, _ in info.value.mismatched]
    assert "in all)" in str(info.value), "long key lists are shortened with a count"


# ----------------------------------------------------------------------------- bad files
def test_truncated_file(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "truncated.pt"
    data = tiny_checkpoint.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")
    assert str(path) in str(info.value)
    assert not isinstance(info.value, CheckpointMismatchError)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_garbage_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError) as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_not_a_state_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="does not hold a state dict") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.pt"
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        build_model("sam2.1_hiera_tiny", checkpoint=path, device="cpu")


class _Payload:
    """Unpickling this runs code (touches a file): a stand-in for a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


def test_pickle_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "malicious.pt"
    torch.save({"model": {"weight": torch.zeros(1)}, "payload": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="cannot read checkpoint") as info:
        read_state_dict(path)
    assert str(path) in str(info.value)
    assert not marker.exists(), "the pickle's code ran"


# ----------------------------------------------------------------------------- hub
def test_download_offline_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(CheckpointDownloadError) as info:
        download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path)
    assert time.perf_counter() - start < 5.0
    message = str(info.value)
    assert "checkpoint=" in message and "sam2.1_hiera_tiny.pt" in message
    assert "--" not in message  # a library error names no command-line flag
    assert "offline" in message
    assert (info.value.model_id, info.value.filename) == ("facebook/sam2.1-hiera-tiny", "sam2.1_hiera_tiny.pt")
    assert not list(tmp_path.rglob("*.pt")), "nothing may be downloaded offline"


def test_download_local_files_only_fails_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    with pytest.raises(CheckpointDownloadError, match="checkpoint='/path/to/sam2_hiera_large.pt'"):
        download_checkpoint("facebook/sam2-hiera-large", cache_dir=tmp_path, local_files_only=True)
    assert time.perf_counter() - start < 5.0


def test_download_offline_uses_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file already in the hub cache is found without the network."""
    commit = "0" * 40
    repo = tmp_path / "models--facebook--sam2.1-hiera-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    cached = repo / "snapshots" / commit / "sam2.1_hiera_tiny.pt"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cached")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path).read_bytes() == b"cached"


def test_unknown_hub_id() -> None:
    with pytest.raises(KeyError, match="facebook/sam2.1-hiera-tiny"):
        download_checkpoint("facebook/sam3-hiera-huge")


def test_unreachable_hub_fails_fast_without_retries(tmp_path, monkeypatch) -> None:
    import time

    from sam2kit.checkpoints import CheckpointDownloadError, download_checkpoint

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    start = time.monotonic()
    with pytest.raises(CheckpointDownloadError, match="cannot be reached.*\\n(.*\\n)*.*checkpoint="):
        download_checkpoint("facebook/sam2.1-hiera-tiny", cache_dir=tmp_path)
    assert time.monotonic() - start < 10
