"""Recording mode of the HTTP API on a synthetic Pupil Cloud recording (``tests/gaze/gaze_helpers``)
and the tiny seeded model: open, click an AOI, map the gaze; the tables equal what
:func:`sam2kit.gaze.analyse_gaze` gives on the same inputs (clicked AOIs tracked, or a mask folder);
per-frame gaze, timeline, exports, cancel and the error replies."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
pytest.importorskip("pandas", reason="the gaze job needs pandas")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gaze"))  # the gaze tests' recording writers
from gaze_helpers import Truth, make_truth, write_masks, write_pupil_cloud  # noqa: E402
from serve_media import sse_events  # noqa: E402

from sam2kit.io.masks import coco_rle_to_mask  # noqa: E402

NAMES = {1: "disc", 2: "square", 3: "third"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Truth]:
    """A media root with ``rec/`` (Pupil Cloud), ``masks/`` (truth AOI masks), ``names.json``,
    ``not_a_recording/`` and ``broken/`` (a Pupil Cloud export with a bad gaze.csv)."""
    root = tmp_path_factory.mktemp("recording_media")
    truth = make_truth(0)
    write_pupil_cloud(truth, root / "rec")
    write_masks(truth, root / "masks", NAMES)
    (root / "not_a_recording").mkdir()
    (root / "not_a_recording" / "notes.txt").write_text("hello")
    broken = write_pupil_cloud(truth, root / "broken")
    gaze = (broken / "gaze.csv").read_text().splitlines()
    cells = gaze[5].split(",")
    cells[2] = "soon"  # the timestamp of row 5
    (broken / "gaze.csv").write_text("\n".join(gaze[:5] + [",".join(cells)] + gaze[6:]) + "\n")
    return root, truth



def _open(client, path: str = "rec") -> dict:  # type: ignore[no-untyped-def]
    reply = client.post("/v1/recordings/open", json={"path": path})
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def _centre(truth: Truth, frame: int, aoi: int) -> tuple[float, float]:
    rows, cols = np.nonzero(truth.labels[frame] == aoi)
    return float(round(cols.mean())), float(round(rows.mean()))


def _export(client, sid: str, table: str) -> bytes:  # type: ignore[no-untyped-def]
    reply = client.get(f"/v1/recordings/{sid}/export/{table}")
    assert reply.status_code == 200, reply.text
    return bytes(reply.content)


def test_clicked_aoi_mapping_equals_the_python_api(make_client, media, loaded_model, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sam2kit.gaze import PromptAOIs, analyse_gaze, group_aoi_prompts
    from sam2kit.io.eyetracking import read_recording

    root, truth = media
    recording = read_recording(root / "rec")
    client = make_client(media_root=root)
    session = _open(client)
    sid = session["session_id"]
    info = session["recording"]
    assert info["format"] == "pupil_cloud" and info["path"] == "rec" and info["num_frames"] == 75
    assert info["num_samples"] == len(recording.samples) and info["valid_samples"] == int(recording.samples.valid.sum())
    assert info["num_fixations"] == len(truth.fixations) and info["focal_px"] == pytest.approx(100.0)
    assert session["num_frames"] == 75 and (session["width"], session["height"]) == (128, 128)
    assert client.get(f"/v1/videos/{sid}").json()["recording"]["format"] == "pupil_cloud"  # a video session too

    before = client.get(f"/v1/recordings/{sid}/gaze").json()
    assert before["tolerance_px"] is None and len(before["frames"]) == 75
    assert all(p["aois"] is None for p in before["frames"])
    for point in before["frames"]:  # the valid sample nearest the frame time, else the nearest one
        on_frame = np.flatnonzero(recording.samples.frame == point["frame"])
        valid = on_frame[recording.samples.valid[on_frame]]
        pool = valid if len(valid) else on_frame
        nearest = pool[np.argmin(np.abs(recording.samples.time_s[pool] - recording.frame_times_s[point["frame"]]))]
        assert point["time_s"] == pytest.approx(recording.samples.time_s[nearest], abs=1e-9)
        assert point["valid"] == bool(len(valid)) and point["samples"] == len(on_frame)
    assert client.get(f"/v1/recordings/{sid}/metrics").json()["error"]["code"] == "no_gaze_mapping"

    x, y = _centre(truth, 30, 1)
    reply = client.put(
        f"/v1/videos/{sid}/prompts", json={"frame": 30, "obj_id": 1, "points": [[x, y, 1]], "name": "disc"}
    )
    assert reply.status_code == 200, reply.text
    started = client.post(f"/v1/recordings/{sid}/mapping", json={"tolerance": "3px"})
    assert started.status_code == 202, started.text
    assert started.json()["kind"] == "gaze_mapping" and started.json()["total"] == 75 + 75
    events = sse_events(client, f"/v1/recordings/{sid}/mapping/events")
    assert events[-1][0] == "end" and events[-1][1]["status"] == "done", events[-1]
    assert events[-1][1]["done"] == events[-1][1]["total"] == 150 and events[-1][1]["tolerance_px"] == 3.0
    assert client.get(f"/v1/recordings/{sid}/mapping").json()["status"] == "done"
    assert len(client.get(f"/v1/videos/{sid}").json()["masked_frames"]) > 0  # the tracked masks are the session's

    prompts = group_aoi_prompts([(30, 1, (x, y, 1))], [])
    expected = analyse_gaze(recording, PromptAOIs(prompts, model=loaded_model, names={1: "disc"}), tolerance="3px")
    table = client.get(f"/v1/recordings/{sid}/metrics").json()
    assert table["columns"] == list(expected.aoi_metrics.columns) and table["tolerance_px"] == 3.0
    got = expected.aoi_metrics.__class__(table["rows"], columns=table["columns"])
    assert got["aoi"].tolist() == [1] and got["name"].tolist() == ["disc"]
    assert got["visible_s"].iloc[0] > 0
    pandas = pytest.importorskip("pandas")
    pandas.testing.assert_frame_equal(got, expected.aoi_metrics, check_dtype=False)
    files = expected.write(tmp_path / "expected")
    for table_name, path in files.items():
        assert _export(client, sid, table_name) == path.read_bytes(), table_name
    with zipfile.ZipFile(io.BytesIO(_export(client, sid, "zip"))) as archive:
        assert sorted(archive.namelist()) == ["aoi_metrics.csv", "fixations.csv", "gaze_samples.csv"]
        assert archive.read("aoi_metrics.csv") == files["aoi_metrics"].read_bytes()
    assert (
        'filename="rec_gaze_samples.csv"'
        in client.get(f"/v1/recordings/{sid}/export/samples").headers["content-disposition"]
    )

    after = client.get(f"/v1/recordings/{sid}/gaze").json()
    assert after["tolerance_px"] == 3.0
    hits = {round(t, 9): text for t, text in zip(expected.samples["time_s"], expected.samples["aois"], strict=True)}
    for point in after["frames"]:
        text = hits[round(point["time_s"], 9)]
        assert point["aois"] == ([int(v) for v in text.split(";")] if text else [])
    timeline = client.get(f"/v1/recordings/{sid}/timeline").json()
    samples = expected.samples
    looked = sorted({int(f) for f, text in zip(samples["frame"], samples["aois"], strict=True) if text == "1"})
    (aoi,) = timeline["aois"]
    assert aoi["aoi"] == 1 and aoi["name"] == "disc"
    assert [f for first, last in aoi["looked"] for f in range(first, last + 1)] == looked
    visible = sum(last - first + 1 for first, last in aoi["visible"])
    assert visible == len(client.get(f"/v1/videos/{sid}").json()["masked_frames"])


def test_mask_folder_mapping_equals_the_python_api(make_client, media, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from sam2kit.gaze import MaskFolderAOIs, analyse_gaze, load_names
    from sam2kit.io.eyetracking import read_recording

    root, truth = media
    client = make_client(media_root=root)
    sid = _open(client)["session_id"]
    body = {"aoi_masks": "masks", "aoi_names": "names.json", "tolerance": "0.5deg"}
    assert client.post(f"/v1/recordings/{sid}/mapping", json=body).status_code == 202
    end = sse_events(client, f"/v1/recordings/{sid}/mapping/events")[-1][1]
    assert end["status"] == "done" and end["aoi_source"] == "aoi_masks" and end["total"] == 75
    aois = MaskFolderAOIs(root / "masks", load_names(root / "names.json"))
    expected = analyse_gaze(read_recording(root / "rec"), aois, tolerance="0.5deg")
    files = expected.write(tmp_path / "expected")
    for table_name, path in files.items():
        assert _export(client, sid, table_name) == path.read_bytes(), table_name
    rows = client.get(f"/v1/recordings/{sid}/metrics").json()["rows"]
    aoi_ids = [int(v) for v in np.unique(truth.labels) if v]
    assert [(r["aoi"], r["name"]) for r in rows] == [(k, NAMES.get(k, "")) for k in aoi_ids]
    # the masks became the session's objects, shown on every frame
    session = client.get(f"/v1/videos/{sid}").json()
    assert sorted(o["obj_id"] for o in session["objects"]) == aoi_ids
    assert session["masked_frames"] == [t for t in range(75) if truth.labels[t].any()]
    for item in client.get(f"/v1/videos/{sid}/frames/40/masks").json()["objects"]:
        np.testing.assert_array_equal(coco_rle_to_mask(item["mask"]), truth.labels[40] == item["obj_id"])
    timeline = client.get(f"/v1/recordings/{sid}/timeline").json()
    for aoi in timeline["aois"]:
        frames = [f for first, last in aoi["visible"] for f in range(first, last + 1)]
        assert frames == [t for t in range(75) if (truth.labels[t] == aoi["aoi"]).any()]
    valid = [f for first, last in timeline["valid"] for f in range(first, last + 1)]
    assert valid == sorted(set(truth.nearest_frame()[truth.valid()].tolist()))


def test_cancel_and_busy(make_client, media) -> None:  # type: ignore[no-untyped-def]
    root, truth = media
    client = make_client(media_root=root)
    sid = _open(client)["session_id"]
    x, y = _centre(truth, 0, 2)
    prompt = {"frame": 0, "obj_id": 2, "points": [[x, y, 1]]}
    assert client.put(f"/v1/videos/{sid}/prompts", json=prompt).status_code == 200
    worker = client.app.state.context.worker
    with worker.inference():  # the job waits for the model on its first frame
        assert client.post(f"/v1/recordings/{sid}/mapping", json={}).status_code == 202
        busy = client.post(f"/v1/recordings/{sid}/mapping", json={})
        assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
        assert client.put(f"/v1/videos/{sid}/prompts", json={**prompt, "frame": 1}).status_code == 409
        job = client.app.state.context.store.get(sid).job
        job.cancel()
    job.join(timeout=60)
    status = client.post(f"/v1/recordings/{sid}/mapping/cancel").json()
    assert status["status"] == "cancelled" and status["done"] <= 1
    assert client.get(f"/v1/recordings/{sid}/metrics").status_code == 404  # no finished mapping


def test_errors(make_client, media, make_video) -> None:  # type: ignore[no-untyped-def]
    root, _ = media

    def error(reply, status: int, code: str) -> str:  # type: ignore[no-untyped-def]
        assert reply.status_code == status, reply.text
        body = reply.json()["error"]
        assert body["code"] == code, body
        return str(body["message"])

    no_root = make_client()
    error(no_root.post("/v1/recordings/open", json={"path": "rec"}), 403, "no_media_root")
    client = make_client(media_root=root)
    error(client.post("/v1/recordings/open", json={"path": "../rec"}), 403, "outside_media_root")
    error(client.post("/v1/recordings/open", json={"path": "missing"}), 404, "not_found")
    message = error(
        client.post("/v1/recordings/open", json={"path": "not_a_recording"}), 415, "unknown_recording_format"
    )
    assert "not a recording of a known format" in message and "pupil_cloud" in message
    assert str(root) not in message  # no server-side location in replies
    error(client.post("/v1/recordings/open", json={"path": "names.json"}), 415, "unknown_recording_format")
    message = error(client.post("/v1/recordings/open", json={"path": "broken"}), 400, "bad_recording")
    assert "gaze.csv" in message and "'soon'" in message and str(root) not in message
    error(client.post("/v1/recordings/open", json={}), 422, "invalid_request")

    sid = _open(client)["session_id"]
    error(client.post(f"/v1/recordings/{sid}/mapping", json={}), 400, "no_aois")
    error(
        client.post(f"/v1/recordings/{sid}/mapping", json={"aoi_masks": "masks", "tolerance": "5furlongs"}),
        400,
        "bad_tolerance",
    )
    error(client.post(f"/v1/recordings/{sid}/mapping", json={"aoi_masks": "rec"}), 400, "bad_aoi_masks")
    error(client.post(f"/v1/recordings/{sid}/mapping", json={"aoi_masks": "../masks"}), 403, "outside_media_root")
    error(client.get(f"/v1/recordings/{sid}/mapping"), 404, "no_gaze_mapping")
    error(client.get(f"/v1/recordings/{sid}/timeline"), 404, "no_gaze_mapping")
    error(client.get(f"/v1/recordings/{sid}/export/zip"), 404, "no_gaze_mapping")
    error(client.get(f"/v1/recordings/{sid}/export/pdf"), 422, "invalid_request")
    prompt = {"frame": 0, "obj_id": 1, "points": [[9, 9, 1]]}
    assert client.put(f"/v1/videos/{sid}/prompts", json=prompt).status_code == 200
    error(client.post(f"/v1/recordings/{sid}/mapping", json={"aoi_masks": "masks"}), 400, "aoi_conflict")

    make_video(root / "clip.mp4", frames=3)
    video = client.post("/v1/videos/open", json={"path": "clip.mp4"}).json()["session_id"]
    error(client.get(f"/v1/recordings/{video}"), 404, "unknown_session")
    error(client.get("/v1/recordings/nope/gaze"), 404, "unknown_session")
    assert client.delete(f"/v1/videos/{sid}").status_code == 204
    error(client.get(f"/v1/recordings/{sid}"), 404, "unknown_session")
