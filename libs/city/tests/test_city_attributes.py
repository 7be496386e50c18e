"""Categories' Open311 attributes (the questions a resident's report answers) are checked
when the city loads: list types need values, other types take none, no code twice, and the
built-in ones (urgency, part_code) are not redefined."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from gridloop_city import load_city
from gridloop_city.models import Category, ServiceAttribute
from pydantic import ValidationError

DEMO = Path(__file__).resolve().parents[3] / "data" / "demo-city"


def category(**over: Any) -> dict[str, Any]:
    return {
        "code": "E0104",
        "name": "暴露垃圾",
        "kind": "event",
        "major_code": "E01",
        "acceptance_standard": "a",
        "closing_standard": "b",
        "limit_normal": {"amount": 4, "unit": "working_hours"},
        "limit_urgent": {"amount": 2, "unit": "working_hours"},
        **over,
    }


def test_the_demo_city_asks_about_some_categories() -> None:
    city = load_city(DEMO)
    lamp = city.categories["P0107"].attributes
    assert [a.code for a in lamp] == ["fault"] and lamp[0].datatype == "singlevaluelist"
    assert "dark" in {v.key for v in lamp[0].values}
    assert city.categories["E0106"].attributes[0].datatype == "number"
    assert city.categories["P0101"].attributes == ()


@pytest.mark.parametrize(
    ("attribute", "says"),
    [
        ({"code": "x", "description": "X", "datatype": "singlevaluelist"}, "needs values"),
        (
            {"code": "x", "description": "X", "values": [{"key": "a", "name": "A"}]},
            "takes no values",
        ),
        (
            {
                "code": "x",
                "description": "X",
                "datatype": "multivaluelist",
                "values": [{"key": "a", "name": "A"}, {"key": "a", "name": "B"}],
            },
            "a value key twice",
        ),
        ({"code": "X y", "description": "X"}, "code"),
        ({"code": "x", "description": "X", "datatype": "colour"}, "datatype"),
    ],
)
def test_an_attribute_that_does_not_fit_its_type_is_refused(
    attribute: dict[str, Any], says: str
) -> None:
    with pytest.raises(ValidationError, match=says):
        ServiceAttribute.model_validate(attribute)


def test_a_code_twice_or_a_built_in_one_is_refused() -> None:
    one = {"code": "size", "description": "S", "datatype": "number"}
    with pytest.raises(ValidationError, match="twice"):
        Category.model_validate(category(attributes=[one, one]))
    with pytest.raises(ValidationError, match="built in"):
        Category.model_validate(category(attributes=[{**one, "code": "urgency"}]))
    assert Category.model_validate(category(attributes=[one])).attributes[0].code == "size"
