"""Fixtures of the service tests: a tiny seeded random ``sam2kit-mini`` checkpoint (fast, masks
meaningless), the bundled trained ``sam2kit-mini`` (for tests whose masks must mean something), the
app around them, small images and a short video."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_media import png_bytes, write_video  # beside this file


@pytest.fixture(scope="session")
def mini_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from sam2kit.build import build_model
    from sam2kit.config import get_config

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("serve_ckpt") / "mini.pt"
    torch.save({"model": build_model(get_config("sam2kit-mini")).state_dict()}, path)
    return path


@pytest.fixture(scope="session")
def loaded_model(mini_checkpoint: Path):  # type: ignore[no-untyped-def]
    from sam2kit.model_spec import ModelSpec, load_model

    return load_model(ModelSpec(checkpoint=mini_checkpoint, config="sam2kit-mini", device="cpu"))


@pytest.fixture(scope="session")
def bundled_model():  # type: ignore[no-untyped-def]
    """The trained ``sam2kit-mini`` shipped in the package (loaded by name, offline)."""
    from sam2kit.model_spec import ModelSpec, load_model

    return load_model(ModelSpec(checkpoint="sam2kit-mini", device="cpu"))


@pytest.fixture
def make_client(loaded_model, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make_client(**settings)``: a TestClient of a fresh app (lifespan run, sessions closed after)."""
    from fastapi.testclient import TestClient

    from sam2kit.serve import ServeSettings, create_app

    clients = []

    def make(**overrides):  # type: ignore[no-untyped-def]
        settings = ServeSettings(work_dir=tmp_path / f"work{len(clients)}", **overrides)
        client = TestClient(create_app(settings, loaded_model))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def start_server(loaded_model, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``start_server(model=None, **settings) -> base URL``: a real uvicorn on a free loopback port, in a
    thread, serving ``model`` (default: the seeded random one), stopped (and checked stopped) after
    the test."""
    import threading
    import time

    import uvicorn

    from sam2kit.serve import ServeSettings, create_app

    servers = []

    def start(model=None, **overrides):  # type: ignore[no-untyped-def]
        port = _free_port()
        settings = ServeSettings(port=port, work_dir=tmp_path / f"server{len(servers)}", **overrides)
        app = create_app(settings, loaded_model if model is None else model)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture
def make_png():  # type: ignore[no-untyped-def]
    """:func:`png_bytes` as a fixture."""
    return png_bytes


@pytest.fixture
def make_video():  # type: ignore[no-untyped-def]
    """:func:`write_video` as a fixture."""
    return write_video
