"""The console in a real headless Chromium against a real master and a real agent.

The agent runs a realtime-paced test-pattern encode, so the job's progress bar has to move
while the test watches; the operator's actions go through the buttons and their confirmation
dialogs, and each one's effect is checked both on the page and through the API.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.common.exceptions import NoAlertPresentException, NoSuchElementException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.select import Select

from tests.browser.conftest import Browser
from tests.conftest import (
    OPERATOR_TOKEN,
    AgentProcess,
    MasterProcess,
    kill_workloads,
    master_env,
    start_agent,
    start_master,
    stop_process,
)
from tests.helpers import wait_until

PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Farm:
    master: MasterProcess
    agent: AgentProcess
    tmp: Path

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.master.session().request(method, self.master.url + path, timeout=10, **kwargs)
        assert reply.status_code < 300, reply.text
        return reply.json()

    def submit_realtime(self, seconds: int, name: str) -> str:
        spec = {"input": f"testsrc://?duration={seconds}&size=160x120&rate=10&realtime=1",
                "outputs": [{"url": f"file://{self.tmp / 'media'}/{name}.mp4", "preset": "h264-480p",
                             "encoder_preset": "ultrafast"}]}
        job_id: str = self.api("POST", "/api/v1/jobs", json=spec)["job"]["id"]
        return job_id

    def submit_short(self, name: str) -> str:
        spec = {"input": "testsrc://?duration=1&size=160x120&rate=10",
                "outputs": [{"url": f"file://{self.tmp / 'media'}/{name}.mp4", "preset": "h264-480p",
                             "encoder_preset": "ultrafast"}]}
        job_id: str = self.api("POST", "/api/v1/jobs", json=spec)["job"]["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = self.api("GET", f"/api/v1/jobs/{job_id}")["job"]
        return job

    def node(self) -> dict[str, Any]:
        [node] = self.api("GET", "/api/v1/nodes")["nodes"]
        return node  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    tmp = tmp_path_factory.mktemp("console")
    master = start_master(tmp, master_env(tmp))
    try:
        agent = start_agent(tmp, master, name="ops-w1")
    except BaseException:
        stop_process(master.proc)
        raise
    yield Farm(master, agent, tmp)
    stop_process(agent.proc, signal.SIGKILL)
    kill_workloads(tmp)
    stop_process(master.proc)


def find(driver: WebDriver, css: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, css)


def text_of(driver: WebDriver, css: str) -> str | None:
    """The element's text, or None while it is not (yet) on the page."""
    try:
        return find(driver, css).text
    except NoSuchElementException:
        return None


def log_in(browser: Browser, farm: Farm, token: str = OPERATOR_TOKEN) -> None:
    driver = browser.driver
    driver.get(farm.master.url + "/ui/login")
    find(driver, "#token").send_keys(token)
    find(driver, "#login").click()


def ensure_logged_in(browser: Browser, farm: Farm) -> None:
    if browser.driver.get_cookie("ffrtmp_console") is None:
        log_in(browser, farm)
        wait_until(lambda: browser.driver.current_url.endswith("/ui/jobs"), 10, "the jobs page")


def confirm(driver: WebDriver, expected: str) -> None:
    """Accept the confirmation dialog the button opened, after checking what it asks."""
    def alert() -> Any:
        try:
            return driver.switch_to.alert
        except NoAlertPresentException:
            return None
    dialog = wait_until(alert, 5, "a confirmation dialog")
    assert expected in dialog.text
    dialog.accept()


def dismiss(driver: WebDriver) -> bool:
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return False
    return True


def progress_of(driver: WebDriver, row: str) -> float | None:
    value = find(driver, f"{row} progress").get_attribute("value")
    return float(value) if value else None


def screenshot(driver: WebDriver, directory: Path, name: str) -> None:
    path = directory / f"console-{name}.png"
    assert driver.save_screenshot(str(path))
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 5000


