"""How a ledger value reads in a report cell: pure functions of their inputs."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from protocol.timefmt import parse_ts

#: Reports show times in China Standard Time (no daylight saving), as the room keeps them.
ZONE = ZoneInfo("Asia/Shanghai")
ZONE_NOTE = "北京时间 UTC+8 / China Standard Time"

STATUS = {
    "in_cabinet": "在柜",
    "on_loan": "借出",
    "misplaced": "错放",
    "missing": "缺失",
    "destroyed": "已销毁",
    "returned": "已清退",
}
#: Outcomes of an inventory item (清查), as tracker.domain.inventory names them.
OUTCOME = {
    "present": "在位",
    "missing": "缺失",
    "wrong_cabinet": "错柜",
    "on_loan": "借出",
    "unknown_tag": "未登记标签",
    "retired_tag": "已注销标签",
    "unchecked": "未清点",
}
LOAN_KIND = {"badge": "借出", "in-room": "室内阅读"}


def when(ts: str | None, zone: ZoneInfo = ZONE) -> str:
    """A stored timestamp (wire text, UTC) as ``YYYY-MM-DD HH:MM`` in the report's zone."""
    if not ts:
        return ""
    return parse_ts(ts).astimezone(zone).strftime("%Y-%m-%d %H:%M")


def moment(at: datetime, zone: ZoneInfo = ZONE) -> str:
    """The generation time: to the second, in the report's zone."""
    if at.tzinfo is None:
        raise ValueError("a report's time must be timezone-aware")
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


_DIGITS = re.compile(r"(\d+)")


def natural(text: str) -> tuple[tuple[int, int, str], ...]:
    """A sort key that compares the numbers inside a text as numbers (机要〔2026〕9号
    before 机要〔2026〕10号), a number before text where one has either."""
    return tuple(
        (0, int(part), part) if part.isdecimal() else (1, 0, part)
        for part in _DIGITS.split(text)
        if part
    )


def overdue_text(days: int | None) -> str:
    """Whole days past due (tracker.service.overdue counts them); None: not overdue."""
    if days is None:
        return ""
    if days < 1:
        return "逾期 不足1天 / under 1 d overdue"
    return f"逾期 {days} 天 / {days} d overdue"


def status(code: str) -> str:
    """``在柜 in_cabinet``: the Chinese word to read, the ledger's code to search for."""
    zh = STATUS.get(code)
    return f"{zh} {code}" if zh else code


def outcome(code: str) -> str:
    zh = OUTCOME.get(code)
    return f"{zh} {code}" if zh else code


def loan_kind(code: str) -> str:
    zh = LOAN_KIND.get(code)
    return f"{zh} {code}" if zh else code


def period(years: int | None, declassify_on: str | None) -> str:
    """保密期限: ``20年`` and/or ``2046-12-31 解密``."""
    parts = []
    if years is not None:
        parts.append(f"{years}年")
    if declassify_on:
        parts.append(f"{declassify_on} 解密")
    return "；".join(parts)


def person(pid: str | None, names: dict[str, str]) -> str:
    """``张秘书 (p1)``; the id alone for a person no longer in the table."""
    if not pid:
        return ""
    name = names.get(pid)
    return f"{name} ({pid})" if name else pid


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> str:
    """What an audit entry changed: ``新增 added``, ``删除 removed``, or the fields that
    differ, ``status: in_cabinet → on_loan; holder_id: – → p1``."""
    if before is None and after is None:
        return ""
    if before is None:
        return "新增 added"
    if after is None:
        return "删除 removed"
    out = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old != new:
            out.append(f"{key}: {_v(old)} → {_v(new)}")
    return "; ".join(out) if out else "无变化 unchanged"


def _v(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


#: A cell a spreadsheet would run as a formula (CSV injection) starts with one of these.
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """A cell as a spreadsheet should show it: text that would start a formula gets a
    leading apostrophe (shown as typed, never evaluated)."""
    return "'" + cell if cell.startswith(_FORMULA) else cell
