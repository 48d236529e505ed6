"""Headless Chromium for page tests: open a file or URL, collect console errors, take a screenshot.

Usage (``tests/monitor`` is on ``sys.path`` for its own tests; a test elsewhere adds it, or conftest does):
``from browser import browser_missing, open_in_chromium``; skip with ``pytest.skip(browser_missing())`` when it
says what is missing. Uses Debian's ``chromium`` (``apt-get install chromium``), never a Playwright-downloaded build.
Every request that leaves the page's own origin (or, for a file, anything but ``file:``/``data:``/``blob:``) is
blocked and reported as an error, so a page that needs the network fails the check instead of hanging.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CHROMIUM_FALLBACK = "/usr/bin/chromium"
_LOCAL_SCHEMES = {"file", "data", "blob", "about"}
# Plotly draws after "load" (Plotly.newPlot is async); wait until every plot div holds its SVG.
_PLOTS_DRAWN = """() => {
  const plots = document.querySelectorAll('.plotly-graph-div');
  return Array.from(plots).every(p => p.querySelector('.main-svg') !== null);
}"""


def chromium_path() -> str | None:
    """The Chromium executable: ``chromium`` on PATH, else ``/usr/bin/chromium``; ``None`` when neither exists."""
    found = shutil.which("chromium")
    if found:
        return found
    return CHROMIUM_FALLBACK if Path(CHROMIUM_FALLBACK).exists() else None


def browser_missing() -> str | None:
    """What is missing to run a browser test (a skip reason), or ``None`` when Playwright and Chromium are there."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -e '.[dev]')"
    if chromium_path() is None:
        return "chromium not installed (apt-get install chromium)"
    return None


def open_in_chromium(
    target: Path | str,
    screenshot: Path,
    *,
    inspect: Callable[[Any], None] | None = None,
    timeout_s: float = 15.0,
    viewport: tuple[int, int] = (1280, 900),
) -> list[str]:
    """Open ``target`` (a file path or an ``http(s)://``/``file://`` URL) in headless Chromium, wait until the page
    has loaded and every plotly plot is drawn, call ``inspect(page)`` (a Playwright ``Page``) for the caller's own
    checks, save a full-page PNG to ``screenshot`` and return the console errors, page errors and blocked requests
    (empty: clean page)."""
    from playwright.sync_api import sync_playwright

    url = _url(target)
    page_origin = _origin(url)
    errors: list[str] = []
    executable = chromium_path() or CHROMIUM_FALLBACK
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"]
        )
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            page.set_default_timeout(timeout_s * 1000)

            def route(r: Any) -> None:
                request_url = r.request.url
                scheme = urlsplit(request_url).scheme
                if scheme in _LOCAL_SCHEMES or (page_origin is not None and _origin(request_url) == page_origin):
                    r.continue_()
                else:
                    errors.append(f"blocked network request: {request_url}")
                    r.abort()

            page.route("**/*", route)
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.goto(url, wait_until="load")
            page.wait_for_function(_PLOTS_DRAWN)
            if inspect is not None:
                inspect(page)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        finally:
            browser.close()
    return errors


def _url(target: Path | str) -> str:
    text = str(target)
    if urlsplit(text).scheme in {"http", "https", "file"}:
        return text
    return Path(text).resolve().as_uri()


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"}:
        return None
    return f"{parts.scheme}://{parts.netloc}"
