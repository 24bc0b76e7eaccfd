"""The browser console in headless Chromium: login, runs with a live bar, cancel, history,
notices, the frame log, reconnection after a server restart, and a phone-sized layout."""

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.console.conftest import DESKTOP, console_server_env, open_page
from tests.console.steps import (
    RUN_TIMEOUT_MS,
    UI_TIMEOUT_MS,
    expect_state,
    log_in,
    run_tool,
    wait_for_first_progress,
)
from tests.e2e.conftest import ALICE, Accounts
from tests.e2e.support import Deployment, ServerProcess, free_port, start_server_on_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

PHONE = {"width": 390, "height": 844}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Let a test see a redirect instead of following it."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        """Never follow."""
        return None


def no_horizontal_overflow(page: "Page") -> tuple[int, int]:
    """(document width, viewport width)."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    return int(widths[0]), int(widths[1])


def test_anonymous_visitor_is_sent_to_the_login_page(console_server: ServerProcess) -> None:
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener.open(f"{console_server.http_url}/", timeout=10)
    assert caught.value.code == 302
    assert caught.value.headers["Location"] == "/login/?next=/"


def test_wrong_password_stays_on_the_login_page(page: "Page") -> None:
    page.goto("/login/")
    page.fill("#id_username", ALICE)
    page.fill("#id_password", "not-the-password")
    page.click("button[type=submit]")
    page.wait_for_selector("p.error[role=alert]")
    assert page.url.endswith("/login/")


