"""GET /ui driven in a real headless Chromium (Debian's chromium + chromium-driver, which
.ci/run installs): upload a photo, see the annotated image and one table row per face; upload
a clip, see the annotated WebM play and a timeline per person. Every request a page makes is
recorded (Chrome's DevTools performance log): the pages the service serves, /ui and the API
page at /, contact no host but the service.

The service is a real `bentoml serve` (conftest's `served`). A screenshot of the page is
saved as a test artifact in test-artifacts/ui.png (the clip's: test-artifacts/ui-video.png,
README's docs/ui-video.png), and one per test,
pass or fail, as test-artifacts/<test name>.png. Without the browser the test skips
with how to install it, except under CI=true, where it fails.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from urllib.parse import urlsplit

import pytest

from PIL import Image

from emotionlib.labels import EMOTIONS
from tests.helpers import ROOT

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,1000")


def require_browser() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        driver = None
    if chromium and driver:
        return chromium, driver
    message = ("headless Chromium is not available: install it as root with "
               "`apt-get install chromium chromium-driver` (scripts/browser-tools.sh, run by .ci/run) "
               "and selenium from requirements/test.txt")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="emotion-ui-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # every request: requested_urls
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(autouse=True)
def screenshot_after_each_test(request, browser):
    """Whatever the outcome, the page as the test left it: test-artifacts/<test name>.png."""
    yield
    save_full_page(browser, ARTIFACTS / f"{request.node.name}.png")


def test_upload_a_photo_and_see_the_faces(browser, served):
    """The README's group photo (docs/group.jpg, four faces): the page shows what /emotion says."""
    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = ROOT / "docs" / "group.jpg"
    url = served.url
    expected = httpx.post(f"{url}/emotion", files={"image": ("group.jpg", photo.read_bytes())}, timeout=120).json()
    assert len(expected) == 4
    requested_urls(browser)
    browser.get(f"{url}/ui")
    assert browser.title.startswith("Face emotion")
    legend = [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#legend li")]
    assert legend == list(EMOTIONS)

    browser.find_element(By.ID, "file").send_keys(str(photo))
    WebDriverWait(browser, 120).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                      in ("done", "error"))
    status = browser.find_element(By.ID, "status").text
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", status

    image = browser.find_element(By.ID, "annotated")
    assert image.is_displayed()
    size = browser.execute_script("const i = arguments[0]; return [i.complete, i.naturalWidth, i.naturalHeight];",
                                  image)
    with Image.open(photo) as original:
        assert size == [True, original.width, original.height]
    rows = browser.find_elements(By.CSS_SELECTOR, "#faces tbody tr")
    assert len(rows) == len(expected) and f"{len(expected)} faces" in status
    for row, face in zip(rows, expected):
        assert row.find_element(By.CSS_SELECTOR, "td.emotion").text.strip() == face["emotion"]
        assert len(row.find_elements(By.CSS_SELECTOR, "td.score .bar span")) == len(EMOTIONS)
    assert_only_the_service(requested_urls(browser), url)

    save_full_page(browser, ARTIFACTS / "ui.png")


def requested_urls(browser) -> list[str]:
    """The URL of every network request the browser started since the last call (Chrome's
    performance log, read and emptied), including ones that failed or were never answered."""
    urls = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            urls.append(message["params"].get("request", message["params"]).get("url", ""))
    return urls


def assert_only_the_service(urls: list[str], service_url: str) -> None:
    """Every request that goes over the network (not data:, blob: or the browser's own
    chrome:// pages) goes to the service's host and port."""
    service = urlsplit(service_url).netloc
    network = [u for u in urls if urlsplit(u).scheme in ("http", "https", "ws", "wss", "ftp")]
    elsewhere = [u for u in network if urlsplit(u).netloc != service]
    assert network and not elsewhere, elsewhere


