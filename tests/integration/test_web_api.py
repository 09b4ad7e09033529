"""The console's JSON API for every role, allowed and denied, on a SQLite file of the
test's own: sessions, CSRF, login limits, audited logins and denials, and the audit
chain still verifying after all of it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.browser.console import (
    ACCOUNTS,
    PASSWORD,
    World,
    borrow,
    build,
    copy_of,
    csrf,
    login,
)
from tracker.store import models as m
from tracker.store.audit import verify
from tracker.web import WebSettings, create_app
from tracker.web.accounts import Limits

pytestmark = [pytest.mark.timeout(120)]


class Broker:
    def __init__(self, state: str) -> None:
        self.state = state

    def broker_state(self) -> str:
        return self.state


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


def app_of(world: World, **kw: Any) -> Any:
    settings = WebSettings(secret_key=b"s" * 32, limits=kw.pop("limits", Limits()))
    return create_app(world.store, world.clock, settings=settings, **kw)


@pytest.fixture
def app(world: World) -> Any:
    return app_of(world, live=Broker("connected"))


def as_user(app: Any, username: str) -> TestClient:
    c = TestClient(app)
    r = login(c, username)
    assert r.status_code == 303, r.text
    return c


def logins(world: World, outcome: str | None = None) -> list[m.Login]:
    with world.store.readers() as s:
        stmt = select(m.Login).order_by(m.Login.id)
        if outcome:
            stmt = stmt.where(m.Login.outcome == outcome)
        return list(s.scalars(stmt))


def chain_ok(world: World) -> None:
    with world.store.readers() as s:
        v = verify(s)
    assert v.ok, v


# -- who may read what ------------------------------------------------------------------

READS = [
    "/api/rooms",
    "/api/alarms",
    "/api/documents",
    "/api/loans",
    "/api/people",
    "/api/audit/verify",
    "/api/me",
    "/openapi.json",
    "/docs",
]
#: path -> roles allowed (the rest: 403)
ALLOWED = {
    "/api/rooms": {"secretary", "dept-head", "secrecy-office"},
    "/api/alarms": {"secretary", "dept-head", "secrecy-office"},
    "/api/documents": {"secretary", "approver", "dept-head", "secrecy-office", "borrower"},
    "/api/loans": {"secretary", "approver", "dept-head", "secrecy-office", "borrower"},
    "/api/people": {"secretary", "dept-head", "secrecy-office"},
    "/api/audit/verify": {"secrecy-office"},
    "/api/me": {"secretary", "approver", "dept-head", "secrecy-office", "borrower"},
    "/openapi.json": {"secretary", "approver", "dept-head", "secrecy-office", "borrower"},
    "/docs": {"secretary", "approver", "dept-head", "secrecy-office", "borrower"},
}
CASES = [(u, p) for u in ACCOUNTS if u != "eve" for p in READS]


@pytest.mark.parametrize(("username", "path"), CASES)
def test_reads_per_role(app: Any, world: World, username: str, path: str) -> None:
    c = as_user(app, username)
    role = ACCOUNTS[username][0]
    before = len(logins(world, "denied"))
    r = c.get(path)
    if role in ALLOWED[path]:
        assert r.status_code == 200, r.text
        assert len(logins(world, "denied")) == before
    else:
        assert r.status_code == 403, r.text
        denied = logins(world, "denied")
        assert len(denied) == before + 1
        assert denied[-1].username == username and path in (denied[-1].detail or "")
    chain_ok(world)


@pytest.mark.parametrize("path", READS + ["/live", "/alarms", "/register", "/"])
def test_nothing_without_a_session(app: Any, path: str) -> None:
    r = TestClient(app).get(path, follow_redirects=False)
    if path.startswith("/api/") or path == "/openapi.json":
        assert r.status_code == 401
    else:
        assert r.status_code == 303 and r.headers["location"] == "/login"


def test_health_without_a_session(app: Any, world: World) -> None:
    r = TestClient(app).get("/api/health")
    assert r.status_code == 200
    assert r.json() == {
        "database": "ok",
        "broker": "connected",
        "controllers": [
            {
                "room": "hq/r1",
                "controller": "ctl-1",
                "status": None,
                "silent": False,
                "state_ts": None,
            }
        ],
    }
    assert app_of(world).openapi()  # builds
    assert TestClient(app_of(world)).get("/api/health").json()["broker"] == "unknown"
    assert (
        TestClient(app_of(world, live=Broker("disconnected"))).get("/api/health").json()["broker"]
        == "disconnected"
    )


def test_borrower_sees_only_their_own(app: Any, world: World) -> None:
    bob = as_user(app, "bob")
    docs = bob.get("/api/documents").json()
    assert [d["number"] for d in docs] == ["JM-001"]
    assert [ln["person"] for ln in bob.get("/api/loans").json()] == ["p-bob"]
    assert bob.get(f"/api/documents/{world.docs['JM-001']}").status_code == 200
    assert bob.get(f"/api/documents/{world.docs['JM-002']}").status_code == 403
    eve = as_user(app, "eve")
    assert eve.get("/api/documents").json() == []
    sec = as_user(app, "sec")
    assert {d["number"] for d in sec.get("/api/documents").json()} == {"JM-001", "JM-002"}


def test_register_filters_and_history(app: Any, world: World) -> None:
    borrow(world)
    c = as_user(app, "appr")
    by = {d["number"]: d for d in c.get("/api/documents").json()}
    assert by["JM-002"]["holder"] == "p-eve" and by["JM-002"]["status"] == "on_loan"
    assert [d["number"] for d in c.get("/api/documents", params={"holder": "p-eve"}).json()] == [
        "JM-002"
    ]
    assert [d["number"] for d in c.get("/api/documents", params={"q": "年度"}).json()] == ["JM-001"]
    assert c.get("/api/documents", params={"classification": "绝密"}).json() == []
    assert len(c.get("/api/documents", params={"classification": "secret"}).json()) == 2
    assert len(c.get("/api/documents", params={"cabinet": "hq/r1/c1"}).json()) == 2
    assert c.get("/api/documents", params={"classification": "huge"}).status_code == 400
    overdue = c.get("/api/loans", params={"overdue": "true"}).json()
    assert [(ln["document"], ln["overdue"]) for ln in overdue] == [("JM-001", True)]
    doc = c.get(f"/api/documents/{world.docs['JM-002']}").json()
    kinds = [(h["kind"], h["what"]) for h in doc["history"]]
    assert (
        ("ledger", "document.add") in kinds
        or ("ledger", "document.register") in kinds
        or (kinds[0][0] == "ledger")
    )
    assert ("event", "tag.departed") in kinds
    assert ("ledger", "loan.open") in kinds
    assert c.get("/api/documents/999").status_code == 400


# -- changes: CSRF, roles, the audit -------------------------------------------------------


def test_ack_then_reset(app: Any, world: World) -> None:
    c = as_user(app, "sec")
    token = csrf(c)
    body = {"alarm_id": world.alarm_id}
    assert c.post("/api/alarms/ack", json=body).status_code == 403  # no CSRF token
    assert c.post("/api/alarms/ack", json=body, headers={"X-CSRF-Token": "x"}).status_code == 403
    r = c.post("/api/alarms/ack", json=body, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    again = c.post("/api/alarms/ack", json=body, headers={"X-CSRF-Token": token})
    assert again.status_code == 400 and "acknowledged" in again.json()["error"]
    blank = c.post(
        "/api/alarms/reset", json=body | {"reason": " "}, headers={"X-CSRF-Token": token}
    )
    assert blank.status_code == 400
    r = c.post(
        "/api/alarms/reset", json=body | {"reason": "door checked"}, headers={"X-CSRF-Token": token}
    )
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "reset" and r.json()["ended_by"] == "p-sec"
    with world.store.readers() as s:
        entries = s.scalars(
            select(m.AuditEntry).where(m.AuditEntry.entity == "alarm").order_by(m.AuditEntry.id)
        ).all()
    assert [e.action for e in entries][-2:] == ["alarm.ack", "alarm.reset"]
    assert {e.actor for e in entries[-2:]} == {"web:sec"}
    assert c.get("/api/alarms", params={"active": "true"}).json() == []
    chain_ok(world)


@pytest.mark.parametrize(
    ("username", "ack", "reset"),
    [
        ("sec", 200, 200),
        ("office", 403, 200),
        ("head", 403, 403),
        ("appr", 403, 403),
        ("bob", 403, 403),
    ],
)
def test_alarm_changes_per_role(
    app: Any, world: World, username: str, ack: int, reset: int
) -> None:
    c = as_user(app, username)
    token = csrf(c)
    h = {"X-CSRF-Token": token}
    assert (
        c.post("/api/alarms/ack", json={"alarm_id": world.alarm_id}, headers=h).status_code == ack
    )
    r = c.post("/api/alarms/reset", json={"alarm_id": world.alarm_id, "reason": "ok"}, headers=h)
    assert r.status_code == reset
    chain_ok(world)


def test_form_changes_need_the_csrf_field(app: Any, world: World) -> None:
    c = as_user(app, "sec")
    r = c.post("/alarms/ack", data={"alarm_id": world.alarm_id}, follow_redirects=False)
    assert r.status_code == 403
    r = c.post(
        "/alarms/ack", data={"alarm_id": world.alarm_id, "csrf": csrf(c)}, follow_redirects=False
    )
    assert r.status_code == 303


# -- logins ---------------------------------------------------------------------------


def test_login_logout_audited(app: Any, world: World) -> None:
    c = as_user(app, "sec")
    token = csrf(c)
    assert c.post("/logout", headers={"X-CSRF-Token": "bad"}).status_code == 403
    assert c.post("/logout", headers={"X-CSRF-Token": token}).status_code == 200
    assert c.get("/api/me").status_code == 401
    outcomes = [(x.username, x.outcome) for x in logins(world)]
    assert ("sec", "ok") in outcomes and ("sec", "logout") in outcomes
    with world.store.readers() as s:
        actions = {e.action for e in s.scalars(select(m.AuditEntry))}
    assert {"login.ok", "login.logout", "login.denied"} <= actions
    chain_ok(world)


def test_login_without_the_form_token_is_refused(app: Any, world: World) -> None:
    c = TestClient(app)
    r = c.post("/login", data={"username": "sec", "password": PASSWORD, "csrf": "forged"})
    assert r.status_code == 403
    assert logins(world, "denied")[-1].detail == "POST /login: bad or missing CSRF token"


def test_wrong_password_then_lock(app: Any, world: World) -> None:
    c = TestClient(app)
    for _ in range(5):
        assert login(c, "sec", "wrong password!").status_code == 401
    r = login(c, "sec")  # the right password, but locked
    assert r.status_code == 429
    with world.store.readers() as s:
        acc = s.get(m.Account, "sec")
        assert acc is not None and acc.locked_until is not None
        lock = s.scalars(select(m.AuditEntry).where(m.AuditEntry.action == "account.lock")).all()
    assert len(lock) == 1
    assert "password_hash" not in (lock[0].after or "") or "sha256:" in (lock[0].after or "")
    assert [x.outcome for x in logins(world)][-6:] == ["failed"] * 5 + ["locked"]
    world.clock.advance(15 * 60 + 1)
    assert login(c, "sec").status_code == 303
    chain_ok(world)


def test_unknown_user_and_client_budget(world: World) -> None:
    app = app_of(world, limits=Limits(client_failures=3))
    c = TestClient(app)
    for name in ("nobody", "ghost", "sec"):
        assert login(c, name, "bad password").status_code == 401
    assert login(c, "head").status_code == 429  # this address is over its budget
    assert logins(world)[-1].outcome == "locked"
    assert json.loads(logins(world)[-1].detail or "{}") == {"by": "client"}
    world.clock.advance(16 * 60)
    assert login(c, "head").status_code == 303
    chain_ok(world)


def test_deactivated_account_loses_its_session(app: Any, world: World) -> None:
    c = as_user(app, "sec")
    with world.store.sessions.begin() as s:
        from tracker.service.writer import Writer

        acc = s.get(m.Account, "sec")
        assert acc is not None
        Writer(s, actor="test", at=world.clock.now(), cause="leaves").change(
            "account.deactivate", acc, active=False
        )
    assert c.get("/api/me").status_code == 401
    assert login(TestClient(app), "sec").status_code == 401


def test_session_expires(world: World) -> None:
    app = create_app(
        world.store, world.clock, settings=WebSettings(secret_key=b"s" * 32, session_hours=1)
    )
    c = as_user(app, "sec")
    assert c.get("/api/me").status_code == 200
    world.clock.advance(3601)
    assert c.get("/api/me").status_code == 401


def test_forged_cookie(app: Any) -> None:
    c = TestClient(app)
    c.cookies.set("ironroom_session", "abc.def.ghi")
    assert c.get("/api/me").status_code == 401


# -- language -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "cookie", "word"),
    [
        ("zh-CN,zh;q=0.9", None, "登录"),
        ("en-US,en;q=0.8", None, "Log in"),
        (None, None, "登录"),
        ("en-US", "zh-CN", "登录"),
        ("zh-TW", "en", "Log in"),
        ("fr, en;q=0.5", None, "Log in"),
    ],
)
def test_language(app: Any, accept: str | None, cookie: str | None, word: str) -> None:
    c = TestClient(app)
    if cookie:
        c.cookies.set("lang", cookie)
    headers = {"Accept-Language": accept} if accept else {}
    assert f"<h1>{word}</h1>" in c.get("/login", headers=headers).text


def test_language_switch_keeps_to_this_site(app: Any) -> None:
    c = TestClient(app)
    r = c.get("/lang/en", params={"next": "//evil.example/x"}, follow_redirects=False)
    assert r.headers["location"] == "/" and r.cookies.get("lang") == "en"
    r = c.get("/lang/en", params={"next": "/register"}, follow_redirects=False)
    assert r.headers["location"] == "/register"


# -- served by a real tracker, accounts from the command line -------------------------


@pytest.mark.integration
def test_the_tracker_serves_the_console(tmp_path: Path) -> None:
    import socket
    import subprocess

    import httpx

    from tests.support import wait_until
    from tests.tracker_support import (
        CONTROLLER,
        IRONROOM,
        ROOM,
        SITE,
        Cli,
        TrackerProcess,
        setup_day_ledger,
        start_broker,
        write_config,
        write_key,
    )

    mq = start_broker(tmp_path / "mq")
    db_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    cli = Cli(db_url)
    setup_day_ledger(cli, write_key(tmp_path / "room.key"), clearance="机密")
    # the password asked twice (no terminal here: read from stdin), then from a file
    res = subprocess.run(
        [*IRONROOM, "user", "add", "wang", "--role", "secretary", "--person", "sec",
         "--db", db_url],
        input="a long password\na long password\n", capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"person": "sec", "role": "secretary", "username": "wang"}
    (tmp_path / "pw").write_text("another long one\n")
    differ = subprocess.run(
        [*IRONROOM, "user", "add", "li", "--role", "approver", "--person", "sec",
         "--db", db_url],
        input="a long password\nnot the same\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert differ.returncode == 2
    assert differ.stderr.splitlines()[-1] == "ironroom: the two passwords differ"
    cli.ok("user", "add", "li", "--role", "approver", "--person", "sec",
           "--password-file", str(tmp_path / "pw"))  # fmt: skip
    bad = cli.run("user", "add", "li", "--role", "approver", "--person", "sec",
                  "--password-file", str(tmp_path / "pw"))  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.strip() == "ironroom: account li exists already"
    assert [r["username"] for r in cli.rows("user", "list")] == ["li", "wang"]
    assert "hash" not in cli.ok("user", "list")
    cli.ok("user", "disable", "li")
    assert [r["active"] for r in cli.rows("user", "list")] == [False, True]
    cli.ok("user", "enable", "li")
    cli.ok("user", "unlock", "li")
    assert [r["active"] for r in cli.rows("user", "list")] == [True, True]
    gone = cli.run("user", "unlock", "nobody")
    assert gone.returncode == 2 and gone.stderr.strip() == "ironroom: no account nobody"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path / "tracker.toml", mq, db_url)
    config.write_text(config.read_text() + f"\n[web]\nport = {port}\n")
    tracker = TrackerProcess(config, mq, db_url, tmp_path)
    try:
        tracker.start()
        base = f"http://127.0.0.1:{port}"

        def health() -> dict[str, Any] | None:
            try:
                return dict(httpx.get(base + "/api/health", timeout=2).json())
            except httpx.HTTPError:
                return None

        h = tracker.wait(lambda: (health() or {}).get("broker") == "connected" and health(),
                         15, "the console's health")  # fmt: skip
        assert h["database"] == "ok"
        assert h["controllers"] == [
            {"room": f"{SITE}/{ROOM}", "controller": CONTROLLER, "status": None,
             "silent": False, "state_ts": None}
        ]  # fmt: skip
        assert (tmp_path / "console.key").exists()
        with httpx.Client(base_url=base) as c:
            assert c.get("/api/me").status_code == 401
            token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text)
            assert token is not None
            r = c.post("/login", data={"username": "wang", "password": "a long password",
                                       "csrf": token.group(1)})  # fmt: skip
            assert r.status_code == 303
            assert c.get("/api/me").json()["role"] == "secretary"
        mq.stop()
        wait_until(lambda: (health() or {}).get("broker") == "disconnected", 15,
                   "the console to see the broker gone")  # fmt: skip
    finally:
        assert tracker.stop() == 0, tracker.log_text()
        mq.stop()
    assert "audit chain ok" in cli.ok("audit", "verify")


# -- approvals, inventory, reports --------------------------------------------------------

MORE_READS = {
    "/api/requests": {"secretary", "approver", "dept-head", "secrecy-office"},
    "/api/destructions": {"secretary", "approver", "dept-head", "secrecy-office"},
    "/api/inventory": {"secretary", "dept-head", "secrecy-office"},
    "/api/reports/register": {"secretary", "secrecy-office"},
    "/approvals": {"secretary", "approver", "dept-head", "secrecy-office"},
    "/inventory": {"secretary", "dept-head", "secrecy-office"},
    "/reports": {"secretary", "secrecy-office"},
}


@pytest.mark.parametrize(
    ("username", "path"), [(u, p) for u in ACCOUNTS if u != "eve" for p in MORE_READS]
)
def test_workflow_reads_per_role(app: Any, world: World, username: str, path: str) -> None:
    c = as_user(app, username)
    r = c.get(path)
    assert r.status_code == (200 if ACCOUNTS[username][0] in MORE_READS[path] else 403), r.text


def pending_copy(world: World) -> int:
    from tests.browser.console import ledger
    from tracker.service import requests as rq

    made = rq.create(ledger(world.store, world.clock.now()), "copy", "p-bob",
                     documents=["JM-002"], copies=1, reason="meeting")  # fmt: skip
    return int(made["id"])


def test_approve_and_refuse(app: Any, world: World) -> None:
    first, second = pending_copy(world), pending_copy(world)
    sec = as_user(app, "sec")
    h = {"X-CSRF-Token": csrf(sec)}
    assert sec.post(f"/api/requests/{first}/approve", json={}, headers=h).status_code == 403
    appr = as_user(app, "appr")
    h = {"X-CSRF-Token": csrf(appr)}
    assert appr.post(f"/api/requests/{first}/approve", json={}).status_code == 403  # no CSRF
    r = appr.post(f"/api/requests/{first}/approve", json={"reason": "ok"}, headers=h)
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["decided_by"]) == ("approved", "p-appr")
    again = appr.post(f"/api/requests/{first}/refuse", json={}, headers=h)
    assert again.status_code == 400 and again.json()["error"]
    bad = appr.post(f"/api/requests/{second}/maybe", json={}, headers=h)
    assert bad.status_code == 400
    fields = {"csrf": h["X-CSRF-Token"], "request_id": str(second), "action": "refuse"}
    form = appr.post("/approvals/decide", data=fields | {"reason": "no"}, follow_redirects=False)
    assert form.status_code == 303
    states = {x["id"]: x["state"] for x in appr.get("/api/requests").json()}
    assert states == {first: "approved", second: "refused"}
    chain_ok(world)


def test_inventory_start_and_report(app: Any, world: World) -> None:
    sec = as_user(app, "sec")
    h = {"X-CSRF-Token": csrf(sec)}
    r = sec.post("/api/inventory", json={"room": "hq/r1"}, headers=h)
    assert r.status_code == 200, r.text
    run = r.json()["run"]
    assert sec.post("/api/inventory", json={"room": "hq/r1"}, headers=h).status_code == 400
    assert sec.post("/api/inventory", json={"room": "r1"}, headers=h).status_code == 400
    assert [x["run"] for x in sec.get("/api/inventory").json()] == [run]
    assert sec.get(f"/api/inventory/{run}").json()["run"]["state"] == "running"
    assert sec.get(f"/inventory/{run}").status_code == 200
    office = as_user(app, "office")
    no = office.post("/api/inventory", json={"room": "hq/r1"},
                     headers={"X-CSRF-Token": csrf(office)})  # fmt: skip
    assert no.status_code == 403
    chain_ok(world)


def test_report_downloads(app: Any) -> None:
    c = as_user(app, "office")
    r = c.get("/api/reports/register", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "JM-001" in r.content.decode("utf-8-sig")
    assert "attachment" in r.headers["content-disposition"]
    html = c.get("/api/reports/overdue", params={"format": "html"})
    assert html.status_code == 200 and "<html" in html.text.lower() and "JM-001" in html.text
    assert c.get("/api/reports/secrets").status_code == 400
    assert c.get("/api/reports/audit", params={"format": "pdf"}).status_code == 400


def test_security_headers(app: Any) -> None:
    c = as_user(app, "sec")
    for path in ("/login", "/register", "/api/documents"):
        h = c.get(path).headers
        assert h["x-frame-options"] == "DENY" and h["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in h["content-security-policy"]
    cookie = login(TestClient(app), "sec").headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def test_a_condition_alarm_is_not_acknowledged(app: Any, world: World) -> None:
    from tracker.service.writer import Writer

    with world.store.sessions.begin() as s:
        room = s.query(m.Room).one()
        silent = Writer(s, actor="tracker", at=world.clock.now(), cause="test").raise_alarm(
            room, "controller_silent", "warning", raised=world.clock.now()
        )
        alarm_id = silent.alarm_id
    c = as_user(app, "sec")
    r = c.post("/api/alarms/ack", json={"alarm_id": alarm_id}, headers={"X-CSRF-Token": csrf(c)})
    assert r.status_code == 400 and "ends by itself" in r.json()["error"]
    page = c.get("/alarms").text
    assert page.count('class="ack"') == 1  # the forced door's only


def test_people_and_badges_registered_by_the_secretary(app: Any, world: World) -> None:
    sec = as_user(app, "sec")
    h = {"X-CSRF-Token": csrf(sec)}
    body = {"id": "p-new", "name": "新人", "clearance": "秘密", "roles": ["borrower"]}
    assert sec.post("/api/people", json=body).status_code == 403  # no CSRF
    r = sec.post("/api/people", json=body, headers=h)
    assert r.status_code == 200, r.text
    assert sec.post("/api/people", json=body, headers=h).json()["error"] == (
        "person p-new exists already"
    )
    bad = sec.post("/api/people", json=body | {"id": "p-x", "clearance": "huge"}, headers=h)
    assert bad.status_code == 400
    assert sec.post("/api/badges", json={"uid": "0A0B0C0D", "person": "p-new"},
                    headers=h).status_code == 200  # fmt: skip
    form = sec.post("/badges/add", data={"csrf": h["X-CSRF-Token"], "uid": "0A0B0C0E",
                    "person": "p-new"}, follow_redirects=False)  # fmt: skip
    assert form.status_code == 303
    person = [p for p in sec.get("/api/people").json() if p["id"] == "p-new"][0]
    assert [b["uid"] for b in person["badges"]] == ["0A0B0C0D", "0A0B0C0E"]
    office = as_user(app, "office")
    assert office.post("/api/badges", json={"uid": "0A0B0C0F", "person": "p-new"},
                       headers={"X-CSRF-Token": csrf(office)}).status_code == 403  # fmt: skip
    chain_ok(world)


def test_pages_show_each_copy_number(app: Any, world: World) -> None:
    """The register and a document's page show the copy as K/N (a field named like a dict
    method must be read as the field)."""
    c = as_user(app, "sec")
    docs = c.get("/api/documents").json()
    assert docs
    page = c.get("/register").text
    assert "built-in method" not in page
    for d in docs:
        assert f"({d['copy']})" in page
    one = c.get(f"/document/{docs[0]['id']}").text
    assert f"({docs[0]['copy']})" in one and "built-in method" not in one
