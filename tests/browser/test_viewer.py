"""The image viewer in a real browser: a patient signs in and looks at a CT, an ultrasound cine and
a report series, on a desktop and on a phone."""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from django.urls import reverse
from playwright.sync_api import BrowserContext, Page, Response, Route, expect
from pydicom.uid import JPEG2000Lossless

from sharing.dicom.synthetic import SyntheticPatient, ct_series, sr_report, us_multiframe, write_study
from sharing.models import Series, Study, User
from tests.support.browser import PageWatch, with_verified_email
from tests.support.factories import ingest, patient_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SLICES = 40
CINE_FRAMES = 12

# Pixel statistics of the viewer's canvas: how many distinct grey levels, and whether any pixel
# is coloured (R, G and B not all equal).
CANVAS_STATS = """() => {
  const canvas = document.querySelector('[data-viewport] canvas');
  const context = canvas.getContext('2d');
  const { data } = context.getImageData(0, 0, canvas.width, canvas.height);
  const levels = new Set();
  let coloured = 0;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) {
    levels.add(data[i]);
    sum += data[i] + data[i + 1] + data[i + 2];
    if (Math.abs(data[i] - data[i + 1]) > 30 || Math.abs(data[i + 1] - data[i + 2]) > 30) coloured += 1;
  }
  return { levels: levels.size, coloured, sum, width: canvas.width, height: canvas.height };
}"""


@pytest.fixture
def study(tmp_path, patient: SyntheticPatient, jane: User) -> Study:
    """Jane's study: a 40-slice CT, a colour ultrasound cine and a structured report."""
    ct = ct_series(patient, slices=SLICES, size=128)
    uid = str(ct[0].StudyInstanceUID)
    us = us_multiframe(patient, frames=CINE_FRAMES, rows=120, cols=160, study_uid=uid)
    sr = sr_report(patient, study_uid=uid, text="No acute findings.")
    ingest(write_study([*ct, *us, sr], tmp_path / "study"))
    return Study.objects.get(study_instance_uid=uid)


@pytest.fixture
def jane() -> User:
    return with_verified_email(patient_user("jane@example.com", "MRN-1001"))


def series_of(study: Study, modality: str) -> Series:
    return study.series.get(modality=modality)


def viewer_url(study: Study, series: Series | None = None) -> str:
    url = reverse("study-viewer", args=[study.study_instance_uid])
    return f"{url}?series={series.series_instance_uid}" if series else url


def open_viewer(page: Page, login: Callable[..., None], study: Study, series: Series | None = None) -> None:
    login(page, "jane@example.com")
    page.goto(viewer_url(study, series))


def tools_ready(page: Page) -> None:
    """The image tools load after the first image; drags, the wheel and touch act once they have."""
    page.wait_for_selector("[data-viewport][data-tools-ready]", state="attached")


def overlay_image(page: Page) -> Any:
    return page.locator("[data-overlay-image]")


def swipe(page: Page, *, dy: int) -> None:
    """One finger dragged vertically across the middle of the image."""
    tools_ready(page)
    page.locator("[data-viewport]").scroll_into_view_if_needed()
    box = page.locator("[data-viewport]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, 11):
        point = {"x": x, "y": y + dy * step / 10}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def drag_across_the_image(page: Page) -> None:
    """The left mouse button dragged from the middle of the image down and to the right."""
    tools_ready(page)
    box = page.locator("[data-viewport]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 80, steps=8)
    page.mouse.up()


def canvas_stats(page: Page) -> dict[str, int]:
    stats: dict[str, int] = page.evaluate(CANVAS_STATS)
    return stats


def test_a_patient_opens_the_ct_and_moves_through_it(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study)  # no series asked for: the first image series opens

    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    assert canvas_stats(page)["levels"] > 20, "the first image is drawn"
    expect(page.locator("[data-overlay-description]")).to_contain_text("AXIAL")

    page.locator("[data-viewport]").focus()
    page.keyboard.press("ArrowDown")
    expect(overlay_image(page)).to_have_text(f"Image 2 / {SLICES}")
    page.keyboard.press("PageDown")
    expect(overlay_image(page)).to_have_text(f"Image 12 / {SLICES}")
    page.keyboard.press("ArrowUp")
    expect(overlay_image(page)).to_have_text(f"Image 11 / {SLICES}")

    tools_ready(page)
    page.locator("[data-viewport]").hover()
    page.mouse.wheel(0, 300)
    expect(overlay_image(page)).not_to_have_text(f"Image 11 / {SLICES}")

    page.get_by_label("Window preset").select_option(label="Lung")
    expect(page.locator("[data-overlay-wl]")).to_have_text("W 1500 L -600")
    page.get_by_label("Window preset").select_option(label="Brain")
    expect(page.locator("[data-overlay-wl]")).to_have_text("W 80 L 40")

    before = canvas_stats(page)["sum"]
    page.get_by_role("button", name="Invert").click()
    expect(page.get_by_role("button", name="Invert")).to_have_attribute("aria-pressed", "true")
    page.wait_for_function(f"() => ({CANVAS_STATS})().sum !== {before}", polling=100, timeout=5_000)

    expect(page.locator("[data-progress]")).to_be_hidden()
    # The milestones bench/viewing.py reads: first image drawn, then the whole stack loaded.
    first = float(page.locator("#viewer").get_attribute("data-first-image-ms") or "nan")
    stack = float(page.locator("#viewer").get_attribute("data-stack-loaded-ms") or "nan")
    assert 0 < first <= stack
    watcher.assert_clean()


FIRST_FRAME = re.compile(r"/instances/[^/]+/frames/1$")


class HeldBack:
    """Requests of ``page`` matching ``pattern`` wait until ``release``, then go to the server."""

    def __init__(self, page: Page, pattern: re.Pattern[str]) -> None:
        self.page, self.pattern = page, pattern
        self.routes: list[Route] = []

        def hold(route: Route) -> None:
            self.routes.append(route)

        self._hold = hold
        page.route(pattern, hold)

    def release(self) -> None:
        for route in self.routes:
            route.continue_()  # straight to the server: the policy header only matters to workers
        self.page.unroute(self.pattern, self._hold)


def first_frame_requests(page: Page) -> list[str]:
    """The URLs of the first-frame requests ``page`` makes from now on (any instance's frame 1)."""
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url) if FIRST_FRAME.search(request.url) else None)
    return urls


