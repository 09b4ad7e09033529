"""The overdue rules (催办, DOMAIN.md rule 6), table-driven: delays, steps due, recipients,
the message, retries; and the [overdue] and [notify] config sections."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracker.config import TrackerConfigError, parse_tracker_config
from tracker.domain import overdue as od

DUE = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
H, D = timedelta(hours=1), timedelta(days=1)
DELAYS = (timedelta(0), D, 3 * D)
LOAN = od.OverdueLoan(7, "p1", "机要〔2026〕1号", DUE, "badge")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0h", timedelta(0)),
        ("30m", timedelta(minutes=30)),
        ("4h", 4 * H),
        ("3d", 3 * D),
        ("99999d", 99999 * D),
    ],
)
def test_parse_delay(text: str, expected: timedelta) -> None:
    assert od.parse_delay(text) == expected


@pytest.mark.parametrize(
    "text", ["", "1", "d", "1w", "-1d", "1.5d", "1 d", "1D", 3, None, "100000d"]
)
def test_parse_delay_refuses(text: object) -> None:
    with pytest.raises(ValueError, match="expected a delay"):
        od.parse_delay(text)


@pytest.mark.parametrize(
    ("now", "sent", "steps"),
    [
        (DUE - H, (), []),  # not yet due
        (DUE, (), []),  # due now is not overdue
        (DUE + timedelta(seconds=1), (), ["remind-1"]),
        (DUE + D - timedelta(seconds=1), ("remind-1",), []),
        (DUE + D, ("remind-1",), ["remind-2"]),
        (DUE + D, (), ["remind-1", "remind-2"]),  # a missed step is still due
        (DUE + 3 * D, ("remind-1", "remind-2"), ["remind-3"]),
        (DUE + 7 * D, ("remind-1", "remind-2", "remind-3"), ["escalate"]),
        (DUE + 30 * D, (), ["remind-1", "remind-2", "remind-3", "escalate"]),
        (DUE + 30 * D, ("remind-1", "remind-2", "remind-3", "escalate"), []),
    ],
)
def test_reminders_due(now: datetime, sent: tuple[str, ...], steps: list[str]) -> None:
    due = od.reminders_due(LOAN, now, DELAYS, 7 * D, sent=sent)
    assert [s.name for s in due] == steps
    assert all(s.at <= now for s in due)


def test_step_times_and_escalation_before_a_late_reminder() -> None:
    steps = od.reminders_due(LOAN, DUE + 10 * D, (timedelta(0), 9 * D), 2 * D)
    assert [(s.name, s.at) for s in steps] == [
        ("remind-1", DUE),
        ("escalate", DUE + 2 * D),
        ("remind-2", DUE + 9 * D),
    ]
    assert [s.escalation for s in steps] == [False, True, False]


@pytest.mark.parametrize("kind", ["in-room"])
def test_in_room_loans_get_no_reminders(kind: str) -> None:
    loan = od.OverdueLoan(1, "p1", "n", DUE, kind)
    assert od.reminders_due(loan, DUE + 30 * D, DELAYS, 7 * D) == []
    assert not od.is_overdue(loan, DUE + 30 * D)


@pytest.mark.parametrize(
    ("now", "days"),
    [(DUE - D, 0), (DUE, 0), (DUE + 23 * H, 0), (DUE + D, 1), (DUE + 7 * D + H, 7)],
)
def test_days_overdue(now: datetime, days: int) -> None:
    assert od.days_overdue(DUE, now) == days


BORROWER = od.Contact("p1", "张三", "p1@example.org", frozenset({"borrower"}))
PEOPLE = [
    BORROWER,
    od.Contact("sec", "王秘书", None, frozenset({"secretary"})),
    od.Contact("bmb", "保密办", "bmb@example.org", frozenset({"secrecy-office"})),
    od.Contact("old", "离职", "old@example.org", frozenset({"secretary"}), active=False),
    od.Contact("boss", "领导", "boss@example.org", frozenset({"approver"})),
]


@pytest.mark.parametrize(
    ("step", "to"),
    [("remind-1", ["p1"]), ("remind-3", ["p1"]), ("escalate", ["bmb", "sec"])],
)
def test_recipients(step: str, to: list[str]) -> None:
    assert [p.id for p in od.recipients(od.Step(step, DUE), BORROWER, PEOPLE)] == to


def test_messages_name_the_document_and_the_days() -> None:
    now = DUE + 3 * D + H
    reminder = od.compose(od.Step("remind-2", DUE + D), LOAN, BORROWER, now)
    assert "机要〔2026〕1号" in reminder.subject and "催办" in reminder.subject
    assert "已逾期 3 天" in reminder.body and "3 day(s) overdue" in reminder.body
    escalation = od.compose(od.Step("escalate", DUE + 7 * D), LOAN, BORROWER, now)
    assert "催办升级" in escalation.subject and "张三" in escalation.subject
    assert "张三（p1）" in escalation.body


@pytest.mark.parametrize(
    ("attempts", "delay"),
    [
        (1, timedelta(seconds=30)),
        (2, timedelta(seconds=60)),
        (3, timedelta(seconds=120)),
        (8, timedelta(seconds=3840)),
        (7, timedelta(seconds=1920)),
        (50, timedelta(hours=1)),
    ],
)
def test_retry_backoff(attempts: int, delay: timedelta) -> None:
    assert od.retry_after(attempts) == min(delay, timedelta(hours=1))


def test_schedule_build_refuses_delays_not_increasing() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        od.Schedule.build(["1d", "1d"], "7d")
    assert od.Schedule.build(["0h", "2h"], "1d") == od.Schedule((timedelta(0), 2 * H), D, 30)


# -- the config sections ------------------------------------------------------------------

HOURS = '[hours]\nmon = ["08:30-12:00"]\n'


def test_config_defaults_and_values() -> None:
    cfg = parse_tracker_config(HOURS)
    assert cfg.overdue == od.Schedule()
    assert (cfg.notify.kind, cfg.notify.host, cfg.notify.port) == ("log", "127.0.0.1", 25)
    cfg = parse_tracker_config(
        HOURS
        + '[overdue]\nremind_after = ["30m", "2h"]\nescalate_after = "2d"\ncheck_s = 5\n'
        + '[notify]\nkind = "smtp"\nhost = "localhost"\nport = 2525\nfrom = "a@b"\n'
        + 'starttls = true\nusername = "u"\npassword_file = "pw"\ntimeout_s = 3\n'
    )
    assert cfg.overdue == od.Schedule((timedelta(minutes=30), 2 * H), 2 * D, 5)
    n = cfg.notify
    assert (n.kind, n.host, n.port, n.sender, n.starttls, n.username, n.timeout_s) == (
        "smtp",
        "localhost",
        2525,
        "a@b",
        True,
        "u",
        3.0,
    )
    assert n.password_file is not None and n.password_file.name == "pw"
    with pytest.raises(TrackerConfigError, match="notify.password_file: .*no such file"):
        cfg.check_files()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('[overdue]\nremind_after = "1d"', "overdue.remind_after: expected a list"),
        ('[overdue]\nremind_after = ["1d", "2w"]', "overdue.remind_after: expected a delay"),
        ('[overdue]\nremind_after = ["1d", "0h"]', "overdue.remind_after: .*increasing"),
        ("[overdue]\nescalate_after = 7", "overdue.escalate_after: expected a delay"),
        ("[overdue]\ncheck_s = 0", "overdue.check_s: expected seconds"),
        ("[overdue]\ncheck_s = true", "overdue.check_s: expected seconds"),
        ('[overdue]\nevery = "1d"', r"overdue: unknown keys \['every'\]"),
        ('[notify]\nkind = "mail"', "notify.kind: expected"),
        ('[notify]\nhost = ""', "notify.host: expected a non-empty string"),
        ("[notify]\nport = 0", "notify.port: expected 1..65535"),
        ('[notify]\nfrom = "nobody"', "notify.from: expected an address"),
        ('[notify]\nstarttls = "yes"', "notify.starttls: expected true or false"),
        ("[notify]\ntimeout_s = 0", "notify.timeout_s: expected seconds"),
        ('[notify]\npassword_file = "pw"', "notify.password_file: needs notify.username"),
        ('[notify]\nusername = "u"', "notify.username: needs notify.password_file"),
        ('[notify]\nsmtp = "x"', r"notify: unknown keys \['smtp'\]"),
    ],
)
def test_config_errors_name_the_key(text: str, error: str) -> None:
    with pytest.raises(TrackerConfigError, match=error):
        parse_tracker_config(HOURS + text + "\n")


def test_shipped_examples_carry_both_sections() -> None:
    from pathlib import Path

    from tracker.config import load_tracker_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_tracker_config(root / "deploy/examples/tracker.toml")
    assert cfg.overdue == od.Schedule((timedelta(0), D, 3 * D), 7 * D, 30)
    assert (cfg.notify.kind, cfg.notify.host, cfg.notify.port) == ("smtp", "127.0.0.1", 25)
    sim = load_tracker_config(root / "deploy/examples/tracker-sim.toml").check_files()
    assert sim.overdue == cfg.overdue and sim.notify.kind == "log"
