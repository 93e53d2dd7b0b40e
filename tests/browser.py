"""Headless Chromium for the browser tests (Debian's ``chromium`` and ``chromium-driver``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

T = TypeVar("T")


@contextmanager
def headless_chromium(profile: Path, window: str, *, console_log: bool = False) -> Iterator[Any]:
    """A headless Chromium driver with its own profile folder; quit afterwards.

    Args:
        profile: Folder for the browser profile.
        window: Window size, ``"W,H"``.
        console_log: Keep the page's console messages (``driver.get_log("browser")``).
    """
    assert Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists(), (
        "install Debian's chromium and chromium-driver (bash .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                f"--user-data-dir={profile}", f"--window-size={window}"):
        options.add_argument(arg)
    if console_log:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 60.0,
             poll: float = 0.2) -> T:
    """Poll ``predicate`` until it returns something true; that value (AssertionError on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