def test_run_to_100_percent_cancel_a_second_run_and_see_both_in_history(
    page: "Page", accounts: Accounts, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    log_in(page, ALICE, accounts.alice_password)
    for name in ("add", "echo", "sleep", "process_batch", "process_images"):
        expect(page.locator(f"#tool-list button[data-tool={name}]")).to_be_visible()

    # The form comes from the input schema: count is required, item_ms has its default.
    page.click("#tool-list button[data-tool=process_batch]")
    assert page.get_attribute("#arg-count", "required") is not None
    assert page.input_value("#arg-item_ms") == "5"
    assert page.get_attribute("#arg-count", "min") == "1"

    run_tool(page, "process_batch", count="400", item_ms="4")
    wait_for_first_progress(page)
    page.wait_for_function(  # a picture of the bar on its way, for the docs
        "parseInt(document.getElementById('progress-percent').textContent) >= 40",
        timeout=RUN_TIMEOUT_MS,
    )
    page.screenshot(path=str(artifacts / "console-running.png"))
    expect_state(page, "#run-state", "succeeded", RUN_TIMEOUT_MS)
    expect(page.locator("#progress-percent")).to_have_text("100 %")
    expect(page.locator("#progress")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("#progress-count")).to_have_text("400 / 400")
    expect(page.locator("#progress-rate")).to_contain_text("items/s")
    expect(page.locator("#result")).to_contain_text("processed  400")
    page.screenshot(path=str(artifacts / "console-run-done.png"))

    run_tool(page, "process_batch", count="5000", item_ms="5")
    wait_for_first_progress(page)
    page.click("#cancel")
    expect_state(page, "#run-state", "cancelled")
    expect(page.locator("#frames li[data-direction=sent]").last).to_contain_text(
        "notifications/cancelled"
    )

    rows = page.locator("#runs tbody tr")
    expect(rows.nth(0)).to_have_attribute("data-status", "cancelled", timeout=UI_TIMEOUT_MS)
    expect(rows.nth(1)).to_have_attribute("data-status", "succeeded", timeout=UI_TIMEOUT_MS)
    for index in (0, 1):
        expect(rows.nth(index).locator("td.tool")).to_have_text("process_batch")
    run_id = rows.nth(0).get_attribute("data-run-id")
    detail_link = rows.nth(0).locator("a", has_text="details")
    expect(detail_link).to_have_attribute("href", f"/api/runs/{run_id}/")
    errors_link = rows.nth(0).locator("a", has_text="errors.json")
    expect(errors_link).to_have_attribute("href", f"/api/runs/{run_id}/errors.json")
    detail = page.request.get(f"/api/runs/{run_id}/")  # the session cookie, as the link would
    assert detail.ok, detail.status
    assert detail.json()["status"] == "cancelled"
    assert page.request.get(f"/api/runs/{run_id}/errors.json").json() == []
    page.screenshot(path=str(artifacts / "console-desktop.png"), full_page=True)


def test_notices_and_the_frame_log(page: "Page", accounts: Accounts) -> None:
    from playwright.sync_api import expect

    log_in(page, ALICE, accounts.alice_password)
    page.select_option("#log-level", "debug")
    expect(page.locator("#frames li[data-direction=sent]").last).to_contain_text('"level":"debug"')
    run_tool(page, "echo", text="hello console")
    expect_state(page, "#run-state", "succeeded")
    expect(page.locator("#result")).to_contain_text("hello console")
    notice = page.locator("#notices li").first
    expect(notice).to_contain_text("echoing 13 characters")
    expect(notice.locator(".badge")).to_have_text("debug")
    sent = page.locator("#frames li[data-direction=sent]")
    received = page.locator("#frames li[data-direction=received]")
    expect(sent.first).to_contain_text('"method":"initialize"')
    expect(received.last).to_contain_text("hello console")
    frames = [json.loads(text) for text in sent.locator("code").all_text_contents()]
    call = next(frame for frame in frames if frame.get("method") == "tools/call")
    assert call["params"]["arguments"] == {"text": "hello console"}
    assert call["params"]["_meta"]["progressToken"] == call["id"]


def test_reconnects_by_itself_after_a_server_restart(
    browser: "Browser", deployment: Deployment, accounts: Accounts
) -> None:
    from playwright.sync_api import expect

    port = free_port()
    first = start_server_on_port(deployment, port, console_server_env(port))
    second = None
    try:
        with open_page(browser, first.http_url, viewport=DESKTOP) as page:
            log_in(page, ALICE, accounts.alice_password)
            run_tool(page, "sleep", seconds="60")
            wait_for_first_progress(page)
            first.stop()
            expect_state(page, "#run-state", "interrupted")
            expect_state(page, "#status", "reconnecting")
            second = start_server_on_port(deployment, port, console_server_env(port))
            expect_state(page, "#status", "connected", RUN_TIMEOUT_MS)
            expect(page.locator("#run")).to_be_enabled()
            expect(page.locator("#run-state")).to_contain_text("Interrupted by the disconnect")
            run_tool(page, "add", a="2", b="3")
            expect_state(page, "#run-state", "succeeded")
            expect(page.locator("#result")).to_contain_text("result  5")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_phone_layout_has_no_horizontal_overflow(
    browser: "Browser", console_server: ServerProcess, accounts: Accounts, artifacts: Path
) -> None:
    from playwright.sync_api import expect

    phone = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    with open_page(browser, console_server.http_url, **phone) as page:
        page.goto("/login/")
        width, viewport = no_horizontal_overflow(page)
        assert width <= viewport, (width, viewport)
        log_in(page, ALICE, accounts.alice_password)
        run_tool(page, "process_batch", count="100", item_ms="1")
        expect_state(page, "#run-state", "succeeded", RUN_TIMEOUT_MS)
        expect(page.locator("#runs tbody tr[data-run-id]").first).to_be_visible()
        width, viewport = no_horizontal_overflow(page)
        assert viewport == PHONE["width"]
        assert width <= viewport, (width, viewport)
        for selector in ("#tool-list", "#tool-form", "#progress", "#runs", "#frames"):
            box = page.locator(selector).bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0 and box["x"] + box["width"] <= viewport, (selector, box)
        page.evaluate("document.querySelector('.run').scrollIntoView()")
        page.screenshot(path=str(artifacts / "console-phone.png"))
        page.screenshot(path=str(artifacts / "console-phone-full.png"), full_page=True)
