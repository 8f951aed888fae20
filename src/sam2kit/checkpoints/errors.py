"""The errors of checkpoint files: unreadable, not SAM 2, of another model, not downloadable."""

from __future__ import annotations

__all__ = [
    "CheckpointConfigError",
    "CheckpointDownloadError",
    "CheckpointError",
    "CheckpointMismatchError",
]


class CheckpointError(RuntimeError):
    """A checkpoint file cannot be read or is not a SAM 2 checkpoint."""


class CheckpointConfigError(CheckpointError):
    """No config was given and the checkpoint's weights match no preset.

    Attributes:
        nearest: the name of the preset that differs from the weights in the fewest respects.
    """

    def __init__(self, message: str, *, nearest: str = "") -> None:
        super().__init__(message)
        self.nearest = nearest


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's keys or shapes do not match the model built from the config.

    Attributes:
        missing, unexpected: key names; mismatched: ``(key, checkpoint shape, model shape)``;
        weights_preset: the preset the checkpoint's weights are those of, when they match one.
    """

    def __init__(
        self,
        path: str,
        config_name: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
        *,
        weights_preset: str | None = None,
    ) -> None:
        self.missing, self.unexpected, self.mismatched = missing, unexpected, mismatched
        self.weights_preset = weights_preset

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
        if weights_preset:
            lines.append(
                f"  It is a checkpoint of another size or version: its weights are those of {weights_preset!r}; "
                "pass that config, or none at all."
            )
        else:
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
