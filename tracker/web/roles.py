"""Who may do what at the console: one row per permission, the roles of DOMAIN.md.

Pure data and one function; every route names its permission and the app refuses (403,
audited) any role not in the row.
"""

from __future__ import annotations

SECRETARY = "secretary"
APPROVER = "approver"
DEPT_HEAD = "dept-head"
SECRECY = "secrecy-office"
BORROWER = "borrower"

ALL = frozenset({SECRETARY, APPROVER, DEPT_HEAD, SECRECY, BORROWER})

#: permission -> the roles that hold it
PERMISSIONS: dict[str, frozenset[str]] = {
    # the live room view: door, windows, cabinets, locks, arming, active alarms
    "live": frozenset({SECRETARY, DEPT_HEAD, SECRECY}),
    "alarms.read": frozenset({SECRETARY, DEPT_HEAD, SECRECY}),
    "alarms.ack": frozenset({SECRETARY}),
    "alarms.reset": frozenset({SECRETARY, SECRECY}),
    # the whole register and every loan; a borrower sees only their own (".own")
    "register.read": frozenset({SECRETARY, APPROVER, DEPT_HEAD, SECRECY}),
    "register.own": ALL,
    "loans.read": frozenset({SECRETARY, APPROVER, DEPT_HEAD, SECRECY}),
    "loans.own": ALL,
    "people.read": frozenset({SECRETARY, DEPT_HEAD, SECRECY}),
    "people.manage": frozenset({SECRETARY}),
    "audit.verify": frozenset({SECRECY}),
    # approvals (审批): who may decide which kind is the domain's rule (the person's roles)
    "approvals.read": frozenset({SECRETARY, APPROVER, DEPT_HEAD, SECRECY}),
    "approvals.decide": frozenset({APPROVER, DEPT_HEAD}),
    "inventory.read": frozenset({SECRETARY, DEPT_HEAD, SECRECY}),
    "inventory.start": frozenset({SECRETARY}),
    "reports": frozenset({SECRETARY, SECRECY}),
    "api.docs": ALL,
    # the demo's simulated room (door, badge, folders, tamper): whoever watches the room
    "sim": frozenset({SECRETARY, DEPT_HEAD, SECRECY}),
}


def allowed(role: str, permission: str) -> bool:
    """True when ``role`` holds ``permission`` (an unknown permission: nobody)."""
    return role in PERMISSIONS.get(permission, frozenset())
