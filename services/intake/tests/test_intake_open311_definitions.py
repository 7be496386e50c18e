"""Open311 service definitions from the category data, and a request's `attribute[code]`
values checked against them (pure: no service running)."""

from __future__ import annotations

from typing import Any

import pytest
from gridloop_city import City
from gridloop_city.models import Category
from gridloop_intake.domain import open311
from gridloop_intake.domain.open311 import Open311Error


def params(**attrs: str | list[str]) -> dict[str, list[str]]:
    return {f"attribute[{k}]": v if isinstance(v, list) else [v] for k, v in attrs.items()}


def with_attributes(city: City, code: str, *attributes: dict[str, Any]) -> Category:
    return city.categories[code].model_copy(
        update={"attributes": tuple(Category.model_validate(
            {**city.categories[code].model_dump(), "attributes": list(attributes)}
        ).attributes)}
    )  # fmt: skip


def test_every_definition_has_urgency_parts_their_code_then_the_categorys_questions(
    city: City,
) -> None:
    for category in city.categories.values():
        d = open311.service_definition(category)
        codes = [a["code"] for a in d["attributes"]]
        assert codes[0] == "urgency"
        assert ("part_code" in codes) == (category.kind == "part")
        assert codes[len(codes) - len(category.attributes) :] == [
            a.code for a in category.attributes
        ]
        assert [a["order"] for a in d["attributes"]] == list(range(1, len(codes) + 1))
        for a in d["attributes"]:
            assert a["datatype"] in (
                "string", "number", "datetime", "text", "singlevaluelist", "multivaluelist",
            )  # fmt: skip
            assert isinstance(a["required"], bool) and a["description"]
            assert bool(a["values"]) == a["datatype"].endswith("valuelist")
    lamp = open311.service_definition(city.categories["P0107"])["attributes"]
    fault = lamp[2]
    assert fault["code"] == "fault" and fault["order"] == 3
    assert {"key": "dark", "name": "不亮 / not lit"} in fault["values"]


def test_answers_are_checked_against_the_definition(city: City) -> None:
    lamp = city.categories["P0107"]
    got = open311.parse_answers(
        params(urgency="urgent", part_code="1101010101070001", fault="dark"), lamp
    )
    assert got.urgency == "urgent" and got.part_code == "1101010101070001"
    assert got.values == {"fault": "dark"}
    assert open311.parse_answers({}, lamp) == open311.Answers()
    assert open311.parse_answers(params(fault=""), lamp).values == {}  # blank: not answered
    noise = open311.parse_answers(
        params(hours=["night", "noon", "night"]), city.categories["E0301"]
    )
    assert noise.values == {"hours": ["night", "noon"]}
    area = open311.parse_answers({"attribute[area_m2]": ["12.5"]}, city.categories["E0106"])
    assert area.values == {"area_m2": 12.5}
    php_style = open311.parse_answers(
        {"attribute[hours][]": ["day", "noon"]}, city.categories["E0301"]
    )
    assert php_style.values == {"hours": ["day", "noon"]}


@pytest.mark.parametrize(
    ("code", "sent", "names", "says"),
    [
        ("P0107", params(fault="exploded"), "attribute[fault]", "not one of"),
        ("P0107", params(fault=["dark", "flickering"]), "attribute[fault]", "one value only"),
        ("P0107", params(colour="red"), "attribute[colour]", "not an attribute of service P0107"),
        ("E0104", params(part_code="1101010101070001"), "attribute[part_code]", "not an attr"),
        ("P0107", params(part_code="12ab"), "attribute[part_code]", "16-digit"),
        ("P0107", params(urgency="asap"), "attribute[urgency]", "normal or urgent"),
        ("E0106", params(area_m2="lots"), "attribute[area_m2]", "not a number"),
        ("E0106", params(area_m2="inf"), "attribute[area_m2]", "finite"),
        ("E0301", params(hours=["night", "dawn"]), "attribute[hours]", "'dawn' is not one of"),
    ],
)
def test_a_wrong_answer_is_an_open311_error_naming_the_attribute(
    city: City, code: str, sent: dict[str, list[str]], names: str, says: str
) -> None:
    with pytest.raises(Open311Error) as err:
        open311.parse_answers(sent, city.categories[code])
    assert err.value.code == 400
    assert err.value.description.startswith(names + ":") and says in err.value.description


def test_a_required_question_must_be_answered_and_times_and_text_are_checked(city: City) -> None:
    garbage = with_attributes(
        city,
        "E0104",
        {"code": "seen_at", "description": "何时看到", "datatype": "datetime", "required": True},
        {"code": "note", "description": "备注", "datatype": "string"},
    )
    with pytest.raises(Open311Error, match=r"attribute\[seen_at\]: required"):
        open311.parse_answers(params(note="x"), garbage)
    with pytest.raises(Open311Error, match=r"attribute\[seen_at\]: not a w3c datetime"):
        open311.parse_answers(params(seen_at="yesterday"), garbage)
    with pytest.raises(Open311Error, match=r"attribute\[note\]: at most 200"):
        open311.parse_answers(params(seen_at="2026-11-23T10:00:00+08:00", note="x" * 201), garbage)
    ok = open311.parse_answers(params(seen_at="2026-11-23T10:00:00+08:00", note="门口"), garbage)
    assert ok.values == {"seen_at": "2026-11-23T02:00:00Z", "note": "门口"}
    d = open311.service_definition(garbage)["attributes"]
    assert [a["code"] for a in d] == ["urgency", "seen_at", "note"] and d[1]["required"] is True
