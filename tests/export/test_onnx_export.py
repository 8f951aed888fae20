"""``sam2kit export onnx``: the four graphs against the torch model under onnxruntime (dynamic
numbers of points, objects and memories), OnnxImagePredictor against ImagePredictor, the CLI and
its errors.

One export of a seeded random ``sam2kit-mini`` (256 px) made through the CLI serves every test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx", reason="ONNX export needs the export extra: pip install 'sam2kit[export]'")
pytest.importorskip("onnxscript", reason="ONNX export needs the export extra: pip install 'sam2kit[export]'")
ort = pytest.importorskip("onnxruntime", reason="the export check needs onnxruntime (the export extra)")

from sam2kit.build import build_model  # noqa: E402
from sam2kit.cli import main  # noqa: E402
from sam2kit.config import get_config  # noqa: E402
from sam2kit.export import OnnxImagePredictor, export_onnx, read_manifest  # noqa: E402
from sam2kit.export.onnx_export import MissingExportDependency, require_onnx  # noqa: E402
from sam2kit.modeling.position import apply_rope, axial_rope_angles, rope_rotation  # noqa: E402
from sam2kit.modeling.structures import NO_OBJ_SCORE, PointPrompts  # noqa: E402
from sam2kit.modeling.tracking import memory_frame_offsets, object_pointer_frames  # noqa: E402
from sam2kit.predict.image import ImagePredictor  # noqa: E402

#: max |Δ| of logits and features between onnxruntime and torch.
ATOL = 1e-3
GRAPH_FILES = {"image_encoder.onnx", "prompt_decoder.onnx", "memory_attention.onnx", "memory_encoder.onnx"}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random sam2kit-mini in the official layout; every parameter is perturbed so the
    zero-initialised embeddings (no-memory, temporal, no-object) matter."""
    torch.manual_seed(0)
    model = build_model(get_config("sam2kit-mini"), device="cpu")
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path = tmp_path_factory.mktemp("ckpt") / "mini.pt"
    torch.save({"model": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> torch.nn.Module:
    return build_model("sam2kit-mini", checkpoint=checkpoint, device="cpu")


@dataclass
class Export:
    folder: Path
    summary: dict
    sessions: dict


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Export:
    """The CLI's export of the checkpoint, and an onnxruntime session per graph (1 thread)."""
    import contextlib
    import io

    folder = tmp_path_factory.mktemp("export") / "onnx"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(["export", "onnx", "--checkpoint", str(checkpoint), "--config", "sam2kit-mini",
                     "--device", "cpu", "--out", str(folder), "--quiet"])
    assert code == 0
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = {
        name: ort.InferenceSession(str(folder / f"{name}.onnx"), options, providers=["CPUExecutionProvider"])
        for name in ("image_encoder", "prompt_decoder", "memory_attention", "memory_encoder")
    }
    return Export(folder, json.loads(stdout.getvalue()), sessions)


def _max_diff(expected: torch.Tensor, actual: np.ndarray) -> float:
    assert tuple(expected.shape) == actual.shape
    return float(np.abs(expected.detach().numpy() - actual).max())


def _image(seed: int = 0, size: int = 256) -> torch.Tensor:
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- the CLI and the files
def test_cli_writes_the_graphs_and_the_manifest(exported: Export) -> None:
    folder = exported.folder
    assert {p.name for p in folder.iterdir()} == GRAPH_FILES | {"manifest.json"}
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary folder left behind"
    assert set(exported.summary["files"]) == GRAPH_FILES | {"manifest.json"}
    manifest = read_manifest(folder)
    assert (manifest["preset"], manifest["image_size"], manifest["opset"]) == ("sam2kit-mini", 256, 18)
    decoder = manifest["graphs"]["prompt_decoder"]
    inputs = {entry["name"]: entry for entry in decoder["inputs"]}
    assert inputs["point_coords"]["shape"] == ["objects", "points", 2]
    assert inputs["point_labels"]["dtype"] == "int32"
    attention = {entry["name"]: entry["shape"] for entry in manifest["graphs"]["memory_attention"]["inputs"]}
    assert attention["memory"][:2] == ["memories", "objects"] and attention["obj_ptrs"][:2] == ["pointers", "objects"]
    assert [o["name"] for o in manifest["graphs"]["image_encoder"]["outputs"]] == [
        "high_res_feat0", "high_res_feat1", "image_embed"]
    assert len(manifest["no_mem_embed"]) == 64


def test_cli_unwritable_out_is_one_line_error(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    code = main(["export", "onnx", "--checkpoint", str(checkpoint), "--config", "sam2kit-mini", "--device", "cpu",
                 "--out", str(blocker / "onnx")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("sam2kit: error: cannot write the export to ") and "a_file" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_refuses_a_folder_of_other_files(model: torch.nn.Module, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OSError, match="holds other files"):
        export_onnx(model, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    assert not [p for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")]


def test_missing_onnx_gives_the_install_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
                                                 tmp_path: Path) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real_find_spec(name, *a)
    )
    with pytest.raises(MissingExportDependency, match=r"pip install 'sam2kit\[export\]'"):
        require_onnx()
    code = main(["export", "onnx", "--config", "sam2kit-mini", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "needs onnx" in err[0] and "sam2kit[export]" in err[0]


# ---------------------------------------------------------------------------- the graphs against torch
def test_real_rope_equals_complex_rope() -> None:
    angles = axial_rope_angles(64, 8, 8)
    x = torch.randn(2, 1, 3 * 64, 64)
    expected = apply_rope(x.unflatten(2, (3, 64)), rope_rotation(angles)).flatten(2, 3)
    actual = apply_rope(x.unflatten(2, (3, 64)), rope_rotation(angles, real=True)).flatten(2, 3)
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=0)


@torch.no_grad()
def test_image_encoder(model: torch.nn.Module, exported: Export) -> None:
    image = _image(1)
    features = model.forward_image(image)
    feat_s0, feat_s1 = features.high_res_features()
    h, w = features.feat_sizes[-1]
    top = features.vision_feats[-1].permute(1, 2, 0).reshape(1, -1, h, w)  # raw: no no_mem_embed
    outputs = exported.sessions["image_encoder"].run(None, {"image": image.numpy()})
    for expected, actual in zip((feat_s0, feat_s1, top), outputs, strict=True):
        assert _max_diff(expected, actual) <= ATOL


@torch.no_grad()
@pytest.mark.parametrize(("objects", "points", "with_mask"), [(1, 2, False), (3, 5, True)])
def test_prompt_decoder(model: torch.nn.Module, exported: Export, objects: int, points: int, with_mask: bool) -> None:
    gen = torch.Generator().manual_seed(objects)
    features = model.forward_image(_image(2))
    high_res = features.high_res_features()
    embed = model.image_embedding_without_memory(features).expand(objects, -1, -1, -1).contiguous()
    coords = torch.rand(objects, points, 2, generator=gen) * 256
    labels = torch.randint(0, 4, (objects, points), generator=gen, dtype=torch.int32)
    mask = torch.randn(objects, 1, 64, 64, generator=gen) * 5 if with_mask else None
    # the padding point the model adds to prompts without a box, given to the graph explicitly
    padded_coords = torch.cat([coords, torch.zeros(objects, 1, 2)], dim=1)
    padded_labels = torch.cat([labels, -torch.ones(objects, 1, dtype=torch.int32)], dim=1)
    feeds = {
        "image_embed": embed.numpy(),
        "high_res_feat0": high_res[0].numpy(),
        "high_res_feat1": high_res[1].numpy(),
        "point_coords": padded_coords.numpy(),
        "point_labels": padded_labels.numpy(),
        "mask_input": (mask if mask is not None else torch.zeros(objects, 1, 64, 64)).numpy(),
        "has_mask_input": np.array([1.0 if with_mask else 0.0], dtype=np.float32),
    }
    masks, ious, multimasks, multi_ious, scores, obj_ptr, multi_obj_ptr = exported.sessions["prompt_decoder"].run(
        None, feeds)
    absent = scores[:, :, None, None] <= 0
    for multimask, got_masks, got_ious, got_ptr in ((False, masks, ious, obj_ptr),
                                                     (True, multimasks, multi_ious, multi_obj_ptr)):
        heads = model.forward_sam_heads(embed, PointPrompts(coords, labels), mask, high_res, multimask_output=multimask)
        assert _max_diff(heads.low_res_multimasks, np.where(absent, NO_OBJ_SCORE, got_masks)) <= ATOL
        assert _max_diff(heads.ious, got_ious) <= 1e-4
        assert _max_diff(heads.obj_ptr, got_ptr) <= ATOL
        assert _max_diff(heads.object_score_logits, scores) <= ATOL


@dataclass
class _Memory:
    maskmem_features: torch.Tensor
    maskmem_pos_enc: torch.Tensor
    obj_ptr: torch.Tensor


def _memory_inputs(model: torch.nn.Module, frame_idx: int, cond: dict, non_cond: dict) -> dict[str, np.ndarray]:
    """The memory attention graph's inputs for a forward-tracked frame (what a tracking loop
    assembles with sam2kit.modeling.tracking's bookkeeping)."""
    slots = [(0, entry) for entry in cond.values()]
    offsets = memory_frame_offsets(frame_idx, model.num_maskmem, 1, False)
    slots += [(t_pos, non_cond.get(prev)) for t_pos, prev in offsets]
    slots = [(t_pos, entry) for t_pos, entry in slots if entry is not None]
    positions, pointers, max_ptrs = object_pointer_frames(model.config, frame_idx, cond, {}, non_cond, None, False)
    return {
        "memory": torch.stack([entry.maskmem_features for _, entry in slots]).numpy(),
        "memory_pos": torch.stack([entry.maskmem_pos_enc for _, entry in slots]).numpy(),
        "memory_slot": np.array([t_pos for t_pos, _ in slots], dtype=np.int64),
        "obj_ptrs": torch.stack(pointers).numpy(),
        "obj_ptr_pos": (np.array(positions, dtype=np.float32) / (max_ptrs - 1)).astype(np.float32),
    }


@torch.no_grad()
@pytest.mark.parametrize(("objects", "frame_idx"), [(1, 2), (2, 5)])
def test_memory_attention(model: torch.nn.Module, exported: Export, objects: int, frame_idx: int) -> None:
    """Frame ``frame_idx`` after a conditioning frame 0 and tracked frames 1 .. frame_idx - 1:
    2 memories + 2 pointers, then 5 memories + 5 pointers."""
    gen = torch.Generator().manual_seed(frame_idx)
    pos = model.memory_encoder.position_encoding(torch.zeros(objects, model.mem_dim, 16, 16))

    def entry() -> _Memory:
        return _Memory(torch.randn(objects, model.mem_dim, 16, 16, generator=gen), pos,
                       torch.randn(objects, model.hidden_dim, generator=gen))

    cond = {0: entry()}
    non_cond = {t: entry() for t in range(1, frame_idx)}
    image = _image(3)
    features = model.forward_image(image).expand(objects)
    expected = model.prepare_memory_conditioned_features(frame_idx, False, features, cond, non_cond, None)
    raw = exported.sessions["image_encoder"].run(["image_embed"], {"image": image.numpy()})[0]
    inputs = _memory_inputs(model, frame_idx, cond, non_cond)
    assert inputs["memory"].shape[0] == min(frame_idx, model.num_maskmem)
    (actual,) = exported.sessions["memory_attention"].run(None, {"image_embed": raw, **inputs})
    assert _max_diff(expected, actual) <= ATOL


@torch.no_grad()
@pytest.mark.parametrize(("objects", "from_points"), [(1, True), (3, False)])
def test_memory_encoder(model: torch.nn.Module, exported: Export, objects: int, from_points: bool) -> None:
    gen = torch.Generator().manual_seed(objects)
    image = _image(4)
    features = model.forward_image(image).expand(objects)
    masks = torch.randn(objects, 1, 256, 256, generator=gen) * 4
    scores = torch.randn(objects, 1, generator=gen)
    expected = model.encode_new_memory(features, masks, scores, from_points)
    raw = exported.sessions["image_encoder"].run(["image_embed"], {"image": image.numpy()})[0]
    feeds = {"image_embed": raw, "mask_logits": masks.numpy(), "object_score_logits": scores.numpy(),
             "mask_from_points": np.array([from_points])}
    for want, got in zip(expected, exported.sessions["memory_encoder"].run(None, feeds), strict=True):
        assert _max_diff(want, got) <= ATOL


# ---------------------------------------------------------------------------- the predictor
def test_onnx_image_predictor_matches_image_predictor(model: torch.nn.Module, exported: Export) -> None:
    image = np.random.default_rng(0).integers(0, 256, (180, 240, 3), dtype=np.uint8)
    reference, onnx = ImagePredictor(model), OnnxImagePredictor(exported.folder, num_threads=1)
    reference.set_image(image)
    onnx.set_image(image)
    first = reference.predict(point_coords=[[100, 80]], point_labels=[1], multimask_output=False)
    prompts = [
        {"point_coords": [[100, 80]], "point_labels": [1]},
        {"box": [20, 30, 200, 150], "point_coords": [[100, 80], [50, 60]], "point_labels": [1, 0],
         "multimask_output": False},
        {"box": [[20, 30, 200, 150], [0, 0, 100, 100]]},
        {"mask_input": first[2], "point_coords": [[120, 90]], "point_labels": [1]},
        {"mask_input": first[2], "multimask_output": False},
    ]
    for prompt in prompts:
        masks, ious, low_res = reference.predict(**prompt)
        logits = reference.predict(**prompt, return_logits=True)[0]
        got_masks, got_ious, got_low_res = onnx.predict(**prompt)
        assert np.abs(got_low_res - low_res).max() <= ATOL
        assert np.abs(got_ious - ious).max() <= 1e-4
        decided = np.abs(logits) > 1e-4  # away from the threshold, where float rounding cannot flip a pixel
        assert got_masks.shape == masks.shape and np.array_equal(got_masks[decided], masks[decided])
    assert np.allclose(onnx.get_image_embedding().numpy(), reference.get_image_embedding().numpy(), atol=ATOL)


def test_export_help_imports_no_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, sam2kit.cli\n"
            "status = sam2kit.cli.main(['export', 'onnx', '--help'])\n"
            "assert 'torch' not in sys.modules\n"
            "print('status', status)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("status 0") and "--opset" in done.stdout
