"""A real headless Chromium (Debian's, through its own chromedriver) against a real master.

Selenium is pointed at the system's binaries, so Selenium Manager never runs (and could not
download anything: SE_OFFLINE is set too). Chromium runs without its sandbox because CI runs
the suite as root. Every request the browser makes is kept from its performance log, for the
test that the token never appears in a URL.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass
class Browser:
    driver: webdriver.Chrome
    urls: list[str] = field(default_factory=list)

    def collect_urls(self) -> list[str]:
        """Every URL the browser requested or navigated to so far (the performance log)."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            params = message.get("params", {})
            if message.get("method") == "Network.requestWillBeSent":
                self.urls += [params["request"]["url"], params.get("documentURL", "")]
            elif message.get("method") in ("Page.frameNavigated", "Page.navigatedWithinDocument"):
                self.urls.append(params.get("frame", {}).get("url") or params.get("url", ""))
        return self.urls


def chrome_options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,860", "--lang=en-US", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return options


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if shutil.which(path) is None:
            pytest.fail(f"{path} is required (Debian: chromium chromium-driver); "
                        "tools/bootstrap.sh --test installs them")
    os.environ["SE_OFFLINE"] = "true"
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(self: object, args: list[str]) -> dict[str, str]:
        raise AssertionError(f"Selenium Manager was asked for binaries: {args}")

    saved = SeleniumManager.binary_paths
    SeleniumManager.binary_paths = refuse  # type: ignore[method-assign]
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=chrome_options())
    finally:
        SeleniumManager.binary_paths = saved  # type: ignore[method-assign]
    driver.set_page_load_timeout(30)
    try:
        yield Browser(driver)
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages' screenshots go: FFRTMP_SCREENSHOT_DIR (tools/console_screenshots.sh
    sets docs/img), else a temporary directory, so every run takes and checks them."""
    chosen = os.environ.get("FFRTMP_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path
