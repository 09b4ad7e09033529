"""One function per report: a read-only session in, a :class:`Report` out."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tracker.domain.levels import Level
from tracker.reports import Column, Meta, Report
from tracker.reports import cells as c
from tracker.service import facts
from tracker.store import audit
from tracker.store import models as m


def meta(s: Session, now: datetime) -> Meta:
    rooms = tuple(
        f"{r.site}/{r.room}" for r in s.scalars(select(m.Room).order_by(m.Room.site, m.Room.room))
    )
    count, head = audit.head(s)
    return Meta(generated=now, rooms=rooms, audit_count=count, audit_head=head)


def _names(s: Session) -> dict[str, str]:
    return {pid: name for pid, name in s.execute(select(m.Person.id, m.Person.name))}


# -- 登记簿 register ---------------------------------------------------------------------

REGISTER = (
    Column("number", "文号", "Number", 11),
    Column("title", "标题", "Title", 15),
    Column("classification", "密级", "Classification", 11),
    Column("copy", "份号", "Copy", 5),
    Column("issuer", "发文机关", "Issuer", 8),
    Column("period", "保密期限", "Secrecy period", 7),
    Column("scope", "知悉范围", "Scope", 8),
    Column("status", "状态", "Status", 11),
    Column("cabinet", "所在柜", "Cabinet", 9),
    Column("holder", "持有人", "Holder", 6),
    Column("registered", "登记时间", "Registered", 9),
)


def register(s: Session, *, zone: ZoneInfo = c.ZONE) -> Report:
    """Every document and copy, by number (numbers within it compared as numbers) then copy
    number: where it is and who has it."""
    keys = facts.Keys(s)
    names = _names(s)
    rows = []
    docs = s.scalars(select(m.Document)).all()
    for d in sorted(docs, key=lambda d: (c.natural(d.number), d.copy_no, d.id)):
        rows.append(
            (
                d.number,
                d.title,
                Level(d.classification).chinese,
                f"{d.copy_no}/{d.copies}",
                d.issuer or "",
                c.period(d.period_years, d.declassify_on),
                ";".join(json.loads(d.scope)),
                c.status(d.status),
                keys.get(d.location_cabinet_id) or "",
                c.person(d.holder_id, names),
                c.when(d.registered, zone),
            )
        )
    return Report("register", "登记簿", "Register", REGISTER, tuple(rows))


# -- 借阅与催办 loans and overdue ----------------------------------------------------------

OVERDUE = (
    Column("number", "文号", "Number", 12),
    Column("title", "标题", "Title", 18),
    Column("classification", "密级", "Classification", 9),
    Column("copy", "份号", "Copy", 5),
    Column("borrower", "借阅人", "Borrower", 10),
    Column("dept", "部门", "Department", 7),
    Column("kind", "方式", "Kind", 7),
    Column("opened", "借出时间", "Opened", 8),
    Column("due", "应还时间", "Due", 8),
    Column("overdue", "逾期", "Overdue", 8),
    Column("reminders", "催办", "Reminders", 8),
)


def overdue(s: Session, now: datetime, *, zone: ZoneInfo = c.ZONE) -> Report:
    """Every open loan, soonest due first; the overdue ones marked, as the overdue
    workflow counts them at ``now`` (tracker.service.overdue: past due, in-room loans
    left to the closing-time check), with the reminder steps written for each."""
    from tracker.service.overdue import overdue_listing

    late = {row["loan"]: row for row in overdue_listing(s, now)}
    people = {p.id: p for p in s.scalars(select(m.Person))}
    stmt = (
        select(m.Loan, m.Document)
        .join(m.Document, m.Document.id == m.Loan.document_id)
        .where(m.Loan.closed.is_(None))
        .order_by(m.Loan.due, m.Loan.id)
    )
    rows, marked = [], set()
    for i, (ln, d) in enumerate(s.execute(stmt)):
        info = late.get(ln.id)
        if info is not None:
            marked.add(i)
        p = people.get(ln.person_id)
        rows.append(
            (
                d.number,
                d.title,
                Level(d.classification).chinese,
                f"{d.copy_no}/{d.copies}",
                c.person(ln.person_id, {ln.person_id: p.name} if p else {}),
                (p.dept or "") if p else "",
                c.loan_kind(ln.kind),
                c.when(ln.opened, zone),
                c.when(ln.due, zone),
                c.overdue_text(info["days_overdue"] if info else None),
                ", ".join(info["reminders"]) if info else "",
            )
        )
    notes = (
        ("逾期 / Overdue", f"{len(marked)} / {len(rows)}"),
        ("截至 / As of", c.moment(now, zone)),
    )
    return Report(
        "overdue",
        "借阅与逾期",
        "Loans and overdue",
        OVERDUE,
        tuple(rows),
        notes=notes,
        marked=frozenset(marked),
    )


# -- 审计 audit ---------------------------------------------------------------------------

AUDIT = (
    Column("id", "序号", "Entry", 5),
    Column("ts", "时间", "Time", 8),
    Column("actor", "操作者", "Actor", 8),
    Column("action", "操作", "Action", 11),
    Column("entity", "对象", "Entity", 9),
    Column("key", "编号", "Key", 4),
    Column("change", "变更", "Change", 21),
    Column("reason", "事由", "Reason", 20),
    Column("hash", "哈希", "Hash", 14),
)


def audit_trail(s: Session, *, zone: ZoneInfo = c.ZONE) -> Report:
    """Every audit entry, oldest first, with the chain's verification (DOMAIN.md rule
    15): a broken chain is stated in the title block and its first bad entry marked."""
    verdict = audit.verify(s)
    rows, marked = [], set()
    stmt = select(m.AuditEntry).order_by(m.AuditEntry.id).execution_options(yield_per=1000)
    for i, e in enumerate(s.scalars(stmt)):
        if verdict.bad_entry is not None and e.id == verdict.bad_entry:
            marked.add(i)
        rows.append(
            (
                str(e.id),
                _when_or_raw(e.ts, zone),
                e.actor,
                e.action,
                e.entity,
                e.entity_key,
                _change(e.before, e.after),
                e.reason or "",
                e.hash,
            )
        )
    where = f"entry {verdict.bad_entry}: " if verdict.bad_entry is not None else ""
    if verdict.ok:
        result = f"通过 ok: {verdict.count} 条 entries, head {verdict.head}"
    else:
        result = f"失败 BROKEN at {where}{verdict.problem}"
    return Report(
        "audit",
        "审计记录",
        "Audit trail",
        AUDIT,
        tuple(rows),
        notes=(("审计链校验 / Chain verification", result),),
        marked=frozenset(marked),
        problem="" if verdict.ok else f"audit chain BROKEN at {where}{verdict.problem}",
    )


def _change(before: str | None, after: str | None) -> str:
    """The change an entry records; an entry edited by hand into something that is not
    JSON is shown as stored (the report still prints what the chain holds)."""
    try:
        return c.changes(_loads(before), _loads(after))
    except (TypeError, ValueError, AttributeError):
        return f"{before} → {after}"


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if not text else json.loads(text)


def _when_or_raw(ts: str, zone: ZoneInfo) -> str:
    try:
        return c.when(ts, zone)
    except (TypeError, ValueError):
        return str(ts)


def _cells(*values: Any) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in values)


# -- every report by name -----------------------------------------------------------------


INVENTORY = (
    Column("outcome", "结果", "Outcome", 10),
    Column("number", "文号", "Number", 12),
    Column("title", "标题", "Title", 13),
    Column("classification", "密级", "Classification", 9),
    Column("copy", "份号", "Copy", 5),
    Column("epc", "标签", "Tag", 12),
    Column("cabinet", "读到位置", "Read in", 9),
    Column("home", "存放柜", "Home", 9),
    Column("before", "清查前", "Before", 8),
    Column("after", "清查后", "After", 8),
    Column("holder", "持有人", "Holder", 5),
)
#: Outcomes that need someone to act: printed marked.
_ATTENTION = frozenset({"missing", "wrong_cabinet", "unknown_tag", "retired_tag", "unchecked"})


def inventory(s: Session, run_id: str | None, *, zone: ZoneInfo = c.ZONE) -> Report:
    """One inventory run's items (清查, tracker.service.inventory), what needs attention
    first; ``run_id`` None: the latest run."""
    from tracker.domain.inventory import OUTCOMES
    from tracker.service.inventory import inventory_report
    from tracker.service.ledger import LedgerError

    if run_id is None:
        latest = s.scalar(select(func.max(m.InventoryRun.id)))
        if latest is None:
            raise LedgerError(
                "no inventory run yet: start one with 'ironroom ledger inventory run SITE/ROOM'"
            )
        number = int(latest)
    else:
        try:
            number = int(run_id)
        except ValueError:
            number = 0
        if number < 1:
            raise LedgerError(f"inventory run {run_id!r}: expected a run number")
    data = inventory_report(s, number)
    names = _names(s)
    rows, marked = [], set()
    for i, it in enumerate(data["items"]):
        if it["outcome"] in _ATTENTION:
            marked.add(i)
        rows.append(
            _cells(
                c.outcome(it["outcome"]),
                it["document"],
                it["title"],
                it["classification"],
                it["copy"],
                it["epc"],
                it["cabinet"],
                it["home"],
                c.status(it["status_before"]) if it["status_before"] else "",
                c.status(it["status_after"]) if it["status_after"] else "",
                c.person(it["holder"], names),
            )
        )
    run = data["run"]
    order = {k: i for i, k in enumerate(OUTCOMES)}
    counts = sorted(run["summary"].items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    summary = "; ".join(f"{c.outcome(k)} {v}" for k, v in counts)
    notes = (
        ("清查 / Run", f"{run['run']} · {run['room']} · {run['state']}"),
        ("开始 / Started", c.when(run["started"], zone)),
        ("结束 / Finished", c.when(run["finished"], zone) or "未结束 / not finished"),
        ("汇总 / Summary", summary or "—"),
        ("未读到 / Readers not read", ", ".join(run["not_read"]) or "无 / none"),
    )
    return Report(
        "inventory",
        "清查报告",
        "Inventory",
        INVENTORY,
        tuple(rows),
        notes=notes,
        marked=frozenset(marked),
    )


DESTRUCTION = (
    Column("record", "记录号", "Record", 5),
    Column("destroyed", "销毁时间", "Destroyed", 7),
    Column("place", "地点", "Place", 7),
    Column("number", "文号", "Number", 10),
    Column("title", "标题", "Title", 13),
    Column("classification", "密级", "Classification", 9),
    Column("copy", "份号", "Copy", 4),
    Column("tag", "标签", "Tag", 10),
    Column("before", "销毁前", "Before", 7),
    Column("approved_by", "批准人", "Approved by", 7),
    Column("witness1", "监销人一", "Witness 1", 8),
    Column("witness2", "监销人二", "Witness 2", 8),
    Column("request", "申请号", "Request", 5),
)


def destruction(s: Session, *, zone: ZoneInfo = c.ZONE) -> Report:
    """Every document destroyed (销毁, kept permanently), record by record (oldest first,
    then by number and copy): where, when, who approved and the two witnesses (监销) with
    their badges and times."""
    from sqlalchemy import inspect

    from tracker.service.ledger import LedgerError

    if not inspect(s.get_bind()).has_table(m.Destruction.__tablename__):
        raise LedgerError("this database holds no destruction records (销毁) yet")
    names = _names(s)
    rooms = {r.id: f"{r.site}/{r.room}" for r in s.scalars(select(m.Room))}
    stmt = (
        select(m.DestructionItem, m.Destruction, m.Document.title)
        .join(m.Destruction, m.Destruction.id == m.DestructionItem.destruction_id)
        .outerjoin(m.Document, m.Document.id == m.DestructionItem.document_id)
    )
    found = sorted(
        s.execute(stmt).tuples(),
        key=lambda r: (r[1].destroyed, r[1].id, c.natural(r[0].number), r[0].copy_no, r[0].id),
    )
    rows = []
    for it, d, title in found:
        rows.append(
            _cells(
                d.id,
                c.when(d.destroyed, zone),
                f"{rooms.get(d.room_id, d.room_id)} {d.reader}",
                it.number,
                title,
                Level(it.classification).chinese,
                f"{it.copy_no}/{it.copies}",
                it.tag,
                c.status(it.status_before),
                c.person(d.approved_by, names),
                _witness(d.witness1_id, d.witness1_badge, d.witness1_at, names, zone),
                _witness(d.witness2_id, d.witness2_badge, d.witness2_at, names, zone),
                d.request_id,
            )
        )
    records = len({r[0] for r in rows})
    return Report(
        "destruction",
        "销毁记录",
        "Destruction records",
        DESTRUCTION,
        tuple(rows),
        notes=(("销毁记录 / Records", f"{records} 次 records, {len(rows)} 件 documents"),),
    )


def _witness(pid: str, badge: str, at: str, names: dict[str, str], zone: ZoneInfo) -> str:
    """``张秘书 (p1) 04A1B2C3 2026-11-26 09:00``: the person, the badge shown, when."""
    return f"{c.person(pid, names)} {badge} {c.when(at, zone)}"


def build(
    s: Session, name: str, now: datetime, *, run_id: str | None = None, zone: ZoneInfo = c.ZONE
) -> tuple[Report, Meta]:
    """The report called ``name`` and its title block, read in one snapshot."""
    if name == "register":
        report = register(s, zone=zone)
    elif name == "overdue":
        report = overdue(s, now, zone=zone)
    elif name == "inventory":
        report = inventory(s, run_id, zone=zone)
    elif name == "destruction":
        report = destruction(s, zone=zone)
    elif name == "audit":
        report = audit_trail(s, zone=zone)
    else:
        raise ValueError(f"no report called {name!r}")
    return report, meta(s, now)