def test_ui_without_a_session_redirects_to_the_login_form(browser: Browser, farm: Farm) -> None:
    browser.driver.delete_all_cookies()
    browser.driver.get(farm.master.url + "/ui/jobs")
    assert browser.driver.current_url == farm.master.url + "/ui/login"
    assert find(browser.driver, "#token").get_attribute("type") == "password"
    reply = requests.get(farm.master.url + "/ui/api/jobs", timeout=10)
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"
    # the API itself takes bearer tokens only: a console cookie is no credential there
    assert requests.get(farm.master.url + "/api/v1/jobs", timeout=10).status_code == 401


def test_a_wrong_token_is_refused(browser: Browser, farm: Farm) -> None:
    browser.driver.delete_all_cookies()
    log_in(browser, farm, token="op-" + "b" * 29)
    refusal = wait_until(lambda: text_of(browser.driver, "#login-error"), 10, "the login's refusal")
    assert refusal == "that is not an operator token"
    assert browser.driver.get_cookie("ffrtmp_console") is None
    browser.driver.get(farm.master.url + "/ui/nodes")
    assert browser.driver.current_url == farm.master.url + "/ui/login"


def test_log_in_watch_progress_move_and_cancel_through_the_button(
        browser: Browser, farm: Farm, screenshot_dir: Path) -> None:
    driver = browser.driver
    driver.delete_all_cookies()
    log_in(browser, farm)
    wait_until(lambda: driver.current_url == farm.master.url + "/ui/jobs", 10, "the jobs page")
    cookie = driver.get_cookie("ffrtmp_console")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert OPERATOR_TOKEN not in cookie["value"]

    short = [farm.submit_short(f"short{i}") for i in range(2)]
    for done in short:
        wait_until(lambda d=done: farm.job(d)["state"] == "succeeded", 60, "a short job to succeed")
    job_id = farm.submit_realtime(90, "watched")
    row = f'tr[data-job-id="{job_id}"]'
    wait_until(lambda: text_of(driver, f"{row} [data-state]") == "running", 45, "the job running on the page")
    first = wait_until(lambda: progress_of(driver, row), 30, "a first progress value")
    moved = wait_until(lambda: (p := progress_of(driver, row)) is not None and p > first and p, 30,
                       "the progress bar to move")
    assert 0 < first < moved < 100
    assert "fps" in (text_of(driver, f"{row} .ptext") or "")
    driver.refresh()  # the charts are drawn with the page
    captions = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "figure.chart figcaption")]
    # the watched job is running: nothing is queued now (a bucket's end may have seen it queued)
    assert re.fullmatch(r"queue depth \(queued\) · last hour · peak \d+, now 0", captions[0]), captions
    assert captions[1:] == ["finished per 5 min · last hour · peak 2, now 2"]
    for done in short:
        assert text_of(driver, f'tr[data-job-id="{done}"] [data-state]') == "succeeded"
        assert progress_of(driver, f'tr[data-job-id="{done}"]') == 100
    screenshot(driver, screenshot_dir, "jobs")

    find(driver, f'{row} a[href="/ui/jobs/{job_id}"]').click()
    wait_until(lambda: text_of(driver, "h1") == job_id, 10, "the job's page")
    assert '"input"' in (text_of(driver, "#spec") or "")
    assert "ops-w1" in (text_of(driver, "#attempts") or "")
    wait_until(lambda: text_of(driver, "dl.summary [data-state]") == "running", 10, "running on its page")
    screenshot(driver, screenshot_dir, "job")

    driver.get(farm.master.url + "/ui/nodes")
    wait_until(lambda: job_id in (text_of(driver, "#nodes") or ""), 10, "the job on its node")
    running = f'[data-running-job="{job_id}"]'
    before = wait_until(lambda: progress_of(driver, running), 10, "its progress on the nodes page")
    wait_until(lambda: (p := progress_of(driver, running)) is not None and p > before, 20,
               "the node's running job to move")
    screenshot(driver, screenshot_dir, "nodes")

    driver.get(farm.master.url + "/ui/jobs?state=running")
    find(driver, f'{row} [data-action="cancel"]').click()
    confirm(driver, f"Cancel job {job_id}?")
    wait_until(lambda: farm.job(job_id)["state"] == "canceled", 40, "the job canceled")
    # this page's poller reloads it once the job leaves the running list: a reload that began
    # while the next page loaded took the browser back here (a CI run timed out on this list)
    wait_until(lambda: text_of(driver, row) is None, 10, "the job gone from the running list")
    driver.get(farm.master.url + "/ui/jobs?state=canceled")
    wait_until(lambda: text_of(driver, f"{row} [data-state]") == "canceled", 10, "canceled on the page")
    assert find(driver, f'{row} [data-action="cancel"]').get_attribute("hidden") is not None
    assert find(driver, f'{row} [data-action="retry"]').is_displayed()


