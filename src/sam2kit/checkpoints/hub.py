"""Checkpoints of the Hugging Face hub: the official repositories, fetched once and cached.

Each of the eight official repositories (``facebook/sam2.1-hiera-tiny`` ...) holds the official
``.pt`` and, beside it, the ``model.safetensors`` that ``transformers`` loads. The official file is
what is fetched; a machine whose hub cache already has the transformers file (from using
``transformers``) is served that one when the official file is not cached and the hub cannot be
reached. Either file loads into the same model.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import HUB_IDS
from .errors import CheckpointDownloadError

__all__ = ["TRANSFORMERS_FILENAME", "download_checkpoint"]

#: The weights file of ``transformers``' SAM 2 models in a hub repository.
TRANSFORMERS_FILENAME = "model.safetensors"


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it only once, at its import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "yes", "true"}


def _cached(model_id: str, filenames: tuple[str, ...], cache_dir: str | Path | None) -> Path | None:
    """The first of ``filenames`` already in the local hub cache, without the network."""
    from huggingface_hub import hf_hub_download

    for filename in filenames:
        try:
            path = hf_hub_download(repo_id=model_id, filename=filename, cache_dir=cache_dir, local_files_only=True)
            return Path(path)
        except Exception:  # not cached (huggingface_hub raises several types for that)
            continue
    return None


def download_checkpoint(
    model_id: str,
    *,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    layout: str = "official",
) -> Path:
    """Path of a checkpoint of ``model_id``, fetched from the Hugging Face hub once.

    With ``local_files_only`` or the environment variable ``HF_HUB_OFFLINE=1`` the network is
    not touched: only the local cache is looked at (the official file, else the transformers one).

    Args:
        layout: ``"official"`` (the ``.pt``) or ``"transformers"`` (``model.safetensors``).
    Raises:
        KeyError: not one of the eight official ids.
        ValueError: an unknown layout.
        CheckpointDownloadError: the hub cannot be reached (or offline mode is on) and the file is
            not cached.
    """
    if model_id not in HUB_IDS:
        raise KeyError(f"unknown hub id {model_id!r}; known: {', '.join(sorted(HUB_IDS))}")
    if layout not in ("official", "transformers"):
        raise ValueError(f"unknown checkpoint layout {layout!r}; use official or transformers")
    official_name = HUB_IDS[model_id][1]
    filename = official_name if layout == "official" else TRANSFORMERS_FILENAME
    either = (filename, TRANSFORMERS_FILENAME if layout == "official" else official_name)
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointDownloadError(
            "huggingface_hub is required for hub ids: pip install huggingface_hub", model_id=model_id, filename=filename
        ) from err
    offline = local_files_only or _hub_offline()
    unreachable = not offline and not _hub_reachable()
    if offline or unreachable:
        found = _cached(model_id, either, cache_dir)
        if found is not None:
            return found
        first_err: Exception | None = None
    else:
        try:
            return Path(hf_hub_download(repo_id=model_id, filename=filename, cache_dir=cache_dir, etag_timeout=10))
        except Exception as err:
            first_err = err
        found = _cached(model_id, either, cache_dir)  # the network may be down while a file is cached
        if found is not None:
            return found
    if offline:
        reason = "offline mode is on (HF_HUB_OFFLINE=1 or local_files_only=True)"
    elif unreachable:
        reason = "the hub cannot be reached (no network?)"
    else:
        reason = f"cannot download it ({type(first_err).__name__})"
    raise CheckpointDownloadError(
        f"{filename} of the Hugging Face hub repository {model_id} is not in the local cache and "
        f"{reason}.\n"
        f"  Either connect to the internet once (the file is cached afterwards), or download it\n"
        f"  elsewhere (https://huggingface.co/{model_id}/resolve/main/{filename}) and pass that file\n"
        f"  as the checkpoint: build_model(checkpoint='/path/to/{filename}')",
        model_id=model_id,
        filename=filename,
    ) from first_err


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe of the hub endpoint, so that a machine without network fails in seconds
    instead of going through huggingface_hub's retries with back-off."""
    import socket
    from urllib.parse import urlparse

    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "huggingface.co", port), timeout=timeout):
            return True
    except OSError:
        return False
