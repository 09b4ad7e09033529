"""The ledger's tables.

Timestamps are stored as wire text (``2026-11-26T00:40:00.000Z``: UTC, fixed width), so
they sort as text, compare the same on SQLite and PostgreSQL, and snapshot into the
audit chain unchanged. Rows the audit chain covers carry ``audit_id``: the last audit
entry that wrote them (``ironroom audit verify`` checks each row still matches it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

TS = String(24)


class Base(DeclarativeBase):
    pass


class Room(Base):
    """A secure room and its one controller (keys in hex)."""

    __tablename__ = "rooms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(32))
    room: Mapped[str] = mapped_column(String(32))
    controller: Mapped[str] = mapped_column(String(32))
    event_key: Mapped[str] = mapped_column(String(128))
    command_key: Mapped[str] = mapped_column(String(128))
    #: bumps at every re-enrolment: events of earlier generations are history
    generation: Mapped[int] = mapped_column(Integer, default=1)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("site", "room"),
        UniqueConstraint("site", "controller"),
    )


class RoomLive(Base):
    """What changes all the time in a room (not audited): link status, the last state
    snapshot, the controller's clock offset, the last policy sent."""

    __tablename__ = "room_live"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), primary_key=True)
    status: Mapped[str | None] = mapped_column(String(16))
    state: Mapped[str | None] = mapped_column(Text)  # the P/state envelope's data, JSON
    state_ts: Mapped[str | None] = mapped_column(TS)
    offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    offset_at: Mapped[str | None] = mapped_column(TS)
    started: Mapped[str | None] = mapped_column(Text)  # controller.started data, JSON
    policy_hash: Mapped[str | None] = mapped_column(String(64))
    eod_checked: Mapped[str | None] = mapped_column(TS)  # last closing time checked


class Cabinet(Base):
    __tablename__ = "cabinets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    name: Mapped[str] = mapped_column(String(32))
    general: Mapped[bool] = mapped_column(Boolean, default=False)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("room_id", "name"),)


class Person(Base):
    __tablename__ = "people"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    dept: Mapped[str | None] = mapped_column(String(200))
    clearance: Mapped[int] = mapped_column(Integer)
    roles: Mapped[str] = mapped_column(Text, default="[]")  # JSON list, sorted
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    email: Mapped[str | None] = mapped_column(String(320))  # where reminders are mailed
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class Badge(Base):
    __tablename__ = "badges"
    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class Document(Base):
    """A document or folder (涉密载体) with every field of DOMAIN.md, where it is, and who
    holds it."""

    __tablename__ = "documents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(Text)
    issuer: Mapped[str | None] = mapped_column(String(200))
    classification: Mapped[int] = mapped_column(Integer)
    period_years: Mapped[int | None] = mapped_column(Integer)
    declassify_on: Mapped[str | None] = mapped_column(String(10))
    copy_no: Mapped[int] = mapped_column(Integer, default=1)
    copies: Mapped[int] = mapped_column(Integer, default=1)
    scope: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of "kind:value"
    no_copying: Mapped[bool] = mapped_column(Boolean, default=False)
    home_cabinet_id: Mapped[int] = mapped_column(ForeignKey("cabinets.id"))
    return_by: Mapped[str | None] = mapped_column(String(10))
    tag: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="in_cabinet")
    location_cabinet_id: Mapped[int | None] = mapped_column(ForeignKey("cabinets.id"))
    holder_id: Mapped[str | None] = mapped_column(ForeignKey("people.id"))
    registered: Mapped[str] = mapped_column(TS)
    original_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("number", "copy_no"),
        Index("documents_holder", "holder_id"),
        Index("documents_location", "location_cabinet_id"),
    )


class Loan(Base):
    __tablename__ = "loans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    kind: Mapped[str] = mapped_column(String(16))
    opened: Mapped[str] = mapped_column(TS)
    due: Mapped[str] = mapped_column(TS)
    closed: Mapped[str | None] = mapped_column(TS)
    misplaced: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_by: Mapped[str | None] = mapped_column(String(120))  # the event id
    closed_by: Mapped[str | None] = mapped_column(String(120))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        # the loan's listed columns too: open loans are listed from the index alone
        Index("loans_open", "closed", "due", "id", "document_id", "person_id", "opened", "kind"),
        Index("loans_person", "person_id", "closed"),
        Index("loans_document", "document_id", "closed"),
    )


