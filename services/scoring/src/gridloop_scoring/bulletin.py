"""通报: the monthly or quarterly bulletin of a period — the departments' and the sub-districts'
rankings with the measures behind them, and the worst cases — as data, a CSV and a printable
HTML page. Rendering only: the numbers come from `reports` (the same as `/rankings`)."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# The measures each table shows, with their labels, in order.
DEPARTMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("to_handle", "应处置"),
    ("handled", "处置"),
    ("handling_rate", "处置率"),
    ("on_time_rate", "按期处置率"),
    ("overdue_rate", "超期率"),
    ("rework_rate", "返工率"),
    ("handling_hours_avg", "平均处置用时(h)"),
    ("handling_hours_p90", "P90处置用时(h)"),
    ("falsified", "弄虚作假"),
    ("satisfaction_rate", "满意率"),
)
AREA_COLUMNS: tuple[tuple[str, str], ...] = (
    ("reported", "上报"),
    ("accepted", "立案"),
    ("closed", "结案"),
    ("closure_rate", "结案率"),
    ("on_time_closure_rate", "按期结案率"),
    ("discovery_rate", "主动发现率"),
    ("dispatch_accuracy", "派遣准确率"),
    ("failed_verifications", "核查不通过"),
    ("falsifications", "弄虚作假"),
    ("satisfaction_rate", "满意率"),
)
MARKS = {
    "overdue": "超期",
    "reworked": "返工",
    "falsified": "弄虚作假",
    "dissatisfied": "不满意",
    "escalations": "督办",
}
RATES = frozenset(
    {
        "handling_rate",
        "on_time_rate",
        "overdue_rate",
        "rework_rate",
        "satisfaction_rate",
        "closure_rate",
        "on_time_closure_rate",
        "discovery_rate",
        "dispatch_accuracy",
    }
)


@dataclass(frozen=True)
class Ranked:
    rank: int
    code: str
    name: str
    score: float
    grade: str
    measures: dict[str, float | None]


@dataclass(frozen=True)
class WorstCase:
    """A case that drew the most marks against its department in the period."""

    case_id: str
    dept: str
    dept_name: str
    marks: dict[str, int]  # measure → how often


@dataclass(frozen=True)
class Bulletin:
    district: str
    period_kind: str
    start: dt.datetime
    end: dt.datetime
    generated_at: dt.datetime
    departments: list[Ranked]
    subdistricts: list[Ranked]
    worst: list[WorstCase]

    @property
    def title(self) -> str:
        local = self.start
        if self.period_kind == "quarter":
            when = f"{local.year}年第{(local.month - 1) // 3 + 1}季度"
        elif self.period_kind == "month":
            when = f"{local.year}年{local.month}月"
        else:
            last = (self.end - dt.timedelta(days=1)).date()
            when = f"{local.date().isoformat()}至{last.isoformat()}"
        return f"{self.district}网格化城市管理{when}考核通报"


def shown(measure: str, value: float | None) -> str:
    """A number as the bulletin prints it: rates in per cent, counts whole, hours to 0.1."""
    if value is None:
        return "—"
    if measure in RATES:
        return f"{value * 100:.1f}%"
    if measure.endswith(("_avg", "_p90", "_median")):
        return f"{value:.1f}"
    return f"{value:g}"


def as_dict(b: Bulletin) -> dict[str, Any]:
    def ranked(rows: Sequence[Ranked]) -> list[dict[str, Any]]:
        return [
            {
                "rank": r.rank,
                "subject_code": r.code,
                "subject_name": r.name,
                "score": r.score,
                "grade": r.grade,
                "measures": r.measures,
            }
            for r in rows
        ]

    return {
        "title": b.title,
        "period": {"kind": b.period_kind, "start": b.start, "end": b.end},
        "generated_at": b.generated_at,
        "departments": ranked(b.departments),
        "subdistricts": ranked(b.subdistricts),
        "worst_cases": [
            {"case_id": w.case_id, "dept": w.dept, "dept_name": w.dept_name, "marks": w.marks}
            for w in b.worst
        ],
    }


def to_csv(b: Bulletin) -> str:
    """One table, a section column first: the departments, the sub-districts, the worst
    cases (a BOM is added by the response, for spreadsheets)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "rank", "code", "name", "score", "grade", "measure", "value"])
    for section, rows, columns in (
        ("department", b.departments, DEPARTMENT_COLUMNS),
        ("subdistrict", b.subdistricts, AREA_COLUMNS),
    ):
        for r in rows:
            for measure, _label in columns:
                value = r.measures.get(measure)
                w.writerow(
                    [section, r.rank, r.code, r.name, r.score, r.grade, measure, _plain(value)]
                )
    for n, case in enumerate(b.worst, start=1):
        for measure, count in case.marks.items():
            w.writerow(["worst_case", n, case.case_id, case.dept_name, "", "", measure, count])
    return buf.getvalue()


