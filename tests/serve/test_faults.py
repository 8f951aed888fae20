"""Faults and limits against a real uvicorn on loopback: cut and oversized uploads, bad JSON,
unknown ids, paths outside the media root, clients leaving mid-propagation, authentication,
session limits and idle eviction, concurrent clients that must not see each other's results, and
memory that stays bounded. Every loop is bounded in count and time."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")

from sam2kit.io.masks import coco_rle_to_mask


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _raw(url: str, payload: bytes, *, read: bool = True) -> bytes:
    """Send raw bytes to the server and return what it answers (up to 64 KiB)."""
    parts = urlparse(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(payload)
        if not read:
            return b""
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while (chunk := sock.recv(65536)) and sum(map(len, chunks)) < 65536:
            chunks.append(chunk)
        return b"".join(chunks)


def _multipart(body: bytes, name: str = "scene.png") -> tuple[bytes, str]:
    boundary = "sam2kitboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    return head + body + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_bad_requests_are_json_4xx(start_server, make_png, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    media = tmp_path / "media"
    media.mkdir()
    (media / "notes.txt").write_text("not a video")
    (tmp_path / "secret.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    (media / "escape").symlink_to(tmp_path)
    url = start_server(media_root=media, max_upload_mb=0.05)
    client = httpx.Client(base_url=url, timeout=30)
    png = make_png(48, 64)
    cases = [
        (client.post("/v1/images", files={"file": ("a.png", b"hello", "image/png")}), 415, "unsupported_type"),
        (client.post("/v1/images", files={"file": ("a.png", png[: len(png) // 2], "image/png")}), 400, "bad_image"),
        (client.post("/v1/images", files={"file": ("a.png", b"", "image/png")}), 400, "empty_upload"),
        (client.post("/v1/images", files={"file": ("a.png", os.urandom(80_000), "image/png")}), 413, "too_large"),
        (client.post("/v1/images"), 422, "invalid_request"),
        (client.post("/v1/videos", files={"file": ("v.mp4", png, "video/mp4")}), 415, "unsupported_type"),
        (client.post("/v1/videos", files={"file": ("v.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video/mp4")}),
         400, "bad_video"),
        (client.post("/v1/videos/open", json={"path": "../secret.mp4"}), 403, "outside_media_root"),
        (client.post("/v1/videos/open", json={"path": "/etc/passwd"}), 403, "outside_media_root"),
        (client.post("/v1/videos/open", json={"path": "escape/secret.mp4"}), 403, "outside_media_root"),
        (client.post("/v1/videos/open", json={"path": "missing.mp4"}), 404, "not_found"),
        (client.post("/v1/videos/open", json={"path": "notes.txt"}), 415, "unsupported_type"),
        (client.get("/v1/images/nope"), 404, "unknown_session"),
        (client.put("/v1/videos/nope/prompts", json={"frame": 0, "obj_id": 1}), 404, "unknown_session"),
        (client.get("/v1/nothing"), 404, "not_found"),
        (client.delete("/v1/info"), 405, "method_not_allowed"),
    ]
    sid = client.post("/v1/images", files={"file": ("a.png", png, "image/png")}).json()["session_id"]
    headers = {"content-type": "application/json"}
    cases += [
        (client.put(f"/v1/images/{sid}/objects/1", content=b"{bad json", headers=headers), 422, "invalid_request"),
        (client.put(f"/v1/images/{sid}/objects/1", content=b'{"points": [[1, NaN, 1]]}', headers=headers),
         422, "invalid_request"),
        (client.put(f"/v1/images/{sid}/objects/1", json={"points": [[1, 2, 5]]}), 422, "invalid_request"),
        (client.put(f"/v1/images/{sid}/objects/1", json={"points": [[1, 2, 1]], "extra": 1}), 422, "invalid_request"),
        (client.put(f"/v1/images/{sid}/objects/-1", json={"points": [[1, 2, 1]]}), 422, "invalid_request"),
        (client.put(f"/v1/images/{sid}/objects/1", json={"box": [40, 40, 2, 2]}), 400, "bad_prompt"),
        (client.patch(f"/v1/images/{sid}/objects/9", json={"name": "x"}), 404, "unknown_object"),
    ]
    for reply, status, code in cases:
        assert reply.status_code == status, (reply.request.url, reply.text)
        assert reply.json()["error"]["code"] == code, reply.text
        assert "Traceback" not in reply.text
    # a body declared far over the limit is refused before it is read; one cut in half is dropped
    body, content_type = _multipart(png)
    answer = _raw(url, (f"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
                        f"Content-Length: {10**9}\r\n\r\n").encode())
    assert answer.startswith(b"HTTP/1.1 413") and b"too_large" in answer
    cut = (f"POST /v1/images HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
           f"Content-Length: {len(body)}\r\n\r\n").encode() + body[: len(body) // 2]
    for _ in range(3):
        _raw(url, cut, read=False)
    part_head = body[: body.index(b"\r\n\r\n") + 4]

    def endless() -> Iterator[bytes]:  # no Content-Length: chunked, stopped by the server
        yield part_head
        for _ in range(20):
            yield b"\x00" * 20_000

    try:
        reply = client.post("/v1/images", content=endless(), headers={"content-type": content_type})
        assert reply.status_code == 413 and reply.json()["error"]["code"] == "too_large"
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server answered 413 and closed while the body was still being sent
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/info").json()["sessions"] == {"images": 1, "videos": 0}


def test_client_leaving_mid_propagation(start_server, make_video, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    media = tmp_path / "media"
    media.mkdir()
    make_video(media / "clip.mp4", frames=20)
    url = start_server(media_root=media)
    client = httpx.Client(base_url=url, timeout=30)
    sid = client.post("/v1/videos/open", json={"path": "clip.mp4"}).json()["session_id"]
    client.put(f"/v1/videos/{sid}/prompts", json={"frame": 0, "obj_id": 1, "points": [[18, 24, 1]]})
    assert client.post(f"/v1/videos/{sid}/propagate", json={}).status_code == 202
    parts = urlparse(url)
    for _ in range(2):  # read one event, then vanish
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", f"/v1/videos/{sid}/propagate/events")
        response = connection.getresponse()
        assert response.status == 200 and response.readline().startswith(b"event: progress")
        connection.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
        connection.close()
    assert client.get("/healthz").status_code == 200
    deadline = time.monotonic() + 60
    while (status := client.get(f"/v1/videos/{sid}/propagate").json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status["status"] == "done" and status["done"] == 20
    assert client.get(f"/v1/videos/{sid}").json()["masked_frames"] == list(range(20))


def test_token_and_bind_rules(start_server, make_client) -> None:  # type: ignore[no-untyped-def]
    from sam2kit.errors import ArgumentError
    from sam2kit.serve import ServeSettings, check_bind

    url = start_server(token="s3cret")
    client = httpx.Client(base_url=url, timeout=30)
    for path in ("/v1/info", "/healthz", "/openapi.json", "/v1/images/x"):
        reply = client.get(path)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized", path
    assert client.get("/v1/info", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/info", headers={"Authorization": "Bearer s3cret"}).json()["auth"] is True
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
    with pytest.raises(ArgumentError, match="refusing to listen on 0.0.0.0 without a token"):
        check_bind(ServeSettings(host="0.0.0.0"))
    check_bind(ServeSettings(host="0.0.0.0", token="t"))
    check_bind(ServeSettings(host="0.0.0.0", insecure=True))
    check_bind(ServeSettings(host="::1"))
    with pytest.raises(ArgumentError, match="max_sessions"):
        ServeSettings(max_sessions=0)


def test_session_limit_and_idle_eviction(make_client, make_png) -> None:  # type: ignore[no-untyped-def]
    upload = {"file": ("a.png", make_png(32, 32), "image/png")}
    client = make_client(max_sessions=2)
    ids = [client.post("/v1/images", files=upload).json()["session_id"] for _ in range(3)]
    assert client.get(f"/v1/images/{ids[0]}").status_code == 404  # least recently used, evicted
    assert client.get(f"/v1/images/{ids[1]}").status_code == 200
    assert client.get(f"/v1/images/{ids[2]}").status_code == 200
    idle = make_client(idle_timeout_s=1.0)
    old = idle.post("/v1/images", files=upload).json()["session_id"]
    time.sleep(1.5)
    new = idle.post("/v1/images", files=upload).json()["session_id"]  # sweeps idle sessions first
    assert idle.get(f"/v1/images/{old}").json()["error"]["code"] == "unknown_session"
    assert idle.get(f"/v1/images/{new}").status_code == 200


def test_concurrent_clients_keep_their_own_results(start_server, make_png) -> None:  # type: ignore[no-untyped-def]
    """4 clients x 6 clicks on their own images at once; each answer equals the one given alone."""
    url = start_server()
    pngs = [make_png(48, 64, seed=i) for i in range(4)]
    clicks = [[[8 + 9 * k, 6 + 6 * k, 1]] for k in range(6)]
    solo = httpx.Client(base_url=url, timeout=60)
    expected = []
    for png in pngs:
        sid = solo.post("/v1/images", files={"file": ("a.png", png, "image/png")}).json()["session_id"]
        expected.append([solo.put(f"/v1/images/{sid}/objects/1", json={"points": c}).json()["mask"] for c in clicks])
    rss_before = _rss_mib()
    results: dict[int, list] = {}
    failures: list[str] = []

    def worker(index: int) -> None:
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                upload = {"file": ("a.png", pngs[index], "image/png")}
                sid = client.post("/v1/images", files=upload).json()["session_id"]
                results[index] = [client.put(f"/v1/images/{sid}/objects/1", json={"points": c}).json()["mask"]
                                  for c in clicks]
                client.delete(f"/v1/images/{sid}")
        except Exception as error:  # reported below
            failures.append(f"{index}: {error!r}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures, failures
    for index in range(4):
        for got, want in zip(results[index], expected[index], strict=True):
            np.testing.assert_array_equal(coco_rle_to_mask(got), coco_rle_to_mask(want))
    assert _rss_mib() - rss_before < 300, "memory grew by more than 300 MiB over 4 sessions"
    info = json.loads(solo.get("/v1/info").text)
    assert info["sessions"]["images"] == 4  # the solo sessions; the workers' were deleted


def test_load_eight_clients(start_server, make_png) -> None:  # type: ignore[no-untyped-def]
    """8 concurrent clients click on their own images for SAM2KIT_LOAD_SECONDS (default 60) seconds:
    no errors, every answer equal to the one its session gave first, RSS growth under 300 MiB."""
    seconds = float(os.environ.get("SAM2KIT_LOAD_SECONDS", "60"))
    url = start_server()
    pngs = [make_png(96, 128, seed=i) for i in range(8)]
    rss_before = _rss_mib()
    counts = [0] * 8
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    def client_loop(index: int) -> None:
        rng = np.random.default_rng(index)
        clicks = [[[int(rng.integers(0, 128)), int(rng.integers(0, 96)), 1]] for _ in range(4)]
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                upload = {"file": ("a.png", pngs[index], "image/png")}
                sid = client.post("/v1/images", files=upload).json()["session_id"]
                first = [client.put(f"/v1/images/{sid}/objects/1", json={"points": c}).json()["mask"] for c in clicks]
                while time.monotonic() < stop_at:
                    k = counts[index] % len(clicks)
                    got = client.put(f"/v1/images/{sid}/objects/1", json={"points": clicks[k]}).json()["mask"]
                    if got != first[k]:
                        failures.append(f"client {index}: click {k} changed its answer")
                    counts[index] += 1
        except Exception as error:  # reported below
            failures.append(f"client {index}: {error!r}")

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 300)
    assert not failures, failures[:5]
    assert all(counts), counts
    assert _rss_mib() - rss_before < 300
