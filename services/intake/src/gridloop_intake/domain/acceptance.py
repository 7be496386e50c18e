"""立案: whether a located, classified report becomes a case by itself, waits for an operator,
needs a supervisor's on-site confirmation (核实) first, or is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gridloop_city.models import Category, Cell, IntakeConfig, Source, User

Action = Literal["accept", "queue", "confirm", "reject"]

# Why a case waits in the operators' queue (待立案).
QUEUE_NO_CATEGORY = "category-needed"
QUEUE_LOW_CONFIDENCE = "low-confidence"
QUEUE_OPERATOR = "operator"
QUEUE_LEADER_REVIEW = "leader-review"
QUEUE_REVIEW_DECLINED = "review-declined"


@dataclass(frozen=True)
class Facts:
    """What the decision looks at; no I/O behind any of it."""

    channel: Literal["hotline", "video", "patrol", "web"]
    category: Category | None
    cell: Cell
    source: Source
    reporter: User | None = None  # the supervisor who reported (patrol)
    confidence: float | None = None  # video detections
    confirmed: bool | None = None  # None: no on-site confirmation yet


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    code: str  # a reject reason code (intake.yaml) or a queue reason


def on_entry_list(category_code: str, cell: Cell) -> bool:
    """准入清单: a cell with an entry list takes only the categories on it."""
    return cell.entry_list is None or category_code in cell.entry_list


def needs_confirmation(facts: Facts, config: IntakeConfig) -> bool:
    """Leader referrals and the like (category rule) and channels the city does not take on
    trust (intake.yaml `confirmation_channels`, e.g. the hotline) are checked on site first."""
    assert facts.category is not None
    return facts.category.requires_confirmation or facts.channel in config.confirmation_channels


def needs_review(category_code: str | None, config: IntakeConfig) -> bool:
    """The shift leader reviews operators' decisions on these categories (值班长审核)."""
    return category_code is not None and category_code in config.shift_leader_review


def auto_accepts(facts: Facts, config: IntakeConfig) -> str | None:
    """The auto-accept rule that applies, or None."""
    cat = facts.category
    assert cat is not None
    rules = config.auto_accept
    if needs_review(cat.code, config):
        return None  # a shift leader wants to see these: never automatic
    if facts.confirmed:
        return "已由网格监督员现场核实 / confirmed on site by the cell's supervisor"
    if (
        facts.channel == "patrol"
        and rules.trusted_supervisors
        and facts.reporter is not None
        and facts.reporter.trusted
        and cat.auto_accept_from_trusted
    ):
        return (
            f"可信监督员 {facts.reporter.id} 上报，类别明确"
            f" / trusted supervisor {facts.reporter.id} reported a clear {cat.kind} category"
        )
    if (
        facts.channel == "video"
        and cat.video_detectable
        and facts.confidence is not None
        and facts.confidence >= rules.video_min_confidence
    ):
        return (
            f"视频智能识别，置信度 {facts.confidence:.2f}"
            f" / video detection with confidence {facts.confidence:.2f}"
        )
    return None


def decide(facts: Facts, config: IntakeConfig) -> Decision:
    """The order matters: a report the cell may not take is refused before anybody is sent
    to look at it; a doubtful detection is looked at by a person before anything else; a
    case that needs confirming is confirmed before it is accepted."""
    cat = facts.category
    if cat is None:
        return Decision(
            "queue",
            "未给出类别，由受理员分类 / no category given: an operator classifies it",
            QUEUE_NO_CATEGORY,
        )
    if not on_entry_list(cat.code, facts.cell):
        return Decision(
            "reject",
            f"类别 {cat.code}（{cat.name}）不在网格 {facts.cell.code} 的立案清单内"
            f" / category {cat.code} ({cat.name}) is not on the entry list"
            f" of cell {facts.cell.code}",
            "not-in-entry-list",
        )
    if facts.confirmed is False:
        return Decision(
            "reject",
            "监督员现场核实未发现该问题 / the supervisor found no such problem on site",
            "not-confirmed",
        )
    if facts.channel == "video" and (
        facts.confidence is None or facts.confidence < facts.source.min_confidence
    ):
        return Decision(
            "queue",
            f"置信度 {facts.confidence} 低于 {facts.source.min_confidence}，由受理员查看截图"
            f" / confidence {facts.confidence} below {facts.source.min_confidence}: "
            "an operator reviews the snapshot",
            QUEUE_LOW_CONFIDENCE,
        )
    if facts.confirmed is None and needs_confirmation(facts, config):
        why = (
            f"类别 {cat.code} 立案前须现场核实 / category {cat.code} requires on-site confirmation"
            if cat.requires_confirmation
            else f"{facts.channel} 渠道的上报立案前须现场核实"
            f" / {facts.channel} reports are confirmed on site before acceptance"
        )
        return Decision("confirm", why, "confirmation")
    rule = auto_accepts(facts, config)
    if rule is not None:
        return Decision("accept", rule, "auto")
    if needs_review(cat.code, config):
        return Decision(
            "queue",
            f"类别 {cat.code} 由值班长审核 / category {cat.code} is decided with the shift leader",
            QUEUE_OPERATOR,
        )
    return Decision(
        "queue", "等待受理员决定是否立案 / waits for an operator's decision", QUEUE_OPERATOR
    )
