"""The evidence store's client: any S3-compatible endpoint (SeaweedFS locally) through
aiobotocore. Objects are written once under keys made from their content and never changed.
A store that does not answer, or answers with a server error, is `StoreUnavailable`.

The client is made at the first request that needs it, not at start: aiobotocore and the S3
model it loads take about 22 MB, which a replica that never serves an upload or a photo does
not carry (the first upload waits a few tenths of a second for it)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

import botocore.exceptions
import structlog

from .settings import EvidenceSettings

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger(__name__)

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class StoreUnavailable(Exception):
    """The object store did not take or give the object (down, timing out, failing)."""


def _failed(exc: Exception) -> bool:
    """An error that says the store is unavailable (not that the request was wrong)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status >= 500 or status == 0
    import aiohttp  # loaded with the client (aiobotocore's transport)

    return isinstance(
        exc, (botocore.exceptions.BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)
    )


class ObjectStore:
    """One client for the process (made at its first use, closed at stop)."""

    def __init__(self, settings: EvidenceSettings) -> None:
        self.settings = settings
        self.bucket = settings.s3_bucket
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None
        self._making = asyncio.Lock()
        self._closed = False
        self._bucket_ready = False

    async def open(self) -> None:
        """Ready for requests; the client itself is made by the first one (`client`)."""
        self._closed = False

    async def _make(self) -> S3Client:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        s = self.settings
        config = AioConfig(
            signature_version="s3v4",
            s3={"addressing_style": s.s3_addressing_style},
            connect_timeout=min(s.s3_timeout_s, 3.0),
            read_timeout=s.s3_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        client: S3Client = await self._stack.enter_async_context(
            get_session().create_client(
                "s3",
                endpoint_url=s.s3_endpoint,
                region_name=s.s3_region,
                aws_access_key_id=s.s3_access_key,
                aws_secret_access_key=s.s3_secret_key,
                config=config,
            )
        )
        return client

    async def close(self) -> None:
        self._closed = True
        async with self._making:
            await self._stack.aclose()
            self._client = None

    async def client(self) -> S3Client:
        """The process's client, made at the first call."""
        if self._client is not None:
            return self._client
        async with self._making:
            if self._closed:
                raise StoreUnavailable("the object store client is closed")
            if self._client is None:
                try:
                    self._client = await self._make()
                except Exception as exc:  # its settings: the store is unusable until fixed
                    log.error("object store client not made", error=repr(exc))
                    raise StoreUnavailable(str(exc)) from exc
            return self._client

    async def _ensure_bucket(self) -> None:
        """Create the bucket on first use where it is missing (production buckets are made
        by the operator; creating one there is refused and that is fine)."""
        if self._bucket_ready:
            return
        try:
            await (await self.client()).head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as exc:
            if _failed(exc):
                raise
            with contextlib.suppress(botocore.exceptions.ClientError):
                await (await self.client()).create_bucket(Bucket=self.bucket)
        self._bucket_ready = True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await self._ensure_bucket()
            await (await self.client()).put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType=content_type
            )
        except Exception as exc:
            if _failed(exc):
                log.warning("object store unavailable", op="put", key=key, error=str(exc))
                raise StoreUnavailable(str(exc)) from exc
            raise

    async def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such object."""
        try:
            answer = await (await self.client()).get_object(Bucket=self.bucket, Key=key)
            async with answer["Body"] as body:
                data: bytes = await body.read()
                return data
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                return None
            if _failed(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise
        except Exception as exc:
            if _failed(exc):
                log.warning("object store unavailable", op="get", key=key, error=str(exc))
                raise StoreUnavailable(str(exc)) from exc
            raise

    async def presigned_get(
        self, key: str, ttl_s: int, *, content_type: str | None = None, filename: str = ""
    ) -> str:
        """A URL that reads the object without credentials for `ttl_s` seconds."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ResponseContentType"] = content_type
        if filename:
            params["ResponseContentDisposition"] = f'inline; filename="{filename}"'
        url: str = await (await self.client()).generate_presigned_url(
            "get_object", Params=params, ExpiresIn=ttl_s
        )
        return url
