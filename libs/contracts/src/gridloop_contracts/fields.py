"""What each field of the contracts means, for the exported JSON Schemas (`description`) and
the integrators' contract page: one line per field name, so the same field means the same
thing on every message; `OVERRIDES` where a name means something else on one message or in
one nested object. A field's own `Field(description=...)` in its model wins over both.
`tests` check that every exported property has a description."""

from __future__ import annotations

FIELDS: dict[str, str] = {
    # -- every case event ------------------------------------------------------------------
    "case_id": "The case number, `<district>-<YYYYMMDD>-<NNNNNN>` (e.g. "
    "110101-20261123-000123); also the CloudEvent's `subject`.",
    "occurred_at": "When it happened (RFC 3339 with offset); decides the scoring period.",
    "actor": "Who did it: a person (user id, role, department) or a service; absent when "
    "not known.",
    "category_code": "The category (CJ/T 214 part or event code in the city's "
    "`categories.yaml`), e.g. `E0104`.",
    "category_name": "The category's name.",
    "cell_code": "The grid cell (CJ/T 213 code) the case lies in.",
    "community_code": "The community (社区) of the cell.",
    "subdistrict_code": "The sub-district (街道) of the cell.",
    "dept": "A department's code (`departments.yaml`): the one whose task this is.",
    "task_id": "The department's task on the case (a co-handler's: `<task id>~<dept>`); a "
    "case may have several tasks over time.",
    "deadline": "When the task must be handled by (处置期限), counted on the working calendar.",
    # -- reports ---------------------------------------------------------------------------
    "external_id": "The sender's own id of the report: with the source it makes the report "
    "idempotent (the same id again is the same report).",
    "report_id": "Intake's id of this report (one case may gather several reports).",
    "channel": "How the report came in: `hotline`, `video`, `patrol` or `web`.",
    "source": "The integrator that sent the report (its code in `sources.yaml`, e.g. `12345`).",
    "description": "What the reporter describes (free text; blank is refused).",
    "location": "Where, as a WGS-84 point.",
    "address": "A street address, matched against the city's gazetteer.",
    "part_code": "A part's code (部件, CJ/T 214): its place, cell and owner come from the "
    "city's part registry.",
    "urgency": "`normal` or `urgent` (urgent: the category's stricter time limit).",
    "reporter": "The reporter as services see them: masked (`张*`, `138****5678`) with a "
    "reference into intake, which alone keeps the rest.",
    "reporter_user_id": "A supervisor's user id (`users.yaml`) when they report from the "
    "patrol app: trusted supervisors' reports may be accepted at once.",
    "attachments": "Photos, recordings or documents, by URL.",
    "reporter_email": "The reporter's mail address (Open311 `email`): mail on the case's "
    "changes (告知).",
    "reporter_lang": "The language of that mail: `zh` or `en`.",
    "by_name": "The name of the staff member who sent it, as their token gave it.",
    "command": "The command's own data, as its contract (`gridloop.handling.<action>.v1`) has it.",
    "attributes": "The answers to the category's questions (Open311 `attribute[code]`), by "
    "the question's code.",
    "files": "Photos and voice notes uploaded to gridloop's evidence store (`POST "
    "/attachments`), by reference: id, SHA-256, type, size — never the bytes. "
    "`GET /attachments/{attachment_id}` on intake gives them to whoever may read the case.",
    "reported_at": "When the report was made, by the sender's clock (at most 5 minutes ahead "
    "of gridloop's is taken).",
    "confidence": "The video analytics' confidence in the detection, 0 to 1.",
    "camera_id": "The camera (the city's `cameras.csv`); its registered point places the "
    "detection unless `location` is given.",
    "detected_at": "When the camera saw it, by the sender's clock (at most 5 minutes ahead).",
    "snapshot_url": "The frame the detection was made on, by URL.",
    "bbox": "Where in the frame: four numbers, the detection's bounding box.",
    "distance_m": "How far the merged report lies from the case, in metres.",
    # -- acceptance ------------------------------------------------------------------------
    "reason": "Why, in words.",
    "reason_code": "Why, as a code of the city's `reject_reasons` (`intake.yaml`), e.g. "
    "`not-in-entry-list`.",
    "due": "When the supervisor's task is due.",
    "confirmed": "`true`: the problem is there; `false`: not found on site (the report is "
    "rejected).",
    "supervisor_id": "The supervisor (监督员) of the cell, by user id (`users.yaml`).",
    "notes": "The supervisor's notes.",
    "photos": "The supervisor's photos, by URL.",
    "position": "Where the supervisor stood (WGS-84), from the handheld.",
    "on_time": "Whether it was done by its deadline.",
    "part_owner_dept": "The department that owns the part, when the case is about one.",
    "auto": "Accepted by a rule (a trusted supervisor's report, a sure video detection) "
    "rather than by an operator.",
    "standard": "The category's acceptance standard (立案条件) applied.",
    "approved_by": "The shift leader (值班长) who approved it, when one had to.",
    # -- dispatch and handling -------------------------------------------------------------
    "co_handlers": "The co-handling units (协办单位), by department code.",
    "lead": "The lead unit (牵头单位) when several departments share the case.",
    "sign_in_due": "When the department must sign for the task by (签收期限).",
    "proposed_deadline": "The deadline the department asks for: later than the current one "
    "and than now.",
    "request_id": "The extension request's id, `<dept>:<command_id>`.",
    "granted": "`true`: the extension is granted; `false`: refused.",
    "new_deadline": "The deadline from now on.",
    "note": "A progress note, in words.",
    "contribution": "`true` when a co-handling unit reports its part (协办) rather than a note.",
    "evidence": "Evidence of the work (photos, documents), by URL.",
    "result": "What was done, in words.",
    "completed_at": "When the work was completed: not in the future, not before the dispatch.",
    "contributions": "The co-handling units' parts in this round.",
    "stage": "Which deadline: `sign_in`, `handling`, `verification` or `confirmation`.",
    "level": "How far up the supervision ladder: 1 the dispatcher, then the sub-district "
    "leader, then the efficiency office.",
    "to_role": "The role the case went up to.",
    "count": "Which rework this is (1 the first).",
    "case": "The task: everything the department needs to act without calling back.",
    "sent_at": "When dispatch sent it.",
    "what_to_do": "What the department is asked to do, in words, with the deadline.",
    "closing_standard": "The category's closing standard (结案条件): what counts as done.",
    "role": "The department's part: `sole` (it alone), `lead` (牵头) or `co-handler` (协办).",
    # -- department commands and answers ---------------------------------------------------
    "command_id": "The department's own id of the command: the same id with the same content "
    "gets the first answer again and changes nothing (per department).",
    "by": "Who in the department sent it (a person's or a system's name).",
    "accepted": "`true`: the command was carried out; `false`: refused, see `errors`.",
    "action": "The command answered: `signed`, `returned`, `extension_requested`, "
    "`progress` or `handled`.",
    "errors": "What was wrong, each naming the field (dotted path, e.g. `data.completed_at`), "
    "the reason and a code.",
    "status": "The case's status as the outside world sees it.",
    "status_notes": "The status in words (Chinese / English), e.g. where the case went and "
    "its deadline.",
    "updated_at": "When the status changed.",
    "message_id": "The refused message's CloudEvents id (`ce-id`), when it had one.",
    "received_at": "When intake received the message.",
    # -- verification and closing ----------------------------------------------------------
    "backup_used": "`true` when the cell's backup supervisor (B 角) got the task because the "
    "primary was away.",
    "purpose": "`verification` of a department's result, or `confirmation` of a report "
    "before acceptance.",
    "verification_task_id": "The supervisor's task in verify (`GET /tasks/{id}`).",
    "passed": "`true`: the result passes (the case closes); `false`: back to the department "
    "for rework.",
    "failures": "How many verifications of the case failed so far.",
    "falsified": "`true` when the supervisor found the reported result falsified (弄虚作假: "
    "nothing done, staged photos).",
    "closed_by": "Who closed it: a user id, or the service.",
    "reworks": "How many reworks the case went through.",
    "rating": "The reporter's satisfaction: `satisfied`, `basically_satisfied` or `dissatisfied`.",
    "comment": "The reporter's own words.",
    "rated_at": "When the reporter gave the rating.",
    "via": "How the rating came: the reporter's own channel (a mail link, Open311, an "
    "integrator) or the operators' call-back (`callback`).",
    # -- call-backs (回访) -------------------------------------------------------------------
    "reached": "Whether the reporter was reached by the call-back.",
    "tries": "How many calls the call-back took.",
    "to_user_ids": "The people this escalation names, by user id, where the city's data names "
    "them: the grid heads (网格长) of the case's cell for a `grid-head` rung; empty when it goes "
    "to a role (or the cell has no grid head).",
    # -- withdrawals (超期撤回) ----------------------------------------------------------------
    "overdue_at": "The time of the `case.overdue` withdrawn (the deadline it judged passed).",
    "answered_at": "When handling took the department's signature or result, by which it was "
    "on time.",
    "escalation_levels": "The 督办 levels the ladder reached after the withdrawn overdue, "
    "withdrawn with it (each `case.escalated` of the task at or after `overdue_at`).",
    # -- scores ----------------------------------------------------------------------------
    "period_kind": "The period ranked: `day`, `week`, `month`, `quarter` or `year`.",
    "period_start": "The period's first instant.",
    "period_end": "The instant after the period's last.",
    "subject_kind": "What is ranked: `department`, `area` or `person`.",
    "subject_level": "For areas, the level ranked: `cell`, `community`, `subdistrict` or "
    "`district`.",
    "rule_set": "The scoring rule set (`scoring.yaml`), e.g. `jinhua`.",
    "rows": "One row per ranked subject, best first.",
    "published_at": "When scoring published it.",
}

