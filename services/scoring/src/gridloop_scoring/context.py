"""What every scoring handler works with: the city (the released version in force, swapped on
`city.updated`), its time zone, the fold's view of the city and the rule sets."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, cast
from zoneinfo import ZoneInfo

from gridloop_city import City
from gridloop_city.models import RuleSet, ScoringConfig
from gridloop_city.versions import starting_city

from .domain.fold import FoldContext
from .domain.measures import AREA_LEVELS, AreaLevel, SubjectKind
from .domain.periods import PERIOD_KINDS, PeriodKind
from .domain.rules import check_rule_set
from .settings import ScoringSettings

CHANNEL_NAMES = {
    "patrol": "监督员巡查",
    "hotline": "12345热线",
    "video": "视频智能发现",
    "web": "网上受理",
}


def check_scoring(city: City) -> City:
    """The city, if every rule set of its scoring.yaml reads measures scoring has; else a
    ValueError naming the rule (a live version is then refused)."""
    for rs in city.scoring.rule_sets:
        problems = check_rule_set(rs)
        if problems:
            raise ValueError(f"scoring.yaml rule set {rs.code!r}: {'; '.join(problems)}")
    return city


_DIGESTS: dict[int, tuple[ScoringConfig, str]] = {}  # id → (the rules, kept alive; digest)


def rules_digest(config: ScoringConfig) -> str:
    """A stable fingerprint of the rules (rule_versions.digest), computed once per object."""
    known = _DIGESTS.get(id(config))
    if known is not None and known[0] is config:
        return known[1]
    text = json.dumps(rules_json(config), sort_keys=True, ensure_ascii=False)
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    if len(_DIGESTS) > 64:
        _DIGESTS.clear()
    _DIGESTS[id(config)] = (config, digest)
    return digest


def rules_json(config: ScoringConfig) -> dict[str, Any]:
    """The rules as recorded (rule_versions.rules) and fingerprinted. A rule set's English
    name is left out where it has none, so that rules written before rule sets had one keep
    their digest (no new version in force at an upgrade that changed nothing)."""
    out: dict[str, Any] = config.model_dump(mode="json")
    for rule_set in out["rule_sets"]:
        if not rule_set.get("name_en"):
            rule_set.pop("name_en", None)
    return out


def fold_context(city: City) -> FoldContext:
    """The city as the fold needs it: territory, roster (AB 角) and grid heads per cell."""
    cells = {code: (c.community_code, c.subdistrict_code) for code, c in city.cells.items()}
    roster = {code: (a.primary, a.backup) for code, a in city.supervisors.items()}
    heads: dict[str, list[str]] = {}
    grid_heads = [u for u in city.users.values() if "grid-head" in u.roles]
    for code, (community, subdistrict) in cells.items():
        for u in grid_heads:
            if any(t in ("*", code, community, subdistrict) for t in u.territory):
                heads.setdefault(code, []).append(u.id)
    return FoldContext(
        cells,
        roster,
        {c: tuple(h) for c, h in heads.items()},
        on_site_radius_m=city.scoring.on_site_radius_m,
    )


def _split(text: str, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    for x in items:
        if x not in allowed:
            raise ValueError(f"{what}: {x!r} is not one of {', '.join(allowed)}")
    return items


@dataclass(frozen=True)
class Scoring:
    """The per-process state of the service (Runtime.state)."""

    city: City
    tz: ZoneInfo
    fold: FoldContext
    settings: ScoringSettings
    publish_periods: tuple[PeriodKind, ...]
    bulletin_periods: tuple[PeriodKind, ...]
    area_levels: tuple[AreaLevel, ...]
    version: str | None = None  # the released city version (None: CITY_DATA_DIR's)
    # the rules a ranking uses: the city's own, or those in force at a closed period's end
    rules: ScoringConfig | None = field(default=None, compare=False)

    @classmethod
    def load(cls, settings: ScoringSettings) -> Scoring:
        city, version = starting_city(
            settings.city_data_dir, settings.city_versions_dir, parts=False
        )
        check_scoring(city)
        periods = _split(settings.publish_periods, PERIOD_KINDS, "SCORING_PUBLISH_PERIODS")
        bulletins = _split(settings.bulletin_periods, PERIOD_KINDS, "SCORING_BULLETIN_PERIODS")
        levels = _split(settings.publish_area_levels, AREA_LEVELS, "SCORING_PUBLISH_AREA_LEVELS")
        return cls(
            city=city,
            tz=ZoneInfo(city.district.timezone),
            fold=fold_context(city),
            settings=settings,
            publish_periods=cast(tuple[PeriodKind, ...], periods),
            bulletin_periods=cast(tuple[PeriodKind, ...], bulletins),
            area_levels=cast(tuple[AreaLevel, ...], levels),
            version=version,
        )

    def with_city(self, city: City, version: str | None) -> Scoring:
        """This state on another version of the city (validated by `check_scoring`)."""
        return replace(
            self,
            city=city,
            tz=ZoneInfo(city.district.timezone),
            fold=fold_context(city),
            version=version,
            rules=None,
        )

    def with_rules(self, rules: ScoringConfig) -> Scoring:
        """This state ranking with `rules` (those in force for a closed period)."""
        return self if rules is self.config else replace(self, rules=rules)

    @property
    def config(self) -> ScoringConfig:
        return self.rules if self.rules is not None else self.city.scoring

    @property
    def district(self) -> str:
        return self.city.district.code

    def rule_set(self, code: str) -> RuleSet | None:
        return self.config.rule_set(code)

    def subject_name(self, kind: SubjectKind, code: str, level: AreaLevel | None) -> str | None:
        """The display name of a subject from the city data."""
        c = self.city
        if kind == "department":
            d = c.departments.get(code)
            return d.name if d else None
        if kind == "person":
            u = c.users.get(code)
            return u.name if u else None
        if kind == "category":
            cat = c.category(code)
            return cat.name if cat else None
        if kind == "channel":
            return CHANNEL_NAMES.get(code)
        if level in (None, "cell"):
            cell = c.cells.get(code)
            return cell.name if cell else None
        if level == "community":
            comm = c.communities.get(code)
            return comm.name if comm else None
        if level == "subdistrict":
            sub = c.subdistricts.get(code)
            return sub.name if sub else None
        return c.district.name
