"""Headless Chromium signs in to the demo and sees the utilization chart draw every GPU."""

from __future__ import annotations

import os
import shutil
import time
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
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
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
    assert all(row.text.count("$") == 6 for row in teams)
    driver.save_screenshot(str(tmp_path / "fleet.png"))


def _downloaded(folder: Path, suffix: str) -> Path:
    """The file the browser saved (it writes *.crdownload until it is complete)."""
    for _ in range(300):
        done = [p for p in folder.glob(f"*{suffix}") if p.stat().st_size > 0]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} download in {folder}: {list(folder.iterdir())}")


def test_fleet_page_links_to_the_spend_report_and_its_downloads(
    demo: Demo, browser, tmp_path: Path
) -> None:
    import csv
    import io
    from decimal import Decimal

    import openpyxl
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    from app.reports.render import TOTAL

    driver = browser
    wait = WebDriverWait(driver, 60)
    driver.get(demo.url + "/login")
    driver.find_element(By.ID, "api_key").send_keys(demo.key)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.ID, "spend-report-link"))).click()
    assert "/reports/spend" in driver.current_url
    # Until the demo's bill has been priced, the report may be empty: reload until it is not.
    for _ in range(60):
        rows = driver.find_elements(By.CSS_SELECTOR, "#spend-report-table tbody tr")
        if len(rows) >= 4:
            break
        time.sleep(1)
        driver.refresh()
    assert len(rows) >= 4
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#spend-chart .main-svg")))
    traces = driver.execute_script("return document.getElementById('spend-chart').data.length")
    assert traces >= 4
    driver.save_screenshot(str(tmp_path / "report.png"))

    folder = tmp_path / "downloads"
    driver.find_element(By.ID, "download-csv").click()
    text = _downloaded(folder, ".csv").read_text()
    table = [line for line in text.splitlines() if line and not line.startswith("#")]
    records = list(csv.DictReader(io.StringIO("\n".join(table))))
    groups = [r for r in records if r["team"] not in ("", TOTAL)]
    total = next(r for r in records if r["team"] == TOTAL)
    assert len(groups) >= 4
    assert sum(Decimal(r["cost"]) for r in groups) == Decimal(total["cost"]) > 0

    driver.find_element(By.ID, "download-xlsx").click()
    book = openpyxl.load_workbook(_downloaded(folder, ".xlsx"))
    assert len(book.sheetnames) >= 2
