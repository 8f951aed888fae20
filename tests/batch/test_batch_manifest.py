"""The batch manifest: the issue's line forms (points, boxes, masks), CSV, one clear error per
malformed line, the shipped JSON Schema agreeing with the parser, and the fingerprint that decides
what a rerun redoes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sam2kit.batch import BatchItem, ManifestError, ObjectPrompt, load_manifest, manifest_schema
from sam2kit.batch.manifest import parse_item

IMAGE_LINE = {"id": "a", "image": "imgs/a.jpg", "prompts": [{"obj_id": 1, "points": [[120, 80]], "labels": [1]},
                                                            {"obj_id": 2, "box": [10, 10, 200, 150]}]}
VIDEO_LINE = {"id": "v", "video": "clips/v.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[50, 60]],
                                                              "labels": [1]}]}
AUTO_LINE = {"id": "c", "image": "/data/c.png", "mode": "auto", "options": {"points_per_side": 16}}
MASK_LINE = {"id": "m", "image": "imgs/m.jpg", "prompts": [{"obj_id": 1, "mask": "masks/m_obj1.png"},
                                                           {"obj_id": 2, "mask": "/abs/m2.png", "box": [1, 2, 30, 40]}]}
VIDEO_MASK_LINE = {"id": "w", "video": "clips/w", "prompts": [{"frame": 2, "obj_id": 3, "mask": "w_f2.png"},
                                                             {"frame": 0, "obj_id": 3, "points": [[5, 6]]}]}

#: malformed entries and a fragment of the message each must give
BAD_LINES = [
    ({"image": "a.jpg", "prompts": [{"obj_id": 1, "points": [[1, 2]]}]}, "id must be"),
    ({"id": "../x", "image": "a.jpg", "prompts": [{"obj_id": 1, "points": [[1, 2]]}]}, "id must be"),
    ({"id": "x", "prompts": [{"obj_id": 1, "points": [[1, 2]]}]}, "exactly one of image or video"),
    ({"id": "x", "image": "a.jpg", "video": "v.mp4", "prompts": [{"obj_id": 1, "box": [0, 0, 1, 1]}]},
     "exactly one of image or video"),
    ({"id": "x", "image": "a.jpg"}, "prompts must be a non-empty list"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 0, "points": [[1, 2]]}]}, "obj_id must be an integer 1..255"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1}]}, "needs points, a box and/or a mask"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "points": [[1]]}]}, "[x, y] pixel pairs"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "points": [[1, 2]], "labels": [2]}]}, "labels must be"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "box": [5, 5, 1, 1]}]}, "x0 <= x1"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "frame": 2, "points": [[1, 2]]}]}, "must be 0"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "mask": ""}]}, "mask must be the path of a PNG"),
    ({"id": "x", "video": "v", "prompts": [{"obj_id": 1, "mask": ["m.png"]}]}, "mask must be the path of a PNG"),
    ({"id": "x", "image": "a.jpg", "prompts": [{"obj_id": 1, "masks": "m.png"}]}, "unknown key(s) ['masks']"),
    ({"id": "x", "video": "v.mp4", "mode": "auto"}, "images only"),
    ({"id": "x", "image": "a.jpg", "mode": "auto", "options": {"points_per_sid": 8}}, "unknown option"),
    ({"id": "x", "image": "a.jpg", "colour": 3, "prompts": [{"obj_id": 1, "box": [0, 0, 1, 1]}]}, "unknown key"),
]


def test_the_issue_forms_parse(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in (IMAGE_LINE, VIDEO_LINE, AUTO_LINE)) + "\n\n")
    image, video, auto = load_manifest(manifest)
    assert image == BatchItem("a", "image", tmp_path / "imgs" / "a.jpg", "prompts", (
        ObjectPrompt(1, 0, ((120.0, 80.0),), (1,), None), ObjectPrompt(2, 0, (), (), (10.0, 10.0, 200.0, 150.0))),
        {}, 1)
    assert (video.kind, video.path, video.prompts[0].frame, video.line) == ("video", tmp_path / "clips" / "v.mp4", 0, 2)
    assert (auto.mode, auto.path, dict(auto.options)) == ("auto", Path("/data/c.png"), {"points_per_side": 16})


def test_mask_prompts_parse_relative_to_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(MASK_LINE) + "\n" + json.dumps(VIDEO_MASK_LINE) + "\n")
    image, video = load_manifest(manifest)
    assert image.prompts == (ObjectPrompt(1, mask=tmp_path / "masks" / "m_obj1.png"),
                             ObjectPrompt(2, box=(1.0, 2.0, 30.0, 40.0), mask=Path("/abs/m2.png")))
    assert video.prompts == (ObjectPrompt(3, 0, ((5.0, 6.0),), (1,)), ObjectPrompt(3, 2, mask=tmp_path / "w_f2.png"))
    csv_manifest = tmp_path / "m.csv"  # the CSV prompts cell takes the same JSON
    csv_manifest.write_text("id,image,prompts\n" + "m,imgs/m.jpg,\"" + json.dumps(MASK_LINE["prompts"]).replace(
        '"', '""') + '"\n')
    assert load_manifest(csv_manifest)[0].prompts == image.prompts


def test_labels_default_to_foreground_and_prompts_are_sorted() -> None:
    item = parse_item({"id": "v", "video": "v", "prompts": [{"frame": 3, "obj_id": 1, "points": [[1, 2], [3, 4]]},
                                                            {"frame": 0, "obj_id": 2, "box": [0, 0, 5, 5]}]}, Path("."))
    assert [(p.frame, p.obj_id) for p in item.prompts] == [(0, 2), (3, 1)]
    assert item.prompts[1].labels == (1, 1)


def test_csv_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,image,video,mode,prompts,options\n"
        f"a,imgs/a.jpg,,,\"{json.dumps(IMAGE_LINE['prompts']).replace(chr(34), chr(34) * 2)}\",\n"
        "c,c.png,,auto,,\"{\"\"points_per_side\"\": 8}\"\n"
    )
    image, auto = load_manifest(manifest)
    assert image.prompts == parse_item(IMAGE_LINE, tmp_path).prompts
    assert (auto.mode, dict(auto.options), auto.line) == ("auto", {"points_per_side": 8}, 3)


def test_every_malformed_line_is_reported_with_its_number(tmp_path: Path) -> None:
    manifest = tmp_path / "m.jsonl"
    lines = [json.dumps(IMAGE_LINE), "{not json", json.dumps(VIDEO_LINE), json.dumps({**VIDEO_LINE, "video": "w"}),
             *(json.dumps(bad) for bad, _ in BAD_LINES)]
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError) as raised:
        load_manifest(manifest)
    message = str(raised.value).splitlines()
    assert message[1].strip().startswith("m.jsonl line 2: not valid JSON")
    assert message[2].strip() == "m.jsonl line 4: id 'v' is already used on line 3"
    for number, (line, (_, fragment)) in enumerate(zip(message[3:], BAD_LINES, strict=True), start=5):
        assert line.strip().startswith(f"m.jsonl line {number}: ") and fragment in line, line


def test_missing_and_empty_manifests(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="manifest not found"):
        load_manifest(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("# nothing yet\n\n")
    with pytest.raises(ManifestError, match="has no item"):
        load_manifest(tmp_path / "empty.jsonl")


def test_the_shipped_schema_agrees_with_the_parser() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="the schema check needs jsonschema (in the dev extra)")
    schema = manifest_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for good in (IMAGE_LINE, VIDEO_LINE, AUTO_LINE, MASK_LINE, VIDEO_MASK_LINE):
        assert not list(validator.iter_errors(good)), good
    # the checks a schema can express (not: duplicate objects, box corner order)
    expressible = [bad for bad, fragment in BAD_LINES if fragment != "x0 <= x1"]
    for bad in expressible:
        assert list(validator.iter_errors(bad)), bad


def test_the_fingerprint_follows_what_the_item_asks_for() -> None:
    item = parse_item(IMAGE_LINE, Path("/m"), line=1)
    assert parse_item(IMAGE_LINE, Path("/m"), line=7).fingerprint() == item.fingerprint()
    moved = {**IMAGE_LINE, "prompts": [{"obj_id": 1, "points": [[121, 80]]}]}
    assert parse_item(moved, Path("/m")).fingerprint() != item.fingerprint()
    assert parse_item(IMAGE_LINE, Path("/other")).fingerprint() != item.fingerprint()
    # items without masks keep the fingerprint of earlier releases (their outputs are not redone)
    described = {"kind": "image", "path": "/m/imgs/a.jpg", "mode": "prompts", "options": {},
                 "prompts": [[1, 0, [[120.0, 80.0]], [1], None], [2, 0, [], [], [10.0, 10.0, 200.0, 150.0]]]}
    assert item.fingerprint() == hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]
    masked = parse_item(MASK_LINE, Path("/m"))
    renamed = {**MASK_LINE, "prompts": [{"obj_id": 1, "mask": "masks/other.png"}, MASK_LINE["prompts"][1]]}
    assert parse_item(renamed, Path("/m")).fingerprint() != masked.fingerprint()


def test_batch_without_ray_says_how_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    from sam2kit.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(IMAGE_LINE) + "\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out")]) == 1
    assert "pip install 'sam2kit[batch]'" in capsys.readouterr().err


def test_a_malformed_manifest_stops_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sam2kit.cli import main

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(IMAGE_LINE) + "\n" + json.dumps({"id": "b", "image": "b.png"}) + "\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "malformed manifest" in err and "m.jsonl line 2: prompts must be a non-empty list" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_checkpoint_is_told_before_ray_starts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sam2kit.cli import main

    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps(IMAGE_LINE) + "\n")
    assert main(["batch", str(manifest), "--out", str(tmp_path / "out"), "--checkpoint", "nope.pt"]) == 1
    assert "--checkpoint 'nope.pt' not found" in capsys.readouterr().err