_BULLETIN = "gridloop.score.bulletin_published.v1"

# `<message type or nested object>.<field>` where a name means something else there.
OVERRIDES: dict[str, str] = {
    "gridloop.handling.taken.v1.action": "The command taken: `signed`, `returned`, "
    "`extension_requested`, `progress` or `handled`.",
    # nested objects
    "Actor.id": "The person's user id (`users.yaml`), or the service's name.",
    "Actor.role": "The person's role (operator, dispatcher, department, supervisor, …), or "
    "`system`.",
    "Actor.dept": "The person's department, for department staff.",
    "Actor.name": "The person's name.",
    "Attachment.url": "Where the file is (http or https); gridloop keeps the reference only.",
    "Attachment.kind": "What it is: `photo`, `audio`, `video` or `document`.",
    "AttachmentRef.attachment_id": "The attachment's id, as `POST /attachments` answered it.",
    "AttachmentRef.kind": "What it is: `photo` or `audio` (a voice note).",
    "AttachmentRef.size": "Its size in bytes.",
    "Location.lat": "Latitude, WGS-84 degrees.",
    "Location.lon": "Longitude, WGS-84 degrees.",
    "Reporter.name": "The reporter's name (kept inside intake).",
    "Reporter.phone": "The reporter's phone number, for the call-back (kept inside intake).",
    "MaskedReporter.ref": "A reference to the reporter in intake (operators may look it up).",
    "MaskedReporter.name": "The name, masked: `张*`.",
    "MaskedReporter.phone": "The phone number, masked: `138****5678`.",
    "FieldError.field": "The field, as a dotted path: `data.location`, `source`, `type`, …",
    "FieldError.reason": "What is wrong with it, in words.",
    "FieldError.code": "What is wrong with it, as a code, where there is one (e.g. "
    "`already-handled`, `invalid-replyto`).",
    "CaseSummary.description": "What was reported.",
    "CaseSummary.attachments": "The report's photos and recordings, by URL.",
    "CaseSummary.location": "Where the problem is (WGS-84).",
    "Contribution.dept": "The co-handling unit.",
    "Contribution.note": "What it did, in words.",
    "ScoreRow.subject_code": "The ranked department, area or person, by code or user id.",
    "ScoreRow.subject_name": "Its name.",
    "ScoreRow.score": "The composite score under the rule set.",
    "ScoreRow.grade": "The grade of the score (优/良/中/较差/差), where the rule set has grades.",
    "ScoreRow.rank": "The place in the ranking (1 the best).",
    "ScoreRow.measures": "The measures behind the score, by name (e.g. `on_time_rate`).",
    # the bulletin's announcement (通报发布)
    **{
        f"{_BULLETIN}.{name}": text
        for name, text in {
            "period_kind": "The closed period the bulletin covers: `month` or `quarter`.",
            "title": "The bulletin's title, e.g. 东城区网格化城市管理2026年11月考核通报.",
            "departments": "How many departments its ranking holds.",
            "subdistricts": "How many sub-districts its ranking holds.",
            "worst_cases": "How many cases its list of the worst holds.",
            "links": "Where the stored bulletin is downloaded (scoring's API, for evaluators "
            "and admins).",
            "published_at": "When scoring generated and stored it (once per period).",
        }.items()
    },
    "BulletinLinks.html": "The printable page (A4 landscape; print to PDF from the browser).",
    "BulletinLinks.csv": "The same as CSV (UTF-8 with BOM, for spreadsheets).",
    "BulletinLinks.data_json": "The same as JSON data.",
    # messages
    "gridloop.report.v1.location": "Where the problem is (WGS-84). One of `location`, "
    "`address` or `part_code` is required.",
    "gridloop.report.v1.reporter": "The person who called (kept inside intake; every event "
    "leaving intake carries it masked).",
    "gridloop.detection.v1.location": "Where the camera looks (WGS-84), when not the camera "
    "registry's point.",
    "gridloop.detection.v1.category_code": "What was detected, as a category the city marks "
    "`video_detectable`.",
    "gridloop.case.rated.v2.level": "The reporter's satisfaction on seed 002's four levels: "
    "`A` 非常满意 (very satisfied), `B` 满意, `C` 一般 (fair), `D` 不满意.",
    "gridloop.rating.v2.level": "The reporter's satisfaction on seed 002's four levels: "
    "`A` 非常满意 (very satisfied), `B` 满意, `C` 一般 (fair), `D` 不满意.",
    "gridloop.case.called_back.v1.closed_at": "The closing the call-back asked about.",
    "gridloop.city.updated.v1.version": "The released version of the city's data: its "
    "folder under the services' `CITY_VERSIONS_DIR`.",
    "gridloop.city.updated.v1.digest": "`sha256:` of the version's files, checked before it "
    "is loaded.",
    "gridloop.city.updated.v1.released_at": "When the version was released.",
    "gridloop.case.queued.v1.suggestions": "The units routing would consider for the case, "
    "for the dispatcher placing it by hand.",
    "gridloop.case.queued.v1.returned_by": "The units that have already returned the case.",
    "gridloop.case.queue_chased.v1.queued_at": "When the case went to the manual dispatch queue.",
    "gridloop.case.unqueued.v1.recalled_at": "When the recall the department's result "
    "overtook was made.",
    "gridloop.dispatch.recall_overtaken.v1.recalled_at": "When the recall the department's "
    "result overtook was made (the `sent_at` of the `recalled` message it voids).",
    "gridloop.dispatch.recall_overtaken.v1.completed_at": "When the department says it "
    "completed the work: its `handled` result, which stands.",
    "gridloop.case.reminded.v1.manual": "True for a 催办 made by hand (a dispatcher, the shift "
    "leader or a grid head); false for the chase timer's.",
    "gridloop.case.verified.v2.falsification": "弄虚作假: what shows the department's result is "
    "false (notes, photos, who marked it); present when `falsified`.",
    "gridloop.case.accepted.v2.report": "上报: the case.reported (v1) of a report accepted as "
    "it came in, not published on its own; read it as that event, which happened first. "
    "Absent when the report was published as case.reported before (an operator accepted it).",
    "gridloop.case.closed.v2.verdict": "核查: the case.verified (v2) of the passing verdict "
    "that closed the case, not published on its own; read it as that event, which happened "
    "first. Absent when the verdict was published before (closed after the shift leader's "
    "approval, or by another path).",
    "CaseVerifiedV2.falsification": "弄虚作假: what shows the department's result is false "
    "(notes, photos, who marked it); present when `falsified`.",
    "Falsification.marked_by": "The user id of the supervisor or shift leader who marked it.",
    "gridloop.rating.v1.external_id": "The `external_id` of the report whose case is rated "
    "(or give `case_id`).",
    "gridloop.rating.v1.case_id": "The case rated (or give `external_id`).",
    "gridloop.case.status.v1.external_id": "Your `external_id` of the report this is about.",
    "gridloop.report.rejected.v1.external_id": "Your `external_id` of the refused report, "
    "when it could be read.",
    "gridloop.report.rejected.v1.source": "The source the refused message came from (its "
    "subject's `<source>`).",
    "gridloop.report.rejected.v1.errors": "What is wrong, each naming the field (dotted path, "
    "e.g. `data.location`) and the reason.",
    "gridloop.case.rated.v1.source": "The source the rating came from (the hotline's "
    "call-back), when it came over the bus.",
    "gridloop.case.rated.v1.dept": "The department whose result was rated.",
    "gridloop.case.supervised.v1.dept": "The department under listed supervision, when one.",
    "gridloop.case.dispatched.v1.kind": "`initial`, `redispatch` (after a return), `rework`, "
    "`split` or `manual` (a dispatcher's choice).",
    "gridloop.case.reminded.v1.level": "The reminder's number (1 the first).",
    "gridloop.dispatch.answer.v1.command_id": "The `command_id` of the command answered.",
    "gridloop.dispatch.answer.v1.dept": "The department whose command this answers.",
    "gridloop.dispatch.answer.v1.status": "The case's status after the command, when known.",
    "gridloop.dispatch.answer.v1.case_id": "The case the command was about, when it could be read.",
}
for _type in (
    "gridloop.dispatch.assigned.v1",
    "gridloop.dispatch.reminder.v1",
    "gridloop.dispatch.overdue.v1",
    "gridloop.dispatch.escalated.v1",
    "gridloop.dispatch.rework.v1",
    "gridloop.dispatch.recalled.v1",
    "gridloop.dispatch.recall_overtaken.v1",
):
    OVERRIDES[f"{_type}.dept"] = "The department this feed message is for."
    OVERRIDES[f"{_type}.note"] = "A note from the command centre, when there is one."
for _type in (
    "gridloop.handling.signed.v1",
    "gridloop.handling.returned.v1",
    "gridloop.handling.extension_requested.v1",
    "gridloop.handling.progress.v1",
    "gridloop.handling.handled.v1",
):
    OVERRIDES[f"{_type}.dept"] = "The sending department: must be the subject's `<dept>`."
    OVERRIDES[f"{_type}.case_id"] = "The case, as on the task in the department's feed."
    OVERRIDES[f"{_type}.task_id"] = "The task, as in the department's feed (optional: the "
    "department's open task on the case)."


def describe(owner: str, name: str) -> str | None:
    """The description of field `name` of `owner` (a message type or a nested object's
    name), or None when there is none."""
    return OVERRIDES.get(f"{owner}.{name}") or FIELDS.get(name)
