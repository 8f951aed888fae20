"""AOIs from prompts, tracked with the video predictor: on seeded random weights the outputs are
checked for form; on the shipped trained model (``sam2kit-mini``) for agreement with the truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gaze_helpers import aoi_sets, make_truth, write_pupil_cloud

from sam2kit.errors import ArgumentError
from sam2kit.gaze import METRIC_COLUMNS, FixationAOIs, PromptAOIs, analyse_gaze, group_aoi_prompts
from sam2kit.io.eyetracking import read_recording
from sam2kit.model_spec import ModelSpec, load_model
from sam2kit.pipelines.synthetic_eval import interior_point

#: Over the first frames, where sam2kit-mini still tracks (over these whole 75-frame recordings it
#: loses shapes that hide or cross: README, gaze figures), samples on a clicked AOI must get exactly
#: the true AOIs.
TRACKED_FRAMES = 10
MIN_EXACT_SHARE = 0.9  # measured 1.00 on seeds 0 and 2; random weights 0.26 (seed 0), finding nothing 0.60


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return read_recording(write_pupil_cloud(make_truth(1), tmp_path_factory.mktemp("tracked") / "rec"))


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    return load_model(ModelSpec(checkpoint=None, config="sam2.1_hiera_tiny", device="cpu", image_size=128))


def test_prompted_aois_tracked_with_stride(recording, model) -> None:  # type: ignore[no-untyped-def]
    clicks = [(30, 1, (40.0, 50.0, 1)), (30, 2, (90.0, 80.0, 1))]
    prompts = group_aoi_prompts(clicks, [(45, 2, (70.0, 60.0, 110.0, 100.0))])
    aois = PromptAOIs(prompts, model=model, names={1: "left"})
    seen: list[int] = []
    original = aois.masks

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        for frame, masks in original(*args, **kwargs):
            assert set(masks) == {1, 2} and all(m.shape == (128, 128) and m.dtype == bool for m in masks.values())
            seen.append(frame)
            yield frame, masks

    aois.masks = spy  # type: ignore[method-assign]
    tables = analyse_gaze(recording, aois, stride=15)
    assert sorted(seen) == list(range(0, recording.num_frames, 15))  # forward from 30, then back to 0, once each
    assert len(tables.samples) == len(recording.samples)
    hit = {int(v) for text in tables.samples["aois"] if text for v in text.split(";")}
    assert hit <= {1, 2}
    assert (tables.samples.loc[tables.samples["valid"] == 0, "aois"] == "").all()
    assert tuple(tables.aoi_metrics.columns) == METRIC_COLUMNS
    assert tables.aoi_metrics["aoi"].tolist() == [1, 2] and tables.aoi_metrics["name"].tolist() == ["left", ""]
    assert np.all(tables.aoi_metrics["visible_s"] <= recording.frame_times_s[-1] + 0.05)


def test_prompt_errors(recording) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ArgumentError, match="with stride 4 prompts must be on tracked frames"):
        analyse_gaze(recording, PromptAOIs(group_aoi_prompts([(6, 1, (4.0, 5.0, 1))], [])), stride=4)
    with pytest.raises(ArgumentError, match="the video has 75 frames"):
        analyse_gaze(recording, PromptAOIs(group_aoi_prompts([(80, 1, (4.0, 5.0, 1))], [])))
    with pytest.raises(ArgumentError, match="outside the 128x128 frame"):
        analyse_gaze(recording, PromptAOIs(group_aoi_prompts([(0, 1, (400.0, 5.0, 1))], [])))
    with pytest.raises(ArgumentError, match="AOI ids must be 1..255"):
        group_aoi_prompts([(0, 0, (4.0, 5.0, 1))], [])


def test_aois_from_fixations_merge_segments_by_object(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stand-in tracker returns the true mask of the object under each prompt: segments prompted
    on one object must merge into one AOI, and every sample's AOIs must follow the truth."""
    from sam2kit.gaze import from_fixations

    truth = make_truth(0)
    recording = read_recording(write_pupil_cloud(truth, tmp_path / "rec"))
    prompted: dict[int, int] = {}

    class TruthTracker:
        def __init__(self, prompts, **kwargs):  # type: ignore[no-untyped-def]
            for p in prompts:
                (x, y), = p.points
                prompted[p.aoi] = int(truth.labels[p.frame][int(y), int(x)])

        def masks(self, video, num_frames, size, frames):  # type: ignore[no-untyped-def]
            for frame in frames:
                yield frame, {s: truth.labels[frame] == obj if obj else np.zeros(size, bool)
                              for s, obj in prompted.items()}

    monkeypatch.setattr(from_fixations, "PromptAOIs", TruthTracker)
    aois = FixationAOIs(min_duration_ms=150, max_segments=255)
    tables = analyse_gaze(recording, aois)
    objects = [obj for _, obj in sorted(prompted.items())]
    assert len(objects) > len(set(objects))  # some object was prompted twice
    aoi_of_object: dict[int, int] = {}
    count = 0
    for obj in objects:  # AOI ids follow first prompts; each segment on the background stays apart
        if obj == 0 or obj not in aoi_of_object:
            count += 1
            if obj:
                aoi_of_object[obj] = count
    assert tables.aoi_metrics["aoi"].tolist() == list(range(1, count + 1))
    assert all(name.startswith("fixations ") for name in tables.aoi_metrics["name"])
    want = [{aoi_of_object[a] for a in hit if a in aoi_of_object} for hit in truth.sample_aois()]
    assert aoi_sets(tables.samples["aois"]) == want


