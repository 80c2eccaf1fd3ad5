"""Where loopml keeps bytes (datasets, model artifacts): one interface, a folder and an S3 backend.

    store = open_object_store("s3://loopml/artifacts", s3_endpoint="minio:9000", ...)
    info = store.put("runs/7/model.bin", chunks)          # atomic, sha256 recorded
    for chunk in store.get(info.key): ...                 # verified: DataLoss at the end on mismatch

See `ObjectStore` for the contract.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from loopml.runtime.errors import InvalidArgument

from ._base import DEFAULT_CHUNK_SIZE, DEFAULT_CONTENT_TYPE, ObjectInfo, ObjectStore, PutData, validate_key
from .local import LocalObjectStore
from .s3 import S3ObjectStore


def open_object_store(
    url: str,
    *,
    s3_endpoint: str | None = None,
    s3_access_key: str | None = None,
    s3_secret_key: str | None = None,
    s3_secure: bool = False,
    s3_region: str | None = None,
) -> ObjectStore:
    """The store `url` names: `file:///abs/path` or a plain path (local folder), or
    `s3://bucket[/prefix]` on the S3 server at `s3_endpoint` (`host:port`, or an http(s):// URL,
    which then also decides `s3_secure`). Does no I/O; call `check()` to see that it answers.
    """
    if not isinstance(url, str) or not url:
        raise InvalidArgument("url", "must name a folder (file:///path) or a bucket (s3://bucket/prefix)")
    parts = urlsplit(url)
    if parts.scheme == "s3":
        if not parts.netloc:
            raise InvalidArgument("url", f"{url!r} names no bucket")
        if not s3_endpoint:
            raise InvalidArgument("s3_endpoint", "is required for an s3:// object store")
        if parts.path.strip("/"):
            validate_key(parts.path.strip("/"), "url")
        endpoint = urlsplit(s3_endpoint)
        if endpoint.scheme in ("http", "https"):
            s3_endpoint, s3_secure = endpoint.netloc, endpoint.scheme == "https"
        return S3ObjectStore(
            s3_endpoint,
            parts.netloc,
            prefix=parts.path,
            access_key=s3_access_key,
            secret_key=s3_secret_key,
            secure=s3_secure,
            region=s3_region,
        )
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise InvalidArgument("url", f"{url!r}: file:// URLs must name a local path (file:///path)")
        return LocalObjectStore(unquote(parts.path))
    if parts.scheme:
        raise InvalidArgument("url", f"{url!r}: unsupported scheme {parts.scheme!r} (use file:// or s3://)")
    return LocalObjectStore(os.path.expanduser(url))


__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "LocalObjectStore",
    "ObjectInfo",
    "ObjectStore",
    "PutData",
    "S3ObjectStore",
    "open_object_store",
    "validate_key",
]
