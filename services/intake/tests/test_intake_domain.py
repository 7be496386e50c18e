"""The intake rules without I/O: privacy, case numbers, placement, duplicates, acceptance,
the case file's status rules, the inbound gate and Open311 parsing and rendering."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from xml.etree import ElementTree as ET

import pytest
from gridloop_city import City
from gridloop_city.models import DuplicateRule
from gridloop_contracts import Actor, CaseStatus, Location
from gridloop_contracts import cases as ev
from gridloop_contracts.export import INTAKE_CHANNELS
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportV1
from gridloop_intake.domain import acceptance, casefile, duplicates, open311, privacy
from gridloop_intake.domain.case_ids import format_case_id, is_case_id, local_day
from gridloop_intake.domain.inbound import (
    ACCEPTED_TYPES,
    check_sender,
    check_subject,
    source_of,
)
from gridloop_intake.domain.open311 import Open311Error
from gridloop_intake.domain.placement import Placement, place
from gridloop_intake.domain.problems import Problem

T = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
INSIDE = Location(lat=39.9000, lon=116.4003)  # cell 1101010010010030, no entry list
ENTRY_LISTED = Location(lat=39.8955, lon=116.4073)  # cell 1101010020010001, has an entry list
OUTSIDE = Location(lat=39.90, lon=116.30)


# -- privacy -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("+86 138-1234-5678", "138****5678"),
        ("010-65123456", "010****3456"),
        ("0086 13812345678", "008********5678"),
        ("12345", "***45"),
        ("", None),
        (None, None),
        ("---", None),
    ],
)
def test_phone_keeps_prefix_and_last_four(phone: str | None, masked: str | None) -> None:
    assert privacy.mask_phone(phone) == masked


def test_name_keeps_family_name_only() -> None:
    assert privacy.mask_name("张三丰") == "张**"
    assert privacy.mask_name("李四") == "李*"
    assert privacy.mask_name("王") == "王*"
    assert privacy.mask_name("  ") is None


def test_masked_reporter_never_carries_the_raw_identity() -> None:
    m = privacy.masked("rp-1", "张三丰", "13812345678")
    assert m is not None
    dumped = m.model_dump_json()
    assert "三丰" not in dumped and "12345678" not in dumped
    assert (m.ref, m.name, m.phone) == ("rp-1", "张**", "138****5678")
    assert privacy.masked(None, None, None) is None


# -- case numbers --------------------------------------------------------------------------------
def test_case_number_uses_the_beijing_day() -> None:
    late_utc = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)  # 07:30 on the 23rd in Beijing
    assert local_day(late_utc, "Asia/Shanghai") == date(2026, 11, 23)
    case_id = format_case_id("110101", local_day(late_utc, "Asia/Shanghai"), 123)
    assert case_id == "110101-20261123-000123"
    assert is_case_id(case_id)
    assert is_case_id(format_case_id("110101", date(2026, 1, 1), 1_234_567))
    assert not is_case_id("110101-2026112-000123")
    with pytest.raises(ValueError):
        format_case_id("110101", date(2026, 1, 1), 0)


# -- placement -------------------------------------------------------------------------------------
def test_coordinates_find_their_cell_with_community_and_subdistrict(city: City) -> None:
    where = place(city, location=INSIDE)
    assert isinstance(where, Placement)
    assert where.cell.code == "1101010010010030"
    assert where.cell.community_code == "110101001001"
    assert where.cell.subdistrict_code == "110101001"
    assert where.located_by == "location"


def test_outside_the_district_is_refused_naming_location(city: City) -> None:
    problem = place(city, location=OUTSIDE)
    assert isinstance(problem, Problem)
    assert (problem.field, problem.code) == ("location", "out-of-district")


def test_part_code_gives_position_cell_and_owner(city: City) -> None:
    part = next(iter(city.parts.values()))
    where = place(city, part_code=part.code, location=OUTSIDE)  # the part wins
    assert isinstance(where, Placement)
    assert where.part == part
    assert (where.lon, where.lat, where.cell.code) == (part.lon, part.lat, part.cell_code)
    assert where.located_by == "part_code"
    bad = place(city, part_code="nope")
    assert isinstance(bad, Problem) and bad.field == "part_code"


def test_address_from_the_gazetteer(city: City) -> None:
    entry = next(iter(city.addresses.values()))
    where = place(city, address=f" {entry.address} ")
    assert isinstance(where, Placement)
    assert where.cell.code == entry.cell_code and where.located_by == "address"
    missing = place(city, address="火星路1号")
    assert isinstance(missing, Problem) and missing.field == "address"
    # Free-text addresses next to good coordinates are fine: coordinates decide.
    both = place(city, address="火星路1号", location=INSIDE)
    assert isinstance(both, Placement) and both.address == "火星路1号"


def test_camera_position_when_a_detection_has_none(city: City) -> None:
    cam = next(iter(city.cameras.values()))
    where = place(city, camera_id=cam.camera_id)
    assert isinstance(where, Placement) and where.cell.code == cam.cell_code
    unknown = place(city, camera_id="cam-x")
    assert isinstance(unknown, Problem) and unknown.field == "camera_id"
    nothing = place(city)
    assert isinstance(nothing, Problem) and nothing.field == "location"


# -- duplicates ------------------------------------------------------------------------------------
RULE = DuplicateRule(distance_m=50, window_hours=72)


def _case(
    case_id: str, dlon_m: float, hours: float = 0, part: str | None = None
) -> duplicates.OpenCase:
    # ~85.3 m per 0.001° of longitude at 39.9°N
    return duplicates.OpenCase(
        case_id, INSIDE.lon + dlon_m / 85_300, INSIDE.lat, T + timedelta(hours=hours), part
    )


def test_nearest_open_case_within_distance_and_window_is_the_duplicate() -> None:
    candidates = [_case("far", 120), _case("near", 30), _case("nearer", 10), _case("old", 5, -80)]
    match = duplicates.find_duplicate(
        candidates, lon=INSIDE.lon, lat=INSIDE.lat, reported_at=T, rule=RULE
    )
    assert match is not None and match.case_id == "nearer"
    assert 8 < match.distance_m < 12


def test_nothing_within_distance_or_window_means_a_new_case() -> None:
    candidates = [_case("far", 60), _case("late", 0, 73), _case("early", 0, -73)]
    assert (
        duplicates.find_duplicate(
            candidates, lon=INSIDE.lon, lat=INSIDE.lat, reported_at=T, rule=RULE
        )
        is None
    )


def test_ties_go_to_the_older_case_and_the_same_part_always_matches() -> None:
    older, newer = _case("b-older", 20, -1), _case("a-newer", 20, 0)
    match = duplicates.find_duplicate(
        [newer, older], lon=INSIDE.lon, lat=INSIDE.lat, reported_at=T, rule=RULE
    )
    assert match is not None and match.case_id == "b-older"
    same_part = _case("part", 500, part="P-1")
    match = duplicates.find_duplicate(
        [same_part], lon=INSIDE.lon, lat=INSIDE.lat, reported_at=T, rule=RULE, part_code="P-1"
    )
    assert match is not None and match.distance_m == 0


def test_search_box_contains_the_radius() -> None:
    min_lon, min_lat, max_lon, max_lat = duplicates.search_box(INSIDE.lon, INSIDE.lat, 50)
    edge = _case("edge", 49.9)
    assert min_lon < edge.lon < max_lon and min_lat < INSIDE.lat < max_lat
    assert max_lon - INSIDE.lon < 0.001  # and not much more


def test_a_search_finds_the_cases_in_its_box_and_window_and_covers_the_searches_inside() -> None:
    search = duplicates.NearSearch.of("P0301", INSIDE.lon, INSIDE.lat, T, RULE)
    assert search.since == T - timedelta(hours=72) and search.until == T + timedelta(hours=72)
    assert search.finds(_case("near", 30)) and search.finds(_case("edge", 49.9))
    assert not search.finds(_case("far", 60)) and not search.finds(_case("late", 0, 73))
    assert search.covers(search)
    inside = duplicates.NearSearch.of(
        "P0301", INSIDE.lon, INSIDE.lat, T, DuplicateRule(distance_m=20, window_hours=72)
    )
    assert search.covers(inside) and not inside.covers(search)
    moved = duplicates.NearSearch.of("P0301", INSIDE.lon + 0.0001, INSIDE.lat, T, RULE)
    later = duplicates.NearSearch.of("P0301", INSIDE.lon, INSIDE.lat, T + timedelta(hours=1), RULE)
    other = duplicates.NearSearch.of("E0104", INSIDE.lon, INSIDE.lat, T, RULE)
    assert not any(search.covers(s) for s in (moved, later, other))


def test_camera_cooldown_is_a_sliding_window() -> None:
    assert duplicates.folds_into(T, T + timedelta(minutes=29), 30)
    assert duplicates.folds_into(T + timedelta(minutes=10), T, 30)  # out of order
    assert not duplicates.folds_into(T, T + timedelta(minutes=31), 30)


# -- acceptance ------------------------------------------------------------------------------------
def _facts(city: City, category: str | None, **kw: object) -> acceptance.Facts:
    cell = city.cell(kw.pop("cell", "1101010010010030"))  # type: ignore[arg-type]
    assert cell is not None
    channel = kw.pop("channel", "web")
    source = city.source(kw.pop("source", "web"))  # type: ignore[arg-type]
    assert source is not None
    return acceptance.Facts(
        channel=channel,  # type: ignore[arg-type]
        category=city.category(category) if category else None,
        cell=cell,
        source=source,
        **kw,  # type: ignore[arg-type]
    )


def test_uncategorised_reports_wait_for_an_operator(city: City) -> None:
    d = acceptance.decide(_facts(city, None), city.intake)
    assert (d.action, d.code) == ("queue", acceptance.QUEUE_NO_CATEGORY)


def test_entry_list_refuses_categories_the_cell_does_not_take(city: City) -> None:
    d = acceptance.decide(_facts(city, "E0101", cell="1101010020010001"), city.intake)
    assert (d.action, d.code) == ("reject", "not-in-entry-list")
    ok = acceptance.decide(_facts(city, "E0104", cell="1101010020010001"), city.intake)
    assert ok.action != "reject"


def test_trusted_supervisor_part_report_is_accepted_at_once(city: City) -> None:
    trusted, untrusted = city.user("sup-001"), city.user("sup-002")
    assert trusted is not None and trusted.trusted and untrusted is not None
    facts = _facts(city, "P0101", channel="patrol", source="patrol-app", reporter=trusted)
    assert acceptance.decide(facts, city.intake).action == "accept"
    facts = replace(facts, reporter=untrusted)
    assert acceptance.decide(facts, city.intake).action == "queue"
    # A category not marked for it (公房外立面) waits even from a trusted supervisor.
    facts = _facts(city, "P0501", channel="patrol", source="patrol-app", reporter=trusted)
    assert acceptance.decide(facts, city.intake).action == "queue"
    # The rule can be switched off in intake.yaml.
    off = city.intake.model_copy(
        update={
            "auto_accept": city.intake.auto_accept.model_copy(update={"trusted_supervisors": False})
        }
    )
    facts = _facts(city, "P0101", channel="patrol", source="patrol-app", reporter=trusted)
    assert acceptance.decide(facts, off).action == "queue"


def test_hotline_and_referrals_are_confirmed_on_site_first(city: City) -> None:
    hotline = _facts(city, "E0104", channel="hotline", source="12345")
    assert acceptance.decide(hotline, city.intake).action == "confirm"
    referral = _facts(city, "E0602")  # 领导交办, from any channel
    assert acceptance.decide(referral, city.intake).action == "confirm"
    confirmed = replace(hotline, confirmed=True)
    assert acceptance.decide(confirmed, city.intake).action == "accept"
    refuted = replace(hotline, confirmed=False)
    assert acceptance.decide(refuted, city.intake).code == "not-confirmed"
    # Confirmed, but a shift-leader-reviewed category: still a person decides.
    confirmed_referral = replace(referral, confirmed=True)
    assert acceptance.decide(confirmed_referral, city.intake).action == "queue"


def test_video_confidence_decides_between_queue_and_acceptance(city: City) -> None:
    def video(conf: float, cat: str = "E0104") -> acceptance.Decision:
        return acceptance.decide(
            _facts(city, cat, channel="video", source="video-ai", confidence=conf), city.intake
        )

    assert (video(0.3).action, video(0.3).code) == ("queue", acceptance.QUEUE_LOW_CONFIDENCE)
    assert video(0.7).action == "queue"  # above the source's minimum, below auto-accept
    assert video(0.9).action == "accept"
    assert video(0.95, cat="E0505").action == "queue"  # not a video-detectable category


def test_shift_leader_review_categories(city: City) -> None:
    assert acceptance.needs_review("E0101", city.intake)
    assert not acceptance.needs_review("E0104", city.intake)
    assert not acceptance.needs_review(None, city.intake)


# -- the case file ---------------------------------------------------------------------------------
def _dims() -> dict[str, object]:
    return {"case_id": "110101-20261123-000001", "occurred_at": T}


def test_events_move_the_status_and_tell_the_reporter(city: City) -> None:
    def name(code: str) -> str:
        d = city.department(code)
        return d.name if d else code

    deadline = T + timedelta(hours=4)
    dispatched = ev.CaseDispatched(**_dims(), dept="sanitation", task_id="t1", deadline=deadline)
    change = casefile.change_for(dispatched, name)
    assert change.status == CaseStatus.DISPATCHED
    assert "区环境卫生服务中心" in (change.notes or "")
    assert change.columns["dept"] == "sanitation" and change.columns["deadline"] == deadline
    overdue = casefile.change_for(ev.CaseOverdue(**_dims(), stage="handling"), name)
    assert overdue.status is None and overdue.columns["overdue"] is True
    closed = casefile.change_for(ev.CaseClosed(**_dims(), closed_by="sup-001", on_time=False), name)
    assert closed.status == CaseStatus.CLOSED and closed.columns["overdue"] is False
    reminded = casefile.change_for(ev.CaseReminded(**_dims()), name)
    assert reminded.status is None and not reminded.columns
    confirm = ev.CaseVerificationAssigned(
        **_dims(), supervisor_id="sup-001", due=deadline, purpose="confirmation"
    )
    assert casefile.change_for(confirm, name).status is None
    verify = replace_purpose(confirm)
    assert casefile.change_for(verify, name).status == CaseStatus.VERIFYING


def replace_purpose(e: ev.CaseVerificationAssigned) -> ev.CaseVerificationAssigned:
    return e.model_copy(update={"purpose": "verification"})


def test_settled_cases_do_not_move_back() -> None:
    assert not casefile.may_move(CaseStatus.CLOSED, CaseStatus.IN_PROGRESS)
    assert casefile.may_move(CaseStatus.CLOSED, CaseStatus.REWORKING)
    assert not casefile.may_move(CaseStatus.REJECTED, CaseStatus.ACCEPTED)
    assert casefile.may_move(CaseStatus.DISPATCHED, CaseStatus.SIGNED)


def _status_after(events: list[ev.CaseEvent]) -> CaseStatus:
    """The case file's status after these events in this order, from accepted."""
    status = CaseStatus.ACCEPTED
    for e in events:
        change = casefile.change_for(e, lambda code: code)
        if casefile.moves(status, change):
            assert change.status is not None
            status = change.status
    return status


