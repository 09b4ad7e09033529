"""Dossiers (立卷, DOMAIN.md rule 11): a dossier's cover shows the highest classification
and the longest secrecy period of its contents, computed from them, never typed.

"Longest" is the latest declassification date: each document's own date
(``declassify_on``) when it has one, else its registration date plus its secrecy period
(``period_years``); a document with neither sets no date. Documents destroyed or given
back to their issuer stay listed in the dossier but no longer count for its marking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from tracker.domain.levels import Level

#: Statuses of documents that are no longer in the dossier's keeping.
GONE = frozenset({"destroyed", "returned"})


@dataclass(frozen=True, slots=True)
class Content:
    """One document filed in a dossier, as the marking needs it."""

    document_id: int
    classification: Level
    registered: date
    period_years: int | None = None
    declassify_on: date | None = None
    status: str = "in_cabinet"


@dataclass(frozen=True, slots=True)
class Marking:
    """A dossier's cover (卷宗封面): ``None`` where no counted document sets it (an empty
    dossier has no classification). ``level_from`` and ``until_from`` name the document
    that sets each (the first, by id, on a tie)."""

    classification: Level | None
    declassify_on: date | None
    counted: int
    level_from: int | None = None
    until_from: int | None = None


def add_years(d: date, years: int) -> date:
    """``years`` calendar years after ``d``; 29 February becomes 28 February."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def declassification(c: Content) -> date | None:
    """When a document's secrecy period ends: its own date wins over a period (the period
    may be only the default for its level)."""
    if c.declassify_on is not None:
        return c.declassify_on
    if c.period_years is not None:
        return add_years(c.registered, c.period_years)
    return None


def marking(contents: Iterable[Content]) -> Marking:
    """The highest classification and the latest declassification date of the documents
    still in the dossier's keeping."""
    counted = sorted((c for c in contents if c.status not in GONE), key=lambda c: c.document_id)
    level: Level | None = None
    level_from: int | None = None
    until: date | None = None
    until_from: int | None = None
    for c in counted:
        if level is None or c.classification > level:
            level, level_from = c.classification, c.document_id
        end = declassification(c)
        if end is not None and (until is None or end > until):
            until, until_from = end, c.document_id
    return Marking(level, until, len(counted), level_from, until_from)


def filing_refusal(status: str, dossier: str, current: str | None) -> str | None:
    """Why a document cannot be filed in ``dossier`` (``None``: it can). A document is in
    at most one dossier; one destroyed or given back cannot be filed."""
    if status == "destroyed":
        return "it is destroyed"
    if status == "returned":
        return "it was given back to its issuer"
    if current is not None and current != dossier:
        return f"it is in dossier {current!r} already (remove it there first)"
    return None


def name_refusal(name: str) -> str | None:
    """A dossier's name (卷号): 1 to 100 characters, no control characters, no spaces at
    either end."""
    if not name or len(name) > 100:
        return "a dossier name has 1 to 100 characters"
    if name != name.strip():
        return "a dossier name has no spaces at either end"
    if any(not ch.isprintable() for ch in name):
        return "a dossier name has no control characters"
    return None
