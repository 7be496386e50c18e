"""One realistic instance of every event type: used in the AsyncAPI document and the tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from . import cases as c
from . import city as y
from . import department as d
from . import inbound as i
from . import scores as s
from .base import Event
from .common import Actor, Attachment, AttachmentRef, FieldError, Location, MaskedReporter
from .status import CaseStatus

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=CST)
DEADLINE = datetime(2026, 11, 24, 17, 30, tzinfo=CST)
CASE = "110101-20261123-000042"
DIMS = {
    "case_id": CASE,
    "category_code": "E0104",
    "cell_code": "1101010010010007",
    "community_code": "110101001001",
    "subdistrict_code": "110101001",
}
WHERE = Location(lat=39.9289, lon=116.4170)
PHOTO = Attachment(url="https://evidence.example.org/p/42.jpg", kind="photo")
UPLOADED = AttachmentRef(
    attachment_id="a6f1c2d3e4b5a69788796a5b4",
    sha256="9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    content_type="image/jpeg",
    kind="photo",
    size=1_482_113,
    taken_at=T0,
    distance_m=12.5,
    far=False,
)
REPORTER = MaskedReporter(ref="rp-7f3a", name="张*", phone="138****5678")
SUPERVISOR = Actor(id="sup-017", role="supervisor", name="李明")
DEPT = Actor(id="sanitation-ops", role="department", dept="sanitation")
TASK = {"dept": "sanitation", "task_id": "T-000042-1", "deadline": DEADLINE}

_summary = d.CaseSummary(
    case_id=CASE,
    task_id="T-000042-1",
    category_code="E0104",
    category_name="暴露垃圾",
    description="东四北大街120号门前垃圾堆放",
    location=WHERE,
    address="东城区东四北大街120号",
    cell_code="1101010010010007",
    attachments=[PHOTO],
    reporter=REPORTER,
    deadline=DEADLINE,
    sign_in_due=T0 + timedelta(hours=2),
    what_to_do="清运暴露垃圾，恢复路面整洁",
)

_all: list[Event] = [
    c.CaseReported(
        **DIMS,
        occurred_at=T0,
        report_id="R-9001",
        channel="hotline",
        source="12345",
        external_id="12345-20261123-0042",
        description="东四北大街120号门前垃圾堆放",
        location=WHERE,
        address="东城区东四北大街120号",
        reporter=REPORTER,
        attachments=[PHOTO],
        files=[UPLOADED],
        reported_at=T0,
    ),
    c.CaseMerged(
        **DIMS, occurred_at=T0, report_id="R-9002", source="web", channel="web", distance_m=18.5
    ),
    c.CaseConfirmationRequested(**DIMS, occurred_at=T0, reason="hotline report", due=DEADLINE),
    c.CaseConfirmed(
        **DIMS, occurred_at=T0, confirmed=True, supervisor_id="sup-017", actor=SUPERVISOR
    ),
    c.CaseAccepted(
        **DIMS,
        occurred_at=T0,
        description="东四北大街120号门前垃圾堆放",
        location=WHERE,
        channel="hotline",
        source="12345",
        actor=Actor(id="op-01", role="operator"),
        category_name="暴露垃圾",
        standard="道路、广场等公共区域有暴露垃圾",
    ),
    c.CaseAcceptedV2(
        **DIMS,
        occurred_at=T0,
        description="人行道井盖缺失",
        location=WHERE,
        part_code="0101-110101-000318",
        channel="patrol",
        source="patrol-app",
        auto=True,
        reporter_user_id="sup-017",
        reported_at=T0,
        category_name="井盖缺失",
        report=c.CaseReported(
            **DIMS,
            occurred_at=T0,
            report_id="R-9003",
            channel="patrol",
            source="patrol-app",
            external_id="patrol-20261123-0007",
            description="人行道井盖缺失",
            location=WHERE,
            part_code="0101-110101-000318",
            reporter_user_id="sup-017",
            reported_at=T0,
        ),
    ),
    c.CaseRejected(
        **DIMS, occurred_at=T0, reason_code="not-city-management", reason="不属于城市管理范围"
    ),
    c.CaseDispatched(**DIMS, **TASK, occurred_at=T0, co_handlers=["street-dhm"], lead="sanitation"),
    c.CaseRecalled(**DIMS, **TASK, occurred_at=T0, reason="派遣错误"),
    c.CaseSupervised(**DIMS, occurred_at=T0, reason="多次超期", dept="sanitation"),
    c.CaseSigned(**DIMS, **TASK, occurred_at=T0, actor=DEPT, on_time=True),
    c.CaseReturned(**DIMS, **TASK, occurred_at=T0, reason="不属于本单位职责"),
    c.CaseExtensionRequested(
        **DIMS,
        **TASK,
        occurred_at=T0,
        reason="需协调产权单位",
        proposed_deadline=DEADLINE + timedelta(days=2),
    ),
    c.CaseExtensionDecided(
        **DIMS, **TASK, occurred_at=T0, granted=True, new_deadline=DEADLINE + timedelta(days=2)
    ),
    c.CaseProgress(**DIMS, **TASK, occurred_at=T0, note="已安排清运车辆"),
    c.CaseHandled(
        **DIMS,
        **TASK,
        occurred_at=T0,
        result="垃圾已清运",
        evidence=[PHOTO],
        files=[UPLOADED],
        completed_at=T0,
        on_time=True,
    ),
    c.CaseReminded(**DIMS, **TASK, occurred_at=T0, stage="handling"),
    c.CaseQueued(
        **DIMS,
        occurred_at=T0,
        actor=Actor(id="dispatch", role="system"),
        reason="无匹配的派遣规则 / no routing rule matches",
        reason_code="unroutable",
        suggestions=["sanitation", "urban-mgmt"],
    ),
    c.CaseUnqueued(
        **DIMS,
        **TASK,
        occurred_at=T0 + timedelta(seconds=2),
        actor=Actor(id="dispatch", role="system"),
        reason="处置结果先于撤回送达，撤回作废 / the result crossed the recall",
        recalled_at=T0 + timedelta(seconds=1),
    ),
    c.CaseQueueChased(
        **DIMS,
        occurred_at=T0 + timedelta(minutes=30),
        actor=Actor(id="dispatch", role="system"),
        level=1,
        to_role="dispatcher",
        queued_at=T0,
        reason="待人工派遣已超过30分钟 / waiting for manual dispatch",
    ),
    c.CaseOverdue(**DIMS, **TASK, occurred_at=DEADLINE, stage="handling"),
    c.CaseEscalated(
        **DIMS, **TASK, occurred_at=DEADLINE, level=1, to_role="dispatcher", reason="超期未处置"
    ),
    c.CaseOverdueWithdrawn(
        **DIMS,
        **TASK,
        occurred_at=DEADLINE + timedelta(seconds=40),
        actor=Actor(id="dispatch", role="system"),
        stage="handling",
        overdue_at=DEADLINE,
        answered_at=DEADLINE - timedelta(seconds=5),
        escalation_levels=[1],
    ),
    c.CaseVerificationAssigned(
        **DIMS, **TASK, occurred_at=T0, supervisor_id="sup-017", due=DEADLINE
    ),
    c.CaseVerified(
        **DIMS,
        **TASK,
        occurred_at=T0,
        passed=True,
        supervisor_id="sup-017",
        photos=[PHOTO],
        files=[UPLOADED],
        position=WHERE,
    ),
    c.CaseVerifiedV2(
        **DIMS,
        **TASK,
        occurred_at=T0,
        passed=False,
        supervisor_id="sup-017",
        notes="现场仍有垃圾，反馈照片非本处",
        photos=[PHOTO],
        position=WHERE,
        failures=1,
        falsified=True,
        falsification=c.Falsification(
            notes="反馈照片拍摄于东四北大街118号，本处垃圾未清运",
            evidence=[PHOTO],
            marked_by="sup-017",
            role="supervisor",
        ),
    ),
    c.CaseReworked(
        **DIMS, **TASK, occurred_at=T0, count=1, reason="仍有垃圾残留", new_deadline=DEADLINE
    ),
    c.CaseClosed(**DIMS, **TASK, occurred_at=T0, closed_by="sup-017", on_time=True),
    c.CaseClosedV2(
        **DIMS,
        **TASK,
        occurred_at=T0,
        actor=SUPERVISOR,
        closed_by="sup-017",
        on_time=True,
        verdict=c.CaseVerifiedV2(
            **DIMS,
            **TASK,
            occurred_at=T0,
            actor=SUPERVISOR,
            passed=True,
            supervisor_id="sup-017",
            photos=[PHOTO],
            position=WHERE,
            on_time=True,
        ),
    ),
    c.CaseRated(**DIMS, occurred_at=T0, rating="satisfied", comment="处理及时", source="12345"),
    c.CaseCalledBack(
        **DIMS, occurred_at=T0, reached=False, tries=3, closed_at=T0, note="三次未接通"
    ),
    c.CaseRatedV2(
        **DIMS, occurred_at=T0, level="A", comment="处理及时", source="12345", via="hotline:12345"
    ),
    c.CaseReopened(**DIMS, **TASK, occurred_at=T0, reason="市民不满意"),
    c.CaseEvidenceAdded(
        **DIMS, occurred_at=T0, actor=SUPERVISOR, report_id="R-9001", files=[UPLOADED]
    ),
    i.ReportV1(
        external_id="12345-20261123-0042",
        description="东四北大街120号门前垃圾堆放",
        reported_at=T0,
        location=WHERE,
        category_code="E0104",
        reporter=i.Reporter(name="张三", phone="13812345678"),
        attachments=[PHOTO],
    ),
    i.ReportTakenV1(
        channel="patrol",
        source="patrol-app",
        external_id="patrol-20261123-0007",
        description="东四北大街120号门前垃圾堆放",
        reported_at=T0,
        location=WHERE,
        category_code="E0104",
        reporter_user_id="sup-010",
        files=[UPLOADED],
    ),
    i.DetectionV1(
        external_id="cam-0007-88231",
        camera_id="cam-0007",
        category_code="E0501",
        confidence=0.91,
        detected_at=T0,
        snapshot_url="https://video.example.org/snap/88231.jpg",
        bbox=[0.1, 0.2, 0.3, 0.4],
    ),
    i.RatingV1(external_id="12345-20261123-0042", rating="satisfied", rated_at=T0),
    i.RatingV2(external_id="12345-20261123-0042", level="B", comment="还可以更快", rated_at=T0),
    i.CaseStatusV1(
        external_id="12345-20261123-0042",
        case_id=CASE,
        status=CaseStatus.DISPATCHED,
        status_notes="已派遣至区环卫中心",
        updated_at=T0,
    ),
    i.ReportRejectedV1(
        external_id="12345-bad-1",
        source="12345",
        errors=[
            FieldError(
                field="data.location",
                reason="at least one of location, address or part_code is required",
            )
        ],
        received_at=T0,
    ),
    d.TaskAssigned(dept="sanitation", case=_summary, sent_at=T0),
    d.TaskReminder(dept="sanitation", case=_summary, sent_at=T0),
    d.TaskOverdue(dept="sanitation", case=_summary, sent_at=DEADLINE),
    d.TaskOverdueWithdrawn(
        dept="sanitation",
        case=_summary,
        sent_at=DEADLINE + timedelta(seconds=40),
        stage="handling",
        note="超期通知撤回：处置结果已于期限前反馈 / withdrawn: the result came in time",
    ),
    d.TaskEscalated(
        dept="sanitation", case=_summary, sent_at=DEADLINE, level=1, to_role="dispatcher"
    ),
    d.TaskRework(dept="sanitation", case=_summary, sent_at=T0, count=1, reason="仍有垃圾残留"),
    d.TaskRecalled(dept="sanitation", case=_summary, sent_at=T0, reason="派遣错误"),
    d.RecallOvertaken(
        dept="sanitation",
        case=_summary,
        sent_at=T0 + timedelta(minutes=1),
        recalled_at=T0,
        completed_at=T0 - timedelta(seconds=5),
    ),
    d.SignCommand(
        command_id="cmd-1", case_id=CASE, task_id="T-000042-1", dept="sanitation", by="王工"
    ),
    d.ReturnCommand(
        command_id="cmd-2", case_id=CASE, dept="sanitation", by="王工", reason="不属于本单位职责"
    ),
    d.ExtensionCommand(
        command_id="cmd-3",
        case_id=CASE,
        dept="sanitation",
        by="王工",
        reason="需协调",
        proposed_deadline=DEADLINE,
    ),
    d.ProgressCommand(
        command_id="cmd-4", case_id=CASE, dept="sanitation", by="王工", note="车辆已出发"
    ),
    d.HandledCommand(
        command_id="cmd-5",
        case_id=CASE,
        dept="sanitation",
        by="王工",
        result="已清运",
        evidence=[PHOTO],
        completed_at=T0,
    ),
    d.CommandTakenV1(
        action="handled",
        command=d.HandledCommand(
            command_id="cmd-6",
            case_id=CASE,
            dept="sanitation",
            by="san-01",
            result="已清运",
            completed_at=T0,
        ).model_dump(mode="json", exclude_none=True),
        by_name="王工",
        files=[UPLOADED],
    ),
    d.CommandAnswerV1(
        command_id="cmd-1",
        accepted=True,
        case_id=CASE,
        dept="sanitation",
        action="signed",
        status=CaseStatus.SIGNED,
    ),
    s.ScorePublishedV1(
        period_kind="month",
        period_start=datetime(2026, 11, 1, tzinfo=CST),
        period_end=datetime(2026, 12, 1, tzinfo=CST),
        subject_kind="department",
        rule_set="jinhua",
        rows=[
            s.ScoreRow(
                subject_code="sanitation",
                score=91.5,
                grade="优",
                rank=1,
                measures={"on_time_rate": 0.97},
            )
        ],
        published_at=datetime(2026, 12, 1, 0, 5, tzinfo=CST),
    ),
    s.BulletinPublishedV1(
        period_kind="month",
        period_start=datetime(2026, 11, 1, tzinfo=CST),
        period_end=datetime(2026, 12, 1, tzinfo=CST),
        title="东城区网格化城市管理2026年11月考核通报",
        departments=12,
        subdistricts=17,
        worst_cases=10,
        links=s.BulletinLinks(
            html="/bulletins/month/2026-11-01.html",
            csv="/bulletins/month/2026-11-01.csv",
            data_json="/bulletins/month/2026-11-01",
        ),
        published_at=datetime(2026, 12, 1, 0, 10, tzinfo=CST),
    ),
    y.CityUpdatedV1(
        version="2026-12-02.1",
        digest="sha256:" + "5d41402abc4b2a76b9719d911017c592" * 2,
        released_at=datetime(2026, 12, 2, 21, 0, tzinfo=CST),
        note="E01* to urban management from now on",
    ),
]

EXAMPLES: dict[str, Event] = {e.type_name: e for e in _all}
