"""The trainer's own tables. Trial state itself lives in Optuna's RDB storage on the same database
(Optuna's tables); these tables hold what Optuna does not: the search, its work slots (leases
that worker processes claim) and its event log (what WatchSearch streams).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class SearchRow(Base):
    __tablename__ = "trainer_searches"

    search_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[str] = mapped_column(Text)  # JSON of the resolved SearchSpec
    problem: Mapped[str] = mapped_column(Text)  # JSON of the Problem
    dataset_id: Mapped[str] = mapped_column(String(128), index=True)
    register_model_name: Mapped[str] = mapped_column(String(200), default="")
    tags: Mapped[str] = mapped_column(Text, default="{}")
    request_id: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    create_time: Mapped[float] = mapped_column(Float)
    start_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)
    end_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    failure_reason: Mapped[str] = mapped_column(Text, default="")
    family_failures: Mapped[str] = mapped_column(Text, default="[]")
    result: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON of the SearchResult
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    keep_best: Mapped[bool] = mapped_column(Boolean, default=False)
    event_seq: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    #: The model is waiting for a registry that was unavailable; retried in the background.
    registration_pending: Mapped[bool] = mapped_column(Boolean, default=False, index=True)


class SlotRow(Base):
    """One unit of parallelism of a search; a worker holds it under a lease it keeps renewing."""

    __tablename__ = "trainer_search_slots"

    search_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires: Mapped[float] = mapped_column(Float, default=0.0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)


class EventRow(Base):
    __tablename__ = "trainer_search_events"

    search_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_time: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)  # JSON
