"""Headless Chromium signs in to the demo and sees the utilization chart draw every GPU."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Demo

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[object]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        message = (
            "Chromium leg skipped: install chromium and chromium-driver (scripts/system-deps.sh)"
        )
        if os.environ.get("GPULEDGER_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_and_chart(demo: Demo, browser, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    wait = WebDriverWait(driver, 60)
    driver.get(demo.url + "/")
    assert "/login" in driver.current_url
    driver.find_element(By.ID, "api_key").send_keys("gplk_wrong")
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    alert = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "[role=alert]")))
    assert "not valid" in alert.text

    driver.find_element(By.ID, "api_key").send_keys(demo.key)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#utilization-chart .main-svg")))
    # Reload until the simulated fleet has reported (the first page may predate it).
    traces = 0
    for _ in range(30):
        traces = driver.execute_script(
            "return document.getElementById('utilization-chart').data.length"
        )
        if traces >= 12:
            break
        driver.refresh()
        wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#utilization-chart .main-svg"))
        )
    assert traces >= 12
    points = driver.execute_script(
        "return document.getElementById('utilization-chart').data.map(t => t.x.length)"
    )
    assert min(points) > 1
    rows = driver.find_elements(By.CSS_SELECTOR, "#gpu-table tbody tr")
    assert len(rows) >= 12
    # Spend by team: the demo's four teams, each with a dollar figure.
    teams = driver.find_elements(By.CSS_SELECTOR, "#spend-table tbody tr")
    for _ in range(30):
        if len(teams) >= 4:
            break
        driver.refresh()
        teams = wait.until(
            ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#spend-table tbody tr"))
        )
    assert len(teams) >= 4
    assert all(row.text.count("$") == 5 for row in teams)
    driver.save_screenshot(str(tmp_path / "fleet.png"))
