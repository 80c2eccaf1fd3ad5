"""The `ObjectStore` interface, the `ObjectInfo` it returns, and the key rules every backend shares."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from loopml.runtime.errors import InvalidArgument, NotFound

#: What `put` accepts: one bytes object, an iterable of bytes chunks, or a binary file object.
PutData = bytes | bytearray | memoryview | Iterable[bytes] | BinaryIO

DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_CHUNK_SIZE = 1024 * 1024

#: First key segment a backend keeps for itself (temporary uploads, sidecars, locks).
RESERVED_SEGMENT = ".loopml"

_MAX_KEY_BYTES = 1024
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows of one object.

    `sha256` is the lowercase hex digest recorded when the object was written, or None for an
    object that reached the store some other way and was never registered (see `register_existing`).
    """

    key: str
    size: int
    sha256: str | None
    uri: str
    content_type: str = DEFAULT_CONTENT_TYPE


class ObjectStore(abc.ABC):
    """A flat namespace of immutable-once-written byte objects addressed by key.

    Contract, held by every backend and checked by tests/runtime/test_objectstore_contract.py:

    * Thread-safe: one instance may be shared by all threads of a process; several processes may
      share one store.
    * A put is atomic: a reader sees the whole new object or the previous state, never a part. A put
      that fails or is abandoned (its chunk iterator raises, the process dies, the digest does not
      match `expected_sha256`) leaves no object behind and no debris visible through this interface.
      A put to an existing key replaces the object.
    * The sha256 of the bytes is computed while they stream in and recorded with the object. A put
      with `expected_sha256` that differs raises `DataLoss`, and nothing is stored.
    * Reads are verified: `get` hashes while it streams and raises `DataLoss` after the last chunk
      when the bytes do not match the recorded (or expected) digest or size. Consume the whole
      iterator (or close it) before trusting the bytes.
    * Keys are `/`-separated paths: no leading `/`, no empty, `.` or `..` segment, no backslash or
      control character, at most 1024 UTF-8 bytes, and the first segment may not be `.loopml`.
      A bad key raises `InvalidArgument` naming field `key`. Do not use a key that is also a folder
      of other keys (`a` and `a/b`): S3 allows it, the local backend refuses with FailedPrecondition.
    * A missing object raises `NotFound("object", key)`; a store that does not answer raises
      `Unavailable` (backends retry briefly first where a retry is safe).
    * `list` yields objects in lexicographic key order; `delete` of a missing key succeeds.
    """

    # -- writing ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def put(
        self,
        key: str,
        data: PutData,
        *,
        expected_sha256: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> ObjectInfo:
        """Stream `data` into the object `key` atomically and return what was stored."""

    def put_file(
        self, key: str, path: Path, *, sha256: str, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> ObjectInfo:
        """Store the bytes of the local file `path`, whose `sha256` the caller computed as it wrote
        the file. The caller must not change the file afterwards: a backend on the same file system
        may take the file over (a hard link) instead of copying and hashing it again; reads of the
        object still check the digest. By default a `put` of the file, which checks it."""
        with open(path, "rb") as f:
            return self.put(key, f, expected_sha256=sha256, content_type=content_type)

    @abc.abstractmethod
    def register_existing(self, key: str, *, expected_sha256: str | None = None) -> ObjectInfo:
        """Adopt an object that was written to the store directly (not through `put`).

        Returns its info; when no digest is recorded yet it streams the object, computes the sha256
        and records it. Raises NotFound, DataLoss when `expected_sha256` differs (nothing is
        recorded then), and Aborted when the object changed while it was being hashed.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abc.abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Remove every object whose key starts with the non-empty `prefix`; return how many."""

    # -- reading ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def get(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        verify: bool = True,
        expected_sha256: str | None = None,
    ) -> Iterator[bytes]:
        """Open the object and stream its bytes.

        NotFound is raised by this call itself; DataLoss after the last chunk. With `verify=False`
        the recorded digest is not checked (an `expected_sha256` still is).
        """

    @abc.abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Info of one object, or NotFound."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix` (a plain string prefix, not only a folder)."""

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def read_bytes(self, key: str, *, expected_sha256: str | None = None) -> bytes:
        """The whole (verified) object in memory; for small objects only."""
        return b"".join(self.get(key, expected_sha256=expected_sha256))

    # -- addressing ------------------------------------------------------------------------------

    @abc.abstractmethod
    def uri(self, key: str) -> str:
        """The stable address of `key`: `s3://bucket/prefix/key` or `file:///root/key`."""

    @abc.abstractmethod
    def key_from_uri(self, uri: str) -> str:
        """The key addressed by `uri`; InvalidArgument (field `uri`) if it is not in this store."""

    @abc.abstractmethod
    def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A URL that lets a client without credentials download the object (NotFound if missing).

        The local backend returns a `file://` URL, usable only on the same machine.
        """

    # -- health ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def check(self) -> None:
        """Return when the store answers and accepts our credentials; raise Unavailable otherwise."""


def _check_characters(value: str, field: str) -> None:
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(field, "must not contain backslashes or control characters")


def validate_key(key: object, field: str = "key") -> str:
    """Return `key` if it follows the key rules of `ObjectStore`, else raise InvalidArgument."""
    if not isinstance(key, str) or not key:
        raise InvalidArgument(field, "must be a non-empty string")
    if len(key.encode("utf-8")) > _MAX_KEY_BYTES:
        raise InvalidArgument(field, f"must be at most {_MAX_KEY_BYTES} UTF-8 bytes")
    if key.startswith("/"):
        raise InvalidArgument(field, "must not start with '/'")
    _check_characters(key, field)
    segments = key.split("/")
    if "" in segments:
        raise InvalidArgument(field, "must not contain empty segments ('//' or a trailing '/')")
    if "." in segments or ".." in segments:
        raise InvalidArgument(field, "must not contain '.' or '..' segments")
    if segments[0] == RESERVED_SEGMENT:
        raise InvalidArgument(field, f"must not start with the reserved segment {RESERVED_SEGMENT!r}")
    return key


def validate_prefix(prefix: object, field: str = "prefix") -> str:
    """A listing prefix: '' or a valid key's folder part, '/', and any partial last segment."""
    if not isinstance(prefix, str):
        raise InvalidArgument(field, "must be a string")
    if prefix.startswith("/"):
        raise InvalidArgument(field, "must not start with '/'")
    _check_characters(prefix, field)
    folder = prefix.rpartition("/")[0]
    if folder:
        validate_key(folder, field)
    return prefix


def normalize_sha256(value: str | None, field: str = "expected_sha256") -> str | None:
    """Lowercase hex sha256 or None; InvalidArgument for anything else."""
    if value is None or value == "":
        return None
    lowered = value.lower() if isinstance(value, str) else ""
    if not _SHA256_HEX.match(lowered):
        raise InvalidArgument(field, "must be a sha256 digest in hex (64 characters)")
    return lowered


def is_reserved(key: str) -> bool:
    """True for names a backend keeps for itself (never listed)."""
    return key.split("/", 1)[0] == RESERVED_SEGMENT
