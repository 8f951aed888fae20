"""Recording mode end to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real uvicorn with the tiny seeded model: open a synthetic Pupil Cloud recording by path,
click an AOI, run the gaze mapping, see the metrics rows, the AOI timeline and the gaze marker
(its colour is the AOI's when the gaze is on it), export the metrics CSV. The screenshot goes to the
test's folder, and also to ``$SAM2KIT_UI_SCREENSHOT`` when set."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
pytest.importorskip("pandas", reason="the gaze job needs pandas")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None and os.environ.get("CI"):  # .ci/run installs it: a CI run must not skip this test
    raise RuntimeError("chromium is missing: .ci/run should have installed it (apt-get install chromium)")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gaze"))  # the gaze tests' recording writers
from gaze_helpers import SIZE, make_truth, write_pupil_cloud  # noqa: E402

_IDLE = "() => document.body.dataset.pending === '0'"
_STATUS = "() => document.getElementById('status').textContent"
#: colours of AOIs 1.. in the UI (tab10, as static/colors.js) and of gaze on no AOI
TAB10 = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
NO_AOI = (255, 212, 0)
_PIXEL = """([x, y]) => Array.from(document.getElementById('overlay-canvas').getContext('2d')
  .getImageData(Math.floor(x), Math.floor(y), 1, 1).data)"""
_TIMELINE_PIXELS = """() => {
  const c = document.getElementById('aoi-timeline');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) n += d[i] > 0 ? 1 : 0; return n;
}"""


def test_recording_mode_in_chromium(start_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    truth = make_truth(0)
    media = tmp_path / "media"
    write_pupil_cloud(truth, media / "rec")
    ids, counts = np.unique(truth.labels[0][truth.labels[0] > 0], return_counts=True)
    aoi = int(ids[np.argmax(counts)])  # the largest AOI on frame 0: click it
    rows, cols = np.nonzero(truth.labels[0] == aoi)
    inside = np.argmin((cols - cols.mean()) ** 2 + (rows - rows.mean()) ** 2)
    click = (cols[inside] + 0.5, rows[inside] + 0.5)
    url = start_server(media_root=media)
    errors: list[str] = []
    with playwright_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800}, accept_downloads=True)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "/")
            page.wait_for_function("() => document.getElementById('model').textContent.includes('sam2kit-mini')")
            assert page.locator("#recording-panel").is_hidden()

            page.fill("#recording-path", "../elsewhere")  # refused: the status says why
            page.click("#open-recording")
            page.wait_for_function(f"() => ({_STATUS})().includes('outside the media root')")
            page.fill("#recording-path", "rec")
            page.click("#open-recording")
            page.wait_for_function("() => document.getElementById('frame-label').textContent === '0 / 74'")
            page.wait_for_function(_IDLE)
            assert page.locator("#recording-panel").is_visible() and page.locator("#recording-bar").is_visible()
            assert "pupil_cloud" in page.locator("#recording-info").text_content()
            assert page.locator("#metrics tbody tr").count() == 1  # the "run the mapping" hint

            box = page.locator("#overlay-canvas").bounding_box()
            assert box is not None
            page.click(
                "#overlay-canvas", position={"x": click[0] / SIZE * box["width"], "y": click[1] / SIZE * box["height"]}
            )
            page.wait_for_function(_IDLE)
            page.fill("#tolerance", "6px")
            page.click("#run-mapping")
            page.wait_for_function(f"() => ({_STATUS})().startsWith('Gaze mapping done')", timeout=180_000)
            page.wait_for_function(_IDLE)
            rows_shown = page.locator("#metrics tbody tr")
            assert rows_shown.count() == 1 and rows_shown.first.get_attribute("data-aoi") == "1"
            headers = page.locator("#metrics thead th").all_text_contents()
            assert headers[:3] == ["AOI", "name", "visible s"] and len(headers) == 14
            assert rows_shown.first.locator("td").nth(1).text_content() == "object 1"
            assert page.evaluate("() => window.sam2kitRecording.tolerancePx") == 6.0
            assert page.evaluate(_TIMELINE_PIXELS) > 0

            # a frame where the gaze is on the AOI, else any with valid gaze: the marker is drawn there
            frame, x, y, on = page.evaluate("""() => {
              const points = [...window.sam2kitRecording.points.values()].filter((p) => p.valid);
              const p = points.find((q) => q.aois.includes(1)) || points[0];
              return [p.frame, p.x, p.y, p.aois.includes(1)];
            }""")
            page.locator("#scrubber").fill(str(frame))
            page.wait_for_function(f"() => document.getElementById('frame-label').textContent === '{frame} / 74'")
            page.wait_for_function(_IDLE)
            assert page.locator("#gaze-label").text_content().startswith("gaze (")
            pixel = page.evaluate(_PIXEL, [x, y])
            assert tuple(pixel[:3]) == (TAB10[0] if on else NO_AOI) and pixel[3] == 255, pixel
            shot = tmp_path / "recording_mode.png"
            page.screenshot(path=str(shot))

            with page.expect_download() as download:
                page.click("[data-gaze-export=aoi_metrics]")
            csv_path = tmp_path / "metrics.csv"
            download.value.save_as(str(csv_path))
            assert download.value.suggested_filename == "rec_aoi_metrics.csv"
        finally:
            browser.close()
    assert not errors, errors
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("aoi,name,visible_s,") and len(lines) == 2 and lines[1].startswith("1,object 1,")
    if os.environ.get("SAM2KIT_UI_SCREENSHOT"):  # keep the screenshot where asked (to look at it)
        shutil.copyfile(shot, os.environ["SAM2KIT_UI_SCREENSHOT"])
