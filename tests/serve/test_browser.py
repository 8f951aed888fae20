"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright): a real
uvicorn server on a free loopback port with a tiny seeded checkpoint; image clicks draw masks, a
second object, a short video prompted on frame 0 and propagated, the last frame's mask seen after
scrubbing, a COCO export read back with pycocotools. Screenshots go to the test's folder; with
``SAM2KIT_UPDATE_DOCS=1`` the video one also replaces the README's ``docs/ui.png``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):  # .ci/run installs it: a CI run must not skip this test
    raise RuntimeError("chromium is missing: .ci/run should have installed it (apt-get install chromium)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)

REPO = Path(__file__).resolve().parents[2]

_OVERLAY_PIXELS = """() => {
  const c = document.getElementById('overlay-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0 ? 1 : 0; return n;
}"""
_IDLE = "() => document.body.dataset.pending === '0'"


@pytest.fixture
def server_url(start_server) -> str:  # type: ignore[no-untyped-def]
    return str(start_server())


def test_annotate_image_and_video_in_chromium(server_url: str, tmp_path: Path, make_png, make_video) -> None:  # type: ignore[no-untyped-def]
    from pycocotools.coco import COCO

    image_path = tmp_path / "scene.png"
    image_path.write_bytes(make_png(96, 128))
    video_path = make_video(tmp_path / "clip.mp4", frames=4, height=96, width=128)
    errors: list[str] = []
    with playwright_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720}, accept_downloads=True)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(server_url + "/")
            page.wait_for_function("() => document.getElementById('model').textContent.includes('sam2kit-mini')")

            # image: a click draws a mask; a second object adds another
            page.set_input_files("#open-image", str(image_path))
            page.wait_for_function("() => document.getElementById('file-name').textContent === 'scene.png'")
            page.wait_for_function(_IDLE)
            assert page.evaluate(_OVERLAY_PIXELS) == 0
            box = page.locator("#overlay-canvas").bounding_box()
            assert box is not None and box["width"] > 300  # the picture is scaled up to the stage
            page.click("#overlay-canvas", position={"x": box["width"] * 0.5, "y": box["height"] * 0.5})
            page.wait_for_function(_IDLE)
            page.wait_for_function(f"() => ({_OVERLAY_PIXELS})() > 0")
            first = page.evaluate(_OVERLAY_PIXELS)
            page.keyboard.press("n")
            assert page.locator("#objects li").count() == 2
            page.click("#overlay-canvas", position={"x": box["width"] * 0.1, "y": box["height"] * 0.1})
            page.wait_for_function(_IDLE)
            assert page.evaluate("() => window.sam2kitState.masks.get(0).size") == 2
            assert page.evaluate(_OVERLAY_PIXELS) != first
            page.screenshot(path=str(tmp_path / "ui_image.png"))

            # video: prompt frame 0, propagate, scrub to the last frame
            page.set_input_files("#open-video", str(video_path))
            page.wait_for_function("() => document.getElementById('frame-label').textContent === '0 / 3'")
            page.wait_for_function(_IDLE)
            page.click("#overlay-canvas", position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})
            page.wait_for_function(_IDLE)
            page.wait_for_function(f"() => ({_OVERLAY_PIXELS})() > 0")
            page.click("#propagate-fwd")
            page.wait_for_function("() => document.getElementById('status').textContent.startsWith('Propagation done')",
                                   timeout=60_000)
            page.wait_for_function(_IDLE)
            page.locator("#scrubber").fill("3")
            page.wait_for_function("() => document.getElementById('frame-label').textContent === '3 / 3'")
            page.wait_for_function(_IDLE)
            page.wait_for_function(f"() => ({_OVERLAY_PIXELS})() > 0")
            assert page.evaluate("() => window.sam2kitState.masks.get(3).has(1)")
            assert page.evaluate("() => [...window.sam2kitState.masked].length") >= 1
            shot = tmp_path / "ui_video.png"
            page.screenshot(path=str(shot))

            # export COCO JSON through the button
            with page.expect_download() as download:
                page.click("[data-export=coco]")
            coco_path = tmp_path / "export.json"
            download.value.save_as(str(coco_path))
        finally:
            browser.close()
    assert not errors, errors
    coco = COCO(str(coco_path))
    assert len(coco.getImgIds()) == 4
    annotations = coco.loadAnns(coco.getAnnIds())
    assert annotations and all(a["object_id"] == 1 for a in annotations)
    assert coco.annToMask(annotations[-1]).shape == (96, 128)
    if os.environ.get("SAM2KIT_UPDATE_DOCS"):  # refresh the README's screenshot on request only
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "ui.png")
