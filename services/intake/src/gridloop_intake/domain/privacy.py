"""Reporter privacy (隐私保护): what of a reporter may leave intake, and in which form."""

from __future__ import annotations

from gridloop_contracts import MaskedReporter


def mask_phone(phone: str | None) -> str | None:
    """`13812345678` → `138****5678`: the first three and last four digits stay, so a hotline
    operator can still recognise the caller; anything shorter keeps only its last two."""
    if not phone:
        return None
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]  # +86 mobile numbers read like domestic ones
    if not digits:
        return None
    if len(digits) >= 8:
        return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


def mask_name(name: str | None) -> str | None:
    """`张三丰` → `张**`: the family name stays (how a caller is addressed), the rest is starred."""
    if not name:
        return None
    name = name.strip()
    if not name:
        return None
    return name[0] + "*" * max(len(name) - 1, 1)


def masked(ref: str | None, name: str | None, phone: str | None) -> MaskedReporter | None:
    """The reporter as every event leaving intake carries them."""
    if ref is None and not name and not phone:
        return None
    return MaskedReporter(ref=ref, name=mask_name(name), phone=mask_phone(phone))