def test_drain_and_undrain_a_node_through_the_buttons(browser: Browser, farm: Farm) -> None:
    driver = browser.driver
    ensure_logged_in(browser, farm)
    node = farm.node()
    driver.get(farm.master.url + "/ui/nodes")
    row = f'tr[data-node-id="{node["id"]}"]'
    wait_until(lambda: text_of(driver, f"{row} [data-status]") == "online", 20, "the node online")

    find(driver, f'{row} [data-action="drain"]').click()
    wait_until(lambda: dismiss(driver), 5, "the drain confirmation")  # answered no: nothing changes
    assert farm.node()["draining"] is False
    assert text_of(driver, f"{row} [data-status]") == "online"

    find(driver, f'{row} [data-action="drain"]').click()
    confirm(driver, "Drain ops-w1?")
    wait_until(lambda: text_of(driver, f"{row} [data-status]") == "draining", 10, "draining on the page")
    assert farm.node()["draining"] is True
    assert find(driver, f'{row} [data-action="undrain"]').is_displayed()

    find(driver, f'{row} [data-action="undrain"]').click()
    confirm(driver, "Undrain ops-w1?")
    wait_until(lambda: text_of(driver, f"{row} [data-status]") == "online", 10, "online again")
    assert farm.node()["draining"] is False


def test_the_filter_form_lists_one_state(browser: Browser, farm: Farm) -> None:
    driver = browser.driver
    ensure_logged_in(browser, farm)
    driver.get(farm.master.url + "/ui/jobs")
    Select(find(driver, "#filter-state")).select_by_value("canceled")
    Select(find(driver, "#filter-node")).select_by_visible_text("ops-w1")
    find(driver, "#apply-filters").click()
    wait_until(lambda: "state=canceled" in driver.current_url, 10, "the filtered page")
    cells = "tr[data-job-id] [data-state]"
    states = wait_until(lambda: [e.text for e in driver.find_elements(By.CSS_SELECTOR, cells)], 10,
                        "the filtered jobs")
    assert states == ["canceled"]
    # the page's own polls carry its filters, "any" queue included, and are answered
    wait_until(lambda: int(find(driver, "body").get_attribute("data-polled") or 0) >= 2, 10,
               "two polls of the filtered list")
    assert find(driver, "#flash").get_attribute("hidden") is not None


def test_the_token_never_appears_in_a_url_the_browser_visited(browser: Browser, farm: Farm) -> None:
    ensure_logged_in(browser, farm)
    urls = browser.collect_urls()
    assert any("/ui/api/jobs" in u for u in urls)  # the log does see the pages' polling
    assert any(u.endswith("/ui/login") for u in urls)
    assert [u for u in urls if OPERATOR_TOKEN in u or "op-" + "b" * 29 in u] == []
    assert all(OPERATOR_TOKEN not in c["value"] for c in browser.driver.get_cookies())
    errors = [e for e in browser.driver.get_log("browser") if e["level"] == "SEVERE"
              and "favicon" not in e["message"] and "401" not in e["message"]]
    assert errors == []