def test_a_departments_news_that_crossed_the_recall_leaves_the_case_in_the_queue() -> None:
    task = {"dept": "sanitation", "task_id": "t1"}
    dispatched = ev.CaseDispatched(**_dims(), **task, deadline=T + timedelta(hours=4))
    recalled = ev.CaseRecalled(**_dims(), **task, reason="统一改派")
    queued = ev.CaseQueued(**_dims(), reason="撤回", reason_code="recalled")
    signed = ev.CaseSigned(**_dims(), **task)
    progress = ev.CaseProgress(**_dims(), **task, note="在办")
    handled = ev.CaseHandled(**_dims(), **task, result="已清理", completed_at=T)
    assert _status_after([dispatched, signed]) == CaseStatus.SIGNED
    # signed (and more) on the bus after the recall: no department holds the case
    crossed = [dispatched, recalled, queued, signed, progress, handled]
    assert _status_after(crossed) == CaseStatus.MANUAL_DISPATCH
    # placed again by hand: the new unit's news moves it as usual
    again = ev.CaseDispatched(
        **_dims(), dept="street-001", task_id="t2", deadline=T + timedelta(hours=8)
    )
    signed_again = ev.CaseSigned(**_dims(), dept="street-001", task_id="t2")
    assert _status_after([*crossed, again, signed_again]) == CaseStatus.SIGNED
    # the result overtook the recall (dispatch says so): out of the queue, verification next
    unqueued = ev.CaseUnqueued(
        **_dims(), **task, reason="撤回作废", recalled_at=T + timedelta(seconds=1)
    )
    assert _status_after([*crossed, unqueued]) == CaseStatus.HANDLED
    verifying = ev.CaseVerificationAssigned(
        **_dims(), **task, supervisor_id="sup-001", due=T + timedelta(hours=2)
    )
    assert _status_after([*crossed, unqueued, verifying]) == CaseStatus.VERIFYING
    # verification heard before dispatch's word: not moved back to handled
    assert _status_after([*crossed, verifying, unqueued]) == CaseStatus.VERIFYING


