"""gridloop contracts: event schemas, subjects and the CloudEvents envelope, defined once."""

from . import subjects
from .base import REGISTRY, Event, model_for, register
from .envelope import Envelope, EnvelopeError, decode, from_binary, from_structured, to_binary, to_structured

__all__ = [
    "REGISTRY",
    "Envelope",
    "EnvelopeError",
    "Event",
    "decode",
    "from_binary",
    "from_structured",
    "model_for",
    "register",
    "subjects",
    "to_binary",
    "to_structured",
]