class Alarm(Base):
    """An alarm, the controller's or the tracker's own, latched until a person resets it
    (the condition alarms ``controller_silent`` and ``clock_skew`` clear by themselves)."""

    __tablename__ = "alarms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # as long as the protocol allows (a controller's ids: 256 characters)
    alarm_id: Mapped[str] = mapped_column(String(256), unique=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))
    source: Mapped[str] = mapped_column(String(16))  # controller | tracker
    cause: Mapped[str] = mapped_column(String(40))
    point: Mapped[str | None] = mapped_column(String(80))
    severity: Mapped[str] = mapped_column(String(16))
    raised: Mapped[str] = mapped_column(TS)
    state: Mapped[str] = mapped_column(String(16), default="active")
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    count: Mapped[int] = mapped_column(Integer, default=1)
    ended: Mapped[str | None] = mapped_column(TS)
    ended_by: Mapped[str | None] = mapped_column(String(256))
    reason: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(120))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("alarms_state", "state", "room_id", "cause"),)


class Incident(Base):
    """Recorded, not alarmed: ``unknown_tag``, ``misplaced``, ``lateral_pass``,
    ``badge_refused``, ``portal_pass``."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))
    kind: Mapped[str] = mapped_column(String(40))
    ts: Mapped[str] = mapped_column(TS)
    epc: Mapped[str | None] = mapped_column(String(128))  # any EPC the protocol allows
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    person_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    event_id: Mapped[str | None] = mapped_column(String(120))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class BadgeSession(Base):
    __tablename__ = "badge_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    uid: Mapped[str] = mapped_column(String(64))
    reader: Mapped[str] = mapped_column(String(80))
    cabinets: Mapped[str] = mapped_column(Text)  # JSON list of cabinet keys
    opened: Mapped[str] = mapped_column(TS)
    until: Mapped[str] = mapped_column(TS)
    event_id: Mapped[str | None] = mapped_column(String(120))
    __table_args__ = (Index("sessions_room", "room_id", "until"),)


class Event(Base):
    """Every physical event applied, once (the unique key is its identity)."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    generation: Mapped[int] = mapped_column(Integer)
    boot: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[str] = mapped_column(TS)
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    received: Mapped[str] = mapped_column(TS)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (
        UniqueConstraint("room_id", "generation", "boot", "seq", name="events_identity"),
    )


class Boot(Base):
    """Per controller boot: the highest contiguous seq committed (what ``P/ack`` says)."""

    __tablename__ = "boots"
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    boot: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    high: Mapped[int] = mapped_column(BigInteger, default=0)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)


class Command(Base):
    """Commands to controllers: written in the same transaction as the decision that made
    them, published by the ingest after commit (signed then, in the room's time)."""

    __tablename__ = "commands"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    type: Mapped[str] = mapped_column(String(40))
    data: Mapped[str] = mapped_column(Text)
    created: Mapped[str] = mapped_column(TS)
    published: Mapped[str | None] = mapped_column(TS)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (Index("commands_unpublished", "published"),)


class SecurityRecord(Base):
    """A message refused as a possible forgery: bad signature, unknown controller, the
    same event id with other bytes, a closed boot."""

    __tablename__ = "security"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))
    received: Mapped[str] = mapped_column(TS)
    topic: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    head: Mapped[bytes] = mapped_column(LargeBinary)  # the first 512 bytes


class Counter(Base):
    """Ingest counters (messages refused by reason, applied, duplicates)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(Base):
    """One link of the append-only hash chain."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ts: Mapped[str] = mapped_column(TS)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    entity: Mapped[str] = mapped_column(String(40))
    entity_key: Mapped[str] = mapped_column(String(120))
    before: Mapped[str | None] = mapped_column(Text)
    after: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
    prev: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (Index("audit_entity", "entity", "entity_key"),)


# -- approvals: requests for copying, carrying out, extended hours, destruction ----------