def test_timeline_summary_names_the_reason() -> None:
    e = ev.CaseReturned(**_dims(), reason="不属于本单位", actor=Actor(id="u", role="department"))
    assert casefile.summary(e).endswith("不属于本单位")
    # an event without any of the telling fields is its own summary alone
    signed = ev.CaseSigned(**_dims(), actor=Actor(id="u", role="department"))
    assert casefile.summary(signed) == ev.CaseSigned.summary


def test_a_timeline_note_is_what_a_line_says_beyond_its_event() -> None:
    """The console names each line's event in the reader's language; the note is the rest."""
    staff = Actor(id="u", role="department")
    returned = ev.CaseReturned(**_dims(), reason="不属于本单位", actor=staff)
    signed = ev.CaseSigned(**_dims(), actor=staff)
    assert casefile.note(returned.type_name, casefile.summary(returned)) == "不属于本单位"
    assert casefile.note(signed.type_name, casefile.summary(signed)) is None
    # a rule's own words, a line of no event's type and an empty line
    queued = "进入待立案队列 (operator): 等待受理员决定是否立案 / waits for an operator's decision"
    assert casefile.note(ev.CaseQueued.type_name, queued) == queued
    called = "回访第 1 次：已联系"
    assert casefile.note("gridloop.intake.callback.v1", called) == called
    assert casefile.note(signed.type_name, None) is None
    assert casefile.note(signed.type_name, f"{ev.CaseSigned.summary}: ") is None


