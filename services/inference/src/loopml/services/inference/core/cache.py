"""A local cache of model artifacts, keyed by sha256; bytes are verified on every read."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from loopml.runtime.errors import DataLoss
from loopml.services.inference.core.refs import ResolvedVersion


class ArtifactCache:
    """Keeps downloaded artifacts in `folder` so that a reload or restart skips the download.

    A cached file whose digest no longer matches (disk corruption, tampering) is deleted and fetched
    again; freshly fetched bytes that do not match the registry's sha256 raise DataLoss.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _path(self, sha256: str) -> Path:
        return self.folder / f"{sha256.lower()}.bundle"

    def get(self, resolved: ResolvedVersion, fetch) -> bytes:
        path = self._path(resolved.sha256)
        if path.exists():
            data = path.read_bytes()
            if hashlib.sha256(data).hexdigest() == resolved.sha256.lower():
                return data
            path.unlink(missing_ok=True)
        data = fetch(resolved)
        actual = hashlib.sha256(data).hexdigest()
        if actual != resolved.sha256.lower():
            raise DataLoss(
                f"artifact of {resolved.name} v{resolved.version} has sha256 {actual}, "
                f"the registry recorded {resolved.sha256}"
            )
        self._write(path, data)
        return data

    def _write(self, path: Path, data: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)  # atomic: a reader never sees half a file
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