def assert_first_image_drawn_after_one_request(page: Page, frames: list[str]) -> None:
    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    assert canvas_stats(page)["levels"] > 20, "the first image is drawn"
    expect(page.locator("[data-progress]")).to_be_hidden()
    assert len(frames) == 1, frames


def test_the_first_image_is_asked_for_while_cornerstone_is_still_loading(
    page: Page, login, viewer_bundle, study
):
    """The first image's bytes travel while the browser loads and starts Cornerstone (most of the
    viewer's code), and the image loader takes them rather than asking again."""
    stage = HeldBack(page, re.compile(r"/static/viewer/assets/stage[^/]*\.js$"))
    frames = first_frame_requests(page)

    with page.expect_request(lambda request: bool(FIRST_FRAME.search(request.url))):
        open_viewer(page, login, study)
    assert stage.routes, "Cornerstone's chunk is still being held back"
    stage.release()

    assert_first_image_drawn_after_one_request(page, frames)


def test_the_first_image_is_asked_for_once_when_its_metadata_comes_after_cornerstone(
    page: Page, login, viewer_bundle, study
):
    metadata = HeldBack(page, re.compile(r"/series/[^/]+/metadata$"))
    frames = first_frame_requests(page)

    with page.expect_response(re.compile(r"/static/viewer/assets/stage[^/]*\.js$")):
        open_viewer(page, login, study)
    page.wait_for_function("() => document.querySelector('[data-viewport] canvas') !== null")
    assert metadata.routes, "the metadata is still being held back"
    metadata.release()

    assert_first_image_drawn_after_one_request(page, frames)


def test_measurement_tools_can_be_picked(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "CT"))
    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")

    page.get_by_role("button", name="Measure a length").click()
    expect(page.get_by_role("button", name="Measure a length")).to_have_attribute("aria-pressed", "true")
    tools_ready(page)
    box = page.locator("[data-viewport]").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 40, y)
    page.mouse.down()
    page.mouse.move(x + 40, y, steps=5)
    page.mouse.up()
    expect(page.locator("[data-viewport] svg text").first).to_contain_text("mm")

    # An angle: three clicks (vertex in the middle), and its value in degrees.
    page.get_by_role("button", name="Clear").click()
    page.get_by_role("button", name="Measure an angle").click()
    expect(page.get_by_role("button", name="Measure an angle")).to_have_attribute("aria-pressed", "true")
    for dx, dy in ((-60, -40), (0, 20), (60, -40)):
        page.mouse.click(x + dx, y + dy)
    expect(page.locator("[data-viewport] svg text").first).to_contain_text("°")

    watcher.assert_clean()


def test_dragging_changes_window_and_level(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "CT"))
    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    page.get_by_role("button", name="Brightness and contrast (window/level)").click()
    before_wl = page.locator("[data-overlay-wl]").inner_text()
    before_pixels = canvas_stats(page)["sum"]

    drag_across_the_image(page)

    expect(page.locator("[data-overlay-wl]")).not_to_have_text(before_wl)
    assert canvas_stats(page)["sum"] != before_pixels, "the drawn pixels change with the window"
    watcher.assert_clean()


def test_the_window_preset_list_says_custom_once_a_drag_leaves_the_preset(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "CT"))
    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    presets = page.get_by_label("Window preset")
    expect(presets).to_have_value("default")

    presets.select_option(label="Lung")
    expect(page.locator("[data-overlay-wl]")).to_have_text("W 1500 L -600")
    page.get_by_role("button", name="Brightness and contrast (window/level)").click()
    drag_across_the_image(page)

    expect(page.locator("[data-overlay-wl]")).not_to_have_text("W 1500 L -600")
    expect(presets).to_have_value("custom")
    expect(presets.locator("option:checked")).to_have_text("Custom")
    # The window stays the user's own while they move through the images.
    page.locator("[data-viewport]").focus()
    page.keyboard.press("ArrowDown")
    expect(overlay_image(page)).to_have_text(f"Image 2 / {SLICES}")
    expect(presets).to_have_value("custom")

    presets.select_option(label="Brain")
    expect(page.locator("[data-overlay-wl]")).to_have_text("W 80 L 40")
    expect(presets).to_have_value("brain")
    presets.select_option(label="Image default")
    expect(presets).to_have_value("default")
    watcher.assert_clean()


