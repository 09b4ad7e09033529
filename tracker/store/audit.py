"""The audit chain: every ledger change and every alarm is an append-only entry whose
hash covers the previous entry's hash, so an entry altered, removed, inserted or
reordered breaks the chain; and every audited row names the last entry that wrote it,
so a row edited behind the tracker's back no longer matches its entry.

``hash = sha256(prev + "\\n" + canonical(entry))``, the first ``prev`` being 64 zeros.
Entry ids run 1, 2, 3, ... with no gap.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from protocol.canonical import canonical
from tracker.store.models import AUDITED, AuditEntry, Base

GENESIS = "0" * 64
#: Key material never enters the chain: a row's keys are snapshotted as fingerprints
#: (and so is a console account's password hash).
_SECRET_COLUMNS = {"event_key", "command_key", "password_hash"}


def snapshot(row: Base) -> dict[str, Any]:
    """The row as the audit chain records it (every column but ``audit_id``)."""
    out: dict[str, Any] = {}
    for col in row.__table__.columns:
        if col.key == "audit_id":
            continue
        value = getattr(row, col.key)
        if col.key in _SECRET_COLUMNS and value is not None:
            value = "sha256:" + hashlib.sha256(str(value).encode()).hexdigest()[:16]
        out[col.key] = value
    return out


def entity_key(row: Base) -> str:
    return ":".join(str(v) for v in row.__mapper__.primary_key_from_instance(row))


def entry_hash(prev: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + canonical(fields)).hexdigest()


def _fields(e: AuditEntry) -> dict[str, Any]:
    return {
        "id": e.id,
        "ts": e.ts,
        "actor": e.actor,
        "action": e.action,
        "entity": e.entity,
        "entity_key": e.entity_key,
        "before": e.before,
        "after": e.after,
        "reason": e.reason,
    }


def _head(session: Session) -> tuple[int, str]:
    if session.get_bind().dialect.name == "postgresql":
        # One writer of the chain at a time across every tracker and command line.
        session.execute(text("SELECT pg_advisory_xact_lock(7263540)"))
    row = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)


class Auditor:
    """Appends entries within the caller's transaction (one per session)."""

    def __init__(self, session: Session, *, actor: str, ts: str, reason: str | None) -> None:
        self.session = session
        self.actor = actor
        self.ts = ts
        self.reason = reason
        self._head: tuple[int, str] | None = None

    def record(
        self,
        action: str,
        row: Base,
        before: dict[str, Any] | None,
        *,
        deleted: bool = False,
        reason: str | None = None,
    ) -> AuditEntry:
        """Write the entry for one change of ``row`` (flushed first, so it has its id)."""
        self.session.flush()
        if self._head is None:
            self._head = _head(self.session)
        last_id, prev = self._head
        entity = _entity_of(row)
        after = None if deleted else snapshot(row)
        entry = AuditEntry(
            id=last_id + 1,
            ts=self.ts,
            actor=self.actor,
            action=action,
            entity=entity,
            entity_key=entity_key(row),
            before=_json(before),
            after=_json(after),
            reason=reason if reason is not None else self.reason,
            prev=prev,
        )
        entry.hash = entry_hash(prev, _fields(entry))
        self.session.add(entry)
        self._head = (entry.id, entry.hash)
        if not deleted:
            row.audit_id = entry.id  # type: ignore[attr-defined]
        return entry


def _entity_of(row: Base) -> str:
    for name, model in AUDITED.items():
        if isinstance(row, model):
            return name
    raise TypeError(f"{type(row).__name__} is not an audited table")


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else canonical(value).decode()


# -- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ok: bool
    count: int
    head: str
    bad_entry: int | None = None
    problem: str = ""


def head(session: Session) -> tuple[int, str]:
    """``(entry count, head hash)``."""
    return _head_readonly(session)


