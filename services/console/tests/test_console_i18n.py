"""The console's words in both languages (js/i18n.js): every text the screens name has a
Chinese and an English entry, and no screen names one the dictionary lacks (it would show
its key)."""

from __future__ import annotations

import re
from pathlib import Path

import gridloop_console

STATIC = Path(gridloop_console.__file__).parent / "static"
ENTRY = re.compile(r'^\s+"([^"]+)":', re.MULTILINE)
# t("key"), tf("key", …), t(cond ? "key" : "other") in the scripts; data-i18n="key" /
# data-i18n-label="key" in pages
NAMED = (
    re.compile(r'\btf?\("([\w.\-]+)"'),
    re.compile(r'\btf?\([^()"]*\?\s*"([\w.\-]+)"\s*:\s*"([\w.\-]+)"'),
    re.compile(r'data-i18n(?:-label)?="([\w.\-]+)"'),
)


def dictionary(name: str) -> list[str]:
    source = (STATIC / "js" / "i18n.js").read_text(encoding="utf-8")
    body = source.split(f"const {name} = {{", 1)[1].split("\n};", 1)[0]
    return ENTRY.findall(body)


def test_every_text_is_in_both_languages_once() -> None:
    zh, en = dictionary("zh"), dictionary("en")
    assert len(zh) > 100 and len(en) > 100
    assert sorted(set(zh) - set(en)) == [], "Chinese only"
    assert sorted(set(en) - set(zh)) == [], "English only"
    assert len(set(zh)) == len(zh) and len(set(en)) == len(en), "an entry twice"


def test_the_screens_name_no_text_the_dictionary_lacks() -> None:
    known = set(dictionary("zh"))
    named: dict[str, set[str]] = {}
    for path in [*STATIC.glob("js/*.js"), *STATIC.glob("*.html")]:
        text = path.read_text(encoding="utf-8")
        for pattern in NAMED:
            for found in pattern.findall(text):
                for key in (found,) if isinstance(found, str) else found:
                    named.setdefault(key, set()).add(path.name)
    # the wall screen's own words are among them, those chosen by a condition too
    assert {"wall.today", "wall.step_count", "wall.step_count_one", "wall.signin"} <= set(named)
    assert {"wall.live", "wall.offline", "wall.minutes"} <= set(named)
    missing = {key: sorted(files) for key, files in named.items() if key not in known}
    assert missing == {}
