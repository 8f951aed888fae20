"""The batch manifest: one item per line (JSON Lines; CSV accepted), parsed into :class:`BatchItem`.

A JSONL line::

    {"id": "a", "image": "imgs/a.jpg", "prompts": [{"obj_id": 1, "points": [[120, 80]], "labels": [1]},
                                                   {"obj_id": 2, "box": [10, 10, 200, 150]}]}
    {"id": "v", "video": "clips/v.mp4", "prompts": [{"frame": 0, "obj_id": 1, "points": [[50, 60]]}]}
    {"id": "m", "image": "imgs/m.jpg", "prompts": [{"obj_id": 1, "mask": "masks/m_obj1.png"}]}
    {"id": "c", "image": "imgs/c.jpg", "mode": "auto", "options": {"points_per_side": 16}}

Keys: ``id`` (a file-name-safe name, unique in the manifest), exactly one of ``image`` / ``video``
(a file, or for videos a folder of frames; relative paths are relative to the manifest's folder),
and either ``prompts`` or ``"mode": "auto"`` (images only; ``options`` are automatic mask generator
options). A prompt: ``obj_id`` (1..255, the DAVIS palette value), ``frame`` (videos; default 0),
``points`` ``[[x, y], ...]`` in pixels with ``labels`` (1 foreground, 0 background; default all 1),
a ``box`` ``[x0, y0, x1, y1]`` in pixels and/or a ``mask``: a PNG of the image's (video frame's)
size, non-zero = the object, its path relative to the manifest's folder (one prompt per object and
frame; for videos a mask with clicks or a box: the mask first, corrected by them). A CSV manifest
has the columns ``id``, ``image``, ``video``, ``mode``, ``prompts`` and ``options`` (the last two
as JSON text); empty cells are absent.

The JSON Schema of a line is shipped as ``manifest.schema.json`` (:func:`manifest_schema`). Files
are not opened here: a missing image, or a missing mask or one of another size, is an item error at
run time, not a manifest error.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["AUTO_OPTIONS", "BatchItem", "ManifestError", "ObjectPrompt", "load_manifest", "manifest_schema",
           "parse_item"]

#: Item ids: file-name safe (they name the output folder and the status record).
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Automatic mask generator options an ``"auto"`` item may set, with their types.
AUTO_OPTIONS: dict[str, type] = {
    "points_per_side": int, "points_per_batch": int, "pred_iou_thresh": float,
    "stability_score_thresh": float, "crop_n_layers": int, "min_mask_region_area": int,
}
_ITEM_KEYS = {"id", "image", "video", "mode", "prompts", "options"}
_PROMPT_KEYS = {"obj_id", "frame", "points", "labels", "box", "mask"}
_CSV_JSON_COLUMNS = ("prompts", "options")


class ManifestError(ValueError):
    """The manifest cannot be used; the message names the file and line of each problem."""


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt on one frame (images: frame 0): clicks and at most one box, in pixels,
    and/or a mask PNG (resolved against the manifest's folder)."""

    obj_id: int
    frame: int = 0
    points: tuple[tuple[float, float], ...] = ()
    labels: tuple[int, ...] = ()
    box: tuple[float, float, float, float] | None = None
    mask: Path | None = None

    def described(self) -> list[Any]:
        """What the prompt asks for, as JSON values (the mask only when given: fingerprints of
        items without masks stay as they were)."""
        return [self.obj_id, self.frame, self.points, self.labels, self.box,
                *([] if self.mask is None else [str(self.mask)])]


