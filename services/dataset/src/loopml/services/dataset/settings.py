"""Settings of the dataset service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from loopml.runtime.settings import ServiceSettings


class DatasetSettings(ServiceSettings):
    service_name: ClassVar[str] = "dataset"

    listen_address: str = "127.0.0.1:50051"
    #: Largest file UploadDataset or ImportDataset accepts, in bytes (LOOPML_MAX_UPLOAD_BYTES).
    max_upload_bytes: int = Field(default=20 * 1024**3, gt=0)
    #: Bytes of CSV/JSON parsed at a time; column types are inferred from the first block and
    #: widened (integer -> real -> string) when a later block does not fit.
    read_block_bytes: int = Field(default=4 * 1024**2, ge=4096)
    #: Folder for temporary files of uploads being processed; empty: the system temp folder.
    spool_dir: str = ""
    #: Ask the registry whether a model's lineage uses a dataset before deleting it. Off: deletes
    #: never check (for a deployment without a registry).
    check_lineage: bool = True
