"""The image job called as a library: plain arguments in, a dataclass out, nothing on stdout, and one
loaded model reused across calls."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam2kit.config import get_config
from sam2kit.errors import ArgumentError
from sam2kit.model_spec import ModelSpec, load_model
from sam2kit.pipelines.image import ImageResult, Prompt, make_prompts, segment_image


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    image[12:36, 16:48] = (240, 200, 40)
    path = tmp_path_factory.mktemp("img") / "square.png"
    Image.fromarray(image).save(path)
    return path


def test_segment_image_returns_what_it_wrote(image_file: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(checkpoint=None, config=get_config("sam2.1_hiera_tiny"), device="cpu",
                                  image_size=128))
    results = [
        segment_image(image_file, make_prompts([(32, 24, 1)], []), tmp_path / "one", model=loaded),
        segment_image(image_file, make_prompts([], [(2, 2, 20, 20), (16, 12, 48, 36)]), tmp_path / "two",
                      model=loaded, multimask=True),
    ]
    assert capsys.readouterr().out == ""  # a job logs, it does not print
    for result, out, masks in zip(results, ["one", "two"], [1, 6], strict=True):
        assert isinstance(result, ImageResult) and len(result.masks) == masks
        assert json.loads((tmp_path / out / "result.json").read_text()) == result.to_json()
        assert result.model == loaded.to_json()
    assert [m.prompt for m in results[1].masks] == [0, 0, 0, 1, 1, 1]


def test_prompt_errors_name_the_argument(image_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ArgumentError) as info:
        make_prompts([(1, 1, 1)], [(0, 0, 4, 4), (1, 1, 5, 5)])
    assert info.value.argument == "boxes"
    with pytest.raises(ArgumentError, match="single box"):
        segment_image(image_file, [Prompt(points=[(1, 1)], labels=[1]), Prompt(box=(0, 0, 4, 4))], tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ArgumentError, match="out_dir .* is not a folder") as info:
        segment_image(image_file, [Prompt(points=[(1, 1)], labels=[1])], tmp_path / "file")
    assert info.value.argument == "out_dir"
