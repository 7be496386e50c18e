"""隐私保护 on the department feed: departments see the reporter masked, never in clear.

Intake masks the reporter before any event leaves it; dispatch masks again before the feed,
so a mistake upstream cannot put a resident's phone number on a department's subject."""

from __future__ import annotations

from gridloop_contracts import MaskedReporter


def mask_phone(phone: str | None) -> str | None:
    """Keep a masked number as it is; mask a clear one (first three and last four digits)."""
    if not phone:
        return None
    if "*" in phone:
        return phone
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not digits:
        return None
    if len(digits) >= 8:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


def mask_name(name: str | None) -> str | None:
    """Keep a masked name; else the family name stays and the rest is starred."""
    if not name or not name.strip():
        return None
    name = name.strip()
    if "*" in name:
        return name
    return name[0] + "*" * max(len(name) - 1, 1)


def masked(reporter: MaskedReporter | None) -> MaskedReporter | None:
    if reporter is None:
        return None
    return MaskedReporter(
        ref=reporter.ref, name=mask_name(reporter.name), phone=mask_phone(reporter.phone)
    )
