"""Streaming helpers shared by the backends: chunking what `put` receives, hashing, verifying reads."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from loopml.runtime.errors import DataLoss

from ._base import DEFAULT_CHUNK_SIZE, PutData


def iter_chunks(data: PutData, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """The bytes of `data` as chunks, whether it is one bytes object, a file object or an iterable."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        yield bytes(data)
        return
    if hasattr(data, "read"):
        while chunk := data.read(chunk_size):
            yield chunk
        return
    for chunk in data:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() chunks must be bytes, not {type(chunk).__name__}")
        yield bytes(chunk)


def digest_mismatch(key: str, actual: str, wanted: str, source: str) -> DataLoss:
    return DataLoss(f"object {key!r}: the sha256 of its bytes is {actual}, {source} is {wanted}")


class HashingReader:
    """A read-only file object over a chunk iterator that hashes everything it hands out.

    When the iterator is exhausted and `expected_sha256` is set but differs, `read` raises DataLoss
    before it returns the last bytes, so an uploader that reads to the end first fails the upload.
    """

    def __init__(self, chunks: Iterator[bytes], *, key: str, expected_sha256: str | None = None):
        self._chunks = chunks
        self._key = key
        self._expected = expected_sha256
        self._hash = hashlib.sha256()
        self._buffer = bytearray()
        self._exhausted = False
        self.size = 0
        #: The exception the chunk iterator raised, so an uploader can tell it from its own errors.
        self.failure: BaseException | None = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def read(self, size: int = -1) -> bytes:
        while not self._exhausted and (size < 0 or len(self._buffer) < size):
            try:
                chunk = next(self._chunks, None)
            except BaseException as exc:
                self.failure = exc
                raise
            if chunk is None:
                self._exhausted = True
                if self._expected and self.sha256 != self._expected:
                    raise digest_mismatch(self._key, self.sha256, self._expected, "expected")
                break
            self._hash.update(chunk)
            self.size += len(chunk)
            self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            out, self._buffer = bytes(self._buffer), bytearray()
        else:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
        return out


def verified(
    chunks: Iterator[bytes],
    *,
    key: str,
    size: int | None,
    recorded_sha256: str | None,
    expected_sha256: str | None,
) -> Iterator[bytes]:
    """Pass `chunks` through; after the last one raise DataLoss if size or digests do not match.

    `recorded_sha256`/`size` are what the store recorded (None: do not check); `expected_sha256` is
    what the caller expects. Closing this iterator closes `chunks`.
    """
    digest = hashlib.sha256() if (recorded_sha256 or expected_sha256) else None
    seen = 0
    try:
        for chunk in chunks:
            if digest is not None:
                digest.update(chunk)
            seen += len(chunk)
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if size is not None and seen != size:
        raise DataLoss(f"object {key!r}: read {seen} bytes, the store recorded {size}")
    if digest is not None:
        actual = digest.hexdigest()
        if recorded_sha256 and actual != recorded_sha256:
            raise digest_mismatch(key, actual, recorded_sha256, "the recorded digest")
        if expected_sha256 and actual != expected_sha256:
            raise digest_mismatch(key, actual, expected_sha256, "expected")
