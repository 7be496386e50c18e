"""A small, deterministic YAML writer for JSON data (the AsyncAPI document), so exporting
needs no YAML library. Keys are sorted; anything that might not read back as the same
string is double-quoted with JSON escapes, which YAML reads the same way."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

# Conservative plain scalars: a letter first, no ':' '#' or flow characters, no trailing
# blank, and not a word YAML 1.1 would read as a bool or null.
_PLAIN: Final = re.compile(r"[A-Za-z][A-Za-z0-9 _./()\-]*[A-Za-z0-9_./()\-]|[A-Za-z]")
_SPECIAL: Final = frozenset(["y", "n", "yes", "no", "on", "off", "true", "false", "null"])
# JSON leaves these unescaped, but YAML treats them as line breaks, or not printable.
_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _string(s: str) -> str:
    if _PLAIN.fullmatch(s) and s.lower() not in _SPECIAL:
        return s
    quoted = json.dumps(s, ensure_ascii=False)
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not representable in JSON: {value!r}")
        text = repr(value)
        # YAML 1.1 floats need a dot: 1e-05 would read back as a string.
        if "." not in text:
            mantissa, _, exp = text.partition("e")
            text = f"{mantissa}.0" + (f"e{exp}" if exp else "")
        return text
    if isinstance(value, str):
        return _string(value)
    raise TypeError(f"not JSON data: {type(value).__name__}")


def _lines(value: Any, indent: int) -> list[str]:
    """A non-empty mapping or sequence as block lines at `indent`."""
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, Mapping):
        for key in sorted(value):
            if not isinstance(key, str):
                raise TypeError(f"mapping keys must be strings, not {key!r}")
            out += _entry(f"{pad}{_string(key)}:", value[key], indent + 2)
    else:
        for item in value:
            out += _item(pad, item, indent)
    return out


def _is_block(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple) and len(value) > 0


def _entry(head: str, value: Any, indent: int) -> list[str]:
    if _is_block(value):
        return [head, *_lines(value, indent)]
    return [f"{head} {_inline(value)}"]


def _item(pad: str, item: Any, indent: int) -> list[str]:
    if _is_block(item):
        inner = _lines(item, indent + 2)
        return [f"{pad}- {inner[0][indent + 2 :]}", *inner[1:]]
    return [f"{pad}- {_inline(item)}"]


def _inline(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return _scalar(value)


def dumps(data: Any) -> str:
    """YAML text of JSON-like data (dicts with string keys, lists, str, int, float, bool,
    None); `yaml.safe_load(dumps(x)) == x`."""
    if isinstance(data, str) or not isinstance(data, Mapping | Sequence):
        return _scalar(data) + "\n"
    if not data:
        return _inline(data) + "\n"
    return "\n".join(_lines(data, 0)) + "\n"
