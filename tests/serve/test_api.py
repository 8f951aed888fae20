"""The HTTP API on a tiny seeded model: image and video sessions, masks equal to the predictors'
own, propagation with server-sent progress, every export read back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
from PIL import Image
from serve_media import sse_events

from sam2kit.io.masks import coco_rle_to_mask, mask_to_box_xywh


def _image_session(client, png: bytes) -> str:  # type: ignore[no-untyped-def]
    reply = client.post("/v1/images", files={"file": ("scene.png", png, "image/png")})
    assert reply.status_code == 201, reply.text
    return str(reply.json()["session_id"])


def test_info_health_openapi_and_ui(make_client) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    info = client.get("/v1/info").json()
    assert info["model"]["config"] == "sam2kit-mini" and info["device"] == "cpu"
    assert info["limits"]["max_sessions"] == 8 and info["limits"]["media_root"] is False
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/images/{session_id}/objects/{obj_id}" in paths and "/v1/videos/{session_id}/propagate/events" in paths
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and '<script type="module" src="/static/app.js">' in page.text
    for asset in ("app.js", "api.js", "rle.js", "view.js", "colors.js", "objects.js", "recording.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200, asset


def test_image_click_matches_the_predictor(make_client, make_png, loaded_model) -> None:  # type: ignore[no-untyped-def]
    from sam2kit.predict.image import ImagePredictor

    png = make_png(48, 64)
    client = make_client()
    sid = _image_session(client, png)
    reply = client.put(f"/v1/images/{sid}/objects/3", json={"points": [[32, 24, 1], [5, 5, 0]], "name": "cup"})
    assert reply.status_code == 200, reply.text
    obj = reply.json()
    mask = coco_rle_to_mask(obj["mask"])
    predictor = ImagePredictor(loaded_model.model)
    predictor.set_image(np.asarray(Image.open(io.BytesIO(png)).convert("RGB")))
    masks, scores, _ = predictor.predict(point_coords=[[32, 24], [5, 5]], point_labels=[1, 0], multimask_output=False)
    np.testing.assert_array_equal(mask, masks[0])
    assert obj["score"] == pytest.approx(float(scores[0]), abs=1e-6)
    assert obj["bbox"] == mask_to_box_xywh(mask) and obj["area"] == int(mask.sum()) and obj["name"] == "cup"
    png_mask = np.asarray(Image.open(io.BytesIO(client.get(f"/v1/images/{sid}/objects/3/mask.png").content)))
    np.testing.assert_array_equal(png_mask > 0, mask)
    # a box for a second object; rename; undo by sending the prompt without its last click
    assert client.put(f"/v1/images/{sid}/objects/4", json={"box": [4, 4, 40, 30]}).status_code == 200
    assert client.patch(f"/v1/images/{sid}/objects/4", json={"name": "plate"}).json()["name"] == "plate"
    undone = client.put(f"/v1/images/{sid}/objects/3", json={"points": [[32, 24, 1]]}).json()
    assert undone["points"] == [[32, 24, 1]]
    cleared = client.put(f"/v1/images/{sid}/objects/3", json={"points": []}).json()
    assert cleared["mask"] is None and cleared["area"] == 0
    session = client.get(f"/v1/images/{sid}").json()
    assert [o["obj_id"] for o in session["objects"]] == [3, 4]
    assert client.delete(f"/v1/images/{sid}/objects/3").status_code == 204
    assert client.get(f"/v1/images/{sid}/objects/3/mask.png").status_code == 404
    assert client.delete(f"/v1/images/{sid}").status_code == 204
    assert client.get(f"/v1/images/{sid}").status_code == 404


def test_image_exports(make_client, make_png, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    client = make_client()
    sid = _image_session(client, make_png(48, 64))
    masks = {}
    for obj_id, prompt in ((1, {"points": [[32, 24, 1]]}), (2, {"box": [2, 2, 20, 20]})):
        masks[obj_id] = coco_rle_to_mask(client.put(f"/v1/images/{sid}/objects/{obj_id}", json=prompt).json()["mask"])
    reply = client.get(f"/v1/images/{sid}/export/coco")
    assert "attachment" in reply.headers["content-disposition"]
    (tmp_path / "coco.json").write_bytes(reply.content)
    coco = COCO(str(tmp_path / "coco.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert [a["object_id"] for a in anns] == [1, 2]
    np.testing.assert_array_equal(coco.annToMask(anns[0]).astype(bool), masks[1])
    boxes = client.get(f"/v1/images/{sid}/export/boxes").json()["frames"][0]["boxes"]
    assert boxes[1]["bbox_xywh"] == mask_to_box_xywh(masks[2])
    with zipfile.ZipFile(io.BytesIO(client.get(f"/v1/images/{sid}/export/davis").content)) as archive:
        labels = np.asarray(Image.open(io.BytesIO(archive.read("scene.png"))))
        assert json.loads(archive.read("objects.json"))[1] == {"label": 2, "object_id": 2, "name": "object 2"}
    expected = np.zeros(labels.shape, dtype=np.uint8)
    expected[masks[1]] = 1
    expected[masks[2]] = 2
    np.testing.assert_array_equal(labels, expected)
    with zipfile.ZipFile(io.BytesIO(client.get(f"/v1/images/{sid}/export/yolo").content)) as archive:
        lines = archive.read("labels/scene.txt").decode().splitlines()
        assert archive.read("classes.txt").decode() == "object 1\nobject 2\n"
    assert lines and {line.split()[0] for line in lines} <= {"0", "1"}
    for line in lines:
        coords = [float(v) for v in line.split()[1:]]
        assert len(coords) >= 6 and len(coords) % 2 == 0 and all(0 <= v <= 1 for v in coords)
    overlay = Image.open(io.BytesIO(client.get(f"/v1/images/{sid}/export/overlay").content))
    assert overlay.size == (64, 48)
    assert client.get(f"/v1/images/{sid}/export/pdf").status_code == 422


def test_automatic_masks_become_objects(make_client, make_png) -> None:  # type: ignore[no-untyped-def]
    client = make_client()
    sid = _image_session(client, make_png(48, 64))
    body = {"points_per_side": 2, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "max_masks": 3}
    reply = client.post(f"/v1/images/{sid}/automatic", json=body)
    assert reply.status_code == 200, reply.text
    found = reply.json()["masks"]
    assert 1 <= len(found) <= 3
    scores = [m["score"] for m in found]
    assert scores == sorted(scores, reverse=True)
    objects = client.get(f"/v1/images/{sid}").json()["objects"]
    assert [o["obj_id"] for o in objects] == [m["obj_id"] for m in found]



def test_video_prompts_propagation_and_exports(make_client, make_video, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    from sam2kit.io.frames import open_frames

    media = tmp_path / "media"
    media.mkdir()
    make_video(media / "clip.mp4", frames=6)
    client = make_client(media_root=media)
    with open(media / "clip.mp4", "rb") as handle:
        uploaded = client.post("/v1/videos", files={"file": ("clip.mp4", handle, "video/mp4")})
    assert uploaded.status_code == 201 and uploaded.json()["num_frames"] == 6
    reply = client.post("/v1/videos/open", json={"path": "clip.mp4"})
    assert reply.status_code == 201, reply.text
    sid = reply.json()["session_id"]
    assert reply.json()["fps"] == pytest.approx(5.0)
    frame0 = client.put(f"/v1/videos/{sid}/prompts", json={"frame": 0, "obj_id": 1, "points": [[18, 24, 1]]}).json()
    assert [o["obj_id"] for o in frame0["objects"]] == [1]
    frame5 = client.put(f"/v1/videos/{sid}/prompts", json={"frame": 5, "obj_id": 2, "box": [25, 10, 55, 40]}).json()
    assert [o["obj_id"] for o in frame5["objects"]] == [1, 2]
    assert client.post(f"/v1/videos/{sid}/propagate", json={"direction": "both", "start_frame": 2}).status_code == 202
    events = sse_events(client, f"/v1/videos/{sid}/propagate/events")
    assert events[-1][0] == "end" and events[-1][1]["status"] == "done"
    done = [data["done"] for _, data in events]
    assert done == sorted(done) and done[-1] == events[-1][1]["total"] == 6
    session = client.get(f"/v1/videos/{sid}").json()
    assert session["propagation"]["status"] == "done" and len(session["prompts"]) == 2
    masks5 = client.get(f"/v1/videos/{sid}/frames/5/masks").json()["objects"]
    assert [o["obj_id"] for o in masks5] == [1, 2]
    labels = np.asarray(Image.open(io.BytesIO(client.get(f"/v1/videos/{sid}/frames/5/masks?format=png").content)))
    np.testing.assert_array_equal(labels == 2, coco_rle_to_mask(masks5[1]["mask"]) & (labels == 2))
    jpeg = Image.open(io.BytesIO(client.get(f"/v1/videos/{sid}/frames/4/image").content))
    assert jpeg.format == "JPEG" and jpeg.size == (64, 48)
    assert client.get(f"/v1/videos/{sid}/frames/6/image").status_code == 404
    (tmp_path / "coco.json").write_bytes(client.get(f"/v1/videos/{sid}/export/coco").content)
    coco = COCO(str(tmp_path / "coco.json"))
    assert len(coco.getImgIds()) == 6 and {a["object_id"] for a in coco.loadAnns(coco.getAnnIds())} <= {1, 2}
    mp4 = tmp_path / "overlay.mp4"
    mp4.write_bytes(client.get(f"/v1/videos/{sid}/export/overlay").content)
    assert len(open_frames(mp4)) == 6
    with zipfile.ZipFile(io.BytesIO(client.get(f"/v1/videos/{sid}/export/davis").content)) as archive:
        assert sorted(n for n in archive.namelist() if n.endswith(".png")) == [f"{t:05d}.png" for t in range(6)]
    # removing an object removes it from every frame; clearing the last prompt of object 1 too
    assert client.delete(f"/v1/videos/{sid}/objects/2").status_code == 204
    assert all(o["obj_id"] == 1 for o in client.get(f"/v1/videos/{sid}/frames/5/masks").json()["objects"])
    cleared = client.put(f"/v1/videos/{sid}/prompts", json={"frame": 0, "obj_id": 1, "points": []}).json()
    assert cleared["objects"] == []
    assert client.get(f"/v1/videos/{sid}").json()["prompts"] == []
    assert client.post(f"/v1/videos/{sid}/propagate", json={}).json()["error"]["code"] == "no_prompts"


def test_cancel_keeps_tracked_frames(make_client, make_video, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_video(tmp_path / "long.mp4", frames=30)
    client = make_client()
    with open(path, "rb") as handle:
        sid = client.post("/v1/videos", files={"file": ("long.mp4", handle, "video/mp4")}).json()["session_id"]
    client.put(f"/v1/videos/{sid}/prompts", json={"frame": 0, "obj_id": 1, "points": [[18, 24, 1]]})
    client.post(f"/v1/videos/{sid}/propagate", json={"direction": "forward"})
    busy = client.put(f"/v1/videos/{sid}/prompts", json={"frame": 1, "obj_id": 1, "points": [[18, 24, 1]]})
    final = client.post(f"/v1/videos/{sid}/propagate/cancel").json()
    assert final["status"] in ("cancelled", "done")
    if final["status"] == "cancelled":
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
    session = client.get(f"/v1/videos/{sid}").json()
    assert len(session["masked_frames"]) <= final["done"] <= 30
    assert all(t < final["done"] for t in session["masked_frames"])