class Request(Base):
    """A request (申请) that an approver decides: ``copy`` (复印), ``carry-out`` (携带外出),
    ``hours`` (extended hours) or ``destroy`` (销毁). ``state``: ``pending``, then
    ``approved``, ``refused`` or ``expired``; an approved request that has been carried
    out becomes ``done``. ``starts``/``ends`` bound a carry-out pass or an hours grant."""

    __tablename__ = "requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    requester_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    reason: Mapped[str | None] = mapped_column(Text)
    created: Mapped[str] = mapped_column(TS)
    expires: Mapped[str] = mapped_column(TS)  # a pending request expires then
    copies: Mapped[int | None] = mapped_column(Integer)  # copy: how many
    room_id: Mapped[int | None] = mapped_column(ForeignKey("rooms.id"))  # hours
    starts: Mapped[str | None] = mapped_column(TS)
    ends: Mapped[str | None] = mapped_column(TS)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided: Mapped[str | None] = mapped_column(TS)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    done: Mapped[str | None] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("requests_state", "state", "kind"),)


class RequestItem(Base):
    """A document a request is about (``role`` ``subject``), or a copy registered under an
    approved copy request (``role`` ``copy``)."""

    __tablename__ = "request_items"
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="subject")
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("request_items_document", "document_id"),)


# -- receive and register (收文登记), handover (交接), annual return (清退) ----------------


class Delivery(Base):
    """A delivery registered from its note (收文): ``kind`` ``delivery`` or ``meeting``
    (会议文件), who sent it, the note's number and count, and the documents registered
    (``documents``: JSON list of document ids, in the file's order)."""

    __tablename__ = "deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="delivery")
    received: Mapped[str] = mapped_column(TS)
    issuer: Mapped[str | None] = mapped_column(String(200))
    note_no: Mapped[str | None] = mapped_column(String(200))
    note_count: Mapped[int] = mapped_column(Integer)
    meeting: Mapped[str | None] = mapped_column(String(200))
    source: Mapped[str | None] = mapped_column(Text)  # the file's name
    documents: Mapped[str] = mapped_column(Text, default="[]")
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class Handover(Base):
    """A hand-over (交接) from a person changing post to a successor: ``open`` until every
    item is settled, then ``done``."""

    __tablename__ = "handovers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    from_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    to_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    state: Mapped[str] = mapped_column(String(16), default="open")
    created: Mapped[str] = mapped_column(TS)
    closed: Mapped[str | None] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("handovers_state", "state", "from_id"),)


class HandoverItem(Base):
    """One document of a hand-over: held on loan (``reason`` ``loan``) or kept in custody
    (``custody``); ``state`` ``pending``, then ``handed_over``, ``returned`` or ``gone``
    (destroyed or given back to its issuer meanwhile). ``from_badge``/``to_badge``: the
    two badges that confirmed it."""

    __tablename__ = "handover_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("handovers.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    reason: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    done: Mapped[str | None] = mapped_column(TS)
    from_badge: Mapped[str | None] = mapped_column(String(64))
    to_badge: Mapped[str | None] = mapped_column(String(64))
    via: Mapped[str | None] = mapped_column(String(120))  # the event id, or "cli"
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        Index("handover_items_handover", "handover_id"),
        Index("handover_items_document", "document_id", "state"),
    )


class HandoverSighting(Base):
    """Working state of the hand-overs at a desk (not audited, like badge sessions): a
    badge of either party, or the tag of a pending item, read at a room's desk."""

    __tablename__ = "handover_sightings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    handover_id: Mapped[int] = mapped_column(ForeignKey("handovers.id"))
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    kind: Mapped[str] = mapped_column(String(8))  # from | to | tag
    value: Mapped[str] = mapped_column(String(128))  # badge uid or EPC
    ts: Mapped[str] = mapped_column(TS)
    event_id: Mapped[str | None] = mapped_column(String(120))
    __table_args__ = (Index("handover_sightings_room", "handover_id", "room_id", "ts"),)


