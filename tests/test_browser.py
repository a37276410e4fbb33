"""The web UI end to end, in a real headless Chromium driven by Playwright.

Needs estilo[web], playwright and Debian's chromium (.ci/run installs all three). Skipped where
they are missing, unless ESTILO_REQUIRE_BROWSER=1 (set by CI), which turns the skip into a
failure so CI cannot pass without running it. ESTILO_SCREENSHOT=path saves the page mid-run
(the README's screenshot).
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from estilo.image.io import to_pil
from estilo.web import Limits, serve

from .conftest import synthetic_content, synthetic_style

CHROMIUM = Path("/usr/bin/chromium")


def _missing() -> str | None:
    for module in ("gradio", "playwright"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed"
    return None if CHROMIUM.exists() else f"{CHROMIUM} is not installed"


if (reason := _missing()) is not None:
    if os.environ.get("ESTILO_REQUIRE_BROWSER") == "1":
        raise RuntimeError(f"the browser test cannot run: {reason}")
    pytest.skip(reason, allow_module_level=True)

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

# The server runs Gradio, FastAPI and pandas in this process: their deprecation notices and
# the sockets they leave to the garbage collector are not ours to fix, and turned into errors
# (as everywhere else in the suite) they would crash Gradio's event loop mid-test.
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    port = free_port()
    page, queue = serve("127.0.0.1", port, Limits(max_size=256, max_waiting=1), block=False)
    yield f"http://127.0.0.1:{port}/", queue
    queue.close()
    page.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("uploads")
    paths = {
        "content": folder / "photo.png",
        "style": folder / "painting.png",
        "broken": folder / "broken.png",
    }
    to_pil(synthetic_content(192, 256)).save(paths["content"])
    to_pil(synthetic_style(128, 128)).save(paths["style"])
    paths["broken"].write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a picture" * 20)
    return paths


def open_page(browser: Browser, url: str, requests: list[str]) -> Page:
    page = browser.new_context(accept_downloads=True).new_page()
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    expect(page.locator("#start")).to_be_visible(timeout=30_000)
    return page


def upload(page: Page, element: str, path: Path) -> None:
    """Replace a file box's upload, then wait until Gradio lists it (a link to the file)."""
    clear = page.locator(f"#{element} button[aria-label='Clear']")
    if clear.count():
        clear.first.click()
    page.locator(f"#{element} input[type=file]").set_input_files(str(path))
    expect(page.locator(f"#{element} a[href$='{path.name}']")).to_be_visible(timeout=15_000)


def prepare(page: Page, content: Path, style: Path, size: int, iterations: int) -> None:
    upload(page, "content", content)
    upload(page, "styles", style)
    set_number(page, "size", size)
    set_number(page, "iterations", iterations)


def set_number(page: Page, element: str, value: int) -> None:
    box = page.locator(f"#{element} input[type=number]")
    box.fill(str(value))
    box.press("Tab")


def test_stylize_in_the_browser_with_progress_errors_and_a_queue(
    server: tuple[str, Any], browser: Browser, images: dict[str, Path], tmp_path: Path
) -> None:
    url, queue = server
    requests: list[str] = []
    page = open_page(browser, url, requests)

    # A short run: progress appears, then the result, which downloads as a PNG.
    prepare(page, images["content"], images["style"], size=256, iterations=10)
    page.locator("#start").click()
    status = page.locator("#status")
    expect(status).to_contain_text(re.compile(r"Iteration \d+ of 10"), timeout=60_000)
    expect(page.locator("#live img")).to_be_visible(timeout=30_000)
    expect(status).to_contain_text("Done", timeout=120_000)
    expect(page.locator("#curve svg")).to_be_visible()
    link = page.locator("#files a[href$='estilo.png']")
    with page.expect_download() as download:
        link.click()
    saved = tmp_path / "result.png"
    download.value.save_as(saved)
    with Image.open(saved) as result:
        assert result.size == (256, 192)

    # A broken upload is answered in the page; the server carries on.
    upload(page, "content", images["broken"])
    page.locator("#start").click()
    expect(status).to_contain_text("Error: content image", timeout=30_000)

    # The queue: one run, one waiting (max_waiting=1), the third is told to come back later.
    # The first run uses the bundled samples, and is the README's screenshot mid-run.
    first = page
    first.locator("#samples").click()
    expect(first.locator("#content a[href$='tubingen.jpg']")).to_be_visible(timeout=15_000)
    expect(first.locator("#styles a[href$='starry_night.jpg']")).to_be_visible()
    set_number(first, "size", 192)
    set_number(first, "iterations", 2000)
    first.locator("#start").click()
    expect(status).to_contain_text(re.compile(r"Iteration [2-9]\d of 2000"), timeout=60_000)
    if shot := os.environ.get("ESTILO_SCREENSHOT"):
        first.screenshot(path=shot, full_page=True)
    second = open_page(browser, url, requests)
    prepare(second, images["content"], images["style"], size=64, iterations=2000)
    second.locator("#start").click()
    expect(second.locator("#status")).to_contain_text("Waiting in line: position 1", timeout=30_000)
    third = open_page(browser, url, requests)
    prepare(third, images["content"], images["style"], size=64, iterations=10)
    third.locator("#start").click()
    expect(third.locator("#status")).to_contain_text("busy", timeout=30_000)

    # Cancel keeps the best image so far; the waiting run then starts.
    first.locator("#cancel").click()
    expect(status).to_contain_text("Cancelled at iteration", timeout=30_000)
    expect(first.locator("#files a[href$='estilo.png']")).to_be_visible()
    expect(second.locator("#status")).to_contain_text("Iteration", timeout=60_000)

    # A run whose browser goes away is cancelled: the queue empties without finishing it.
    second.context.close()
    deadline = 30.0
    while not queue.idle and deadline > 0:
        first.wait_for_timeout(250)
        deadline -= 0.25
    assert queue.idle

    # Nothing left this machine: every request went to the local server.
    outside = {r for r in requests if not r.startswith((url, "data:", "blob:"))}
    assert requests and not outside, sorted(outside)
