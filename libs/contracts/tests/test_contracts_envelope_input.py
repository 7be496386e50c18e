"""What an integrator's malformed envelope turns into: always an EnvelopeError naming the
attribute (`data_base64`, `datacontenttype`, `subject`, `body`), never another exception; and
the checks for text no database column takes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from gridloop_contracts import Envelope, EnvelopeError, decode
from gridloop_contracts.envelope import control_characters, nul_in, storable

STRUCTURED = {"content-type": "application/cloudevents+json"}
BASE = {"specversion": "1.0", "id": "1", "source": "/hotline/12345", "type": "t"}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"data_base64": "!!not base64!!"}, "data_base64"),
        ({"data_base64": "abc"}, "data_base64"),  # bad padding
        ({"data_base64": 12}, "data_base64"),
        ({"data_base64": None}, "data_base64"),
        ({"data_base64": "bm90IGpzb24="}, "data_base64"),  # base64 of text that is not JSON
        ({"data_base64": "5Z6D5Zy+"}, "data_base64"),  # not JSON either
        ({"datacontenttype": 5, "data": {}}, "datacontenttype"),
        ({"subject": ["x"]}, "subject"),
    ],
)
def test_a_malformed_structured_event_names_the_attribute(
    doc: dict[str, object], field: str
) -> None:
    with pytest.raises(EnvelopeError) as caught:
        decode(STRUCTURED, orjson.dumps({**BASE, **doc}))
    assert caught.value.field == field


def test_valid_base64_data_is_decoded_with_line_breaks_allowed() -> None:
    doc = {**BASE, "data_base64": "eyJhIjog\nMX0="}  # {"a": 1}
    assert decode(STRUCTURED, orjson.dumps(doc)).data == {"a": 1}
    raw = {**BASE, "data_base64": "AAE=", "datacontenttype": "application/octet-stream"}
    assert decode(STRUCTURED, orjson.dumps(raw)).data == b"\x00\x01"


def test_control_characters_in_attributes_are_named() -> None:
    ok = Envelope(type="t", source="/hotline/12345", data={}, id="1", subject="C-1")
    assert control_characters(ok) is None
    for name, value in (
        ("id", "a\x00"),
        ("source", "/x\n"),
        ("type", "t\x7f"),
        ("subject", "\x9f"),
    ):
        fields: dict[str, Any] = {"type": "t", "source": "/s", "data": {}, "id": "1", name: value}
        env = Envelope(**fields)
        found = control_characters(env)
        assert found is not None and found.field == name


def test_nul_in_finds_the_path_and_storable_replaces_it() -> None:
    assert nul_in({"a": "x", "b": [1, {"c": "ok"}]}) is None
    assert nul_in({"a": "x", "b": [1, {"c": "o\x00k"}]}) == "data.b.1.c"
    assert nul_in({"k\x00": 1}) == "data.k\ufffd"
    assert nul_in("\x00") == "data"
    assert storable("a\x00b") == "a\ufffdb"
