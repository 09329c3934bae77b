"""A real headless Chromium for the browser tests, driven through selenium.

The browser and its driver come from Debian (`chromium`, `chromium-driver`; `make test` installs
them) and are taken from PATH: the driver's path is passed to selenium, so Selenium Manager never
runs and nothing is downloaded. A machine that cannot have them (no root) sets BNBENCH_NO_BROWSER=1:
the browser tests are then skipped, with that reason in pytest's summary. Otherwise a missing or
broken browser fails them with one line saying so: they are never skipped in silence.
"""
from __future__ import annotations

import os
import shutil

import pytest

OPT_OUT = "BNBENCH_NO_BROWSER"
PAGE_WIDTH = 1400  # the page width the report is laid out for
HINT = f"install Debian's chromium and chromium-driver (make test does), or set {OPT_OUT}=1 to skip"

# Every text run of the page, shadow DOM included (TensorBoard's Polymer dashboards keep theirs there).
DEEP_TEXT_JS = """
const out = [];
function walk(n) {
  if (n.nodeType === Node.TEXT_NODE) { const t = n.textContent.trim(); if (t) out.push(t); return; }
  if (n.shadowRoot) walk(n.shadowRoot);
  for (const c of n.childNodes) walk(c);
}
walk(document.body);
return out;
"""


def start_chromium(height: int = 1000):
    """A headless Chromium PAGE_WIDTH pixels wide that keeps the browser console log."""
    if os.environ.get(OPT_OUT, "") not in ("", "0"):
        pytest.skip(f"browser tests opted out ({OPT_OUT}={os.environ[OPT_OUT]})")
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium_missing = True
    else:
        selenium_missing = False
    if selenium_missing:
        pytest.fail(f"browser tests: selenium is not installed (pip install -e '.[test]'); {HINT}", pytrace=False)
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p)
        pytest.fail(f"browser tests: {missing} not found on PATH; {HINT}", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    # --no-sandbox: Chromium's sandbox cannot start as root (CI containers); these pages are our own.
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={PAGE_WIDTH},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=Service(executable_path=driver), options=options)
    except WebDriverException as e:
        why = (e.msg or str(e)).strip().splitlines()[0].split("; For documentation")[0]
    pytest.fail(f"browser tests: Chromium would not start ({why}); {HINT}", pytrace=False)


def full_page_screenshot(driver, path) -> None:
    """The whole page, not just the window: the window is made as tall as the page first."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(PAGE_WIDTH, min(int(height) + 100, 16000))
    driver.save_screenshot(str(path))
