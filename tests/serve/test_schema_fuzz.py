"""Property-based run of the whole API from its OpenAPI schema (Schemathesis): whatever the
generated paths, parameters and bodies, the service answers without a server error. Most generated
session ids are swapped for a real image or video session, so the routes behind the session lookup
are exercised too. Bounded: a few examples per operation."""

from __future__ import annotations

import random
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from serve_media import png_bytes, write_video  # noqa: E402


class _Sessions:
    """A real image and video session, recreated when a generated DELETE closed them."""

    def __init__(self, client: Any, video: bytes) -> None:
        self.client = client
        self.video = video
        self.ids: dict[str, str] = {}

    def get(self, kind: str) -> str:
        sid = self.ids.get(kind)
        if sid is None or self.client.get(f"/v1/{kind}s/{sid}").status_code != 200:
            if kind == "image":
                reply = self.client.post("/v1/images", files={"file": ("a.png", png_bytes(32, 32), "image/png")})
            else:
                reply = self.client.post("/v1/videos", files={"file": ("v.mp4", self.video, "video/mp4")})
                sid = reply.json()["session_id"]
                self.client.put(f"/v1/videos/{sid}/prompts", json={"frame": 0, "obj_id": 1, "points": [[9, 9, 1]]})
            sid = reply.json()["session_id"]
            self.ids[kind] = sid
        return sid


@pytest.fixture(scope="module")
def fuzz_target(loaded_model, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from sam2kit.serve import ServeSettings, create_app

    folder = tmp_path_factory.mktemp("fuzz")
    app = create_app(ServeSettings(work_dir=folder / "work", max_sessions=64), loaded_model)
    video = write_video(folder / "v.mp4", frames=3, height=32, width=32).read_bytes()
    with TestClient(app) as client:
        yield app, _Sessions(client, video)


@pytest.fixture(scope="module")
def api_schema(fuzz_target):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_target[0])


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_errors(case, fuzz_target) -> None:  # type: ignore[no-untyped-def]
    sessions = fuzz_target[1]
    parameters = case.path_parameters or {}
    if "session_id" in parameters and random.Random(str(parameters)).random() < 0.8:
        parameters["session_id"] = sessions.get("video" if case.path.startswith("/v1/videos") else "image")
    if case.path.endswith("/automatic") and isinstance(case.body, dict):  # the grid's cost is quadratic: keep it tiny
        side = case.body.get("points_per_side")
        case.body["points_per_side"] = min(side, 2) if isinstance(side, int) and not isinstance(side, bool) else side
    response = case.call(timeout=120)
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
    if response.status_code >= 400:
        assert "error" in response.json(), response.text
