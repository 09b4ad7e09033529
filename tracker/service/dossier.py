"""Dossiers (立卷): filing documents in a dossier (卷宗) and showing its cover.

- :func:`add` creates a dossier or files documents in it (or changes its title);
  :func:`remove` takes documents out; each is one transaction with its audit entries.
- :func:`show` a dossier with its marking, computed from its contents at every reading
  (:func:`tracker.domain.dossier.marking`), and :func:`listing` every dossier.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from protocol.timefmt import format_ts
from tracker.domain import dossier as dz
from tracker.domain.levels import Level
from tracker.service.ledger import Ledger, LedgerError
from tracker.service.requests import find_document
from tracker.service.writer import Writer
from tracker.store import models as m


def add(
    ledger: Ledger, name: str, *, title: str | None = None, documents: Sequence[str] = ()
) -> dict[str, Any]:
    """Create dossier ``name`` if it is new, set its title when given, and file
    ``documents`` (tags, numbers or ``NUMBER/K``) in it. Filing one already in it is
    refused, as is one in another dossier, destroyed, or given back."""
    why = dz.name_refusal(name)
    if why:
        raise LedgerError(f"dossier {name!r}: {why}")
    if title is not None and not title.strip():
        raise LedgerError("--title: empty")
    with ledger.change() as w:
        s = w.s
        row = _find(s, name)
        if row is None:
            row = m.Dossier(name=name, title=title, created=format_ts(ledger.now))
            w.add("dossier.create", row)
        elif title is not None:
            w.change("dossier.title", row, title=title)
        seen: set[int] = set()
        for key in documents:
            doc = find_document(s, key)
            if doc.id in seen:
                raise LedgerError(f"{key!r} is named twice")
            seen.add(doc.id)
            item = s.get(m.DossierItem, doc.id)
            current = _name_of(s, item.dossier_id) if item is not None else None
            if current == name:
                raise LedgerError(f"{_ref(doc)} is in dossier {name!r} already")
            why = dz.filing_refusal(doc.status, name, current)
            if why:
                raise LedgerError(f"{_ref(doc)} cannot be filed: {why}")
            w.add(
                "dossier.file",
                m.DossierItem(document_id=doc.id, dossier_id=row.id, added=w.at),
            )
        return as_dict(s, row)


def remove(ledger: Ledger, name: str, documents: Sequence[str]) -> dict[str, Any]:
    """Take ``documents`` out of dossier ``name`` (the record of their filing stays in
    the audit chain)."""
    if not documents:
        raise LedgerError("name at least one --document to take out")
    with ledger.change() as w:
        row = get(w.s, name)
        for key in documents:
            doc = find_document(w.s, key)
            item = w.s.get(m.DossierItem, doc.id)
            if item is None or item.dossier_id != row.id:
                raise LedgerError(f"{_ref(doc)} is not in dossier {name!r}")
            _delete(w, item)
        return as_dict(w.s, row)


def _delete(w: Writer, item: m.DossierItem) -> None:
    from tracker.store.audit import snapshot

    before = snapshot(item)
    w.s.delete(item)
    w.audit.record("dossier.unfile", item, before, deleted=True)


# -- reading ---------------------------------------------------------------------------


def get(s: Session, name: str) -> m.Dossier:
    row = _find(s, name)
    if row is None:
        raise LedgerError(f"no dossier {name!r}")
    return row


def show(s: Session, name: str) -> dict[str, Any]:
    return as_dict(s, get(s, name))


def listing(s: Session) -> list[dict[str, Any]]:
    return [
        as_dict(s, r, contents=False) for r in s.scalars(select(m.Dossier).order_by(m.Dossier.id))
    ]


def as_dict(s: Session, row: m.Dossier, *, contents: bool = True) -> dict[str, Any]:
    docs = list(
        s.scalars(
            select(m.Document)
            .join(m.DossierItem, m.DossierItem.document_id == m.Document.id)
            .where(m.DossierItem.dossier_id == row.id)
            .order_by(m.Document.id)
        )
    )
    added = {
        doc_id: ts
        for doc_id, ts in s.execute(
            select(m.DossierItem.document_id, m.DossierItem.added).where(
                m.DossierItem.dossier_id == row.id
            )
        )
    }
    values = {d.id: _content(d) for d in docs}
    mk = dz.marking(values.values())
    by_id = {d.id: d for d in docs}
    out: dict[str, Any] = {
        "name": row.name,
        "title": row.title,
        "created": row.created,
        "classification": mk.classification.chinese if mk.classification is not None else None,
        "declassify_on": mk.declassify_on.isoformat() if mk.declassify_on else None,
        "set_by": {
            "classification": _ref(by_id[mk.level_from]) if mk.level_from is not None else None,
            "declassify_on": _ref(by_id[mk.until_from]) if mk.until_from is not None else None,
        },
        "counted": mk.counted,
        "size": len(docs),
    }
    if contents:
        out["documents"] = [
            {
                "number": d.number,
                "copy": f"{d.copy_no}/{d.copies}",
                "tag": d.tag,
                "title": d.title,
                "classification": Level(d.classification).chinese,
                "status": d.status,
                "period_years": d.period_years,
                "declassify_on": d.declassify_on,
                "until": _iso(dz.declassification(values[d.id])),
                "counted": d.status not in dz.GONE,
                "added": added.get(d.id),
            }
            for d in docs
        ]
    return out


# -- helpers ---------------------------------------------------------------------------


def _content(d: m.Document) -> dz.Content:
    return dz.Content(
        document_id=d.id,
        classification=Level(d.classification),
        registered=date.fromisoformat(d.registered[:10]),
        period_years=d.period_years,
        declassify_on=date.fromisoformat(d.declassify_on) if d.declassify_on else None,
        status=d.status,
    )


def _find(s: Session, name: str) -> m.Dossier | None:
    return s.scalars(select(m.Dossier).where(m.Dossier.name == name)).first()


def _name_of(s: Session, dossier_id: int) -> str | None:
    row = s.get(m.Dossier, dossier_id)
    return row.name if row is not None else None


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _ref(d: m.Document) -> str:
    return f"{d.number} copy {d.copy_no}/{d.copies}"
