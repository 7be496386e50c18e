"""类案参考, the pure part: search terms from segmented words and bigrams, the tsquery, and the
score that ranks closed cases by text, nearness and category."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gridloop_intake.domain import similar
from gridloop_intake.search import Segmenter

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
HERE = (116.4003, 39.9000)


def past(case_id: str, words: set[str], *, north_m: float = 0.0, category: str = "P0101",
         closed_h: float = 10.0) -> similar.PastCase:  # fmt: skip
    return similar.PastCase(
        case_id,
        category,
        HERE[0],
        HERE[1] + north_m / 111_320.0,
        frozenset(words),
        T0,
        T0 + timedelta(hours=closed_h),
    )


PROBE = similar.Probe("new", "P0101", HERE[0], HERE[1], frozenset({"井盖", "破损", "车辆"}))


def test_terms_drop_punctuation_single_characters_and_repeats_and_fold_width_and_case() -> None:
    words = ["井盖", "破损", "，", "有", "井盖", "ＬＥＤ", "led", "  ", "路灯 杆", "3号"]
    assert similar.terms(words) == ["井盖", "破损", "led", "3号"]


def test_terms_are_bounded() -> None:
    words = [f"词{i:03d}" for i in range(500)]
    assert len(similar.terms(words)) == similar.MAX_TERMS


def test_bigrams_of_each_run_of_letters_and_digits_latin_words_whole() -> None:
    assert similar.bigrams("井盖破损，LED灯不亮") == ["井盖", "盖破", "破损", "LED", "灯不", "不亮"]
    assert similar.bigrams("") == []
    assert similar.bigrams("灯") == ["灯"]  # a lone character is kept here; terms() drops it


def test_the_tsquery_quotes_every_term_so_none_is_an_operator() -> None:
    assert similar.tsquery([]) is None
    assert similar.tsquery(["井盖", "it's", "a\\b", "x|y"]) == "'井盖' | 'it''s' | 'a\\\\b' | 'x|y'"


def test_text_similarity_is_dice_of_the_term_sets() -> None:
    assert similar.text_similarity({"a", "b"}, {"a", "b"}) == 1.0
    assert similar.text_similarity({"a", "b"}, {"b", "c"}) == 0.5
    assert similar.text_similarity(set(), {"a"}) == 0.0


def test_shared_words_nearness_and_category_rank_together_ties_to_the_latest_closing() -> None:
    cases = [
        past("far-same-text", {"井盖", "破损", "车辆"}, north_m=400),
        past("near-other-text", {"路灯", "不亮"}, north_m=10),
        past("near-same-text", {"井盖", "破损", "车辆"}, north_m=10),
        past("twin-older", {"井盖", "破损"}, north_m=50, closed_h=1),
        past("twin-newer", {"井盖", "破损"}, north_m=50, closed_h=5),
    ]
    ranked = similar.rank(PROBE, cases, radius_m=500, limit=10)
    assert [m.case.case_id for m in ranked] == [
        "near-same-text", "twin-newer", "twin-older", "far-same-text", "near-other-text",
    ]  # fmt: skip
    best = ranked[0]
    assert best.text == 1.0 and best.same_category and 9 < best.distance_m < 11
    assert best.took_s == 10 * 3600


def test_beyond_the_radius_itself_or_sharing_nothing_is_no_match() -> None:
    assert similar.score(PROBE, past("far", {"井盖"}, north_m=600), radius_m=500) is None
    assert similar.score(PROBE, past("new", {"井盖"}), radius_m=500) is None
    other = past("other", {"路灯"}, category="E0101")
    assert similar.score(PROBE, other, radius_m=500) is None
    # another category that shares words is a match, below the same category's
    worded = similar.score(PROBE, past("worded", {"井盖", "破损"}, category="E0101"), radius_m=500)
    same = similar.score(PROBE, past("same", {"井盖", "破损"}), radius_m=500)
    assert worded is not None and same is not None and not worded.same_category
    assert worded.score < same.score


def test_the_weights_decide_what_counts() -> None:
    text_only = similar.Weights(text=1.0, distance=0.0, category=0.0)
    near_other = past("near", {"井盖"}, north_m=1)
    far_same = past("far", {"井盖", "破损", "车辆"}, north_m=450)
    ranked = similar.rank(PROBE, [near_other, far_same], radius_m=500, limit=1, weights=text_only)
    assert [m.case.case_id for m in ranked] == ["far"]
    near_only = similar.Weights(text=0.0, distance=1.0, category=0.0)
    ranked = similar.rank(PROBE, [near_other, far_same], radius_m=500, limit=1, weights=near_only)
    assert [m.case.case_id for m in ranked] == ["near"]


def test_jieba_segments_chinese_into_words_and_bigrams_need_no_dictionary() -> None:
    jieba_terms = Segmenter("jieba").terms_now(["东华门大街人行道上有暴露垃圾"])[0]
    assert {"东华门", "大街", "人行道", "暴露", "垃圾"} <= set(jieba_terms)
    assert "有" not in jieba_terms and "上" not in jieba_terms
    bigram_terms = Segmenter("bigram").terms_now(["井盖破损"])[0]
    assert bigram_terms == ["井盖", "盖破", "破损"]
