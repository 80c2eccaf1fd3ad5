"""The production backend: one bucket (and optional key prefix) of an S3 server, through the minio SDK.

Atomic puts. S3 makes an object visible only when its upload completes, but user metadata must be
sent when the upload starts, before the sha256 is known. So:

* with `expected_sha256` the digest is known up front: the bytes go straight to the final key with
  `x-amz-meta-sha256`, and the reader fails the upload at the end of the stream (before the last
  part is sent, so S3 aborts it) if the bytes hash differently;
* otherwise the bytes go to a temporary key `<prefix>.loopml/tmp/<random>`, then a server-side copy
  creates the final key with the computed digest in its metadata, and the temporary key is deleted
  (also when anything fails). A process killed in between can leave a temporary key behind; it is
  never listed, and a bucket lifecycle rule on `.loopml/tmp/` can expire it.

Parts are uploaded one at a time (memory stays at about two parts; the SDK's parallel uploader leaks
threads when the source fails). Calls that can be repeated safely are retried with exponential
backoff while the server does not answer; an upload is not (its source is a one-shot stream).
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import urllib3
from minio import Minio
from minio.commonconfig import REPLACE, CopySource
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError

from loopml.runtime.errors import Aborted, InvalidArgument, LoopmlError, NotFound, Unavailable

from ._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    RESERVED_SEGMENT,
    ObjectInfo,
    ObjectStore,
    PutData,
    is_reserved,
    normalize_sha256,
    validate_key,
    validate_prefix,
)
from ._streams import HashingReader, digest_mismatch, iter_chunks, verified

T = TypeVar("T")

_SHA256_META = "x-amz-meta-sha256"
_MISSING = {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}
_REFUSED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
_TRANSIENT = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "XMinioServerNotInitialized",
}


class S3ObjectStore(ObjectStore):
    """Objects in `bucket` under `prefix` on the S3 server at `endpoint` (`host:port`).

    No I/O happens here: the bucket is created (if missing) on the first write.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        *,
        prefix: str = "",
        access_key: str | None = None,
        secret_key: str | None = None,
        secure: bool = False,
        region: str | None = None,
        part_size: int = 16 * 1024 * 1024,
        attempts: int = 4,
        backoff_s: float = 0.2,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 120.0,
    ):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._endpoint = endpoint
        self._part_size = part_size
        self._attempts = max(1, attempts)
        self._backoff_s = backoff_s
        self._bucket_ready = False
        self._bucket_lock = threading.Lock()
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=16,
            retries=False,  # retries are ours (_call), bounded and only where safe
            cert_reqs="CERT_REQUIRED" if secure else "CERT_NONE",
        )
        self._client = Minio(
            endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )

    def __repr__(self) -> str:
        return f"S3ObjectStore({self._endpoint!r}, {self.uri_prefix!r})"

    @property
    def uri_prefix(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: PutData,
        *,
        expected_sha256: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> ObjectInfo:
        name = self._name(key)
        expected = normalize_sha256(expected_sha256)
        self._ensure_bucket()
        reader = HashingReader(iter_chunks(data), key=key, expected_sha256=expected)
        if expected:
            self._upload(name, reader, content_type, {_SHA256_META: expected}, key)
        else:
            temp = f"{self.prefix}{RESERVED_SEGMENT}/tmp/{uuid.uuid4().hex}"
            try:
                self._upload(temp, reader, content_type, {}, key)
                self._copy(temp, name, reader.sha256, content_type, key=key)
            finally:
                self._remove_quietly(temp)
        return ObjectInfo(key, reader.size, reader.sha256, self.uri(key), content_type)

    def _upload(self, name: str, reader: HashingReader, content_type: str, metadata: dict, key: str) -> None:
        try:
            self._client.put_object(
                self.bucket,
                name,
                reader,
                length=-1,
                part_size=self._part_size,
                content_type=content_type,
                metadata=metadata,
                num_parallel_uploads=1,
            )
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            if exc is reader.failure:
                raise
            raise self._translate(exc, key) from exc

    def _copy(
        self,
        source: str,
        name: str,
        sha256: str,
        content_type: str,
        *,
        key: str,
        keep: dict | None = None,
        match_etag: str | None = None,
    ) -> None:
        """Server-side copy `source` to `name`, replacing its metadata with the digest (and `keep`)."""
        metadata = {**(keep or {}), _SHA256_META: sha256, "Content-Type": content_type}
        self._call(
            lambda: self._client.copy_object(
                self.bucket,
                name,
                CopySource(self.bucket, source, match_etag=match_etag),
                metadata=metadata,
                metadata_directive=REPLACE,
            ),
            key=key,
        )

    def _remove_quietly(self, name: str) -> None:
        try:
            self._call(lambda: self._client.remove_object(self.bucket, name))
        except (LoopmlError, MinioException):
            pass  # best effort: an unlisted temporary key is left for the lifecycle rule

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._bucket_lock:
            if not self._bucket_ready and not self._call(lambda: self._client.bucket_exists(self.bucket)):
                try:
                    self._call(lambda: self._client.make_bucket(self.bucket))
                except S3Error as exc:
                    if exc.code != "BucketAlreadyOwnedByYou":
                        raise
            self._bucket_ready = True

    def register_existing(self, key: str, *, expected_sha256: str | None = None) -> ObjectInfo:
        name = self._name(key)
        expected = normalize_sha256(expected_sha256)
        head = self._call(lambda: self._client.stat_object(self.bucket, name), key=key)
        info = self._info(key, head.size, head.metadata, head.content_type)
        if info.sha256 is not None:
            if expected and info.sha256 != expected:
                raise digest_mismatch(key, info.sha256, expected, "expected")
            return info
        digest = hashlib.sha256()
        for chunk in self.get(key, verify=False):
            digest.update(chunk)
        sha256 = digest.hexdigest()
        if expected and sha256 != expected:
            raise digest_mismatch(key, sha256, expected, "expected")
        keep = {k: v for k, v in head.metadata.items() if k.lower().startswith("x-amz-meta-")}
        # Copy onto itself with the digest added, only if it is still the object we hashed.
        self._copy(name, name, sha256, info.content_type, key=key, keep=keep, match_etag=head.etag)
        return ObjectInfo(key, info.size, sha256, info.uri, info.content_type)

    def delete(self, key: str) -> None:
        name = self._name(key)
        try:
            self._call(lambda: self._client.remove_object(self.bucket, name), key=key)
        except NotFound:
            pass  # the bucket does not exist yet

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        if not prefix:
            raise InvalidArgument("prefix", "must not be empty (that would delete the whole store)")
        names = [obj.object_name for obj in self._objects(prefix)]

        def remove() -> list:
            return list(self._client.remove_objects(self.bucket, (DeleteObject(n) for n in names)))

        errors = self._call(remove) if names else []
        if errors:
            raise Unavailable(f"object store could not delete {len(errors)} objects, first: {errors[0]}")
        return len(names)

    # -- reading ---------------------------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        verify: bool = True,
        expected_sha256: str | None = None,
    ) -> Iterator[bytes]:
        name = self._name(key)
        expected = normalize_sha256(expected_sha256)
        response = self._call(lambda: self._client.get_object(self.bucket, name), key=key)
        headers = response.headers
        recorded = headers.get(_SHA256_META) if verify else None
        size = int(headers["content-length"]) if verify and "content-length" in headers else None
        return verified(
            self._body(response, chunk_size),
            key=key,
            size=size,
            recorded_sha256=recorded,
            expected_sha256=expected,
        )

    def _body(self, response, chunk_size: int) -> Iterator[bytes]:
        try:
            yield from response.stream(chunk_size, decode_content=False)
        except urllib3.exceptions.HTTPError as exc:
            raise Unavailable(f"object store {self._endpoint} broke off a download: {exc}") from exc
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo:
        name = self._name(key)
        head = self._call(lambda: self._client.stat_object(self.bucket, name), key=key)
        return self._info(key, head.size, head.metadata, head.content_type)

    def _info(self, key: str, size, metadata, content_type) -> ObjectInfo:
        sha256 = None
        for k, v in (metadata or {}).items():
            if k.lower() in (_SHA256_META, "sha256"):
                sha256 = v
        return ObjectInfo(key, int(size or 0), sha256, self.uri(key), content_type or DEFAULT_CONTENT_TYPE)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        for obj in self._objects(prefix):
            key = obj.object_name[len(self.prefix) :]
            info = self._info(key, obj.size, obj.metadata, obj.content_type)
            if info.sha256 is None:  # servers other than MinIO list no user metadata
                try:
                    info = self.stat(key)
                except NotFound:
                    continue  # deleted meanwhile
            yield info

    def _objects(self, prefix: str) -> Iterator:
        """Raw listing under the store prefix, without reserved names; resumes after a failure."""
        last, attempt = None, 0
        while True:
            try:
                listing = self._client.list_objects(
                    self.bucket,
                    prefix=self.prefix + prefix,
                    recursive=True,
                    start_after=last,
                    include_user_meta=True,
                )
                for obj in listing:
                    last = obj.object_name
                    if not is_reserved(obj.object_name[len(self.prefix) :]):
                        yield obj
                return
            except (MinioException, urllib3.exceptions.HTTPError) as exc:
                if isinstance(exc, S3Error) and exc.code == "NoSuchBucket":
                    return
                attempt += 1
                if attempt >= self._attempts or not _is_transient(exc):
                    raise self._translate(exc, None) from exc
                time.sleep(self._backoff_s * 2 ** (attempt - 1))

    # -- addressing ------------------------------------------------------------------------------

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._name(key)}"

    def key_from_uri(self, uri: str) -> str:
        head = self.uri_prefix
        if not isinstance(uri, str) or not uri.startswith(head):
            raise InvalidArgument("uri", f"{uri!r} is not in this store ({head})")
        return validate_key(uri[len(head) :], "uri")

    def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        self.stat(key)
        name = self._name(key)
        return self._call(
            lambda: self._client.presigned_get_object(self.bucket, name, expires=expires), key=key
        )

    # -- health ----------------------------------------------------------------------------------

    def check(self) -> None:
        self._call(lambda: self._client.bucket_exists(self.bucket), attempts=1)

    # -- errors and retries ----------------------------------------------------------------------

    def _call(self, fn: Callable[[], T], *, key: str | None = None, attempts: int | None = None) -> T:
        """Run one S3 call; retry it with backoff while the failure is transient; translate errors."""
        attempts = attempts or self._attempts
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except (MinioException, urllib3.exceptions.HTTPError) as exc:
                if attempt < attempts and _is_transient(exc):
                    time.sleep(self._backoff_s * 2 ** (attempt - 1))
                    continue
                translated = self._translate(exc, key)
                if translated is exc:
                    raise
                raise translated from exc
        raise AssertionError("unreachable")

    def _translate(self, exc: Exception, key: str | None) -> Exception:
        if isinstance(exc, S3Error):
            if exc.code in _MISSING and key is not None:
                return NotFound("object", key)
            if exc.code in _REFUSED:
                return Unavailable(f"object store {self._endpoint} refused our credentials ({exc.code})")
            if exc.code == "PreconditionFailed":
                return Aborted(f"object {key!r} changed during the operation; try again")
            if exc.code in _TRANSIENT:
                return Unavailable(f"object store {self._endpoint} is not available ({exc.code})")
            return exc
        if _is_transient(exc):
            return Unavailable(f"object store {self._endpoint} does not answer: {exc}")
        return exc


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, S3Error):
        return exc.code in _TRANSIENT
    return isinstance(exc, (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError))
