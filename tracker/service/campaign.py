"""The annual return (清退): a campaign lists the documents due back to their issuers,
grouped by who has them, records each one given back (the document leaves the
ledger's custody: status ``returned``), and signs off each holder's list once all of it
is back; the last sign-off completes the campaign. Every change audited."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tracker.domain import campaign as rules
from tracker.service import facts
from tracker.service.apply import queue_policy
from tracker.service.ledger import Ledger, LedgerError
from tracker.store import models as m


def start(ledger: Ledger, year: int, issuer: str | None) -> list[dict[str, Any]]:
    if not 1900 <= year <= 9999:
        raise LedgerError(f"year {year}: expected a year such as 2026")
    issuer = (issuer or "").strip() or None
    with ledger.change() as w:
        s = w.s
        same = s.scalars(
            select(m.Campaign).where(
                m.Campaign.year == year, m.Campaign.state == "open", _issuer_is(issuer)
            )
        ).first()
        if same is not None:
            raise LedgerError(
                f"campaign {same.id} for {year}"
                + (f" ({issuer})" if issuer else "")
                + " is open already"
            )
        elsewhere = set(
            s.scalars(
                select(m.CampaignItem.document_id)
                .join(m.Campaign, m.Campaign.id == m.CampaignItem.campaign_id)
                .where(m.Campaign.state == "open", m.CampaignItem.state == "pending")
            )
        )
        docs = [
            rules.Candidate(
                id=d.id,
                number=d.number,
                issuer=d.issuer,
                return_by=date.fromisoformat(d.return_by) if d.return_by else None,
                status=d.status,
                holder=d.holder_id,
                listed_elsewhere=d.id in elsewhere,
            )
            for d in s.scalars(select(m.Document).where(m.Document.return_by.is_not(None)))
        ]
        due = rules.due_for_return(docs, year, issuer)
        if not due:
            raise LedgerError(
                f"nothing to return for {year}"
                + (f" to {issuer}" if issuer else "")
                + ": no document with a return-by date in or before that year"
            )
        c = m.Campaign(year=year, issuer=issuer, state="open", created=w.at)
        w.add("campaign.start", c)
        for holder, listed in rules.by_holder(due).items():
            hrow = m.CampaignHolder(campaign_id=c.id, holder=holder)
            w.add("campaign_holder.list", hrow)
            for d in listed:
                w.add(
                    "campaign_item.list",
                    m.CampaignItem(
                        campaign_id=c.id, holder_id=hrow.id, document_id=d.id, state="pending"
                    ),
                )
        cid = c.id
    with ledger.sessions() as s:
        return status(s, cid)


def give_back(ledger: Ledger, cid: int, what: str, by: str) -> list[dict[str, Any]]:
    """``what`` (a tag: that copy; a number: every pending copy of it in the campaign)
    given back to its issuer by ``by``: the item is returned, the document's status
    ``returned`` (an open loan of it closes)."""
    with ledger.change() as w:
        s = w.s
        c = _campaign(s, cid)
        if s.get(m.Person, by) is None:
            raise LedgerError(f"no person {by}")
        key = what.strip()
        rows: list[tuple[m.CampaignItem, m.Document]] = [
            (it, d)
            for it, d in s.execute(
                select(m.CampaignItem, m.Document)
                .join(m.Document, m.Document.id == m.CampaignItem.document_id)
                .where(
                    m.CampaignItem.campaign_id == cid,
                    (m.Document.tag == key.upper()) | (m.Document.number == key),
                )
                .order_by(m.Document.copy_no)
            )
        ]
        if not rows:
            raise LedgerError(f"campaign {cid} lists no document with tag or number {what!r}")
        by_tag = [(it, d) for it, d in rows if d.tag == key.upper()]
        if not by_tag:  # a number: its copies still to give back
            pending = [(it, d) for it, d in rows if it.state == "pending"]
            rows = pending or rows[:1]
        else:
            rows = by_tag
        rooms = set()
        for it, d in rows:
            why = rules.return_refusal(it.state, d.status, c.state)
            if why is not None:
                raise LedgerError(f"{d.number} copy {d.copy_no}: {why}")
            loan = facts.open_loan_row(s, d.id)
            if loan is not None:
                w.change(
                    "loan.close",
                    loan,
                    closed=w.at,
                    closed_by=f"campaign:{cid}",
                    reason=f"given back to its issuer by {by}",
                )
            if d.location_cabinet_id is not None:
                cab = s.get(m.Cabinet, d.location_cabinet_id)
                if cab is not None:
                    rooms.add(cab.room_id)
            w.change(
                "document.return", d, status="returned", location_cabinet_id=None, holder_id=None
            )
            w.change("campaign_item.return", it, state="returned", returned=w.at, returned_by=by)
        for room in s.scalars(select(m.Room).where(m.Room.id.in_(rooms))):
            queue_policy(w, room, ledger.rules, force=False)
    with ledger.sessions() as s:
        return status(s, cid)


def sign_off(ledger: Ledger, cid: int, holder: str, by: str) -> list[dict[str, Any]]:
    with ledger.change() as w:
        s = w.s
        c = _campaign(s, cid)
        if c.state != "open":
            raise LedgerError(f"campaign {cid} is {c.state}")
        signer = s.get(m.Person, by)
        if signer is None:
            raise LedgerError(f"no person {by}")
        h = s.scalars(
            select(m.CampaignHolder).where(
                m.CampaignHolder.campaign_id == cid, m.CampaignHolder.holder == holder
            )
        ).first()
        if h is None:
            raise LedgerError(f"campaign {cid} has no list for holder {holder!r}")
        states = list(
            s.scalars(select(m.CampaignItem.state).where(m.CampaignItem.holder_id == h.id))
        )
        why = rules.sign_off_refusal(states, h.signed is not None, facts.person(signer).roles)
        if why is not None:
            raise LedgerError(f"campaign {cid}, holder {holder}: {why}")
        w.change("campaign_holder.sign_off", h, signed=w.at, signed_by=by)
        signed = [
            x.signed is not None
            for x in s.scalars(select(m.CampaignHolder).where(m.CampaignHolder.campaign_id == cid))
        ]
        if rules.complete(signed):
            w.change("campaign.complete", c, state="complete", completed=w.at)
    with ledger.sessions() as s:
        return status(s, cid)


# -- listings --------------------------------------------------------------------------


def listing(s: Session) -> list[dict[str, Any]]:
    return [_header(s, c) for c in s.scalars(select(m.Campaign).order_by(m.Campaign.id))]


def status(s: Session, cid: int) -> list[dict[str, Any]]:
    """The campaign (no ``holder`` key), then one object per holder with its items."""
    c = _campaign(s, cid)
    out = [_header(s, c)]
    keys = facts.Keys(s)
    holders = s.scalars(
        select(m.CampaignHolder)
        .where(m.CampaignHolder.campaign_id == cid)
        .order_by(m.CampaignHolder.holder)
    ).all()
    for h in holders:
        items = []
        for it, d in s.execute(
            select(m.CampaignItem, m.Document)
            .join(m.Document, m.Document.id == m.CampaignItem.document_id)
            .where(m.CampaignItem.holder_id == h.id)
            .order_by(m.Document.issuer, m.Document.number, m.Document.copy_no)
        ):
            items.append(
                {
                    "number": d.number,
                    "copy": f"{d.copy_no}/{d.copies}",
                    "tag": d.tag,
                    "issuer": d.issuer,
                    "return_by": d.return_by,
                    "state": it.state,
                    "returned": it.returned,
                    "returned_by": it.returned_by,
                    "status": d.status,
                    "holder": d.holder_id,
                    "cabinet": keys.get(d.location_cabinet_id),
                }
            )
        back, total = rules.progress(str(i["state"]) for i in items)
        out.append(
            {
                "campaign": cid,
                "holder": h.holder,
                "returned": back,
                "total": total,
                "signed": h.signed,
                "signed_by": h.signed_by,
                "items": items,
            }
        )
    return out


def _header(s: Session, c: m.Campaign) -> dict[str, Any]:
    states = list(s.scalars(select(m.CampaignItem.state).where(m.CampaignItem.campaign_id == c.id)))
    back, total = rules.progress(states)
    holders = list(
        s.scalars(select(m.CampaignHolder.signed).where(m.CampaignHolder.campaign_id == c.id))
    )
    return {
        "campaign": c.id,
        "year": c.year,
        "issuer": c.issuer,
        "state": c.state,
        "created": c.created,
        "completed": c.completed,
        "returned": back,
        "total": total,
        "holders": len(holders),
        "signed_off": sum(1 for x in holders if x is not None),
    }


def _campaign(s: Session, cid: int) -> m.Campaign:
    c = s.get(m.Campaign, cid)
    if c is None:
        raise LedgerError(f"no campaign {cid}")
    return c


def _issuer_is(issuer: str | None) -> Any:
    return m.Campaign.issuer.is_(None) if issuer is None else m.Campaign.issuer == issuer
