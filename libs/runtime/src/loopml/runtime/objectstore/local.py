"""The embedded backend: objects are plain files under one folder.

Layout under `root`::

    <key>                        the object's bytes, so the folder is usable without loopml
    .loopml/meta/<key>.json      sidecar: {"sha256": ..., "size": ..., "content_type": ...}
    .loopml/tmp/<random>         puts in progress (same file system as the objects, so rename is atomic)
    .loopml/locks/commit         flock held while an object and its sidecar are swapped or read together

A put writes and fsyncs a temporary data file and sidecar, then, holding the lock, renames the
sidecar and the data file into place. A reader takes the same lock only to open the data file and
read its sidecar, so it always gets a matching pair; it streams the bytes after releasing it (an
open file keeps the old bytes even when a put replaces the object meanwhile). The lock is an
advisory `fcntl.flock`, so processes sharing the folder (the `loopml up` process tree) also agree.
`put_file` hard-links the caller's file into `.loopml/tmp` instead of writing a copy (same file
system; a copy otherwise), fsyncs it and commits it the same way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from stat import S_ISREG
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from loopml.runtime.errors import (
    Aborted,
    DataLoss,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)

from ._base import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    RESERVED_SEGMENT,
    ObjectInfo,
    ObjectStore,
    PutData,
    normalize_sha256,
    validate_key,
    validate_prefix,
)
from ._streams import digest_mismatch, iter_chunks, verified


class LocalObjectStore(ObjectStore):
    """Objects as files under `root` (made absolute; created on first write)."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(os.path.abspath(root))
        self._internal = self.root / RESERVED_SEGMENT

    # -- paths -----------------------------------------------------------------------------------

    def _data_path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _meta_path(self, key: str) -> Path:
        *folders, name = key.split("/")
        return self._internal.joinpath("meta", *folders, name + ".json")

    def _internal_dir(self, name: str) -> Path:
        """A folder under `.loopml`, created if missing; Unavailable when the store folder is unusable."""
        path = self._internal / name
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise Unavailable(f"object store folder {self.root} is not usable: {exc}") from exc
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._internal_dir("locks") / "commit", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _temp_path(self) -> Path:
        return self._internal_dir("tmp") / uuid.uuid4().hex

    @contextlib.contextmanager
    def _staging(self) -> Iterator[tuple[Path, Path]]:
        """Temporary data and sidecar paths for one put: a full disk becomes ResourceExhausted, and
        whatever was not committed is removed."""
        tmp_data = self._temp_path()
        tmp_meta = tmp_data.with_suffix(".json")
        try:
            yield tmp_data, tmp_meta
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ResourceExhausted(f"object store folder {self.root} is full: {exc}") from exc
            raise
        finally:
            for leftover in (tmp_data, tmp_meta):
                leftover.unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: PutData,
        *,
        expected_sha256: str | None = None,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> ObjectInfo:
        validate_key(key)
        expected = normalize_sha256(expected_sha256)
        with self._staging() as (tmp_data, tmp_meta):
            digest, size = hashlib.sha256(), 0
            with open(tmp_data, "xb") as out:
                for chunk in iter_chunks(data):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                _sync(out)
            sha256 = digest.hexdigest()
            if expected and sha256 != expected:
                raise digest_mismatch(key, sha256, expected, "expected")
            _write_json(tmp_meta, {"sha256": sha256, "size": size, "content_type": content_type})
            self._commit(key, tmp_data, tmp_meta)
        return ObjectInfo(key, size, sha256, self.uri(key), content_type)

    def put_file(
        self, key: str, path: Path, *, sha256: str, content_type: str = DEFAULT_CONTENT_TYPE
    ) -> ObjectInfo:
        """A hard link to `path` (fsynced) with the caller's digest; a copy across file systems."""
        validate_key(key)
        expected = normalize_sha256(sha256, "sha256")
        if not expected:
            raise InvalidArgument("sha256", "is required")
        with self._staging() as (tmp_data, tmp_meta):
            try:
                os.link(path, tmp_data)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                return super().put_file(key, path, sha256=expected, content_type=content_type)
            with open(tmp_data, "rb") as linked:
                os.fsync(linked.fileno())
                size = os.fstat(linked.fileno()).st_size
            _write_json(tmp_meta, {"sha256": expected, "size": size, "content_type": content_type})
            self._commit(key, tmp_data, tmp_meta)
        return ObjectInfo(key, size, expected, self.uri(key), content_type)

    def _commit(self, key: str, tmp_data: Path, tmp_meta: Path) -> None:
        data_path, meta_path = self._data_path(key), self._meta_path(key)
        with self._locked():
            try:
                data_path.parent.mkdir(parents=True, exist_ok=True)
                meta_path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise _key_conflict(key) from exc
            if data_path.is_dir():
                raise _key_conflict(key)
            os.replace(tmp_meta, meta_path)
            os.replace(tmp_data, data_path)
        _sync_dir(data_path.parent)

    def register_existing(self, key: str, *, expected_sha256: str | None = None) -> ObjectInfo:
        validate_key(key)
        expected = normalize_sha256(expected_sha256)
        info = self.stat(key)
        if info.sha256 is not None:
            if expected and info.sha256 != expected:
                raise digest_mismatch(key, info.sha256, expected, "expected")
            return info
        data_path = self._data_path(key)
        with _open_object(data_path, key) as source:
            before = os.fstat(source.fileno())
            digest = hashlib.sha256()
            while chunk := source.read(DEFAULT_CHUNK_SIZE):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        if expected and sha256 != expected:
            raise digest_mismatch(key, sha256, expected, "expected")
        tmp_meta = self._temp_path().with_suffix(".json")
        try:
            _write_json(
                tmp_meta, {"sha256": sha256, "size": before.st_size, "content_type": info.content_type}
            )
            with self._locked():
                if not _same_file(before, data_path):
                    raise Aborted(f"object {key!r} changed while it was being registered; try again")
                meta_path = self._meta_path(key)
                meta_path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_meta, meta_path)
        finally:
            tmp_meta.unlink(missing_ok=True)
        return ObjectInfo(key, before.st_size, sha256, self.uri(key), info.content_type)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._locked():
            for path, stop in ((self._data_path(key), self.root), (self._meta_path(key), self._internal)):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                    path.unlink()
                _remove_empty_parents(path.parent, stop)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        if not prefix:
            raise InvalidArgument("prefix", "must not be empty (that would delete the whole store)")
        count = 0
        for info in self.list(prefix):
            self.delete(info.key)
            count += 1
        return count

    # -- reading ---------------------------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        verify: bool = True,
        expected_sha256: str | None = None,
    ) -> Iterator[bytes]:
        validate_key(key)
        expected = normalize_sha256(expected_sha256)
        with self._locked():
            source = _open_object(self._data_path(key), key)
            try:
                meta = self._read_meta(key)
            except BaseException:
                source.close()
                raise
        recorded = meta.get("sha256") if verify else None
        size = meta.get("size") if verify else None
        return verified(
            _read_chunks(source, chunk_size),
            key=key,
            size=size,
            recorded_sha256=recorded,
            expected_sha256=expected,
        )

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._locked():
            try:
                st = self._data_path(key).stat()
            except (FileNotFoundError, NotADirectoryError):
                raise NotFound("object", key) from None
            meta = self._read_meta(key)
        if not S_ISREG(st.st_mode):
            raise NotFound("object", key)
        content_type = meta.get("content_type") or DEFAULT_CONTENT_TYPE
        return ObjectInfo(key, st.st_size, meta.get("sha256"), self.uri(key), content_type)

    def _read_meta(self, key: str) -> dict:
        try:
            with open(self._meta_path(key), "rb") as f:
                return json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except ValueError as exc:
            raise DataLoss(f"object {key!r}: its metadata sidecar is unreadable: {exc}") from exc

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        validate_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self._data_path(folder) if folder else self.root
        keys = []
        for dirpath, dirnames, filenames in os.walk(start):
            if Path(dirpath) == self.root and RESERVED_SEGMENT in dirnames:
                dirnames.remove(RESERVED_SEGMENT)
            relative = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if relative == "." else f"{relative}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        for key in sorted(keys):
            try:
                yield self.stat(key)
            except (NotFound, InvalidArgument):
                continue  # deleted meanwhile, or a file whose name is no valid key

    # -- addressing ------------------------------------------------------------------------------

    def uri(self, key: str) -> str:
        return self._data_path(validate_key(key)).as_uri()

    def key_from_uri(self, uri: str) -> str:
        parts = urlsplit(uri) if isinstance(uri, str) else None
        if parts is None or parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise InvalidArgument("uri", f"{uri!r} is not a file:// URI of this store")
        path, root = unquote(parts.path), self.root.as_posix().rstrip("/") + "/"
        if not path.startswith(root):
            raise InvalidArgument("uri", f"{uri!r} is not under the store folder {self.root}")
        return validate_key(path[len(root) :], "uri")

    def presigned_get_url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        return self.stat(key).uri

    # -- health ----------------------------------------------------------------------------------

    def check(self) -> None:
        if not os.access(self._internal_dir("tmp"), os.W_OK):
            raise Unavailable(f"object store folder {self.root} is not writable")


def _open_object(path: Path, key: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise NotFound("object", key) from None


def _read_chunks(source: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    with source:
        while chunk := source.read(chunk_size):
            yield chunk


def _key_conflict(key: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"key {key!r} clashes with an existing key: one would be a folder of the other",
        subject=key,
        violation_type="OBJECT_KEY",
    )


def _write_json(path: Path, value: dict) -> None:
    with open(path, "x", encoding="utf-8") as out:
        json.dump(value, out)
        _sync(out)


def _sync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    """Make a rename in `path` durable; best effort (not every file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _same_file(before: os.stat_result, path: Path) -> bool:
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_ino, now.st_size, now.st_mtime_ns) == (before.st_ino, before.st_size, before.st_mtime_ns)


def _remove_empty_parents(folder: Path, stop: Path) -> None:
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                return
            raise
        folder = folder.parent
