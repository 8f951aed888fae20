"""Checkpoint files: safe loading, strict key checks, saving, and hub download."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .config import HUB_IDS


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or is not a SAM 2 checkpoint."""


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's keys or shapes do not match the model built from the config.

    Attributes:
        missing, unexpected: key names; mismatched: ``(key, checkpoint shape, model shape)``.
    """

    def __init__(
        self,
        path: str,
        config_name: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched

        def listing(items: list[str]) -> str:
            shown = ", ".join(items[:8])
            return shown + (f", ... ({len(items)} in all)" if len(items) > 8 else "")

        lines = [f"checkpoint {path} does not match the model config {config_name!r}:"]
        if missing:
            lines.append(f"  missing keys: {listing(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys: {listing(unexpected)}")
        if mismatched:
            shapes = [f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in mismatched]
            lines.append(f"  mis-shaped keys: {listing(shapes)}")
        lines.append("  Is it a checkpoint of another size or version? Pass the matching config name.")
        super().__init__("\n".join(lines))


class CheckpointDownloadError(CheckpointError):
    """A hub checkpoint could not be fetched (offline, unknown id, ...).

    Attributes:
        model_id: the hub id; filename: the checkpoint file in that repository (what to download
            elsewhere and pass as a local file instead).
    """

    def __init__(self, message: str, *, model_id: str = "", filename: str = "") -> None:
        super().__init__(message)
        self.model_id, self.filename = model_id, filename


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> the best available device (cuda, then mps, then cpu); a name -> that device,
    checked to be present.

    Raises:
        ValueError: not a torch device name, or a CUDA / MPS device this machine does not have.
    """
    if device is not None:
        try:
            resolved = torch.device(device)
        except RuntimeError as err:
            raise ValueError(f"device {device!r} is not a torch device: {str(err).splitlines()[0]}") from None
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device}: no CUDA GPU is available to this torch ({torch.__version__})")
        mps = getattr(torch.backends, "mps", None)
        if resolved.type == "mps" and not (mps is not None and mps.is_available()):
            raise ValueError(f"device {device}: Apple MPS is not available on this machine")
        return resolved
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read the state dict of an official ``.pt`` (``{"model": sd}``; a bare state dict is accepted
    too) or a ``.safetensors`` file, safely (no pickle code execution).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: unreadable, corrupt, or not a state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise CheckpointError(f"cannot read safetensors checkpoint {path}: {err}") from err
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt / non-torch files
        raise CheckpointError(
            f"cannot read checkpoint {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            " (expected an official SAM 2 .pt file or a .safetensors file)"
        ) from err
    if isinstance(payload, Mapping) and "model" in payload and isinstance(payload["model"], Mapping):
        payload = payload["model"]
    if not isinstance(payload, Mapping) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"{path} does not hold a state dict (expected {{'model': state_dict}})")
    return dict(payload)


def load_checkpoint(
    model: nn.Module, path: str | Path, *, strict: bool = True, config_name: str = "?"
) -> None:
    """Load weights into ``model`` after checking every key and shape.

    Raises:
        CheckpointMismatchError: (with ``strict``) names the missing, unexpected and mis-shaped keys.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    mismatched = [
        (k, tuple(state[k].shape), tuple(own[k].shape))
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if strict and (missing or unexpected or mismatched):
        raise CheckpointMismatchError(str(path), config_name, missing, unexpected, mismatched)
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(usable, strict=False)


def save_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Write ``{"model": state_dict}`` (the official layout) or ``.safetensors``, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import save_file

            save_file(state, tmp)
        else:
            torch.save({"model": state}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` read now (huggingface_hub reads it only once, at its import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "on", "yes", "true"}


def download_checkpoint(
    model_id: str, *, cache_dir: str | Path | None = None, local_files_only: bool = False
) -> Path:
    """Path of the official checkpoint of ``model_id``, fetched from the Hugging Face hub once.

    With ``local_files_only`` or the environment variable ``HF_HUB_OFFLINE=1`` the network is
    not touched: only the local cache is looked at.

    Raises:
        KeyError: not one of the eight official ids.
        CheckpointDownloadError: the hub cannot be reached (or offline mode is on) and the file is
            not cached.
    """
    if model_id not in HUB_IDS:
        raise KeyError(f"unknown hub id {model_id!r}; known: {', '.join(sorted(HUB_IDS))}")
    _, filename = HUB_IDS[model_id]
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointDownloadError(
            "huggingface_hub is required for hub ids: pip install huggingface_hub", model_id=model_id, filename=filename
        ) from err
    offline = local_files_only or _hub_offline()
    unreachable = not offline and not _hub_reachable()
    try:
        return Path(
            hf_hub_download(
                repo_id=model_id,
                filename=filename,
                cache_dir=cache_dir,
                local_files_only=offline or unreachable,
                etag_timeout=10,
            )
        )
    except Exception as first_err:
        if not offline and not unreachable:
            try:  # the network may be down while the file is cached
                return Path(
                    hf_hub_download(repo_id=model_id, filename=filename, cache_dir=cache_dir, local_files_only=True)
                )
            except Exception:
                pass
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
            f"  as the checkpoint: build_model('{HUB_IDS[model_id][0]}', checkpoint='/path/to/{filename}')",
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
