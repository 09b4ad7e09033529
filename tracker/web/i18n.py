"""The console's words in 简体中文 and English: one key per string.

The language is the ``lang`` cookie set by the switch, else the browser's
``Accept-Language`` (``zh*`` first: Chinese), else Chinese.
"""

from __future__ import annotations

LANGS = ("zh-CN", "en")
DEFAULT = "zh-CN"

MESSAGES: dict[str, dict[str, str]] = {
    "zh-CN": {
        "app.title": "机要室管理台",
        "nav.live": "实时监控",
        "nav.alarms": "报警",
        "nav.register": "登记簿",
        "nav.loans": "借阅",
        "nav.people": "人员与证卡",
        "nav.audit": "审计校验",
        "nav.logout": "退出",
        "login.title": "登录",
        "login.username": "用户名",
        "login.password": "密码",
        "login.submit": "登录",
        "login.failed": "用户名或密码错误",
        "login.locked": "登录失败次数过多，请稍后再试",
        "lang.switch": "English",
        "live.title": "实时监控",
        "live.door": "门",
        "live.windows": "窗",
        "live.cabinets": "柜",
        "live.locks": "锁",
        "live.armed": "布防",
        "live.status": "控制器",
        "live.updated": "更新时间",
        "live.none": "尚无状态",
        "alarms.title": "报警",
        "alarms.active": "当前报警",
        "alarms.all": "全部报警",
        "alarms.cause": "原因",
        "alarms.room": "房间",
        "alarms.point": "位置",
        "alarms.raised": "发生时间",
        "alarms.state": "状态",
        "alarms.ack": "确认",
        "alarms.reset": "复位",
        "alarms.reason": "复位原因",
        "alarms.none": "没有报警",
        "register.title": "登记簿",
        "register.search": "搜索",
        "register.number": "编号",
        "register.doc_title": "标题",
        "register.classification": "密级",
        "register.status": "状态",
        "register.holder": "持有人",
        "register.cabinet": "柜",
        "register.any": "全部",
        "doc.title": "载体",
        "doc.history": "历史",
        "doc.when": "时间",
        "doc.what": "事项",
        "doc.who": "操作者",
        "loans.title": "借阅",
        "loans.overdue": "逾期",
        "loans.person": "借阅人",
        "loans.opened": "借出",
        "loans.due": "应还",
        "loans.closed": "归还",
        "loans.open_only": "仅未归还",
        "people.title": "人员与证卡",
        "people.id": "编号",
        "people.name": "姓名",
        "people.dept": "部门",
        "people.clearance": "涉密等级",
        "people.roles": "角色",
        "people.badges": "证卡",
        "audit.title": "审计校验",
        "audit.ok": "审计链完整",
        "audit.broken": "审计链被破坏",
        "audit.entries": "条目",
        "error.forbidden": "无权访问",
        "error.title": "错误",
        "status.in_cabinet": "在柜",
        "status.on_loan": "借出",
        "status.missing": "缺失",
    },
    "en": {
        "app.title": "Secure-room console",
        "nav.live": "Live",
        "nav.alarms": "Alarms",
        "nav.register": "Register",
        "nav.loans": "Loans",
        "nav.people": "People and badges",
        "nav.audit": "Audit check",
        "nav.logout": "Log out",
        "login.title": "Log in",
        "login.username": "Username",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong username or password",
        "login.locked": "Too many failed logins; try again later",
        "lang.switch": "中文",
        "live.title": "Live room view",
        "live.door": "Door",
        "live.windows": "Windows",
        "live.cabinets": "Cabinets",
        "live.locks": "Locks",
        "live.armed": "Armed",
        "live.status": "Controller",
        "live.updated": "Updated",
        "live.none": "no state yet",
        "alarms.title": "Alarms",
        "alarms.active": "Active alarms",
        "alarms.all": "All alarms",
        "alarms.cause": "Cause",
        "alarms.room": "Room",
        "alarms.point": "Point",
        "alarms.raised": "Raised",
        "alarms.state": "State",
        "alarms.ack": "Acknowledge",
        "alarms.reset": "Reset",
        "alarms.reason": "Reason for the reset",
        "alarms.none": "No alarms",
        "register.title": "Document register",
        "register.search": "Search",
        "register.number": "Number",
        "register.doc_title": "Title",
        "register.classification": "Classification",
        "register.status": "Status",
        "register.holder": "Holder",
        "register.cabinet": "Cabinet",
        "register.any": "any",
        "doc.title": "Document",
        "doc.history": "History",
        "doc.when": "When",
        "doc.what": "What",
        "doc.who": "By",
        "loans.title": "Loans",
        "loans.overdue": "Overdue",
        "loans.person": "Borrower",
        "loans.opened": "Opened",
        "loans.due": "Due",
        "loans.closed": "Returned",
        "loans.open_only": "open only",
        "people.title": "People and badges",
        "people.id": "Id",
        "people.name": "Name",
        "people.dept": "Department",
        "people.clearance": "Clearance",
        "people.roles": "Roles",
        "people.badges": "Badges",
        "audit.title": "Audit-chain verification",
        "audit.ok": "The audit chain is intact",
        "audit.broken": "The audit chain is broken",
        "audit.entries": "entries",
        "error.forbidden": "Not allowed",
        "error.title": "Error",
        "status.in_cabinet": "in cabinet",
        "status.on_loan": "on loan",
        "status.missing": "missing",
    },
}


def choose(cookie: str | None, accept_language: str | None) -> str:
    """The language for a request: the switch's cookie, else the browser's first
    supported preference, else Chinese."""
    if cookie in LANGS:
        return cookie
    prefs: list[tuple[float, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        if tag:
            prefs.append((-q, f"{i:04d}{tag.lower()}"))
    for _, key in sorted(prefs):
        tag = key[4:]
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


def translator(lang: str) -> dict[str, str]:
    return MESSAGES.get(lang, MESSAGES[DEFAULT])