def test_the_recorder_sees_a_request_to_another_host(browser):
    """The control for the tests below: a page that loads an image from another host (a
    documentation address, TEST-NET-1, that nothing answers) shows up in the record."""
    requested_urls(browser)
    browser.get("data:text/html,<img src='http://192.0.2.1/pixel.png'>")
    time.sleep(1)
    assert "http://192.0.2.1/pixel.png" in requested_urls(browser)


@pytest.mark.parametrize("path, ready, expected", [
    ("/ui/", "#legend li", "/ui/ui.js"),
    ("/", ".opblock-summary-path", "/docs.json"),  # Swagger UI has rendered the API's operations
], ids=["ui", "api-docs"])
def test_pages_contact_only_the_service(browser, served, path, ready, expected):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    requested_urls(browser)
    browser.get(served.url + path)
    WebDriverWait(browser, 60).until(lambda d: d.find_elements(By.CSS_SELECTOR, ready))
    time.sleep(2)  # what a page loads late (a tag manager loads asynchronously)
    urls = requested_urls(browser)
    assert served.url + expected in urls, urls
    assert_only_the_service(urls, served.url)
    if path == "/":
        paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
        assert "/emotion" in paths, paths


def save_full_page(browser, path):
    """A PNG of the whole page, below the window's fold too (Chrome DevTools protocol)."""
    import base64

    size = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot",
                                   {"format": "png", "captureBeyondViewport": True, "clip": clip})
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")


def test_a_bad_file_shows_the_error(browser, served, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    browser.get(f"{served.url}/ui")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    WebDriverWait(browser, 60).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                     == "error")
    assert "not a JPEG or PNG" in browser.find_element(By.ID, "status").text
    assert not browser.find_element(By.ID, "faces").is_displayed()


def test_a_clip_plays_annotated_with_a_timeline_per_person(browser, served, tmp_path):
    """The three-person clip (tests/clips.py): the annotated WebM plays in the page, and each
    person of /emotion/video's answer gets a timeline of the six scores."""
    import time

    import httpx
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.clips import three_people, write_clip

    path = tmp_path / "three.mp4"
    write_clip(three_people(30.0, 640, 360), path, fps=4)
    expected = httpx.post(f"{served.url}/emotion/video", files={"video": ("three.mp4", path.read_bytes())},
                          timeout=120).json()
    assert len(expected["tracks"]) == 3
    browser.get(f"{served.url}/ui")
    browser.find_element(By.ID, "file").send_keys(str(path))
    WebDriverWait(browser, 180).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-state")
                                      in ("done", "error"))
    status = browser.find_element(By.ID, "status").text
    assert browser.find_element(By.TAG_NAME, "body").get_attribute("data-state") == "done", status
    assert "3 people" in status

    video = browser.find_element(By.ID, "annotated-video")
    assert video.is_displayed() and video.get_attribute("src").startswith("blob:")
    WebDriverWait(browser, 60).until(lambda d: d.execute_script("return arguments[0].readyState", video) >= 2)
    state = browser.execute_script("const v = arguments[0]; return [v.error, v.videoWidth, v.videoHeight, v.duration]",
                                   video)
    assert state[0] is None and state[1:3] == [640, 360] and abs(state[3] - 30.0) < 0.6, state
    browser.execute_script("arguments[0].play()", video)
    time.sleep(1.5)
    assert browser.execute_script("return arguments[0].currentTime", video) > 0.3  # it plays

    timelines = browser.find_elements(By.CSS_SELECTOR, "#timelines .timeline")
    assert [int(t.get_attribute("data-track")) for t in timelines] == [t["track_id"] for t in expected["tracks"]]
    for box, track in zip(timelines, expected["tracks"]):
        lines = box.find_elements(By.CSS_SELECTOR, "polyline.score-line")
        assert len(lines) == len(EMOTIONS)
        assert all(len(line.get_attribute("points").split()) == track["frames_seen"] for line in lines)
        assert track["dominant_emotion"] in box.find_element(By.TAG_NAME, "h3").text
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(entry.startswith((served.url, "blob:")) for entry in loaded), loaded
    save_full_page(browser, ARTIFACTS / "ui-video.png")