def test_aois_from_fixations_tracked(recording, model) -> None:  # type: ignore[no-untyped-def]
    aois = FixationAOIs(min_duration_ms=150, max_segments=2, model=model)
    tables = analyse_gaze(recording, aois, stride=15)
    assert 1 <= len(tables.aoi_metrics) <= 2 and len(aois.segments) == 2
    assert all(prompt.frame % 15 == 0 for prompt in aois.prompts(range(0, 75, 15)))
    ids = set(tables.aoi_metrics["aoi"])
    assert {int(v) for text in tables.samples["aois"] if text for v in text.split(";")} <= ids


def _clicked_agreement(seed: int, model, tmp_path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """One click per AOI visible on frame 0, at its most interior pixel, tracked through the recording:
    over the valid samples of the first :data:`TRACKED_FRAMES` frames, the share whose AOIs equal the
    truth, and the share of samples on a true AOI that get it."""
    truth = make_truth(seed)
    recording = read_recording(write_pupil_cloud(truth, tmp_path / f"rec{seed}"))
    clicked = sorted(set(np.unique(truth.labels[0]).tolist()) - {0})
    clicks = [(0, aoi, (*interior_point(truth.labels[0] == aoi), 1)) for aoi in clicked]
    tables = analyse_gaze(recording, PromptAOIs(group_aoi_prompts(clicks, []), model=model))
    got = aoi_sets(tables.samples["aois"])
    want = [aois & set(clicked) for aois in truth.sample_aois()]
    frames = truth.nearest_frame()
    early = [i for i in np.flatnonzero(truth.valid()) if frames[i] < TRACKED_FRAMES]
    on_aoi = [i for i in early if want[i]]
    assert len(early) > 40 and len(on_aoi) > 10
    exact = float(np.mean([got[i] == want[i] for i in early]))
    found = float(np.mean([bool(got[i] & want[i]) for i in on_aoi]))
    return exact, found


@pytest.mark.parametrize("seed", [0, 2])
def test_clicked_aois_on_the_trained_model_follow_the_truth(seed: int, tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = load_model(ModelSpec(checkpoint="sam2kit-mini", device="cpu"))
    exact, found = _clicked_agreement(seed, model, tmp_path)
    assert exact >= MIN_EXACT_SHARE and found >= MIN_EXACT_SHARE, (exact, found)


def test_clicked_aois_on_random_weights_miss_the_truth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The same check on the same preset with random weights fails: the floor above needs real masks."""
    torch.manual_seed(0)
    model = load_model(ModelSpec(checkpoint=None, config="sam2kit-mini", device="cpu"))
    exact, _ = _clicked_agreement(0, model, tmp_path)
    assert exact < 0.7, exact