def test_a_colour_ultrasound_cine_shows_its_frames_and_plays(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "US"))

    expect(overlay_image(page)).to_have_text(f"Image 1 / {CINE_FRAMES}")
    stats = canvas_stats(page)
    assert stats["levels"] > 20
    assert stats["coloured"] > 0, "the Doppler colour is drawn"
    expect(page.get_by_label("Frames per second")).to_have_value("25")

    page.get_by_role("button", name="Play").click()
    expect(overlay_image(page)).not_to_have_text(f"Image 1 / {CINE_FRAMES}")
    seen = {overlay_image(page).inner_text()}
    for _ in range(10):
        page.wait_for_timeout(100)
        seen.add(overlay_image(page).inner_text())
    assert len(seen) >= 3, f"the cine advances: {seen}"
    page.get_by_role("button", name="Pause").click()
    paused = overlay_image(page).inner_text()
    page.wait_for_timeout(300)
    assert overlay_image(page).inner_text() == paused

    watcher.assert_clean()


def test_a_report_series_says_it_is_not_images(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, study
):
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "SR"))

    message = page.locator("[data-message]")
    expect(message).to_be_visible()
    expect(message).to_contain_text("not images")
    link = message.get_by_role("link")
    expect(link).to_have_attribute("href", reverse("study", args=[study.study_instance_uid]))
    expect(page.get_by_role("toolbar", name="Image tools")).to_be_hidden()

    page.get_by_role("button", name=re.compile("AXIAL")).click()
    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    expect(message).to_be_hidden()

    watcher.assert_clean()


def test_the_viewer_works_on_a_phone_in_portrait(
    new_context: Callable[..., BrowserContext],
    watch: Callable[[Page], PageWatch],
    login,
    viewer_bundle,
    study,
):
    phone = new_context(viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True)
    page = phone.new_page()
    watcher = watch(page)
    open_viewer(page, login, study, series_of(study, "CT"))

    expect(overlay_image(page)).to_have_text(f"Image 1 / {SLICES}")
    stats = canvas_stats(page)
    assert stats["levels"] > 20
    viewport_box = page.locator("[data-viewport]").bounding_box()
    assert viewport_box is not None
    assert viewport_box["width"] >= 320
    assert viewport_box["height"] >= 300
    assert viewport_box["y"] >= 0
    assert viewport_box["y"] + viewport_box["height"] <= 740, "the whole image is on screen"
    for name in ("Next image", "Play", "Invert", "Full screen"):
        button = page.get_by_role("button", name=name)
        expect(button).to_be_visible()
        button_box = button.bounding_box()
        assert button_box is not None
        assert button_box["x"] + button_box["width"] <= 360
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360, "nothing overflows sideways"
    # On a touch screen one finger scrolls through the images.
    expect(page.get_by_role("button", name="Scroll through images")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Next image").tap()
    expect(overlay_image(page)).to_have_text(f"Image 2 / {SLICES}")
    swipe(page, dy=150)
    expect(overlay_image(page)).not_to_have_text(f"Image 2 / {SLICES}")

    watcher.assert_clean()


def test_a_jpeg_2000_ct_is_decoded_by_the_webassembly_codec_under_the_real_policy(
    page: Page, watch: Callable[[Page], PageWatch], login, viewer_bundle, tmp_path, patient, jane
):
    ct = ct_series(patient, slices=3, size=64, transfer_syntax=JPEG2000Lossless)
    ingest(write_study(ct, tmp_path / "j2k"))
    study = Study.objects.get(study_instance_uid=str(ct[0].StudyInstanceUID))
    watcher = watch(page)
    worker_policies: list[str] = []

    def on_response(response: Response) -> None:
        if "decodeImageFrameWorker" in response.url:
            worker_policies.append(response.headers.get("content-security-policy", ""))

    page.on("response", on_response)

    open_viewer(page, login, study)

    expect(overlay_image(page)).to_have_text("Image 1 / 3")
    assert canvas_stats(page)["levels"] > 20
    assert worker_policies, "the decoding worker was loaded"
    assert all("'wasm-unsafe-eval'" in policy for policy in worker_policies)
    watcher.assert_clean()


def test_another_patients_study_never_reaches_the_browser(page: Page, login, viewer_bundle, study, tmp_path):
    with_verified_email(patient_user("john@example.com", "MRN-2002"))
    login(page, "john@example.com")

    response = page.goto(viewer_url(study))

    assert response is not None
    assert response.status == HTTPStatus.NOT_FOUND
