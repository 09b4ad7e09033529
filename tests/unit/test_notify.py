"""The notifiers: SmtpNotifier against a real SMTP server (aiosmtpd) on 127.0.0.1 at a free
port, the message parsed back; LogNotifier's line; failures as one-line NotifyError."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tracker.notify import (
    LogNotifier,
    Message,
    NotifyError,
    NotifySettings,
    SmtpNotifier,
    make_notifier,
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Inbox:
    def __init__(self) -> None:
        self.mail: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.mail.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


class Auth:
    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"ironroom",
            b"s3cret",
        )
        return AuthResult(success=ok)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


@pytest.fixture
def smtp_auth() -> Iterator[tuple[Inbox, int]]:
    inbox, port = Inbox(), free_port()
    ctl = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=Auth(),
        auth_required=True,
        auth_require_tls=False,
    )
    ctl.start()
    try:
        yield inbox, port
    finally:
        ctl.stop()


MSG = Message(
    to=("zhang@example.org", "wang@example.org"),
    subject="催办 Reminder: 机要〔2026〕1号 已逾期 is overdue",
    body="张三：您借阅的 机要〔2026〕1号 已逾期 3 天。\nPlease return it.\n",
    name="p1",
)


def test_smtp_message_parsed_back(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    notifier = SmtpNotifier(NotifySettings(kind="smtp", port=port, sender="room@hq.example"))
    notifier.send(MSG)
    assert len(inbox.mail) == 1
    mail_from, rcpts, raw = inbox.mail[0]
    assert mail_from == "room@hq.example"
    assert rcpts == ["zhang@example.org", "wang@example.org"]
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == MSG.subject
    assert parsed["From"] == "room@hq.example"
    assert parsed["To"] == "zhang@example.org, wang@example.org"
    part = parsed.get_body()
    assert part is not None and part.get_content_charset() == "utf-8"
    assert part.get_content().replace("\r\n", "\n") == MSG.body
    assert notifier.channel == "smtp"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_a_password_file(smtp_auth: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp_auth
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n", encoding="utf-8")
    settings = NotifySettings(kind="smtp", port=port, username="ironroom", password_file=pw)
    SmtpNotifier(settings).send(MSG)
    assert [m[1] for m in inbox.mail] == [list(MSG.to)]
    pw.write_text("wrong\n", encoding="utf-8")
    settings = NotifySettings(
        kind="smtp", port=port, username="ironroom", password_file=pw, timeout_s=3
    )
    with pytest.raises(NotifyError, match=rf"^smtp 127.0.0.1:{port}: "):
        SmtpNotifier(settings).send(MSG)
    assert len(inbox.mail) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_server_refusing_auth_without_login(smtp_auth: tuple[Inbox, int]) -> None:
    _, port = smtp_auth
    with pytest.raises(NotifyError, match="^smtp 127.0.0.1"):
        SmtpNotifier(NotifySettings(kind="smtp", port=port)).send(MSG)


def test_no_server_is_one_line_error() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(NotifyError) as err:
        SmtpNotifier(NotifySettings(kind="smtp", port=port, timeout_s=2)).send(MSG)
    text = str(err.value)
    assert text.startswith(f"smtp 127.0.0.1:{port}: ") and "\n" not in text


def test_no_address_is_refused_by_smtp() -> None:
    with pytest.raises(NotifyError, match="no recipient"):
        SmtpNotifier(NotifySettings(kind="smtp")).send(Message((), "s", "b"))


def test_log_notifier_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tracker.notify")
    n = LogNotifier()
    n.send(Message((), MSG.subject, MSG.body, name="p1"))
    n.send(MSG)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        f"notify p1 <no address>: {MSG.subject}",
        f"notify p1 <zhang@example.org, wang@example.org>: {MSG.subject}",
    ]
    assert n.channel == "log"


def test_make_notifier_by_kind() -> None:
    assert isinstance(make_notifier(NotifySettings()), LogNotifier)
    assert isinstance(make_notifier(NotifySettings(kind="smtp")), SmtpNotifier)
