"""Settings of the registry service (environment variables LOOPML_*)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from loopml.runtime.settings import ServiceSettings


class RegistrySettings(ServiceSettings):
    service_name: ClassVar[str] = "registry"

    listen_address: str = "127.0.0.1:50053"
    #: Largest artifact CreateModelVersion accepts, in bytes.
    max_artifact_bytes: int = Field(default=20 * 1024**3, gt=0)
    #: Size of the chunks DownloadModelArtifact sends.
    download_chunk_bytes: int = Field(default=1024 * 1024, gt=0)
    #: Seconds between two looks at the events table for events written by other replicas.
    #: Events written by this replica wake its watchers at once.
    watch_poll_interval_s: float = Field(default=0.1, gt=0)
    #: A PENDING version whose upload has not finished after this many seconds is marked FAILED
    #: (its server died mid-upload). Keep it above the longest upload you expect.
    pending_timeout_s: float = Field(default=6 * 3600, gt=0)
    #: Events older than this many seconds are deleted; a watch resuming from before the oldest
    #: retained event gets OUT_OF_RANGE (re-read the state, then watch again).
    event_retention_s: float = Field(default=30 * 24 * 3600, gt=0)
    #: Webhook URLs (comma separated) that receive every registry event as JSON (POST). Empty: off.
    webhook_urls: str = ""
    #: Delivery attempts per event and URL before the event is dropped for that URL (logged).
    webhook_max_attempts: int = Field(default=5, gt=0)
    #: Seconds before the first retry; doubled for each further one.
    webhook_backoff_s: float = Field(default=0.5, gt=0)
    #: Timeout of one webhook POST, in seconds.
    webhook_timeout_s: float = Field(default=5.0, gt=0)

    def webhook_url_list(self) -> list[str]:
        return [u.strip() for u in self.webhook_urls.split(",") if u.strip()]
