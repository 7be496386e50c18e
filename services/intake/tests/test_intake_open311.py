"""Open311 GeoReport v2 round trips in JSON and XML, and its errors in the spec's shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from gridloop_contracts import cases as ev
from gridloop_devkit.testing import wait_for

if TYPE_CHECKING:
    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
KEY = "demo-open311-key"
FORM = {"content-type": "application/x-www-form-urlencoded"}
BASE = "/open311/v2"


def form(**fields: str) -> dict[str, str]:
    return {"api_key": KEY, **fields}


async def test_services_and_definitions_in_json_and_xml(intake: Harness) -> None:
    async with intake.client() as http:
        r = await http.get(f"{BASE}/services.json")
        assert r.status_code == 200
        services = r.json()
        codes = {s["service_code"] for s in services}
        assert {"P0101", "P0603", "E0104", "E0602"} <= codes and len(codes) == 79
        garbage = next(s for s in services if s["service_code"] == "E0104")
        assert garbage["service_name"] == "暴露垃圾" and garbage["type"] == "realtime"
        assert garbage["group"] == "市容环境" and garbage["metadata"] is True

        r = await http.get(f"{BASE}/services.xml")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
        root = ET.fromstring(r.content)
        assert root.tag == "services" and len(root.findall("service")) == 79

        d = (await http.get(f"{BASE}/services/E0104.json")).json()
        assert d["service_code"] == "E0104" and d["attributes"][0]["code"] == "urgency"
        xml = ET.fromstring((await http.get(f"{BASE}/services/E0104.xml")).content)
        assert xml.tag == "service_definition"
        assert xml.findtext("attributes/attribute/datatype") == "singlevaluelist"

        for fmt in ("json", "xml"):
            r = await http.get(f"{BASE}/services/X0000.{fmt}")
            assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/xml")
        assert ET.fromstring(r.content).findtext("error/code") == "404"
        r = await http.get(f"{BASE}/services.csv")
        assert r.status_code == 400 and r.json()[0]["code"] == 400
        r = await http.get(f"{BASE}/services.json?jurisdiction_id=310101")
        assert r.status_code == 404
        assert (await http.get(f"{BASE}/services.json?jurisdiction_id=110101")).status_code == 200
        discovery = (await http.get(f"{BASE}/discovery.json")).json()
        assert discovery["endpoints"][0]["url"].endswith("/open311/v2/")


async def test_post_and_follow_a_request_in_json_and_xml(intake: Harness) -> None:
    notify = await intake.tap("NOTIFY", "notify.web")
    async with intake.client() as http:
        r = await http.post(
            f"{BASE}/requests.json",
            data=form(
                service_code="E0104",
                lat="39.9000",
                long="116.4003",
                description="小区门口暴露垃圾",
                first_name="三",
                last_name="张",
                phone="13812345678",
                email="zhang@example.com",
                media_url="https://photos.example/a.jpg",
            ),
        )
        assert r.status_code == 201, r.text
        answer = r.json()[0]
        case_id, token = answer["service_request_id"], answer["token"]
        assert case_id.startswith("110101-20261123-")

        # The same problem 30 m away, in XML: joins the open request.
        r = await http.post(
            f"{BASE}/requests.xml",
            content=f"api_key={KEY}&service_code=E0104&lat=39.9000&long=116.40065",
            headers=FORM,
        )
        assert r.status_code == 201
        root = ET.fromstring(r.content)
        assert root.tag == "service_requests"
        assert root.findtext("request/service_request_id") == case_id
        assert "joined" in (root.findtext("request/service_notice") or "")
        second_token = root.findtext("request/token")

        for t in (token, second_token):
            tok = (await http.get(f"{BASE}/tokens/{t}.json")).json()
            assert tok == [{"service_request_id": case_id, "token": t}]
        assert (await http.get(f"{BASE}/tokens/nope.json")).status_code == 404

        got = (await http.get(f"{BASE}/requests/{case_id}.json")).json()[0]
        assert got["status"] == "open" and got["service_code"] == "E0104"
        # the public view rounds the point (INTAKE_OPEN311_PUBLIC_COORD_DECIMALS, 3: ~100 m)
        assert got["lat"] == 39.9 and got["long"] == 116.4
        assert got["media_url"] == "https://photos.example/a.jpg"
        assert got["requested_datetime"] == "2026-11-23T02:00:00Z"
        assert "13812345678" not in str(got) and "张" not in str(got)
        assert "待受理员立案" in got["status_notes"]  # web reports wait for an operator

        # The case runs on in the other services; Open311 shows where it stands.
        deadline = T0 + timedelta(hours=4)
        r = await http.post(
            f"/cases/{case_id}/accept", json={}, headers=intake.headers("op-01", "operator")
        )
        assert r.status_code == 200, r.text
        await intake.upstream(
            ev.CaseDispatched(
                case_id=case_id, occurred_at=T0, dept="sanitation", task_id="t", deadline=deadline
            )
        )
        await notify.wait("gridloop.case.status.v1", 2, status="dispatched")
        xml = ET.fromstring((await http.get(f"{BASE}/requests/{case_id}.xml")).content)
        request = xml.find("request")
        assert request is not None
        assert request.findtext("agency_responsible") == "区环境卫生服务中心"
        assert request.findtext("expected_datetime") == "2026-11-23T06:00:00Z"
        await intake.upstream(
            ev.CaseClosed(case_id=case_id, occurred_at=T0, closed_by="sup-001", on_time=True),
            "verify",
        )
        await notify.wait("gridloop.case.status.v1", 2, status="closed")
        got = (await http.get(f"{BASE}/requests/{case_id}.json")).json()[0]
        assert got["status"] == "closed"

        # The reporter rates it (gridloop extension), once.
        r = await http.post(f"{BASE}/requests/{case_id}/rating.json", data=form(rating="E"))
        assert r.status_code == 400 and r.json()[0]["description"].startswith("rating:")
        r = await http.post(
            f"{BASE}/requests/{case_id}/rating.json", data=form(rating="A", comment="很满意")
        )
        assert r.status_code == 201 and r.json()[0]["rating"] == "A"
        r = await http.post(f"{BASE}/requests/{case_id}/rating.json", data=form(rating="satisfied"))
        assert r.status_code == 400 and "already rated" in r.json()[0]["description"]
        r = await http.post(f"{BASE}/requests/nope/rating.json", data=form(rating="satisfied"))
        assert r.status_code == 404


async def test_request_search_filters(intake: Harness) -> None:
    async with intake.client() as http:
        ids = []
        for i, (code, lon) in enumerate(
            [("E0104", 116.4003), ("E0201", 116.4003), ("E0104", 116.4100)]
        ):
            intake.clock.set(T0 + timedelta(hours=i))
            r = await http.post(
                f"{BASE}/requests.json",
                data=form(service_code=code, lat="39.9", long=str(lon), description=f"r{i}"),
            )
            assert r.status_code == 201, r.text
            ids.append(r.json()[0]["service_request_id"])
        assert len(set(ids)) == 3
        await intake.upstream(
            ev.CaseClosed(case_id=ids[1], occurred_at=T0, closed_by="sup-001", on_time=True),
            "verify",
        )

        async def closed() -> bool:
            r = await http.get(f"{BASE}/requests.json?status=closed")
            return [x["service_request_id"] for x in r.json()] == [ids[1]]

        await wait_for(closed)

        async def found(query: str) -> list[str]:
            r = await http.get(f"{BASE}/requests.json?{query}")
            assert r.status_code == 200, r.text
            return sorted(x["service_request_id"] for x in r.json())

        assert await found("") == sorted(ids)
        assert await found("service_code=E0104") == sorted([ids[0], ids[2]])
        assert await found("status=open") == sorted([ids[0], ids[2]])
        assert await found("status=open,closed&service_code=E0201,E0104") == sorted(ids)
        assert await found(f"service_request_id={ids[0]},{ids[2]}") == sorted([ids[0], ids[2]])
        assert await found("start_date=2026-11-23T02:30:00Z") == sorted([ids[1], ids[2]])
        assert await found("end_date=2026-11-23T11:30:00%2B08:00") == sorted([ids[0], ids[1]])
        # By default, the last 90 days only.
        intake.clock.set(T0 + timedelta(days=91))
        assert await found("") == []
        xml = ET.fromstring((await http.get(f"{BASE}/requests.xml?service_code=E0201")).content)
        assert xml.tag == "service_requests" and xml.find("request") is None
        for query in (
            "status=pending",
            "start_date=yesterday",
            "start_date=2026-12-01&end_date=2026-11-01",
        ):
            r = await http.get(f"{BASE}/requests.json?{query}")
            assert r.status_code == 400
        r = await http.get(f"{BASE}/requests/110101-20991231-000001.xml")
        assert r.status_code == 404 and ET.fromstring(r.content).findtext("error/code") == "404"


async def test_post_errors_in_the_spec_shape(intake: Harness) -> None:
    good = {"service_code": "E0104", "lat": "39.9", "long": "116.4003"}
    async with intake.client() as http:
        cases = [
            ({**good}, 403, "api_key"),  # no key
            ({**good, "api_key": "wrong"}, 403, "api_key"),
            (form(lat="39.9", long="116.4003"), 400, "service_code"),
            (form(**{**good, "service_code": "X0000"}), 400, "service_code"),
            (form(service_code="E0104"), 400, "lat/long"),
            (form(**{**good, "lat": "39.9", "long": "116.3"}), 400, "outside"),
            (form(service_code="E0104", address_string="火星路1号"), 400, "address_string"),
            (form(**good, phone="call me maybe"), 400, "phone"),
            (form(**good, media_url="file:///etc/passwd"), 400, "media_url"),
        ]
        for data, status, needle in cases:
            r = await http.post(f"{BASE}/requests.json", data=data)
            assert r.status_code == status, (data, r.text)
            body = r.json()
            assert body[0]["code"] == status and needle in body[0]["description"], body
        r = await http.post(f"{BASE}/requests.xml", data={**good})
        assert r.status_code == 403
        err = ET.fromstring(r.content)
        assert err.tag == "errors" and err.findtext("error/code") == "403"
        # JSON bodies are taken too; a gazetteer address locates the request.
        r = await http.post(
            f"{BASE}/requests.json",
            json={
                "api_key": KEY,
                "service_code": "E0104",
                "address_string": "东城区美术馆后街10号",
            },
        )
        assert r.status_code == 201, r.text
        assert await intake.value("SELECT count(*) FROM cases") == 1
        cell = await intake.value("SELECT cell_code FROM cases")
        assert cell == "1101010070050003"
