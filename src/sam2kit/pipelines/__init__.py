"""File-in / file-out jobs, one module each, for every front end (CLI, service, batch).

A job takes plain typed arguments (paths, prompts, a :class:`~sam2kit.model_spec.ModelSpec` or an
already :class:`~sam2kit.model_spec.LoadedModel`), writes its files, logs progress (logging and
tqdm on stderr, never stdout) and returns a dataclass describing what it wrote:

- :mod:`~sam2kit.pipelines.image`: ``segment_image`` (point / box prompts -> mask PNGs, overlay, JSON);
- :mod:`~sam2kit.pipelines.video`: ``track_video`` (prompted objects through a video -> masks,
  ``tracks.json``, overlay video), with :mod:`~sam2kit.pipelines.video_output` for its files;
- :mod:`~sam2kit.pipelines.auto`: ``segment_everything`` (automatic masks -> COCO JSON, overlays);
- :mod:`~sam2kit.pipelines.stream`: ``track_stream`` (boxed objects through a live stream, one
  record per frame);
- :mod:`~sam2kit.pipelines.common`: what they share (model argument, image reading, path checks).
"""
