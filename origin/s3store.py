"""The S3 blob store (aiobotocore): presigned PUTs straight to the bucket, checks by HEAD/GET."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from imgcdn.config import StorageConfig
from origin.blobstore import PresignedUpload, check_key
from origin.errors import StorageFailed

MISSING = {"404", "NoSuchKey", "NotFound"}
FAILURES = (BotoCoreError, aiohttp.ClientError, OSError, TimeoutError)


class S3BlobStore:
    """Objects at `{prefix}{key}` in one bucket."""

    kind = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def object_key(self, key: str) -> str:
        return f"{self.prefix}{check_key(key)}"

    async def presign_put(
        self, key: str, content_type: str, length: int, expires_in: int
    ) -> PresignedUpload:
        # botocore signs content-type and content-length when they are params, so S3 itself
        # refuses another type or size (moto does not: registration re-checks everything).
        params = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ContentType": content_type,
            "ContentLength": length,
        }
        url = await self.call(
            self.client.generate_presigned_url, "put_object", Params=params, ExpiresIn=expires_in
        )
        return PresignedUpload(
            url=url,
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(length)},
            expires_at=time.time() + expires_in,
        )

    async def stat(self, key: str) -> int | None:
        head = await self.call(
            self.client.head_object, Bucket=self.bucket, Key=self.object_key(key)
        )
        return None if head is None else int(head["ContentLength"])

    async def get(self, key: str) -> bytes | None:
        got = await self.call(self.client.get_object, Bucket=self.bucket, Key=self.object_key(key))
        if got is None:
            return None
        try:
            async with got["Body"] as stream:
                data: bytes = await stream.read()
        except FAILURES as err:
            raise StorageFailed("storage: S3 read failed") from err
        return data

    def sealed_key(self, key: str) -> str:
        # A presigned PUT can be replayed until it expires, even after registration, so the
        # registered bytes are a server-side copy that no URL can write.
        return f"{key}/v1"

    async def seal(self, key: str) -> bool:
        copied = await self.call(
            self.client.copy_object,
            Bucket=self.bucket,
            Key=self.object_key(self.sealed_key(key)),
            CopySource={"Bucket": self.bucket, "Key": self.object_key(key)},
            MetadataDirective="COPY",
        )
        return copied is not None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self.call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.object_key(key),
            Body=data,
            ContentType=content_type,
        )

    async def delete(self, key: str) -> None:
        await self.call(self.client.delete_object, Bucket=self.bucket, Key=self.object_key(key))

    async def check(self) -> None:
        if await self.call(self.client.head_bucket, Bucket=self.bucket) is None:
            raise StorageFailed(f"storage: bucket {self.bucket!r} does not exist")

    async def call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one S3 call: a missing object is None, any other failure a 502."""
        try:
            return await method(*args, **kwargs)
        except ClientError as err:
            if str(err.response.get("Error", {}).get("Code")) in MISSING:
                return None
            raise StorageFailed("storage: S3 refused the request") from err
        except FAILURES as err:
            raise StorageFailed("storage: S3 is not answering") from err


@asynccontextmanager
async def connect_s3(storage: StorageConfig) -> AsyncIterator[S3BlobStore]:
    """One aiobotocore client for the app's lifetime."""
    config = AioConfig(
        signature_version="s3v4",
        connect_timeout=5,
        read_timeout=15,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if storage.endpoint_url else None,
    )
    session = get_session()
    async with session.create_client(
        "s3",
        endpoint_url=storage.endpoint_url,
        region_name=storage.region or "us-east-1",
        config=config,
    ) as client:
        yield S3BlobStore(client, str(storage.bucket), storage.prefix)