def _plain(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def to_html(b: Bulletin) -> str:
    """A printable page (A4 landscape), self-contained: no script, no external resource."""
    e = html.escape

    def table(rows: Sequence[Ranked], columns: Sequence[tuple[str, str]], kind: str) -> str:
        head = "".join(f"<th>{e(label)}</th>" for _, label in columns)
        body = []
        for r in rows:
            cells = "".join(f"<td>{e(shown(m, r.measures.get(m)))}</td>" for m, _ in columns)
            body.append(
                f'<tr data-{kind}="{e(r.code)}"><td>{r.rank}</td><td class="name">{e(r.name)}</td>'
                f"<td>{r.score:.1f}</td><td>{e(r.grade)}</td>{cells}</tr>"
            )
        if not body:
            body.append(f'<tr><td colspan="{len(columns) + 4}">本期无数据</td></tr>')
        return (
            f'<table class="{kind}"><thead><tr><th>名次</th><th>名称</th><th>得分</th>'
            f"<th>等级</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    worst = (
        "".join(
            f'<tr data-case="{e(w.case_id)}"><td>{n}</td><td>{e(w.case_id)}</td>'
            f"<td>{e(w.dept_name)}</td><td>"
            + "、".join(f"{e(MARKS.get(m, m))}{c}次" for m, c in w.marks.items())
            + "</td></tr>"
            for n, w in enumerate(b.worst, start=1)
        )
        or '<tr><td colspan="4">本期无</td></tr>'
    )
    generated = b.generated_at.strftime("%Y-%m-%d %H:%M")
    last = (b.end - dt.timedelta(days=1)).date().isoformat()
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(b.title)}</title>
<style>
@page {{ size: A4 landscape; margin: 14mm; }}
body {{ font-family: "Noto Sans CJK SC", "Noto Serif CJK SC", "SimSun", serif; color: #000;
  margin: 24px; font-size: 12pt; }}
h1 {{ text-align: center; font-size: 20pt; margin: 0 0 4px; }}
.meta {{ text-align: center; color: #333; margin-bottom: 18px; }}
h2 {{ font-size: 14pt; border-left: 5px solid #b91c1c; padding-left: 8px; margin: 22px 0 8px; }}
table {{ width: 100%; border-collapse: collapse; font-size: 10.5pt; page-break-inside: auto; }}
th, td {{ border: 1px solid #444; padding: 4px 6px; text-align: right; }}
th {{ background: #eee; text-align: center; }}
td.name, td:nth-child(2) {{ text-align: left; }}
tr {{ page-break-inside: avoid; }}
.foot {{ margin-top: 24px; color: #333; font-size: 10pt; }}
@media print {{ body {{ margin: 0; }} }}
</style></head>
<body>
<h1>{e(b.title)}</h1>
<div class="meta">考核期：{b.start.date().isoformat()} 至 {last} · 生成于 {generated}</div>
<h2>一、专业部门考核排名</h2>
{table(b.departments, DEPARTMENT_COLUMNS, "dept")}
<h2>二、街道（区域）考核排名</h2>
{table(b.subdistricts, AREA_COLUMNS, "area")}
<h2>三、问题较多的案件</h2>
<table class="worst"><thead><tr><th>序号</th><th>案卷号</th><th>责任单位</th><th>问题</th></tr>
</thead><tbody>{worst}</tbody></table>
<div class="foot">得分按考核规则（scoring.yaml）由案卷流转记录自动计算；比率的分母为零时记“—”，
该项按规则不扣分。</div>
</body></html>
"""