# -- the inbound gate ------------------------------------------------------------------------------
def test_subject_names_channel_and_source(city: City) -> None:
    assert check_subject("intake.hotline.12345") == ("hotline", "12345")
    bad = check_subject("intake.fax.12345")
    assert isinstance(bad, Problem) and bad.field == "subject"
    assert source_of("intake.fax.12345") == "12345"


def test_sender_must_be_known_on_its_channel_with_a_type_it_carries(city: City) -> None:
    hot = city.source("12345")
    assert check_sender("hotline", "12345", hot, ReportV1.type_name) is None
    assert check_sender("hotline", "12345", hot, RatingV1.type_name) is None
    unknown = check_sender("hotline", "99999", None, ReportV1.type_name)
    assert unknown is not None and unknown.code == "unknown-source"
    wrong = check_sender("patrol", "12345", hot, ReportV1.type_name)
    assert wrong is not None and wrong.code == "wrong-channel"
    video = city.source("video-ai")
    wrong_type = check_sender("video", "video-ai", video, ReportV1.type_name)
    assert wrong_type is not None and wrong_type.field == "type"
    assert check_sender("video", "video-ai", video, DetectionV1.type_name) is None


# -- Open311 ---------------------------------------------------------------------------------------
def test_open311_post_parameters() -> None:
    req = open311.parse_new_request(
        {
            "service_code": ["E0104"],
            "lat": ["39.9"],
            "long": ["116.4003"],
            "first_name": ["三"],
            "last_name": ["张"],
            "attribute[urgency]": ["urgent"],
        }
    )
    assert (req.lat, req.lon, req.name) == (39.9, 116.4003, "张三")
    for params, needle in [
        ({}, "service_code"),
        ({"service_code": ["E0104"]}, "lat/long"),
        ({"service_code": ["E0104"], "lat": ["39.9"]}, "lat and long"),
        ({"service_code": ["E0104"], "lat": ["x"], "long": ["1"]}, "lat: not a number"),
        ({"service_code": ["E0104"], "lat": ["99"], "long": ["1"]}, "lat: must be"),
        (
            {"service_code": ["E0104"], "address_string": ["a"], "media_url": ["ftp://x"]},
            "media_url",
        ),
        ({"service_code": ["E0104"], "address_id": ["7"]}, "address_id"),
    ]:
        with pytest.raises(Open311Error) as err:
            open311.parse_new_request(params)
        assert err.value.code == 400 and needle in err.value.description


