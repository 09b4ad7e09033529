"""The annual return (清退, DOMAIN.md rule 10): which documents a campaign must give back
to their issuers, grouped by who has them, and when a holder's list and the campaign
are complete. Pure functions of plain values."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

#: The holder of every listed document that is not on loan: the secretary, who keeps
#: the cabinets (机要秘书).
CUSTODY_HOLDER = "secretary"

#: Roles that may sign off a holder's list: the secretary takes the documents back, the
#: secrecy office oversees the campaign.
SIGN_OFF_ROLES = frozenset({"secretary", "secrecy-office"})


@dataclass(frozen=True, slots=True)
class Candidate:
    """A document as the campaign sees it."""

    id: int
    number: str
    issuer: str | None
    return_by: date | None
    status: str
    holder: str | None  # the person it is on loan to
    listed_elsewhere: bool = False  # pending in another open campaign


def due_for_return(docs: Iterable[Candidate], year: int, issuer: str | None) -> list[Candidate]:
    """Documents whose return-by date (清退日期) falls in or before ``year`` (of that
    ``issuer`` only, when given), still in the ledger's custody (not destroyed, not
    returned) and not already pending in another open campaign. By issuer, number, id."""
    out = [
        d
        for d in docs
        if d.return_by is not None
        and d.return_by.year <= year
        and d.status not in ("destroyed", "returned")
        and not d.listed_elsewhere
        and (issuer is None or d.issuer == issuer)
    ]
    return sorted(out, key=lambda d: (d.issuer or "", d.number, d.id))


def holder_of(doc: Candidate) -> str:
    """Who must give the document back: the person it is on loan to, else the
    secretary (it is in a cabinet, misplaced or missing)."""
    return doc.holder if doc.holder is not None else CUSTODY_HOLDER


def by_holder(docs: Sequence[Candidate]) -> dict[str, list[Candidate]]:
    out: dict[str, list[Candidate]] = {}
    for d in docs:
        out.setdefault(holder_of(d), []).append(d)
    return dict(sorted(out.items()))


def return_refusal(item_state: str, doc_status: str, campaign_state: str) -> str | None:
    """Why a listed document cannot be recorded as given back (``None``: it can)."""
    if campaign_state != "open":
        return f"the campaign is {campaign_state}"
    if item_state != "pending":
        return f"it is {item_state} already"
    if doc_status == "destroyed":
        return "it was destroyed"
    return None


def sign_off_refusal(
    item_states: Sequence[str], signed: bool, signer_roles: frozenset[str]
) -> str | None:
    """Why a holder's list cannot be signed off (``None``: it can): every item must be
    back, once, by a secretary or the secrecy office."""
    if signed:
        return "signed off already"
    if not signer_roles & SIGN_OFF_ROLES:
        return "a sign-off needs the secretary or secrecy-office role"
    pending = sum(1 for s in item_states if s != "returned")
    if pending:
        return f"{pending} of {len(item_states)} items are not back yet"
    return None


def progress(item_states: Iterable[str]) -> tuple[int, int]:
    """(returned, total)."""
    states = list(item_states)
    return sum(1 for s in states if s == "returned"), len(states)


def complete(holders_signed: Iterable[bool]) -> bool:
    """A campaign is complete when every holder's list is signed off."""
    return all(holders_signed)
