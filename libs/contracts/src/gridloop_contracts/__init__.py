"""gridloop contracts: event schemas, subjects and the CloudEvents envelope, defined once."""

from . import cases, department, inbound, scores, subjects
from .base import REGISTRY, Event, model_for, register
from .common import Actor, Attachment, FieldError, Location, MaskedReporter
from .envelope import (
    Envelope,
    EnvelopeError,
    decode,
    from_binary,
    from_structured,
    to_binary,
    to_structured,
    validation_errors,
)
from .status import CaseStatus

__all__ = [
    "REGISTRY",
    "Actor",
    "Attachment",
    "CaseStatus",
    "Envelope",
    "EnvelopeError",
    "Event",
    "FieldError",
    "Location",
    "MaskedReporter",
    "cases",
    "decode",
    "department",
    "from_binary",
    "from_structured",
    "inbound",
    "model_for",
    "register",
    "scores",
    "subjects",
    "to_binary",
    "to_structured",
    "validation_errors",
]
