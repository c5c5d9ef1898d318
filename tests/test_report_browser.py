"""The seeds run's report opened in headless Chromium: charts drawn, a document found and shown, no console errors.

Debian's `chromium` and `chromium-driver` (installed by `.ci/run`) are driven through Selenium
with both paths given, so Selenium Manager never downloads a browser or a driver.
"""

from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run

CHROMIUM = os.environ.get("PIPELINE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("PIPELINE_CHROMEDRIVER", "/usr/bin/chromedriver")
SEED1, SEED1_ID = "001_d07a408cf5f191c8.txt", "a92c86f19c262270"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A headless Chromium that logs the page's console (its scratch folders in a temporary folder of the tests)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.skip(f"Chromium not installed here ({', '.join(missing)} missing; .ci/run installs it)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1300,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    scratch = {**os.environ, "TMPDIR": str(tmp_path_factory.mktemp("chromium"))}  # not one more folder in /tmp a run
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER, env=scratch), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_seeds_report_renders_in_chromium(seeds_run: Run, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = seeds_run.output / "report" / "default" / "index.html"
    browser.get(page.resolve().as_uri())
    assert browser.title == "scraped-news: what was removed and why"

    charts = browser.find_elements(By.CSS_SELECTOR, "svg.chart")
    assert len(charts) == 3 and all(chart.is_displayed() for chart in charts)
    bars = browser.find_elements(By.CSS_SELECTOR, "#chart-rules rect")
    removals = seeds_run.table("removals")
    assert len(bars) == len({(row["stage"], row["rule"]) for row in removals}) >= 11
    assert all(bar.size["width"] > 0 for bar in bars)
    widths = [bar.size["width"] for bar in bars]
    assert widths == sorted(widths, reverse=True)  # most frequent rule first, drawn longest

    views = browser.find_elements(By.CSS_SELECTOR, "article.doc")
    assert len(views) == 5 and not any(view.is_displayed() for view in views)
    search = browser.find_element(By.ID, "q")
    search.send_keys("003_")
    listed = [item for item in browser.find_elements(By.CSS_SELECTOR, "#doclist li") if item.is_displayed()]
    assert [item.get_attribute("data-source") for item in listed] == ["003_902b9772195b7b91.txt"]
    search.clear()
    search.send_keys(SEED1_ID, Keys.ENTER)

    view = browser.find_element(By.CSS_SELECTOR, f'article.doc[data-id="{SEED1_ID}"]')
    assert browser.execute_script("return location.hash") == f"#{view.get_attribute('id')}"
    assert view.is_displayed() and SEED1 in view.find_element(By.TAG_NAME, "h3").text
    removed = view.find_elements(By.CSS_SELECTOR, "pre.text del")
    # every removal of seeds/001 placed on its text
    assert len(removed) == sum(row["source"] == SEED1 for row in removals) >= 45
    for span in removed:
        assert "line-through" in span.value_of_css_property("text-decoration-line")
        assert span.value_of_css_property("background-color") not in ("rgba(0, 0, 0, 0)", "transparent")
        assert span.get_attribute("title")
    duplicate = view.find_element(By.CSS_SELECTOR, "del.k-duplicate")
    assert duplicate.text == "Pakistan in no rush to recognise Taliban government in Afghanistan, say officials"
    assert f"of sentence {SEED1_ID}:0" in str(duplicate.get_attribute("title"))
    rule = view.find_element(By.CSS_SELECTOR, "del.k-rule")
    assert rule.value_of_css_property("color") != duplicate.value_of_css_property("color")  # coloured by reason

    errors = [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert not errors

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1300, min(int(height) + 140, 12000))
    screenshot = tmp_path / "report_seeds.png"
    assert browser.save_screenshot(str(screenshot))
    width, shot_height = _png_size(screenshot)
    assert width >= 1000 and shot_height >= 2000 and screenshot.stat().st_size > 100_000