class Campaign(Base):
    """An annual return campaign (清退): the documents due back to their issuers by the
    end of ``year`` (one issuer's only, with ``issuer``); ``open`` until every holder's
    list is signed off, then ``complete``."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    year: Mapped[int] = mapped_column(Integer)
    issuer: Mapped[str | None] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(16), default="open")
    created: Mapped[str] = mapped_column(TS)
    completed: Mapped[str | None] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class CampaignHolder(Base):
    """One holder's list in a campaign: a person holding items on loan, or
    ``secretary`` for what is in the cabinets; signed off once all of it is back."""

    __tablename__ = "campaign_holders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    holder: Mapped[str] = mapped_column(String(64))
    signed: Mapped[str | None] = mapped_column(TS)
    signed_by: Mapped[str | None] = mapped_column(String(64))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("campaign_id", "holder"),)


class CampaignItem(Base):
    """A document a campaign must give back: ``pending`` until ``returned`` (by whom,
    when)."""

    __tablename__ = "campaign_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id"))
    holder_id: Mapped[int] = mapped_column(ForeignKey("campaign_holders.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    returned: Mapped[str | None] = mapped_column(TS)
    returned_by: Mapped[str | None] = mapped_column(String(64))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        UniqueConstraint("campaign_id", "document_id"),
        Index("campaign_items_document", "document_id", "state"),
    )


# -- inventory (清查): sweeps of a room's cabinets reconciled with the ledger ---------------


class InventoryRun(Base):
    """One inventory of a room (清查): an ``inventory.run`` command per cabinet reader,
    then the reconciliation. ``state``: ``running`` until every reader has answered or
    the room's clock passed ``deadline``, then ``done``. ``started``, ``deadline`` and
    ``finished`` are in the room's own time; ``readers`` (JSON list) are those asked,
    ``not_read`` (JSON list) those that gave no tags (no answer, or refused)."""

    __tablename__ = "inventory_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    state: Mapped[str] = mapped_column(String(16), default="running")
    started: Mapped[str] = mapped_column(TS)
    deadline: Mapped[str] = mapped_column(TS)
    finished: Mapped[str | None] = mapped_column(TS)
    readers: Mapped[str] = mapped_column(Text, default="[]")
    not_read: Mapped[str] = mapped_column(Text, default="[]")
    summary: Mapped[str] = mapped_column(Text, default="{}")  # JSON: outcome -> count
    requested_by: Mapped[str | None] = mapped_column(String(200))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("inventory_runs_state", "state", "room_id"),)


class InventoryRead(Base):
    """One reader's part of a run: the command sent and what it answered (``tags``,
    a JSON list, when ``ok``)."""

    __tablename__ = "inventory_reads"
    run_id: Mapped[int] = mapped_column(ForeignKey("inventory_runs.id"), primary_key=True)
    reader: Mapped[str] = mapped_column(String(80), primary_key=True)
    command_id: Mapped[str] = mapped_column(String(36), unique=True)
    answered: Mapped[str | None] = mapped_column(TS)
    ok: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[str | None] = mapped_column(Text)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class InventoryItem(Base):
    """One line of a run's report: a document or a tag and its ``outcome`` (``present``,
    ``missing``, ``wrong_cabinet``, ``on_loan``, ``unknown_tag``, ``retired_tag``,
    ``unchecked``); ``cabinet`` where it was read, ``home`` its home cabinet (keys
    ``site/room/cabinet``); the document's status before and after the sweep."""

    __tablename__ = "inventory_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("inventory_runs.id"))
    outcome: Mapped[str] = mapped_column(String(16))
    epc: Mapped[str | None] = mapped_column(String(128))
    document_id: Mapped[int | None] = mapped_column(ForeignKey("documents.id"))
    cabinet: Mapped[str | None] = mapped_column(String(100))
    home: Mapped[str | None] = mapped_column(String(100))
    status_before: Mapped[str | None] = mapped_column(String(16))
    status_after: Mapped[str | None] = mapped_column(String(16))
    holder_id: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="{}")
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("inventory_items_run", "run_id", "outcome"),)


# -- destruction (销毁) and dossiers (立卷) -------------------------------------------------


class Destruction(Base):
    """A destruction carried out (销毁), kept permanently: which approved ``destroy``
    request, where (room and reader), when (the room's time of the second badge), and the
    two witnesses (监销): each person, the badge presented and when."""

    __tablename__ = "destructions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id"), unique=True)
    room_id: Mapped[int] = mapped_column(ForeignKey("rooms.id"))
    reader: Mapped[str] = mapped_column(String(80))
    destroyed: Mapped[str] = mapped_column(TS)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    witness1_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    witness1_badge: Mapped[str] = mapped_column(String(64))
    witness1_at: Mapped[str] = mapped_column(TS)
    witness2_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    witness2_badge: Mapped[str] = mapped_column(String(64))
    witness2_at: Mapped[str] = mapped_column(TS)
    event_id: Mapped[str | None] = mapped_column(String(120))  # the second badge's event
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class DestructionItem(Base):
    """One document destroyed: its number, copy and retired tag as they were."""

    __tablename__ = "destruction_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    destruction_id: Mapped[int] = mapped_column(ForeignKey("destructions.id"))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), unique=True)
    number: Mapped[str] = mapped_column(String(200))
    copy_no: Mapped[int] = mapped_column(Integer)
    copies: Mapped[int] = mapped_column(Integer)
    tag: Mapped[str | None] = mapped_column(String(64))
    classification: Mapped[int] = mapped_column(Integer)
    status_before: Mapped[str] = mapped_column(String(16))
    holder_before: Mapped[str | None] = mapped_column(String(64))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("destruction_items_destruction", "destruction_id"),)


