"""A real browser for tests: Debian's chromium driven by Playwright (no browser download:
Playwright is pointed at the system's chromium). Install it with
`tests/infra/install_browser.sh`. Without one the browser tests skip, saying why, unless
REPROGRID_REQUIRE_BROWSER=1 (CI sets it) turns the skip into a failure."""

import contextlib
import os
import shutil

import pytest

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def executable() -> str | None:
    return next(filter(None, map(shutil.which, CANDIDATES)), None)


@contextlib.contextmanager
def browser_page():
    """A fresh page in a headless browser, or a skip with the reason."""
    path = executable()
    reason = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
    if path is None:
        reason = "no chromium on PATH (run tests/infra/install_browser.sh)"
    if reason:
        if os.environ.get("REPROGRID_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser test cannot run: {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser.new_page()
        finally:
            browser.close()