@dataclass(frozen=True)
class BatchItem:
    """One manifest line.

    Attributes:
        id: the item's name: its output folder ``OUT/<id>/`` and record ``OUT/_status/<id>.json``.
        kind: ``"image"`` or ``"video"``.
        path: the input, resolved against the manifest's folder.
        mode: ``"prompts"`` or ``"auto"``.
        prompts: sorted by frame, then object id.
        options: automatic mask generator options (``"auto"`` only).
        line: 1-based line (CSV: row) of the manifest, for messages.
    """

    id: str
    kind: str
    path: Path
    mode: str = "prompts"
    prompts: tuple[ObjectPrompt, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    line: int = 0

    def fingerprint(self) -> str:
        """A hash of what the item asks for (not of its line number): a rerun redoes an item whose
        input or prompts changed."""
        described = {"kind": self.kind, "path": str(self.path), "mode": self.mode, "options": dict(self.options),
                     "prompts": [p.described() for p in self.prompts]}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one manifest line, as shipped with the package."""
    from importlib.resources import files

    return json.loads(files(__package__).joinpath("manifest.schema.json").read_text(encoding="utf-8"))


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value and abs(value) != float(
        "inf")


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _resolve(source: str, base_dir: Path) -> Path:
    path = Path(source).expanduser()
    return path if path.is_absolute() else base_dir / path


def _parse_prompt(raw: Any, index: int, kind: str, base_dir: Path) -> ObjectPrompt:
    where = f"prompts[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object with obj_id and points, a box and/or a mask")
    unknown = sorted(set(raw) - _PROMPT_KEYS)
    if unknown:
        raise ValueError(f"{where} has unknown key(s) {unknown}; accepted: {sorted(_PROMPT_KEYS)}")
    obj_id = raw.get("obj_id")
    if not isinstance(obj_id, int) or isinstance(obj_id, bool) or not 1 <= obj_id <= 255:
        raise ValueError(f"{where}.obj_id must be an integer 1..255, got {obj_id!r}")
    frame = raw.get("frame", 0)
    if not _integer(frame) or frame < 0:
        raise ValueError(f"{where}.frame must be an integer >= 0, got {frame!r}")
    if kind == "image" and frame != 0:
        raise ValueError(f"{where}.frame must be 0 (or absent) for an image, got {frame}")
    points = raw.get("points", [])
    if not isinstance(points, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(_number(v) for v in p) for p in points
    ):
        raise ValueError(f"{where}.points must be a list of [x, y] pixel pairs, got {points!r}")
    labels = raw.get("labels", [1] * len(points))
    if not isinstance(labels, list) or len(labels) != len(points) or not all(v in (0, 1) for v in labels):
        raise ValueError(f"{where}.labels must be one 1 (foreground) or 0 (background) per point, got {labels!r}")
    box = raw.get("box")
    if box is not None:
        if not isinstance(box, list) or len(box) != 4 or not all(_number(v) for v in box):
            raise ValueError(f"{where}.box must be [x0, y0, x1, y1] in pixels, got {box!r}")
        if box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"{where}.box must have x0 <= x1 and y0 <= y1, got {box!r}")
    mask = raw.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        raise ValueError(f"{where}.mask must be the path of a PNG (non-zero = the object), got {mask!r}")
    if not points and box is None and mask is None:
        raise ValueError(f"{where} needs points, a box and/or a mask")
    return ObjectPrompt(
        obj_id=obj_id, frame=frame, points=tuple((float(x), float(y)) for x, y in points),
        labels=tuple(int(v) for v in labels), box=None if box is None else (float(box[0]), float(box[1]),
                                                                           float(box[2]), float(box[3])),
        mask=None if mask is None else _resolve(mask, base_dir),
    )


def _parse_options(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"options must be an object, got {raw!r}")
    options = {}
    for name, value in raw.items():
        wanted = AUTO_OPTIONS.get(name)
        if wanted is None:
            raise ValueError(f"unknown option {name!r}; accepted: {', '.join(AUTO_OPTIONS)}")
        if not (_integer(value) if wanted is int else _number(value)) or value < 0:
            raise ValueError(f"option {name} must be a {'n integer' if wanted is int else ' number'} >= 0, "
                             f"got {value!r}")
        options[name] = value
    return options


def parse_item(raw: Any, base_dir: Path, line: int = 0) -> BatchItem:
    """One manifest entry (a parsed JSON object) as a :class:`BatchItem`.

    Raises:
        ValueError: what is wrong with the entry and what is accepted (without the line number).
    """
    if not isinstance(raw, dict):
        raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ITEM_KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown}; accepted: {sorted(_ITEM_KEYS)}")
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not ID_PATTERN.match(item_id):
        raise ValueError(f"id must be a name of letters, digits, '.', '_' or '-' (starting with a letter or "
                         f"digit, at most 128 characters), got {item_id!r}")
    kinds = [kind for kind in ("image", "video") if raw.get(kind) is not None]
    if len(kinds) != 1:
        raise ValueError("give exactly one of image or video (a path)")
    kind = kinds[0]
    source = raw[kind]
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{kind} must be a path (text), got {source!r}")
    path = _resolve(source, base_dir)
    mode = raw.get("mode", "prompts")
    if mode not in ("prompts", "auto"):
        raise ValueError(f"mode must be 'prompts' or 'auto', got {mode!r}")
    if mode == "auto":
        if kind != "image":
            raise ValueError("mode 'auto' (automatic masks) is for images only")
        if raw.get("prompts"):
            raise ValueError("mode 'auto' takes no prompts")
        return BatchItem(item_id, kind, path, mode, (), _parse_options(raw.get("options", {})), line)
    if "options" in raw:
        raise ValueError("options are for mode 'auto' only")
    prompts = raw.get("prompts")
    if not isinstance(prompts, list) or not prompts:
        raise ValueError("prompts must be a non-empty list (or give \"mode\": \"auto\" for automatic masks)")
    parsed = sorted((_parse_prompt(p, i, kind, base_dir) for i, p in enumerate(prompts)),
                    key=lambda p: (p.frame, p.obj_id))
    seen = set()
    for prompt in parsed:
        if (prompt.frame, prompt.obj_id) in seen:
            raise ValueError(f"object {prompt.obj_id} has two prompts on frame {prompt.frame}; give one per object "
                             "and frame (points, a box and a mask may go in the same prompt)")
        seen.add((prompt.frame, prompt.obj_id))
    return BatchItem(item_id, kind, path, mode, tuple(parsed), {}, line)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        for row_number, row in enumerate(reader, start=2):  # line 1 is the header
            entry: dict[str, Any] = {}
            try:
                for key, value in row.items():
                    if key is None:
                        raise ValueError("more cells than columns")
                    if value is None or not value.strip():
                        continue
                    entry[key.strip()] = json.loads(value) if key.strip() in _CSV_JSON_COLUMNS else value.strip()
            except json.JSONDecodeError as error:
                yield row_number, ValueError(f"a JSON cell is not valid JSON: {error.msg}")
                continue
            except ValueError as error:
                yield row_number, error
                continue
            if entry:
                yield row_number, entry


def _jsonl_rows(path: Path) -> Iterator[tuple[int, Any]]:
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as error:
                yield number, ValueError(f"not valid JSON: {error.msg} (column {error.colno})")


def load_manifest(path: str | Path) -> list[BatchItem]:
    """Read and check every line of a manifest (``.csv``: CSV; anything else: JSON Lines; blank lines
    and lines starting with ``#`` are skipped).

    Raises:
        FileNotFoundError: no such file.
        ManifestError: one line per malformed entry (``manifest.jsonl line 3: ...``, at most 20),
            duplicate ids, or no item at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    rows = _csv_rows(path) if path.suffix.lower() == ".csv" else _jsonl_rows(path)
    items: list[BatchItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for line, entry in rows:
        try:
            if isinstance(entry, ValueError):
                raise entry
            item = parse_item(entry, path.parent.resolve(), line)
        except ValueError as error:
            problems.append(f"{path.name} line {line}: {error}")
            continue
        if item.id in first_line:
            problems.append(f"{path.name} line {line}: id {item.id!r} is already used on line {first_line[item.id]}")
            continue
        first_line[item.id] = line
        items.append(item)
    if problems:
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        raise ManifestError("malformed manifest:\n  " + "\n  ".join(shown))
    if not items:
        raise ManifestError(f"manifest {path} has no item")
    return items
