"""The console in headless Debian chromium (Playwright, the system's browser): login,
acknowledging and resetting an alarm, a badge borrowing showing in the register, the
live view updating without a reload, and the language switch."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.console import PASSWORD, World, borrow, build, copy_of, feed
from tracker.config import WebConfig
from tracker.store import models as m
from tracker.store.audit import verify

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.timeout(120)
try:
    import playwright.sync_api as sync_api
except ImportError as exc:  # a missing test dependency fails, it does not skip
    raise ImportError(f"{exc}: install the project's 'test' extra (make install)") from None
expect = sync_api.expect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.02)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    w = build(tmp_path_factory.mktemp("console") / "template.db")
    yield w
    w.store.engine.dispose()


@pytest.fixture
def world(template: World, tmp_path: Path) -> Iterator[World]:
    w = copy_of(template, tmp_path / "console.db")
    yield w
    w.store.engine.dispose()


@pytest.fixture
def console(world: World, tmp_path: Path) -> Iterator[str]:
    from tracker.web.server import WebServer

    cfg = WebConfig(port=free_port(), secret_key_file=tmp_path / "console.key")
    server = WebServer(cfg, world.store, world.clock)
    server.start()
    try:
        wait_for(lambda: server.started, 10, "the console to listen")
        yield f"http://127.0.0.1:{cfg.port}"
    finally:
        server.stop()
        assert not server.thread.is_alive()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make install does)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield b
        finally:
            b.close()


def page_for(browser: Any, locale: str = "zh-CN") -> Any:
    return browser.new_context(locale=locale).new_page()


def log_in(page: Any, url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-submit")


def test_login_and_logout(browser: Any, console: str) -> None:
    page = page_for(browser)
    log_in(page, console, "sec", "not the password")
    expect(page.locator("#login-error")).to_have_text("用户名或密码错误")
    log_in(page, console, "sec")
    expect(page).to_have_url(console + "/live")
    expect(page.locator("section.room h2")).to_contain_text("hq/r1")
    page.click("#logout")
    expect(page).to_have_url(console + "/login")
    page.goto(console + "/register")
    expect(page).to_have_url(console + "/login")


def test_acknowledge_then_reset(browser: Any, console: str, world: World) -> None:
    page = page_for(browser, "en-US")
    log_in(page, console, "sec")
    page.goto(console + "/alarms")
    row = page.locator(f'tr[data-alarm="{world.alarm_id}"]')
    expect(row.locator(".state")).to_have_text("active")
    row.locator("button.ack").click()
    expect(row.locator(".state")).to_have_text("acknowledged")
    row.locator("input.reason").fill("door checked, closed")
    row.locator("button.reset").click()
    expect(page.locator(f'tr[data-alarm="{world.alarm_id}"]')).to_have_count(0)
    page.goto(console + "/alarms?all=true")
    expect(row.locator(".state")).to_have_text("reset")
    with world.store.readers() as s:
        a = s.query(m.Alarm).filter_by(alarm_id=world.alarm_id).one()
        assert (a.state, a.ended_by, a.reason) == ("reset", "p-sec", "door checked, closed")
        assert verify(s).ok


def test_a_badge_borrowing_shows_in_the_register(browser: Any, console: str, world: World) -> None:
    page = page_for(browser)
    log_in(page, console, "sec")
    page.goto(console + "/register")
    row = page.locator(f'tr[data-doc="{world.docs["JM-002"]}"]')
    expect(row.locator(".status")).to_have_text("在柜")
    borrow(world)  # signed controller events through the tracker's ingest
    page.reload()
    expect(row.locator(".status")).to_have_text("借出")
    expect(row.locator(".holder")).to_have_text("p-eve")
    page.goto(console + "/register?holder=p-eve")
    expect(page.locator("tr[data-doc]")).to_have_count(1)


def test_live_view_updates_without_reload(browser: Any, console: str, world: World) -> None:
    page = page_for(browser, "en-US")
    log_in(page, console, "sec")
    expect(page).to_have_url(console + "/live")
    room = page.locator('section.room[data-room="hq/r1"]')
    expect(room.locator(".alarms")).not_to_contain_text("panic")
    feed(
        world,
        [
            (
                "alarm.raised",
                {
                    "alarm_id": "ctl-1:1:9",
                    "cause": "panic",
                    "point": "door",
                    "severity": "critical",
                },
            )
        ],
    )
    expect(room.locator(".alarms")).to_contain_text("panic", timeout=5000)
    # a state snapshot as the ingest keeps it from P/state: the door opens, c1 unlocks
    state = {
        "points": {
            "door": "open",
            "window:w1": "closed",
            "lock:c1": "unlocked",
            "smoke:s1": "inactive",
        },
        "armed": True,
        "siren": False,
        "alarms": [],
    }
    with world.store.sessions.begin() as s:
        s.merge(
            m.RoomLive(
                room_id=1,
                status="online",
                state=json.dumps(state),
                state_ts="2026-12-03T02:00:09.000Z",
            )
        )
    expect(room).to_contain_text("door=open", timeout=5000)
    expect(room).to_contain_text("c1=unlocked")
    expect(room).to_contain_text("ctl-1: online")
    expect(room).to_contain_text("Armed: true")


def test_the_alarm_console_follows_new_alarms(browser: Any, console: str, world: World) -> None:
    page = page_for(browser, "en-US")
    log_in(page, console, "sec")
    page.goto(console + "/alarms")
    expect(page.locator("tr[data-alarm]")).to_have_count(1)
    feed(world, [("alarm.raised", {"alarm_id": "ctl-1:1:7", "cause": "tamper",
                                   "point": "door", "severity": "critical"})])  # fmt: skip
    expect(page.locator('tr[data-alarm="ctl-1:1:7"] .state')).to_have_text("active", timeout=5000)
    expect(page.locator("tr[data-alarm]")).to_have_count(2)


def test_language_switch(browser: Any, console: str) -> None:
    page = page_for(browser, "zh-CN")
    page.goto(console + "/login")
    expect(page.locator("h1")).to_have_text("登录")
    page.click("#lang-switch")
    expect(page.locator("h1")).to_have_text("Log in")
    log_in(page, console, "appr")
    expect(page.locator("h1")).to_have_text("Document register")
    page.click("#lang-switch")
    expect(page.locator("h1")).to_have_text("登记簿")
    english = page_for(browser, "en-GB")
    english.goto(console + "/login")
    expect(english.locator("h1")).to_have_text("Log in")