def _head_readonly(session: Session) -> tuple[int, str]:
    row = session.execute(
        select(AuditEntry.id, AuditEntry.hash).order_by(AuditEntry.id.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row else (0, GENESIS)


def _entries(session: Session) -> Iterator[AuditEntry]:
    stmt = select(AuditEntry).order_by(AuditEntry.id).execution_options(yield_per=2000)
    yield from session.scalars(stmt)


def verify(session: Session) -> Verdict:
    """Walk the chain, then compare every audited row with the entry that last wrote it."""
    prev, expected, count = GENESIS, 1, 0
    latest: dict[tuple[str, str], tuple[int, str | None]] = {}
    for e in _entries(session):
        if e.id != expected:
            missing = f"entry {expected} is missing" if e.id > expected else "out of order"
            return Verdict(False, count, prev, expected, f"{missing} (found entry {e.id} next)")
        if e.prev != prev:
            return Verdict(
                False,
                count,
                prev,
                e.id,
                f"entry {e.id} does not follow entry "
                f"{e.id - 1} (its prev hash differs): reordered or inserted",
            )
        if _hash_of(prev, e) != e.hash:
            return Verdict(False, count, prev, e.id, f"entry {e.id} was altered (hash mismatch)")
        latest[(e.entity, e.entity_key)] = (e.id, e.after)
        prev, expected, count = e.hash, expected + 1, count + 1
        session.expunge(e)
    seen: set[tuple[str, str]] = set()
    for entity, model in AUDITED.items():
        for row in session.scalars(select(model).execution_options(yield_per=2000)):
            key = (entity, entity_key(row))
            seen.add(key)
            last = latest.get(key)
            if last is None:
                return Verdict(
                    False,
                    count,
                    prev,
                    None,
                    f"{entity} {key[1]} has no audit entry: written behind the tracker's back",
                )
            entry_id, after = last
            if after is None or _loads(after) != _normal(snapshot(row)):
                return Verdict(
                    False,
                    count,
                    prev,
                    entry_id,
                    f"{entity} {key[1]} no longer matches audit entry {entry_id}",
                )
            if row.audit_id != entry_id:  # type: ignore[attr-defined]
                return Verdict(
                    False,
                    count,
                    prev,
                    entry_id,
                    f"{entity} {key[1]} names audit entry {row.audit_id} "  # type: ignore[attr-defined]
                    f"but entry {entry_id} wrote it last",
                )
            session.expunge(row)
    for key, (entry_id, after) in latest.items():
        if after is not None and key not in seen:
            return Verdict(
                False,
                count,
                prev,
                entry_id,
                f"{key[0]} {key[1]} was deleted behind the tracker's back "
                f"(audit entry {entry_id} wrote it last)",
            )
    return Verdict(True, count, prev)


def _hash_of(prev: str, e: AuditEntry) -> str | None:
    """The entry's hash, or None when a field holds what no entry can (a blob, a float:
    written by hand)."""
    try:
        return entry_hash(prev, _fields(e))
    except (TypeError, ValueError):
        return None


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return _UNREADABLE_ENTRY


def _normal(snap: dict[str, Any]) -> Any:
    """The row as JSON, or a marker matching nothing when a column holds what the tracker
    never writes (a blob, a float: edited by hand)."""
    try:
        return json.loads(canonical(snap))
    except (TypeError, ValueError):
        return _UNREADABLE


_UNREADABLE = object()
_UNREADABLE_ENTRY = object()


def entries(
    session: Session,
    *,
    entity: str | None = None,
    key: str | None = None,
    document: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Audit entries as dicts, oldest first; ``document`` (a tag or a number) selects the
    entries of that document and of its loans."""
    from tracker.store.models import Document, Loan

    stmt = select(AuditEntry).order_by(AuditEntry.id)
    if document is not None:
        ids = [
            str(i)
            for i in session.scalars(
                select(Document.id).where(
                    (Document.tag == document.upper()) | (Document.number == document)
                )
            )
        ]
        loans = [
            str(i)
            for i in session.scalars(
                select(Loan.id).where(Loan.document_id.in_([int(i) for i in ids]))
            )
        ]
        stmt = stmt.where(
            ((AuditEntry.entity == "document") & AuditEntry.entity_key.in_(ids))
            | ((AuditEntry.entity == "loan") & AuditEntry.entity_key.in_(loans))
        )
    if entity is not None:
        stmt = stmt.where(AuditEntry.entity == entity)
    if key is not None:
        stmt = stmt.where(AuditEntry.entity_key == key)
    for e in session.scalars(stmt.execution_options(yield_per=1000)):
        yield {
            "id": e.id,
            "ts": e.ts,
            "actor": e.actor,
            "action": e.action,
            "entity": e.entity,
            "key": e.entity_key,
            "before": json.loads(e.before) if e.before else None,
            "after": json.loads(e.after) if e.after else None,
            "reason": e.reason,
            "hash": e.hash,
        }
