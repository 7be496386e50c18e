"""The export: committed schemas/ is what the models produce, the AsyncAPI document says
what the models say, and `tools/export_schemas.py --check` names stale files."""

from __future__ import annotations

import functools
import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
from gridloop_contracts import REGISTRY, subject_for, yaml_text
from gridloop_contracts.examples import EXAMPLES
from gridloop_contracts.export import (
    ASYNCAPI_FILE,
    INTAKE_CHANNELS,
    asyncapi,
    export,
    render,
    stale,
)
from hypothesis import given
from hypothesis import strategies as st

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "schemas"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "export_schemas", ROOT / "tools/export_schemas.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_re_export_equals_the_committed_schemas(tmp_path: Path) -> None:
    export(tmp_path)
    fresh, committed = _tree(tmp_path), _tree(SCHEMAS)
    differ = sorted(k for k in fresh.keys() | committed.keys() if fresh.get(k) != committed.get(k))
    assert not differ, f"schemas/ is stale, run `make schemas`: {differ}"


def test_export_is_deterministic() -> None:
    assert render() == render()


def test_check_mode_names_stale_and_leftover_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _tool()
    assert tool.main(["--out", str(tmp_path)]) == 0
    assert tool.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "json" / "gridloop.report.v1.json").write_text("{}")
    (tmp_path / "json" / "gridloop.gone.v1.json").write_text("{}")
    (tmp_path / "asyncapi.json").write_text("{}")
    (tmp_path / ASYNCAPI_FILE).unlink()
    capsys.readouterr()
    assert tool.main(["--check", "--out", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "make schemas" in out
    for name in ("json/gridloop.report.v1.json", "json/gridloop.gone.v1.json", "asyncapi.json"):
        assert name in out
    assert ASYNCAPI_FILE in out
    # Exporting again repairs and removes what is no longer produced.
    export(tmp_path)
    assert stale(tmp_path) == []
    assert not (tmp_path / "asyncapi.json").exists()


def test_asyncapi_yaml_reads_back_as_the_document() -> None:
    text = (SCHEMAS / ASYNCAPI_FILE).read_text(encoding="utf-8")
    assert yaml.safe_load(text) == json.loads(json.dumps(asyncapi()))


def test_asyncapi_channels_operations_and_parameters() -> None:
    doc = asyncapi()
    addresses = {ch["address"] for ch in doc["channels"].values()}
    assert addresses == {
        "intake.{channel}.{source}",
        "intake.taken.{source}",
        "handling._taken.{dept}",
        "case.{event}",
        "dispatch.{dept}.{event}",
        "handling.{dept}.{action}",
        "notify.{source}",
        "score.{event}",
        "city.{event}",
    }
    for name, ch in doc["channels"].items():
        assert set(re.findall(r"{(\w+)}", ch["address"])) == set(ch["parameters"]), name
        for ref in ch["messages"].values():
            assert ref["$ref"].split("/")[-1] in doc["components"]["messages"]
    actions = {
        op["channel"]["$ref"].split("/")[-1]: op["action"] for op in doc["operations"].values()
    }
    # Seen from gridloop: integrators' reports, departments' commands and the operators' new
    # versions of the city come in.
    assert actions == {
        "intake": "receive",
        "handling": "receive",
        "city": "receive",
        "taken": "send",
        "handling_taken": "send",
        "case": "send",
        "dispatch": "send",
        "notify": "send",
        "score": "send",
    }
    handling = doc["channels"]["handling"]["parameters"]["action"]["enum"]
    assert handling == ["extension_requested", "handled", "progress", "returned", "signed"]


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_asyncapi_example_is_a_valid_message(type_name: str) -> None:
    message = asyncapi()["components"]["messages"][type_name.replace(".", "_")]
    (example,) = message["examples"]
    jsonschema.Draft7Validator(message["headers"]).validate(example["headers"])
    assert example["headers"]["ce-type"] == type_name
    assert example["headers"]["Nats-Msg-Id"] == example["headers"]["ce-id"]
    path = SCHEMAS / message["payload"]["$ref"]
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(example["payload"])
    # The channel the message is listed on matches the subject it really travels on.
    subject = subject_for(EXAMPLES[type_name], channel="hotline", source="12345", dept="sanitation")
    (channel,) = [
        ch
        for ch in asyncapi()["channels"].values()
        if type_name.replace(".", "_") in ch["messages"]
    ]
    pattern = re.sub(r"\\{\w+\\}", "[A-Za-z0-9_-]+", re.escape(channel["address"]))
    assert re.fullmatch(pattern, subject), (subject, channel["address"])


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_json_schema_has_id_title_and_description(type_name: str) -> None:
    schema = json.loads((SCHEMAS / "json" / f"{type_name}.json").read_text(encoding="utf-8"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{type_name}.json")
    assert schema["title"] == type_name
    assert schema["description"] == REGISTRY[type_name].summary
    jsonschema.Draft202012Validator.check_schema(schema)


def _schema(type_name: str) -> jsonschema.Draft202012Validator:
    path = SCHEMAS / "json" / f"{type_name}.json"
    return jsonschema.Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))


def test_report_schema_needs_somewhere() -> None:
    report = EXAMPLES["gridloop.report.v1"].to_json_dict()
    nowhere = {k: v for k, v in report.items() if k != "location"}
    assert not _schema("gridloop.report.v1").is_valid(nowhere)
    assert not _schema("gridloop.report.v1").is_valid(nowhere | {"address": None})
    assert _schema("gridloop.report.v1").is_valid(nowhere | {"address": "东四北大街120号"})
    assert _schema("gridloop.report.v1").is_valid(nowhere | {"part_code": "0101-000123"})


def test_rating_schema_needs_a_case() -> None:
    rating = {"rating": "satisfied", "rated_at": "2026-11-23T09:30:00+08:00"}
    assert not _schema("gridloop.rating.v1").is_valid(rating)
    assert _schema("gridloop.rating.v1").is_valid(rating | {"case_id": "C-1"})


@pytest.mark.parametrize(
    ("type_name", "change", "where"),
    [
        ("gridloop.case.dispatched.v1", {"kind": "sideways"}, ["kind"]),
        ("gridloop.case.rated.v1", {"rating": "meh"}, ["rating"]),
        ("gridloop.case.status.v1", {"status": "lost"}, ["status"]),
        ("gridloop.report.v1", {"location": {"lat": 91, "lon": 0}}, ["location"]),
        (
            "gridloop.handling.handled.v1",
            {"evidence": [{"url": "https://e.example/1.jpg", "kind": "smell"}]},
            ["evidence"],
        ),
        ("gridloop.score.published.v1", {"subject_kind": "planet"}, ["subject_kind"]),
    ],
)
def test_schema_rejects_a_broken_instance(
    type_name: str, change: dict[str, Any], where: list[str]
) -> None:
    broken = EXAMPLES[type_name].to_json_dict() | change
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS / "json" / f"{type_name}.json").read_text(encoding="utf-8")),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    errors = list(validator.iter_errors(broken))
    assert errors and all(list(e.path)[: len(where)] == where for e in errors)


