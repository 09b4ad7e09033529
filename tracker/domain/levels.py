"""Classification levels (密级), in order, with their Chinese and English names."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    PUBLIC = 0  # 公开
    INTERNAL = 1  # 内部
    CONFIDENTIAL = 2  # 秘密
    SECRET = 3  # 机密
    TOP_SECRET = 4  # 绝密

    @property
    def chinese(self) -> str:
        return _CHINESE[self]

    @property
    def english(self) -> str:
        return _ENGLISH[self]

    @property
    def classified(self) -> bool:
        """秘密 and above are state secrets (涉密); 内部 and 公开 are not."""
        return self >= Level.CONFIDENTIAL

    @classmethod
    def parse(cls, text: str) -> Level:
        """``绝密`` or ``top-secret`` (and the other four); anything else is refused."""
        key = text.strip().lower()
        for level in cls:
            if key in (_CHINESE[level], _ENGLISH[level]):
                return level
        names = " | ".join(f"{_CHINESE[lv]} ({_ENGLISH[lv]})" for lv in reversed(cls))
        raise ValueError(f"unknown classification {text!r}; use one of {names}")


_CHINESE = {
    Level.PUBLIC: "公开",
    Level.INTERNAL: "内部",
    Level.CONFIDENTIAL: "秘密",
    Level.SECRET: "机密",
    Level.TOP_SECRET: "绝密",
}
_ENGLISH = {
    Level.PUBLIC: "public",
    Level.INTERNAL: "internal",
    Level.CONFIDENTIAL: "confidential",
    Level.SECRET: "secret",
    Level.TOP_SECRET: "top-secret",
}

#: Roles of DOMAIN.md, as stored and typed on the command line.
ROLES = ("secretary", "approver", "dept-head", "secrecy-office", "borrower")
