"""What a person does in the console, as Playwright steps with explicit waits."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

UI_TIMEOUT_MS = 15_000
RUN_TIMEOUT_MS = 30_000


def expect_state(page: "Page", selector: str, state: str, timeout: int = UI_TIMEOUT_MS) -> None:
    """Wait until the element's data-state is `state`."""
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_attribute("data-state", state, timeout=timeout)


def log_in(page: "Page", username: str, password: str) -> None:
    """Open `/`, get sent to the login form, log in, and wait for the connection."""
    page.goto("/")
    page.wait_for_url("**/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    expect_state(page, "#status", "connected")


def choose_tool(page: "Page", name: str) -> None:
    """Click a tool in the list and wait for its form."""
    page.click(f"#tool-list button[data-tool={name}]")
    page.wait_for_selector("#tool-form:not([hidden])")


def run_tool(page: "Page", name: str, **arguments: str) -> None:
    """Fill the tool's form and press Run."""
    choose_tool(page, name)
    for field, value in arguments.items():
        page.fill(f"#arg-{field}", value)
    page.click("#run")


def wait_for_first_progress(page: "Page") -> None:
    """Until the running call has shown a count (its first progress notification)."""
    expect_state(page, "#run-state", "running")
    page.wait_for_function(
        "document.getElementById('progress-count').textContent !== ''", timeout=UI_TIMEOUT_MS
    )
