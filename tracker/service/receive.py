"""Receive and register (收文登记, DOMAIN.md rules 1 and 8): a delivery checked against
its note, then registered copy by copy, each bound to a tag, and kept as a
``deliveries`` row listing the documents it brought. Meeting documents (会议文件) are a
delivery with the meeting's name."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.service.ledger import Ledger, LedgerError, read_delivery
from tracker.store import models as m


@dataclass(frozen=True, slots=True)
class Copy:
    """One row of a delivery: where it is in the file and which copy it is."""

    line: int
    number: str
    copy_no: int
    copies: int


def delivery_problems(
    note_count: int,
    rows: Sequence[Copy],
    registered: Mapping[str, frozenset[int]],
    *,
    partial: bool = False,
) -> list[str]:
    """What does not match between a delivery note and its rows (empty: it matches).

    The note's count is the number of rows (copies). For each document number the copies
    carry one N, are distinct and are new to the ledger; and, unless ``partial``, they
    complete 1..N together with the copies of that number already registered."""
    out: list[str] = []
    if note_count != len(rows):
        diff = len(rows) - note_count
        what = f"{-diff} short" if diff < 0 else f"{diff} extra"
        out.append(f"the delivery note says {note_count} copies, the file has {len(rows)} ({what})")
    by_number: dict[str, list[Copy]] = {}
    for r in rows:
        by_number.setdefault(r.number, []).append(r)
    for number, copies in by_number.items():
        ns = sorted({c.copies for c in copies})
        if len(ns) > 1:
            lines = ", ".join(str(c.line) for c in copies)
            out.append(
                f"{number}: copies numbered out of {' and '.join(map(str, ns))} (lines {lines})"
            )
            continue
        n = ns[0]
        seen: dict[int, int] = {}
        for c in copies:
            if c.copy_no in seen:
                out.append(
                    f"{number}: copy {c.copy_no}/{n} twice (lines {seen[c.copy_no]}, {c.line})"
                )
            elif c.copy_no in registered.get(number, frozenset()):
                out.append(f"{number}: copy {c.copy_no}/{n} is registered already (line {c.line})")
            seen.setdefault(c.copy_no, c.line)
        if not partial:
            have = set(seen) | set(registered.get(number, frozenset()))
            short = [k for k in range(1, n + 1) if k not in have]
            if short:
                listed = ", ".join(f"{k}/{n}" for k in short)
                out.append(f"{number}: short copies {listed}")
    return out


def receive(
    ledger: Ledger,
    path: Path,
    *,
    note_count: int,
    issuer: str | None,
    note_no: str | None,
    meeting: str | None,
    partial: bool,
) -> dict[str, Any]:
    """Check the delivery against its note and register every copy, or nothing."""
    if note_count < 1:
        raise LedgerError(f"--note-count {note_count}: a delivery note counts at least 1 copy")
    issuer = (issuer or "").strip() or None
    meeting = (meeting or "").strip() or None
    note_no = (note_no or "").strip() or None
    rows = read_delivery(path)
    for line, doc in rows:
        if issuer is not None and doc.issuer is not None and doc.issuer != issuer:
            raise LedgerError(
                f"{path}: line {line}, column 'issuer': {doc.issuer!r}, but the delivery is "
                f"from {issuer!r}; nothing imported"
            )
    with ledger.change() as w:
        numbers = sorted({doc.number for _, doc in rows})
        registered: dict[str, set[int]] = {}
        for number, copy_no in w.s.execute(
            select(m.Document.number, m.Document.copy_no).where(m.Document.number.in_(numbers))
        ):
            registered.setdefault(number, set()).add(copy_no)
        problems = delivery_problems(
            note_count,
            [Copy(line, d.number, d.copy_no, d.copies) for line, d in rows],
            {k: frozenset(v) for k, v in registered.items()},
            partial=partial,
        )
        if problems:
            raise LedgerError(f"{path}: {'; '.join(problems)}; nothing imported")
        ids = []
        for line, doc in rows:
            try:
                row = ledger._document(w, replace(doc, issuer=doc.issuer or issuer))
            except LedgerError as exc:
                raise LedgerError(f"{path}: line {line}: {exc}; nothing imported") from None
            ids.append(row.id)
        d = m.Delivery(
            kind="meeting" if meeting else "delivery",
            received=w.at,
            issuer=issuer,
            note_no=note_no,
            note_count=note_count,
            meeting=meeting,
            source=path.name,
            documents=json.dumps(ids),
        )
        w.add("delivery.receive", d)
        return delivery_dict(w.s, d)


def deliveries(s: Session) -> list[dict[str, Any]]:
    return [delivery_dict(s, d) for d in s.scalars(select(m.Delivery).order_by(m.Delivery.id))]


def delivery_dict(s: Session, d: m.Delivery) -> dict[str, Any]:
    ids = json.loads(d.documents)
    docs = {x.id: x for x in s.scalars(select(m.Document).where(m.Document.id.in_(ids)))}
    return {
        "delivery": d.id,
        "kind": d.kind,
        "received": d.received,
        "issuer": d.issuer,
        "note": d.note_no,
        "note_count": d.note_count,
        "meeting": d.meeting,
        "file": d.source,
        "documents": [
            {
                "number": docs[i].number,
                "copy": f"{docs[i].copy_no}/{docs[i].copies}",
                "tag": docs[i].tag,
            }
            for i in ids
            if i in docs
        ],
    }
