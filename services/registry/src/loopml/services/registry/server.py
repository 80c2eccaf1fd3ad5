"""Builds the registry service's server (`make_server`) and runs it (`main`)."""

from __future__ import annotations

from pathlib import Path

from loopml.registry.v1 import registry_service_pb2, registry_service_pb2_grpc
from loopml.runtime.db import migrate as run_migrations
from loopml.runtime.grpcserver import ServiceRegistration, ServiceServer
from loopml.runtime.main import run_service
from loopml.services.registry.api import RegistryServiceServicer
from loopml.services.registry.background import Background
from loopml.services.registry.core import EventFeed, Registry
from loopml.services.registry.settings import RegistrySettings
from loopml.services.registry.webhooks import WebhookSender

SERVICE_NAME = registry_service_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
MIGRATIONS = Path(__file__).parent / "migrations"


def make_server(settings: RegistrySettings) -> ServiceServer:
    """An unstarted server for `settings` (its tables migrated); its health follows the database
    and the object store. The event feed, webhooks and sweeper start when the server starts."""
    database = settings.open_database()
    store = settings.open_object_store()
    if getattr(settings, "migrate_on_start", True):
        migrate_database(database)
    feed = EventFeed(database, settings.watch_poll_interval_s)
    registry = Registry(
        database,
        store,
        max_artifact_bytes=settings.max_artifact_bytes,
        on_change=feed.notify,
        epoch=lambda: feed.epoch,
    )
    urls = settings.webhook_url_list()
    webhooks = (
        WebhookSender(
            feed,
            urls,
            max_attempts=settings.webhook_max_attempts,
            backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
        )
        if urls
        else None
    )
    background = Background(
        registry,
        feed,
        webhooks,
        pending_timeout_s=settings.pending_timeout_s,
        event_retention_s=settings.event_retention_s,
    )
    servicer = RegistryServiceServicer(registry, feed, settings.download_chunk_bytes)
    server = ServiceServer(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME, registry_service_pb2_grpc.add_RegistryServiceServicer_to_server, servicer
            )
        ],
        probes={"database": database.check, "object_store": store.check},
        # a watch never ends by itself: end open watches (UNAVAILABLE, so clients watch again
        # elsewhere) as stopping begins, or draining would always last the whole grace period
        on_start=[background.start],
        on_stopping=[background.feed.stop],
        on_stop=[background.stop, database.dispose],
    )
    return server


def migrate_database(database) -> None:
    run_migrations(database, MIGRATIONS, "alembic_version_registry")


def migrate(settings: RegistrySettings) -> None:
    """Bring the registry's tables up to date without serving.

    Used by `python -m loopml.runtime.migrate registry`."""
    database = settings.open_database()
    try:
        migrate_database(database)
    finally:
        database.dispose()


def main() -> None:
    run_service(RegistrySettings, make_server)