class Dossier(Base):
    """A dossier (卷宗): its marking is computed from its contents, never stored."""

    __tablename__ = "dossiers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str | None] = mapped_column(Text)
    created: Mapped[str] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class DossierItem(Base):
    """A document filed in a dossier (立卷); a document is in at most one."""

    __tablename__ = "dossier_items"
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"), primary_key=True)
    dossier_id: Mapped[int] = mapped_column(ForeignKey("dossiers.id"))
    added: Mapped[str] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("dossier_items_dossier", "dossier_id"),)


#: Tables whose rows the audit chain covers, by the entity name used in entries.
# -- web console: accounts (账户) and the record of logins (登录记录) ---------------------


class Account(Base):
    """A console login: a password hash (argon2id), a role of DOMAIN.md, the person it
    acts for, and the lock after repeated failures."""

    __tablename__ = "accounts"
    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[str | None] = mapped_column(TS)
    created: Mapped[str] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)


class Login(Base):
    """One login, logout, failed login, lock or denial at the console."""

    __tablename__ = "logins"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[str] = mapped_column(TS)
    username: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # ok|failed|locked|logout|denied
    detail: Mapped[str | None] = mapped_column(Text)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("logins_client", "client", "ts"),)


# -- overdue (催办): reminders written once per loan and step, the messages they send ------


class OverdueReminder(Base):
    """One reminder step of one overdue loan (``remind-1``, ..., ``escalate``), written
    once: the escalation names the ``overdue_escalated`` alarm it raised."""

    __tablename__ = "overdue_reminders"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    loan_id: Mapped[int] = mapped_column(ForeignKey("loans.id"))
    step: Mapped[str] = mapped_column(String(16))
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))  # the borrower
    due_at: Mapped[str] = mapped_column(TS)  # the loan's due time plus the step's delay
    created: Mapped[str] = mapped_column(TS)
    alarm_id: Mapped[str | None] = mapped_column(String(256))
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("loan_id", "step"),)


class OverdueMessage(Base):
    """A message of a reminder to one person: ``pending`` until sent and committed
    (``sent``, with the channel it went by: ``smtp``, or ``log`` for a person without an
    email address or the log notifier); a failed send keeps its error and is tried again
    at ``next_try``."""

    __tablename__ = "overdue_messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reminder_id: Mapped[int] = mapped_column(ForeignKey("overdue_reminders.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id"))  # the recipient
    address: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))  # pending | sent
    channel: Mapped[str | None] = mapped_column(String(8))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created: Mapped[str] = mapped_column(TS)
    next_try: Mapped[str] = mapped_column(TS)
    sent: Mapped[str | None] = mapped_column(TS)
    audit_id: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (Index("overdue_messages_queue", "state", "next_try"),)


class OverdueCheck(Base):
    """When the tracker last looked for overdue loans (tracker time; not audited)."""

    __tablename__ = "overdue_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    checked: Mapped[str] = mapped_column(TS)


AUDITED: dict[str, type[Base]] = {
    "room": Room,
    "cabinet": Cabinet,
    "person": Person,
    "badge": Badge,
    "document": Document,
    "loan": Loan,
    "alarm": Alarm,
    "incident": Incident,
    "request": Request,
    "request_item": RequestItem,
    "delivery": Delivery,
    "handover": Handover,
    "handover_item": HandoverItem,
    "campaign": Campaign,
    "campaign_holder": CampaignHolder,
    "campaign_item": CampaignItem,
    "inventory_run": InventoryRun,
    "inventory_read": InventoryRead,
    "inventory_item": InventoryItem,
    "destruction": Destruction,
    "destruction_item": DestructionItem,
    "dossier": Dossier,
    "dossier_item": DossierItem,
    "account": Account,
    "login": Login,
    "overdue_reminder": OverdueReminder,
    "overdue_message": OverdueMessage,
}