# -- the YAML writer -----------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=25,
)


@given(_json_values)
def test_yaml_text_reads_back_the_same(value: Any) -> None:
    assert yaml.safe_load(yaml_text.dumps(value)) == value


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "No",
        "null",
        "~",
        "3.0.0",
        "1e5",
        "a: b",
        "#x",
        "- x",
        "x ",
        " x",
        "{a}",
        "\u2028",
        "\x85",
        "\ufeff",
        "东城区",
        "",
        "<<",
        "'q'",
        '"q"',
        "a\nb",
        "\t",
    ],
)
def test_yaml_text_quotes_what_yaml_would_misread(text: str) -> None:
    assert yaml.safe_load(yaml_text.dumps({text: text})) == {text: text}


def test_yaml_text_floats_read_back_as_floats() -> None:
    for x in (1e-05, 1e16, -2.5e-300, 0.1, 116.417):
        assert yaml.safe_load(yaml_text.dumps([x])) == [x]


# -- the field descriptions and the integrators' contract page ----------------------------


def _properties(schema: dict[str, Any], owner: str) -> list[tuple[str, dict[str, Any]]]:
    out = [(f"{owner}.{k}", v) for k, v in schema.get("properties", {}).items()]
    for name, nested in schema.get("$defs", {}).items():
        out += [(f"{name}.{k}", v) for k, v in nested.get("properties", {}).items()]
    return out


def test_every_field_of_every_message_has_a_description() -> None:
    """A new field fails here until `gridloop_contracts.fields` (or its model) says what it
    means: integrators read the contract, not the Python."""
    missing = [
        where
        for path in sorted((SCHEMAS / "json").glob("*.json"))
        for where, prop in _properties(json.loads(path.read_text(encoding="utf-8")), path.stem)
        if not prop.get("description")
    ]
    assert not missing, missing


def test_the_contract_page_is_what_make_schemas_renders_from_the_committed_schemas() -> None:
    tool = _tool()
    committed = tool.PAGE.read_text(encoding="utf-8")
    assert committed == tool.page_text(SCHEMAS), "the contract page is stale: run `make schemas`"


def test_check_mode_names_a_stale_contract_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = _tool()
    assert tool.main(["--out", str(tmp_path)]) == 0
    page = tmp_path / "contract.html"
    assert page.read_text(encoding="utf-8") == tool.page_text(tmp_path)
    page.write_text("<html></html>", encoding="utf-8")
    capsys.readouterr()
    assert tool.main(["--check", "--out", str(tmp_path)]) == 1
    assert "contract.html" in capsys.readouterr().out


def _article(page: str, anchor: str) -> str:
    start = page.index(f'<article id="{anchor}">')
    return page[start : page.index("</article>", start)]


@functools.cache
def _committed_page() -> str:
    return str(_tool().PAGE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_the_contract_page_shows_every_message_with_its_fields_and_an_example(
    type_name: str,
) -> None:
    message = asyncapi()["components"]["messages"][type_name.replace(".", "_")]
    article = _article(_committed_page(), type_name.replace(".", "-"))
    for subject in message["x-subjects"]:
        assert f"<code>{subject}</code>" in article
    schema = json.loads((SCHEMAS / "json" / f"{type_name}.json").read_text(encoding="utf-8"))
    required = set(schema.get("required", []))
    for where, _ in _properties(schema, type_name):
        name = where.rsplit(".", 1)[-1]
        assert f"<code>{name}</code>" in article, where
    for name in required:  # the message's own table comes first, before nested objects
        row = article[article.index(f'<td class="name"><code>{name}</code></td>') :]
        assert row.index('<td class="req">yes</td>') < row.index("</tr>"), name
    assert "<h4>Example</h4>" in article
    assert f"ce-type: {type_name}" in article


def test_the_contract_page_lists_every_channel() -> None:
    page = _committed_page()
    for channel in asyncapi()["channels"].values():
        assert f"<h3><code>{channel['address']}</code></h3>" in page


def test_inbound_types_travel_on_the_channels_intake_takes_them_on() -> None:
    """The subjects the contract gives each inbound type are the ones intake's gate takes."""
    messages = asyncapi()["components"]["messages"]
    for type_name, channels in INTAKE_CHANNELS.items():
        subjects = messages[type_name.replace(".", "_")]["x-subjects"]
        assert subjects == [f"intake.{ch}.{{source}}" for ch in channels]
