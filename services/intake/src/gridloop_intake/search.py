"""The text side of similar past cases (类案参考): descriptions segmented into search terms
(jieba, loaded once and lazily, in a worker thread), and the indexer that gives every
archived case its terms in the background — never on the path of a message."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import structlog
from gridloop_runtime.waits import wait_set

from . import repository as repo
from .domain import similar

log = structlog.get_logger(__name__)

Tokenizer = Literal["jieba", "bigram"]
TOKENIZERS: tuple[Tokenizer, ...] = ("jieba", "bigram")


class Segmenter:
    """Description → search terms. jieba's dictionary (about 1 s and 30 MB to load) is
    loaded the first time a text is segmented — by the indexer when there is something to
    index, or by the first similar-cases query — in a worker thread, so the event loop
    never waits for it; `bigram` needs no dictionary at all."""

    def __init__(self, tokenizer: Tokenizer = "bigram") -> None:
        self.tokenizer = tokenizer
        self._cut: Callable[[str], Iterable[str]] | None = None
        self._lock = threading.Lock()

    @property
    def others(self) -> tuple[Tokenizer, ...]:
        """The tokenizers whose terms this one does not match (cases to segment again)."""
        return tuple(t for t in TOKENIZERS if t != self.tokenizer)

    def current(self, terms_by: str | None) -> bool:
        """Whether terms cut by `terms_by` match this segmenter's queries."""
        return terms_by == self.tokenizer

    def _cutter(self) -> Callable[[str], Iterable[str]]:
        with self._lock:
            if self._cut is None:
                if self.tokenizer == "bigram":
                    self._cut = similar.bigrams
                else:
                    import jieba

                    jieba.setLogLevel(logging.WARNING)
                    tokenizer: Any = jieba.Tokenizer()
                    tokenizer.initialize()
                    # for-search mode also yields the shorter words inside long ones
                    # (东华门 → 东华, 东华门), so a partial mention still matches
                    self._cut = tokenizer.cut_for_search
                    log.info("jieba dictionary loaded")
            return self._cut

    def terms_now(self, texts: Sequence[str]) -> list[list[str]]:
        """Blocking: call from a worker thread (`terms`)."""
        cut = self._cutter()
        return [similar.terms(cut(t[: similar.MAX_TEXT])) for t in texts]

    async def terms(self, texts: Sequence[str]) -> list[list[str]]:
        return await asyncio.to_thread(self.terms_now, texts)


async def index_some(pool: Any, segmenter: Segmenter, batch: int) -> int:
    """Give up to `batch` archived cases without terms their terms; how many it did."""
    async with pool.acquire() as conn:
        rows = await repo.unindexed_archive(conn, batch, segmenter.tokenizer, segmenter.others)
    if not rows:
        return 0
    found = await segmenter.terms([r["description"] or "" for r in rows])
    async with pool.acquire() as conn:
        await repo.set_archive_terms(
            conn, [(r["case_id"], t) for r, t in zip(rows, found, strict=True)], segmenter.tokenizer
        )
    return len(rows)


def indexer(
    segmenter: Segmenter, *, batch: int, interval_s: float
) -> Callable[[Any, asyncio.Event], Any]:
    """A `ServiceDefinition.background` task: index what the archive gained, a batch at a
    time, then look again every `interval_s` (the backfill after the upgrade is the first
    rounds)."""

    async def similar_cases_indexer(rt: Any, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                done = await index_some(rt.pool, segmenter, batch)
            except Exception:  # the next round tries again; the query copes meanwhile
                log.exception("indexing similar cases failed")
                done = 0
            if done < batch:
                await wait_set(stop, interval_s)

    return similar_cases_indexer
