"""Sending the overdue reminders (催办): one small interface, two senders.

- :class:`LogNotifier` writes one log line per message (``[notify] kind = "log"``, the
  default; also what a person without an email address gets).
- :class:`SmtpNotifier` hands the message to an SMTP server (``[notify] kind = "smtp"``):
  ``host``/``port`` (a relay on this machine by default), ``from``, ``starttls``,
  ``username`` with ``password_file``, ``timeout_s``. A connection per message: reminders
  are few, and a dropped connection is never reused.

A failed send raises :class:`NotifyError`; the caller records it and tries again later.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class NotifyError(RuntimeError):
    """A message that could not be handed over; the text says why, in one line."""


@dataclass(frozen=True)
class Message:
    to: tuple[str, ...]  # addresses (empty for the log notifier's line only)
    subject: str
    body: str
    name: str = ""  # who it is for, for the log line


class Notifier(Protocol):
    #: the channel recorded with each message sent: "log" or "smtp"
    channel: str

    def send(self, msg: Message) -> None: ...


class LogNotifier:
    channel = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or log

    def send(self, msg: Message) -> None:
        self.log.warning(
            "notify %s <%s>: %s", msg.name or "-", ", ".join(msg.to) or "no address", msg.subject
        )


@dataclass(frozen=True)
class NotifySettings:
    """``[notify]`` as loaded from the tracker config."""

    kind: str = "log"  # log | smtp
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = "ironroom@localhost"  # the "from" key
    starttls: bool = False
    username: str | None = None
    password_file: Path | None = None
    timeout_s: float = 10.0


class SmtpNotifier:
    channel = "smtp"

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings

    def send(self, msg: Message) -> None:
        st = self.settings
        if not msg.to:
            raise NotifyError("no recipient address")
        mail = EmailMessage()
        mail["From"] = st.sender
        mail["To"] = ", ".join(msg.to)
        mail["Subject"] = msg.subject
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = make_msgid(domain=st.sender.rpartition("@")[2] or None)
        mail.set_content(msg.body, charset="utf-8")
        try:
            with smtplib.SMTP(st.host, st.port, timeout=st.timeout_s) as smtp:
                if st.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if st.username:
                    smtp.login(st.username, self._password())
                smtp.send_message(mail, from_addr=st.sender, to_addrs=list(msg.to))
        except (OSError, smtplib.SMTPException) as exc:
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise NotifyError(f"smtp {st.host}:{st.port}: {text}"[:300]) from None

    def _password(self) -> str:
        if self.settings.password_file is None:
            raise NotifyError("notify.username is set but notify.password_file is not")
        try:
            return self.settings.password_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise NotifyError(f"notify.password_file: {exc.strerror or exc}") from None


def make_notifier(settings: NotifySettings) -> Notifier:
    return SmtpNotifier(settings) if settings.kind == "smtp" else LogNotifier()
