"""The console: FastAPI pages (Jinja2) and the JSON API behind them.

Reads go through the store's ``readers`` (no write lock), changes through the same
service functions as ``ironroom ledger``, each in its own transaction, acting as
``web:<username>``. Sessions live in the process (a restart logs everyone out); the
cookie carries a random token signed with the console's key.
"""

import asyncio
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from itsdangerous import BadSignature, TimestampSigner
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from tracker.clock import Clock
from tracker.domain.levels import ROLES
from tracker.service.ledger import Ledger, LedgerError
from tracker.service.writer import CONDITION_CAUSES
from tracker.web import accounts, i18n, roles, views
from tracker.web.sim import RoomControls

T = TypeVar("T")
CSP = (
    "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
COOKIE = "ironroom_session"
PRE_COOKIE = "ironroom_login"
LANG_COOKIE = "lang"


class StoreLike(Protocol):
    sessions: Any
    readers: Any


class BrokerState(Protocol):
    def broker_state(self) -> str: ...


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: bytes = b""
    session_hours: float = 8.0
    cookie_secure: bool = False
    limits: accounts.Limits = field(default_factory=accounts.Limits)
    #: how often the live stream looks for a change, seconds
    poll_s: float = 0.5


@dataclass
class WebSession:
    who: accounts.Principal
    csrf: str
    expires: datetime


@dataclass
class Ctx:
    """The request's account, its session and its language."""

    who: accounts.Principal
    session: WebSession
    lang: str
    client: str

    @property
    def own(self) -> str | None:
        """A borrower sees only their own documents and loans."""
        return self.who.person_id if self.who.role == roles.BORROWER else None


class NeedLogin(Exception):
    pass


class Denied(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class ResetIn(BaseModel):
    alarm_id: str
    reason: str


class AckIn(BaseModel):
    alarm_id: str


class SimIn(BaseModel):
    verb: str
    target: str


class DecisionIn(BaseModel):
    reason: str | None = None


class PersonIn(BaseModel):
    id: str
    name: str
    clearance: str  # 绝密 | top-secret, ...
    roles: list[str] = []
    dept: str | None = None


class BadgeIn(BaseModel):
    uid: str
    person: str


class RunIn(BaseModel):
    room: str  # SITE/ROOM


#: the pages in the navigation, with the permission each needs (first allowed: home)
NAV = (
    ("/live", "nav.live", "live"),
    ("/alarms", "nav.alarms", "alarms.read"),
    ("/register", "nav.register", "register.own"),
    ("/loans", "nav.loans", "loans.own"),
    ("/approvals", "nav.approvals", "approvals.read"),
    ("/inventory", "nav.inventory", "inventory.read"),
    ("/people", "nav.people", "people.read"),
    ("/reports", "nav.reports", "reports"),
    ("/audit", "nav.audit", "audit.verify"),
)


def create_app(
    store: StoreLike,
    clock: Clock,
    *,
    live: BrokerState | None = None,
    settings: WebSettings | None = None,
    rules: Any = None,
    sim: RoomControls | None = None,
) -> FastAPI:
    cfg = settings or WebSettings(secret_key=secrets.token_bytes(32))
    if not cfg.secret_key:
        cfg = WebSettings(**{**cfg.__dict__, "secret_key": secrets.token_bytes(32)})
    if rules is None:
        from tracker.bootstrap import rules_of
        from tracker.config import TrackerConfig

        rules = rules_of(TrackerConfig())
    signer = TimestampSigner(cfg.secret_key, salt="ironroom-console")
    sessions: dict[str, WebSession] = {}
    lock = threading.Lock()
    env = Environment(
        loader=PackageLoader("tracker.web", "templates"), autoescape=select_autoescape(["html"])
    )
    app = FastAPI(
        title="IronRoom console", version="1", openapi_url=None, docs_url=None, redoc_url=None
    )
    app.state.stopping = threading.Event()
    from importlib.resources import files

    app.mount("/static", StaticFiles(directory=str(files("tracker.web") / "static")), name="static")

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        """No framing, no script or style from elsewhere, and nothing classified kept in
        a browser's or a proxy's cache."""
        resp: Response = await call_next(request)
        resp.headers.setdefault("Content-Security-Policy", CSP)
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- helpers --------------------------------------------------------------------------

    def client_of(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def lang_of(request: Request) -> str:
        return i18n.choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))

    def read(fn: Callable[[Session], T]) -> T:
        with store.readers() as s:
            return fn(s)

    def ledger(ctx: Ctx, request: Request) -> Ledger:
        return Ledger(
            store.sessions,
            rules,
            actor=f"web:{ctx.who.username}",
            reason=f"console {request.method} {request.url.path}",
            now=clock.now(),
        )

    def session_of(request: Request) -> tuple[str, WebSession] | None:
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            token = signer.unsign(raw, max_age=int(cfg.session_hours * 3600)).decode()
        except BadSignature:
            return None
        with lock:
            ses = sessions.get(token)
            if ses is None:
                return None
            if ses.expires <= clock.now():
                sessions.pop(token, None)
                return None
        return token, ses

    def render(
        request: Request, name: str, ctx: Ctx | None, status: int = 200, **values: Any
    ) -> HTMLResponse:
        lang = ctx.lang if ctx is not None else lang_of(request)
        nav = (
            []
            if ctx is None
            else [(href, key) for href, key, perm in NAV if roles.allowed(ctx.who.role, perm)]
        )
        page = env.get_template(name).render(
            t=i18n.translator(lang),
            lang=lang,
            ctx=ctx,
            nav=nav,
            path=request.url.path,
            **values,
        )
        return HTMLResponse(page, status_code=status)

    def need(permission: str) -> Callable[[Request], Ctx]:
        def dep(request: Request) -> Ctx:
            found = session_of(request)
            if found is None:
                raise NeedLogin()
            token, ses = found
            who = read(lambda s: accounts.principal(s, ses.who.username))
            if who is None:
                with lock:
                    sessions.pop(token, None)
                raise NeedLogin()
            ctx = Ctx(who, ses, lang_of(request), client_of(request))
            if not roles.allowed(who.role, permission):
                raise Denied(f"{request.method} {request.url.path}: needs {permission}")
            return ctx

        return dep

    LiveCtx = Annotated[Ctx, Depends(need("live"))]
    AlarmsRead = Annotated[Ctx, Depends(need("alarms.read"))]
    AlarmsAck = Annotated[Ctx, Depends(need("alarms.ack"))]
    AlarmsReset = Annotated[Ctx, Depends(need("alarms.reset"))]
    RegisterCtx = Annotated[Ctx, Depends(need("register.own"))]
    LoansCtx = Annotated[Ctx, Depends(need("loans.own"))]
    PeopleCtx = Annotated[Ctx, Depends(need("people.read"))]
    PeopleManage = Annotated[Ctx, Depends(need("people.manage"))]
    AuditCtx = Annotated[Ctx, Depends(need("audit.verify"))]
    AnyCtx = Annotated[Ctx, Depends(need("api.docs"))]  # any role: a session
    ApprovalsRead = Annotated[Ctx, Depends(need("approvals.read"))]
    ApprovalsDecide = Annotated[Ctx, Depends(need("approvals.decide"))]
    InventoryRead = Annotated[Ctx, Depends(need("inventory.read"))]
    InventoryStart = Annotated[Ctx, Depends(need("inventory.start"))]
    ReportsCtx = Annotated[Ctx, Depends(need("reports"))]

    async def csrf_ok(request: Request, ctx: Ctx) -> None:
        sent = request.headers.get("x-csrf-token")
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf")
            sent = value if isinstance(value, str) else None
        if not sent or not secrets.compare_digest(sent, ctx.session.csrf):
            raise Denied(f"{request.method} {request.url.path}: bad or missing CSRF token")

    def is_api(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"

    @app.exception_handler(NeedLogin)
    async def _need_login(request: Request, exc: NeedLogin) -> Response:
        if is_api(request):
            return JSONResponse({"error": "login required"}, status_code=401)
        return RedirectResponse("/login", status_code=303)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        found = session_of(request)
        username = found[1].who.username if found else "-"
        await run_in_threadpool(
            accounts.record,
            store.sessions,
            clock.now(),
            username,
            client_of(request),
            "denied",
            exc.why,
        )
        if is_api(request):
            return JSONResponse({"error": "forbidden", "detail": exc.why}, status_code=403)
        return render(
            request, "error.html", None, status=403, message_key="error.forbidden", detail=exc.why
        )

    @app.exception_handler(LedgerError)
    async def _ledger_error(request: Request, exc: LedgerError) -> Response:
        if is_api(request):
            return JSONResponse({"error": str(exc)}, status_code=400)
        return render(
            request, "error.html", None, status=400, message_key="error.title", detail=str(exc)
        )

    # -- public: health, login, language -----------------------------------------------------

    @app.get("/api/health")
    def health() -> dict[str, Any]:
        """The database, the broker link and each controller (no session needed)."""
        try:
            ctrls = read(lambda s: (s.execute(text("SELECT 1")), views.controllers(s))[1])
            db = "ok"
        except Exception as exc:  # the point is to report it
            ctrls, db = [], f"error: {type(exc).__name__}"
        return {
            "database": db,
            "broker": live.broker_state() if live is not None else "unknown",
            "controllers": ctrls,
        }

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request) -> Response:
        token = secrets.token_urlsafe(24)
        resp = render(request, "login.html", None, pre=token, error=None)
        resp.set_cookie(
            PRE_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=cfg.cookie_secure,
            max_age=3600,
        )
        return resp

    @app.post("/login")
    def login_submit(
        request: Request,
        username: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        pre = request.cookies.get(PRE_COOKIE, "")
        if not pre or not secrets.compare_digest(pre, csrf):
            accounts.record(
                store.sessions,
                clock.now(),
                username or "-",
                client_of(request),
                "denied",
                "POST /login: bad or missing CSRF token",
            )
            return render(
                request,
                "error.html",
                None,
                status=403,
                message_key="error.forbidden",
                detail="CSRF",
            )
        try:
            who = accounts.login(
                store.sessions, clock.now(), username, password, client_of(request), cfg.limits
            )
        except accounts.LoginRefused as exc:
            key = "login.locked" if exc.reason == "locked" else "login.failed"
            return render(
                request,
                "login.html",
                None,
                status=429 if exc.reason == "locked" else 401,
                pre=pre,
                error=key,
            )
        token = secrets.token_urlsafe(32)
        with lock:
            sessions[token] = WebSession(
                who, secrets.token_urlsafe(32), clock.now() + timedelta(hours=cfg.session_hours)
            )
        resp = RedirectResponse("/", status_code=303)
        resp.set_cookie(
            COOKIE,
            signer.sign(token).decode(),
            httponly=True,
            samesite="strict",
            secure=cfg.cookie_secure,
            max_age=int(cfg.session_hours * 3600),
        )
        resp.delete_cookie(PRE_COOKIE)
        return resp

    @app.get("/lang/{code}")
    def switch_language(code: str, next: str = "/") -> Response:
        """Set the language cookie (a preference only, no ledger state)."""
        if code not in i18n.LANGS:
            code = i18n.DEFAULT
        target = next if next.startswith("/") and not next.startswith("//") else "/"
        resp = RedirectResponse(target, status_code=303)
        resp.set_cookie(
            LANG_COOKIE, code, samesite="strict", secure=cfg.cookie_secure, max_age=365 * 24 * 3600
        )
        return resp

    # -- session: account, logout, the API description ---------------------------------

    @app.post("/logout")
    async def logout(*, request: Request, ctx: AnyCtx) -> Response:
        await csrf_ok(request, ctx)
        found = session_of(request)
        if found is not None:
            with lock:
                sessions.pop(found[0], None)
        await run_in_threadpool(
            accounts.record,
            store.sessions,
            clock.now(),
            ctx.who.username,
            ctx.client,
            "logout",
            None,
        )
        if is_api(request) or request.headers.get("x-csrf-token"):
            resp: Response = JSONResponse({"ok": True})
        else:
            resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE)
        return resp

    @app.get("/api/me")
    def me(*, ctx: AnyCtx) -> dict[str, Any]:
        """The account, its role, the pages it may open, and the CSRF token to send in
        ``X-CSRF-Token`` with every change."""
        return {
            "username": ctx.who.username,
            "role": ctx.who.role,
            "person": ctx.who.person_id,
            "csrf": ctx.session.csrf,
            "lang": ctx.lang,
            "pages": [h for h, _, p in NAV if roles.allowed(ctx.who.role, p)],
        }

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(*, ctx: AnyCtx) -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", include_in_schema=False)
    def docs(*, request: Request, ctx: AnyCtx) -> Response:
        return render(request, "docs.html", ctx, schema=app.openapi())

    @app.get("/", include_in_schema=False)
    def home(*, ctx: AnyCtx) -> Response:
        for href, _, perm in NAV:
            if roles.allowed(ctx.who.role, perm):
                return RedirectResponse(href, status_code=303)
        raise Denied("GET /: no page for this role")

    # -- live room view ------------------------------------------------------------------

    @app.get("/api/rooms")
    def api_rooms(*, ctx: LiveCtx) -> list[dict[str, Any]]:
        """Each room: link, door, windows, cabinets, locks, arming, active alarms."""
        return read(views.rooms_live)

    @app.get("/api/live/stream")
    async def api_live_stream(*, request: Request, ctx: LiveCtx) -> Response:
        """Server-sent events: ``rooms`` (the /api/rooms list) at once and at every change."""
        token = session_of(request)

        async def stream() -> Any:
            mark = None
            quiet = 0.0
            while not app.state.stopping.is_set():
                if await request.is_disconnected():
                    return
                if token is None or session_of(request) is None:
                    yield "event: logout\ndata: {}\n\n"
                    return
                now_mark = await run_in_threadpool(read, views.change_mark)
                if now_mark != mark:
                    mark = now_mark
                    rooms = await run_in_threadpool(read, views.rooms_live)
                    yield "event: rooms\ndata: " + json.dumps(rooms, ensure_ascii=False) + "\n\n"
                    quiet = 0.0
                elif quiet >= 15:
                    yield ": keep-alive\n\n"
                    quiet = 0.0
                await asyncio.sleep(cfg.poll_s)
                quiet += cfg.poll_s

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    @app.get("/live", response_class=HTMLResponse, include_in_schema=False)
    def page_live(*, request: Request, ctx: LiveCtx) -> Response:
        return render(
            request,
            "live.html",
            ctx,
            rooms=read(views.rooms_live),
            can_ack=roles.allowed(ctx.who.role, "alarms.ack"),
            sim=sim.actions() if sim is not None and roles.allowed(ctx.who.role, "sim") else None,
        )

    # -- the demo's simulated room (only when this process runs one) --------------------

    def sim_do(verb: str, target: str) -> dict[str, Any]:
        if sim is None:
            raise LedgerError("no simulated room here: the console acts on the demo's only")
        try:
            return {"done": sim.do(verb, target)}
        except ValueError as exc:
            raise LedgerError(str(exc)) from None

    SimCtx = Annotated[Ctx, Depends(need("sim"))]

    @app.get("/api/sim")
    def api_sim(*, ctx: SimCtx) -> list[dict[str, str]]:
        """The controls offered on the simulated room now (empty without one)."""
        if sim is None:
            return []
        return [{"verb": a.verb, "target": a.target, "label": a.label} for a in sim.actions()]

    @app.post("/api/sim")
    async def api_sim_do(*, body: SimIn, request: Request, ctx: SimCtx) -> dict[str, Any]:
        await csrf_ok(request, ctx)
        return await run_in_threadpool(sim_do, body.verb, body.target)

    @app.post("/sim", include_in_schema=False)
    async def form_sim(*, request: Request, ctx: SimCtx) -> Response:
        await csrf_ok(request, ctx)
        form = await request.form()
        await run_in_threadpool(sim_do, str(form.get("verb", "")), str(form.get("target", "")))
        return RedirectResponse("/live", status_code=303)

    # -- alarms ------------------------------------------------------------------------

    @app.get("/api/alarms")
    def api_alarms(*, active: bool = False, ctx: AlarmsRead) -> list[dict[str, Any]]:
        return read(lambda s: views.alarms(s, active=active))

    @app.post("/api/alarms/ack")
    async def api_alarm_ack(*, body: AckIn, request: Request, ctx: AlarmsAck) -> dict[str, Any]:
        await csrf_ok(request, ctx)
        return await run_in_threadpool(
            views.alarm_ack, ledger(ctx, request), body.alarm_id, ctx.who.person_id
        )

    @app.post("/api/alarms/reset")
    async def api_alarm_reset(
        *, body: ResetIn, request: Request, ctx: AlarmsReset
    ) -> dict[str, Any]:
        await csrf_ok(request, ctx)
        return await run_in_threadpool(
            ledger(ctx, request).alarm_reset, body.alarm_id, ctx.who.person_id, body.reason
        )

    @app.get("/alarms", response_class=HTMLResponse, include_in_schema=False)
    def page_alarms(*, request: Request, all: bool = False, ctx: AlarmsRead) -> Response:
        return render(
            request,
            "alarms.html",
            ctx,
            alarms=read(lambda s: views.alarms(s, active=not all)),
            show_all=all,
            conditions=CONDITION_CAUSES,
            can_follow=roles.allowed(ctx.who.role, "live"),
            can_ack=roles.allowed(ctx.who.role, "alarms.ack"),
            can_reset=roles.allowed(ctx.who.role, "alarms.reset"),
        )

    @app.post("/alarms/ack", include_in_schema=False)
    async def form_alarm_ack(*, request: Request, ctx: AlarmsAck) -> Response:
        await csrf_ok(request, ctx)
        form = await request.form()
        await run_in_threadpool(
            views.alarm_ack, ledger(ctx, request), str(form.get("alarm_id", "")), ctx.who.person_id
        )
        return RedirectResponse("/alarms", status_code=303)

    @app.post("/alarms/reset", include_in_schema=False)
    async def form_alarm_reset(*, request: Request, ctx: AlarmsReset) -> Response:
        await csrf_ok(request, ctx)
        form = await request.form()
        await run_in_threadpool(
            ledger(ctx, request).alarm_reset,
            str(form.get("alarm_id", "")),
            ctx.who.person_id,
            str(form.get("reason", "")),
        )
        return RedirectResponse("/alarms", status_code=303)

    # -- register, documents, loans ---------------------------------------------------

    def _register(ctx: Ctx, **filters: Any) -> list[dict[str, Any]]:
        own = ctx.own if not roles.allowed(ctx.who.role, "register.read") else None
        clean: dict[str, Any] = {k: (v or None) for k, v in filters.items()}
        return read(lambda s: views.register(s, own=own, **clean))

    @app.get("/api/documents")
    def api_documents(
        *,
        q: str = "",
        classification: str = "",
        status: str = "",
        holder: str = "",
        cabinet: str = "",
        ctx: RegisterCtx,
    ) -> list[dict[str, Any]]:
        """The register (登记簿); a borrower gets only their own documents."""
        return _register(
            ctx, q=q, classification=classification, status=status, holder=holder, cabinet=cabinet
        )

    def _document(ctx: Ctx, doc_id: int) -> dict[str, Any]:
        own = ctx.own if not roles.allowed(ctx.who.role, "register.read") else None
        try:
            return read(lambda s: views.document(s, doc_id, own=own))
        except PermissionError:
            raise Denied(f"GET document {doc_id}: not this borrower's") from None

    @app.get("/api/documents/{doc_id}")
    def api_document(*, doc_id: int, ctx: RegisterCtx) -> dict[str, Any]:
        """One document with its history: ledger entries and physical events."""
        return _document(ctx, doc_id)

    @app.get("/register", response_class=HTMLResponse, include_in_schema=False)
    def page_register(
        *,
        request: Request,
        q: str = "",
        classification: str = "",
        status: str = "",
        holder: str = "",
        cabinet: str = "",
        ctx: RegisterCtx,
    ) -> Response:
        f = {
            "q": q,
            "classification": classification,
            "status": status,
            "holder": holder,
            "cabinet": cabinet,
        }
        return render(request, "register.html", ctx, docs=_register(ctx, **f), f=f)

    @app.get("/document/{doc_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_document(*, request: Request, doc_id: int, ctx: RegisterCtx) -> Response:
        return render(request, "document.html", ctx, doc=_document(ctx, doc_id))

    def _loans(ctx: Ctx, open_only: bool, overdue: bool) -> list[dict[str, Any]]:
        person = ctx.own if not roles.allowed(ctx.who.role, "loans.read") else None
        return read(
            lambda s: views.loans(
                s,
                clock.now(),
                open_only=open_only,
                overdue=overdue,
                person=person,
            )
        )

    @app.get("/api/loans")
    def api_loans(
        *, open: bool = False, overdue: bool = False, ctx: LoansCtx
    ) -> list[dict[str, Any]]:
        """Loans (open, overdue); a borrower gets only their own."""
        return _loans(ctx, open, overdue)

    @app.get("/loans", response_class=HTMLResponse, include_in_schema=False)
    def page_loans(
        *, request: Request, open: bool = True, overdue: bool = False, ctx: LoansCtx
    ) -> Response:
        return render(
            request,
            "loans.html",
            ctx,
            loans=_loans(ctx, open, overdue),
            open_only=open,
            overdue=overdue,
        )

    # -- people, audit -------------------------------------------------------------------

    @app.get("/api/people")
    def api_people(*, ctx: PeopleCtx) -> list[dict[str, Any]]:
        """People with their badges."""
        return read(views.people)

    @app.get("/people", response_class=HTMLResponse, include_in_schema=False)
    def page_people(*, request: Request, ctx: PeopleCtx) -> Response:
        return render(
            request,
            "people.html",
            ctx,
            people=read(views.people),
            can_manage=roles.allowed(ctx.who.role, "people.manage"),
            all_roles=ROLES,
        )

    def _person_add(ctx: Ctx, request: Request, body: PersonIn) -> dict[str, Any]:
        from tracker.domain.levels import Level

        try:
            level = Level.parse(body.clearance)
        except ValueError as exc:
            raise LedgerError(str(exc)) from None
        return ledger(ctx, request).person_add(
            body.id.strip(), body.name.strip(), level, body.roles, body.dept or None
        )

    @app.post("/api/people")
    async def api_person_add(
        *, body: PersonIn, request: Request, ctx: PeopleManage
    ) -> dict[str, Any]:
        """Register a person (as ``ironroom ledger person add``)."""
        await csrf_ok(request, ctx)
        result: dict[str, Any] = await run_in_threadpool(_person_add, ctx, request, body)
        return result

    @app.post("/api/badges")
    async def api_badge_add(
        *, body: BadgeIn, request: Request, ctx: PeopleManage
    ) -> dict[str, Any]:
        """Register a badge for a person (as ``ironroom ledger badge add``)."""
        await csrf_ok(request, ctx)
        result: dict[str, Any] = await run_in_threadpool(
            ledger(ctx, request).badge_add, body.uid.strip(), body.person.strip()
        )
        return result

    @app.post("/people/add", include_in_schema=False)
    async def form_person_add(*, request: Request, ctx: PeopleManage) -> Response:
        await csrf_ok(request, ctx)
        f = await request.form()
        body = PersonIn(
            id=str(f.get("id", "")),
            name=str(f.get("name", "")),
            clearance=str(f.get("clearance", "")),
            roles=[str(r) for r in f.getlist("roles")],
            dept=str(f.get("dept", "")) or None,
        )
        await run_in_threadpool(_person_add, ctx, request, body)
        return RedirectResponse("/people", status_code=303)

    @app.post("/badges/add", include_in_schema=False)
    async def form_badge_add(*, request: Request, ctx: PeopleManage) -> Response:
        await csrf_ok(request, ctx)
        f = await request.form()
        await run_in_threadpool(
            ledger(ctx, request).badge_add, str(f.get("uid", "")), str(f.get("person", ""))
        )
        return RedirectResponse("/people", status_code=303)

    @app.get("/api/audit/verify")
    def api_audit(*, ctx: AuditCtx) -> dict[str, Any]:
        """Verify the whole audit chain (as ``ironroom audit verify``)."""
        return read(views.audit_verify)

    @app.get("/audit", response_class=HTMLResponse, include_in_schema=False)
    def page_audit(*, request: Request, ctx: AuditCtx) -> Response:
        return render(request, "audit.html", ctx, verdict=read(views.audit_verify))

    # -- approvals, inventory, reports (the workflows' own service functions) -----------

    from tracker.service import destruction as destruction_service
    from tracker.service import inventory as inventory_service
    from tracker.service import requests as requests_service

    def _requests(state: str, kind: str) -> list[dict[str, Any]]:
        return read(lambda s: requests_service.listing(s, state=state or None, kind=kind or None))

    @app.get("/api/requests")
    def api_requests(
        *, state: str = "", kind: str = "", ctx: ApprovalsRead
    ) -> list[dict[str, Any]]:
        """Requests for copying, carrying out, extended hours and destruction (审批)."""
        return _requests(state, kind)

    @app.get("/api/destructions")
    def api_destructions(*, ctx: ApprovalsRead) -> list[dict[str, Any]]:
        """Destruction records (销毁): the list, the two witnesses, the documents."""
        return read(lambda s: destruction_service.listing(s))

    async def _decide(
        ctx: Ctx, request: Request, request_id: int, action: str, reason: str | None
    ) -> dict[str, Any]:
        fn = requests_service.approve if action == "approve" else requests_service.refuse
        result: dict[str, Any] = await run_in_threadpool(
            fn, ledger(ctx, request), request_id, ctx.who.person_id, reason or None
        )
        return result

    @app.post("/api/requests/{request_id}/{action}")
    async def api_decide(
        *, request_id: int, action: str, body: DecisionIn, request: Request, ctx: ApprovalsDecide
    ) -> dict[str, Any]:
        """Approve or refuse (``action``: approve | refuse) as the account's person."""
        await csrf_ok(request, ctx)
        if action not in ("approve", "refuse"):
            raise LedgerError(f"unknown decision {action!r}: approve or refuse")
        return await _decide(ctx, request, request_id, action, body.reason)

    @app.get("/approvals", response_class=HTMLResponse, include_in_schema=False)
    def page_approvals(
        *, request: Request, state: str = "pending", kind: str = "", ctx: ApprovalsRead
    ) -> Response:
        return render(
            request,
            "approvals.html",
            ctx,
            requests=_requests(state, kind),
            state=state,
            kind=kind,
            destructions=read(lambda s: destruction_service.listing(s)),
            can_decide=roles.allowed(ctx.who.role, "approvals.decide"),
        )

    @app.post("/approvals/decide", include_in_schema=False)
    async def form_decide(*, request: Request, ctx: ApprovalsDecide) -> Response:
        await csrf_ok(request, ctx)
        form = await request.form()
        action = str(form.get("action", ""))
        if action not in ("approve", "refuse"):
            raise LedgerError(f"unknown decision {action!r}: approve or refuse")
        try:
            request_id = int(str(form.get("request_id", "")))
        except ValueError:
            raise LedgerError("no request id") from None
        await _decide(ctx, request, request_id, action, str(form.get("reason", "")))
        return RedirectResponse("/approvals", status_code=303)

    @app.get("/api/inventory")
    def api_inventory(*, ctx: InventoryRead) -> list[dict[str, Any]]:
        """Inventory runs (清查) of every room."""
        return read(lambda s: inventory_service.list_runs(s, None))

    @app.get("/api/inventory/{run_id}")
    def api_inventory_run(*, run_id: int, ctx: InventoryRead) -> dict[str, Any]:
        """One run and its reconciliation with the ledger, item by item."""
        return read(lambda s: inventory_service.inventory_report(s, run_id))

    @app.post("/api/inventory")
    async def api_inventory_start(
        *, body: RunIn, request: Request, ctx: InventoryStart
    ) -> dict[str, Any]:
        """Start a run: ``inventory.run`` to each cabinet reader of the room."""
        await csrf_ok(request, ctx)
        site, sep, room = body.room.partition("/")
        if not sep:
            raise LedgerError(f"room {body.room!r}: expected SITE/ROOM")
        result: dict[str, Any] = await run_in_threadpool(
            inventory_service.start_run, ledger(ctx, request), site, room
        )
        return result

    @app.get("/inventory", response_class=HTMLResponse, include_in_schema=False)
    def page_inventory(*, request: Request, ctx: InventoryRead) -> Response:
        rooms = read(views.rooms_live)
        return render(
            request,
            "inventory.html",
            ctx,
            runs=read(lambda s: inventory_service.list_runs(s, None)),
            rooms=[r["room"] for r in rooms],
            can_start=roles.allowed(ctx.who.role, "inventory.start"),
        )

    @app.get("/inventory/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def page_inventory_run(*, request: Request, run_id: int, ctx: InventoryRead) -> Response:
        return render(
            request,
            "inventory_run.html",
            ctx,
            report=read(lambda s: inventory_service.inventory_report(s, run_id)),
        )

    @app.post("/inventory/start", include_in_schema=False)
    async def form_inventory_start(*, request: Request, ctx: InventoryStart) -> Response:
        await csrf_ok(request, ctx)
        form = await request.form()
        site, sep, room = str(form.get("room", "")).partition("/")
        if not sep:
            raise LedgerError("choose a room")
        await run_in_threadpool(inventory_service.start_run, ledger(ctx, request), site, room)
        return RedirectResponse("/inventory", status_code=303)

    @app.get("/api/reports/{name}")
    def api_report(
        *, name: str, format: str = "csv", run_id: str = "", ctx: ReportsCtx
    ) -> Response:
        """A report (报表) as ``ironroom report``: CSV, or HTML to print on A4."""
        from tracker.reports import NAMES
        from tracker.reports.render import to_csv, to_html
        from tracker.reports.tables import build

        if name not in NAMES:
            raise LedgerError(f"unknown report {name!r}; use {', '.join(NAMES)}")
        if format not in ("csv", "html"):
            raise LedgerError(f"unknown format {format!r}: csv or html")
        report, meta = read(lambda s: build(s, name, clock.now(), run_id=run_id or None))
        if format == "csv":
            return Response(
                to_csv(report),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
            )
        return HTMLResponse(to_html(report, meta))

    @app.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def page_reports(*, request: Request, ctx: ReportsCtx) -> Response:
        from tracker.reports import NAMES

        return render(request, "reports.html", ctx, names=NAMES)

    return app


def iter_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every route (for the tests that try each one)."""
    for r in app.routes:
        for method in sorted(getattr(r, "methods", None) or ()):
            yield method, getattr(r, "path", "")
