"""/dashboard in headless Chromium against the real app under uvicorn: sign in, make a chat
turn through the API, and watch the totals and the live feed change without a reload;
an admin signed in with an API key sees spend by user; the event stream reconnects with
Last-Event-ID after a drop. Screenshots land in var/screenshots/."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from browser_support import SCREENSHOTS, chromium_or_skip
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from chatter.settings import Settings
from chatter.storage.models import User
from conftest import Actor, UserFactory, live_server

pytestmark = pytest.mark.filterwarnings("default::browser_support.BrowserTestSkipped")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    executable = chromium_or_skip()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture(scope="module")
async def server(settings: Settings) -> AsyncIterator[str]:
    async with live_server(settings) as url:
        yield url


@pytest.fixture(scope="module")
async def api(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def make_user(api: httpx.AsyncClient) -> UserFactory:
    """Accounts on the live server (the conftest's factory talks to an in-process app)."""

    async def _make(email: str | None = None, password: str = "correct horse battery") -> Actor:
        email = email or f"dash-{time.monotonic_ns()}@example.com"
        registered = await api.post(
            "/api/v1/auth/register", json={"email": email, "password": password}
        )
        assert registered.status_code == 201, registered.text
        login = await api.post("/api/v1/auth/login", json={"email": email, "password": password})
        token = login.json()["access_token"]
        return Actor(registered.json()["id"], email, password, {"Authorization": f"Bearer {token}"})

    return _make


class PageWatch:
    """A page and every error it reported (console errors, CSP violations, uncaught)."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("response", self._response)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.errors.append(f"HTTP {response.status}: {response.url}")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


async def open_dashboard(browser: Any, server: str, **context: Any) -> PageWatch:
    page_context = await browser.new_context(
        locale="en-US", timezone_id="UTC", viewport={"width": 1280, "height": 900}, **context
    )
    watch = PageWatch(await page_context.new_page())
    response = await watch.page.goto(f"{server}/dashboard")
    assert response is not None
    assert response.status == 200
    return watch


async def sign_in(watch: PageWatch, actor: Actor) -> None:
    page = watch.page
    await page.get_by_label("Email").fill(actor.email)
    await page.get_by_label("Password").fill(actor.password)
    await page.get_by_role("button", name="Sign in", exact=True).click()


async def chat(api: httpx.AsyncClient, actor: Actor, message: str) -> dict[str, Any]:
    response = await api.post("/api/v1/chat", json={"message": message}, headers=actor.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_chat_turn_shows_up_live_without_a_reload(
    browser: Any, server: str, api: httpx.AsyncClient, make_user: UserFactory
) -> None:
    from playwright.async_api import expect

    actor = await make_user()
    watch = await open_dashboard(browser, server)
    page = watch.page
    await sign_in(watch, actor)

    # A new user: zeros and the empty state, the stream connected.
    await expect(page.locator("#kpi-requests")).to_have_text("0")
    await expect(page.get_by_role("heading", name="No usage yet")).to_be_visible()
    await expect(page.locator("#connection")).to_have_text("Live")
    feed_before = await page.locator("#feed li").count()

    turn = await chat(api, actor, "Hello, dashboard!")
    finished = time.monotonic()
    execution = turn["execution"]

    await expect(page.locator("#kpi-requests")).to_have_text("1", timeout=5000)
    settled = time.monotonic() - finished
    await expect(page.locator("#feed li[data-type=usage_recorded]")).to_have_count(1)
    await expect(page.locator("#feed li[data-type=workflow_completed]")).to_have_count(1)
    assert await page.locator("#feed li").count() > feed_before
    total = f"{execution['total_tokens']:,}"
    for period in ("today", "7d", "30d"):
        cell = page.locator(f'[data-metric="total_tokens"][data-period="{period}"]')
        await expect(cell).to_have_text(total)
        executions = page.locator(f'[data-metric="executions"][data-period="{period}"]')
        await expect(executions).to_have_text("1")
    await expect(page.locator("#kpi-tokens")).to_have_text(total)
    await expect(page.get_by_role("heading", name="No usage yet")).to_be_hidden()
    call = turn["assistant_message"]
    model = f"{call['provider_used']} / {call['model_used']}"
    await expect(page.locator("#by-model tbody th")).to_have_text([model])
    await expect(page.locator("#by-workflow tbody th")).to_have_text([execution["workflow_name"]])
    await expect(page.locator("#conversations tbody button")).to_have_count(1)
    await expect(page.locator("#users")).to_be_hidden()  # not an admin

    # The conversation's figures open in place.
    await page.locator("#conversations tbody button").click()
    detail = page.locator("#conversation-detail")
    await expect(detail).to_be_visible()
    await expect(detail).to_contain_text(turn["conversation"]["id"])

    # The credential never went into the URL or localStorage.
    assert "chk_" not in page.url
    assert "token" not in page.url
    assert await page.evaluate("localStorage.length") == 0
    assert await page.evaluate("sessionStorage.length") == 1

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
    # Phone widths: everything reflows into the viewport, no sideways scrolling. 320 px too,
    # with margin: font metrics differ between machines (CI's fonts are wider than ours).
    for width in (390, 320):
        await page.set_viewport_size({"width": width, "height": 844})
        await assert_fits_the_viewport(page)
    await page.screenshot(path=str(SCREENSHOTS / "dashboard-phone.png"), full_page=True)
    assert watch.errors == []
    # Debounced by 250 ms; a generous bound for a shared 2-core machine.
    assert settled < 4, f"the page took {settled:.1f}s to show the turn"
    await page.context.close()


async def assert_fits_the_viewport(page: Any) -> None:
    """Polled: wait_for_function would `eval` its predicate in the page, which the page's CSP
    (rightly) forbids. On failure, names the elements whose content is wider than their box."""
    fits = "document.documentElement.scrollWidth <= window.innerWidth"
    for _ in range(150):  # up to 15 s: on a loaded CI machine the charts resize late
        if await page.evaluate(fits):
            return
        await asyncio.sleep(0.1)
    overflowing = await page.evaluate(OVERFLOWING)
    raise AssertionError(f"the page scrolls sideways at phone width: {overflowing}")


OVERFLOWING = """() => [...document.querySelectorAll('main *')]
  .filter((el) => el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1)
  .filter((el) => !el.closest('.table-wrap, pre, .feed'))
  .map((el) => `${el.tagName.toLowerCase()}#${el.id}.${el.className}`)"""


async def test_an_admin_with_an_api_key_sees_spend_by_user(
    browser: Any,
    server: str,
    api: httpx.AsyncClient,
    make_user: UserFactory,
    engine: AsyncEngine,
) -> None:
    from playwright.async_api import expect

    admin = await make_user()
    async with engine.begin() as connection:
        await connection.execute(update(User).where(User.id == admin.id).values(role="admin"))
    created = await api.post("/api/v1/auth/api-keys", json={"name": "dash"}, headers=admin.headers)
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    watch = await open_dashboard(browser, server)
    page = watch.page
    await page.get_by_label("API key").fill(key)
    await page.get_by_role("button", name="Use API key").click()
    await expect(page.locator("#who")).to_have_text(f"{admin.email} (admin)")
    await expect(page.locator("#connection")).to_have_text("Live")

    spender = await make_user()
    await chat(api, spender, "Spend something")
    users = page.locator("#users")
    await expect(users).to_be_visible()
    await expect(page.locator("#by-user tbody")).to_contain_text(spender.email, timeout=5000)
    await expect(page.locator("#feed")).to_contain_text("usage_recorded")
    assert watch.errors == []
    await page.context.close()


async def test_the_event_stream_resumes_with_last_event_id_after_a_drop(
    browser: Any, server: str, api: httpx.AsyncClient, make_user: UserFactory
) -> None:
    """The first stream is cut short after one event; the page reconnects by itself, sends
    that event's id as Last-Event-ID, and then shows a later turn live."""
    from playwright.async_api import expect

    actor = await make_user()
    resumed_with: list[str | None] = []
    resumed = asyncio.Event()
    calls = 0

    async def drop_first_stream(route: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            body = (
                "retry: 200\r\n\r\n"
                'id: 1\r\nevent: message_created\r\ndata: {"id": 1, "category": "chat", '
                '"type": "message_created", "created_at": "2026-01-01T00:00:00+00:00",\r\n'
                'data: "data": {"role": "user"}}\r\n\r\n'
            )
            await route.fulfill(status=200, content_type="text/event-stream", body=body)
            return
        resumed_with.append(await route.request.header_value("last-event-id"))
        resumed.set()
        await route.continue_()

    watch = await open_dashboard(browser, server)
    page = watch.page
    await page.route("**/api/v1/events?*", drop_first_stream)
    await page.route("**/api/v1/events", drop_first_stream)
    await sign_in(watch, actor)
    # The frame whose data spans two `data:` lines reached the feed.
    await expect(page.locator('#feed li[data-id="1"]')).to_contain_text("message_created")
    await expect(page.locator("#connection")).to_have_text("Live")
    async with asyncio.timeout(5):
        await resumed.wait()
    assert resumed_with[:1] == ["1"], "the page did not resume from the event it last saw"

    await chat(api, actor, "After the drop")
    await expect(page.locator("#kpi-requests")).to_have_text("1", timeout=5000)
    await expect(page.locator("#feed li[data-type=usage_recorded]")).to_have_count(1)
    assert watch.errors == []
    await page.context.close()