def test_open311_filters() -> None:
    assert open311.parse_list("a, b,,c") == ["a", "b", "c"]
    assert open311.parse_status("open,closed") == ["open", "closed"]
    with pytest.raises(Open311Error):
        open311.parse_status("pending")
    assert open311.parse_datetime("2026-11-23T10:00:00+08:00", "start_date") == T
    assert open311.parse_datetime("2026-11-23T02:00:00Z", "start_date") == T
    assert open311.parse_datetime("2026-11-23T02:00:00", "x") == T  # no offset: UTC
    with pytest.raises(Open311Error):
        open311.parse_datetime("yesterday", "start_date")


def test_open311_xml_uses_the_spec_element_names(city: City) -> None:
    cat = city.category("E0104")
    assert cat is not None
    body = open311.to_xml("services", [open311.service(cat, city.majors.get(cat.major_code))])
    root = ET.fromstring(body)
    assert root.tag == "services"
    service = root.find("service")
    assert service is not None
    assert service.findtext("service_code") == "E0104"
    assert service.findtext("metadata") == "true"
    definition = ET.fromstring(
        open311.to_xml("service_definition", open311.service_definition(cat))
    )
    values = definition.findall("attributes/attribute/values/value/key")
    assert [v.text for v in values] == ["normal", "urgent", "bags", "pile", "truckload"]
    errors = ET.fromstring(open311.to_xml("errors", open311.errors_body([Open311Error(403, "no")])))
    assert errors.findtext("error/code") == "403"


def test_open311_service_request_is_the_public_view() -> None:
    view = open311.service_request(
        {
            "case_id": "c1",
            "open311_status": "open",
            "reported_at": T,
            "updated_at": T,
            "lat": 39.9,
            "lon": 116.4,
            "attachments": [{"url": "https://x/1.jpg", "kind": "photo"}],
            "reporter": {"name": "张*"},
        },
        "暴露垃圾",
        "环卫",
    )
    assert view["requested_datetime"] == "2026-11-23T02:00:00Z"
    assert view["media_url"] == "https://x/1.jpg" and view["long"] == 116.4
    assert "reporter" not in view


def test_the_gate_takes_each_inbound_type_on_the_channels_the_contract_names() -> None:
    """The published contract (asyncapi.yaml `x-subjects`, the integrators' page) and the gate
    agree on which subjects carry reports, detections and ratings."""
    gate = {
        t: tuple(ch for ch, types in ACCEPTED_TYPES.items() if t in types) for t in INTAKE_CHANNELS
    }
    assert {t: set(chs) for t, chs in gate.items()} == {
        t: set(chs) for t, chs in INTAKE_CHANNELS.items()
    }
    assert set().union(*ACCEPTED_TYPES.values()) == set(INTAKE_CHANNELS)
