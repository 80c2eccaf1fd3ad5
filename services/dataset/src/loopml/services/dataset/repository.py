"""The dataset service's metadata in the database, as domain objects (see storage.py for tables)."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import asdict

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loopml.runtime.db import Database, is_unique_violation
from loopml.runtime.errors import AlreadyExists, InvalidArgument, NotFound
from loopml.services.dataset.core.model import (
    Column,
    ColumnRole,
    ColumnType,
    Compression,
    DataFormat,
    Dataset,
    DatasetVersion,
    Split,
    SplitSpec,
    SplitStrategy,
    TaskInference,
    TaskType,
)
from loopml.services.dataset.storage import DatasetRow, SplitRow, TagRow, VersionRow, utcnow

_ORDERS = {
    "update_time": DatasetRow.update_time,
    "create_time": DatasetRow.create_time,
    "name": DatasetRow.name,
}


# -- JSON forms of the version's metadata -----------------------------------------------------------


def columns_to_json(columns: list[Column]) -> str:
    return json.dumps(
        [
            {
                "name": c.name,
                "index": c.index,
                "inferred_type": c.inferred_type.value,
                "reason": c.inference_reason,
                "nullable": c.nullable,
                "physical_type": c.physical_type,
                "type_override": c.type_override.value if c.type_override else None,
                "role_override": c.role_override.value if c.role_override else None,
                "default_role": c.default_role.value,
            }
            for c in columns
        ]
    )


def columns_from_json(text: str) -> list[Column]:
    return [
        Column(
            name=d["name"],
            index=d["index"],
            inferred_type=ColumnType(d["inferred_type"]),
            inference_reason=d["reason"],
            nullable=d["nullable"],
            physical_type=d["physical_type"],
            type_override=ColumnType(d["type_override"]) if d["type_override"] else None,
            role_override=ColumnRole(d["role_override"]) if d["role_override"] else None,
            default_role=ColumnRole(d["default_role"]),
        )
        for d in json.loads(text)
    ]


def task_to_json(task: TaskInference | None) -> str:
    if task is None:
        return ""
    return json.dumps(
        {
            "label": task.label_column,
            "task": task.task.value,
            "reason": task.reason,
            "classes": task.class_labels,
        }
    )


def task_from_json(text: str) -> TaskInference | None:
    if not text:
        return None
    d = json.loads(text)
    return TaskInference(d["label"], TaskType(d["task"]), d["reason"], d["classes"])


def spec_to_json(spec: SplitSpec) -> str:
    d = asdict(spec)
    d["strategy"] = spec.strategy.value
    return json.dumps(d, sort_keys=True)


def spec_from_json(text: str) -> SplitSpec:
    d = json.loads(text)
    d["strategy"] = SplitStrategy(d["strategy"])
    return SplitSpec(**d)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def decode_token(token: str, field: str = "page_token") -> int:
    if not token:
        return 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument(field, "is not a token this service issued") from None
    if offset < 0:
        raise InvalidArgument(field, "is not a token this service issued")
    return offset


class Repository:
    def __init__(self, database: Database):
        self.db = database

    # -- reading -------------------------------------------------------------------------------------
    def _dataset(self, s: Session, row: DatasetRow) -> Dataset:
        latest, count = s.execute(
            sa.select(sa.func.max(VersionRow.version), sa.func.count(VersionRow.id)).where(
                VersionRow.dataset_id == row.id
            )
        ).one()
        tags = {t.key: t.value for t in s.scalars(sa.select(TagRow).where(TagRow.dataset_id == row.id))}
        return Dataset(
            row.id,
            row.name,
            row.description,
            tags,
            latest or 0,
            count,
            row.create_time,
            row.update_time,
            row.created_by,
        )

    def _version(self, s: Session, row: VersionRow) -> DatasetVersion:
        splits = [
            self._split(row, sr)
            for sr in s.scalars(
                sa.select(SplitRow).where(SplitRow.version_id == row.id).order_by(SplitRow.create_time)
            )
        ]
        return DatasetVersion(
            dataset_id=row.dataset_id,
            version=row.version,
            source=row.source,
            filename=row.filename,
            format=DataFormat(row.format),
            compression=Compression(row.compression),
            original_key=row.original_key,
            original_uri=row.original_uri,
            canonical_key=row.canonical_key,
            canonical_uri=row.canonical_uri,
            key_prefix=row.key_prefix,
            sha256=row.sha256,
            size_bytes=row.size_bytes,
            row_count=row.row_count,
            columns=columns_from_json(row.columns_json),
            task=task_from_json(row.task_json),
            profile=json.loads(row.profile_json),
            splits=splits,
            create_time=row.create_time,
            created_by=row.created_by,
        )

    @staticmethod
    def _split(version: VersionRow, row: SplitRow) -> Split:
        return Split(
            row.id,
            row.name or "",
            version.dataset_id,
            version.version,
            spec_from_json(row.spec_json),
            row.train_rows,
            row.validation_rows,
            row.test_rows,
            row.create_time,
            row.key,
        )

    def _dataset_row(self, s: Session, dataset_id: str = "", name: str = "") -> DatasetRow:
        if dataset_id:
            row = s.get(DatasetRow, dataset_id)
            if row is None:
                raise NotFound("dataset", dataset_id)
            return row
        row = s.scalar(sa.select(DatasetRow).where(DatasetRow.name == name))
        if row is None:
            raise NotFound("dataset", name)
        return row

    def _version_row(self, s: Session, dataset_id: str, version: int) -> VersionRow:
        query = sa.select(VersionRow).where(VersionRow.dataset_id == dataset_id)
        if version:
            row = s.scalar(query.where(VersionRow.version == version))
        else:
            row = s.scalar(query.order_by(VersionRow.version.desc()).limit(1))
        if row is None:
            raise NotFound("dataset version", f"{dataset_id}@{version or 'latest'}")
        return row

    def get(self, dataset_id: str = "", name: str = "", version: int = 0) -> tuple[Dataset, DatasetVersion]:
        with self.db.session() as s:
            row = self._dataset_row(s, dataset_id, name)
            return self._dataset(s, row), self._version(s, self._version_row(s, row.id, version))

    def find_by_sha(self, name: str, sha256: str) -> tuple[Dataset, DatasetVersion] | None:
        with self.db.session() as s:
            row = s.scalar(sa.select(DatasetRow).where(DatasetRow.name == name))
            if row is None:
                return None
            version = s.scalar(
                sa.select(VersionRow).where(VersionRow.dataset_id == row.id, VersionRow.sha256 == sha256)
            )
            return None if version is None else (self._dataset(s, row), self._version(s, version))

    def list_datasets(
        self, page_size: int, offset: int, name_prefix: str, tags: dict, order_by: str
    ) -> tuple[list[Dataset], bool]:
        column, descending = _order(order_by)
        query = sa.select(DatasetRow)
        if name_prefix:
            escaped = name_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(DatasetRow.name.like(escaped + "%", escape="\\"))
        for key, value in tags.items():
            query = query.where(
                sa.exists().where(
                    TagRow.dataset_id == DatasetRow.id, TagRow.key == key, TagRow.value == value
                )
            )
        query = (
            query.order_by(column.desc() if descending else column.asc(), DatasetRow.id)
            .offset(offset)
            .limit(page_size + 1)
        )
        with self.db.session() as s:
            rows = list(s.scalars(query))
            return [self._dataset(s, r) for r in rows[:page_size]], len(rows) > page_size

    def list_versions(
        self, dataset_id: str, page_size: int, offset: int
    ) -> tuple[list[DatasetVersion], bool]:
        with self.db.session() as s:
            self._dataset_row(s, dataset_id)
            rows = list(
                s.scalars(
                    sa.select(VersionRow)
                    .where(VersionRow.dataset_id == dataset_id)
                    .order_by(VersionRow.version.desc())
                    .offset(offset)
                    .limit(page_size + 1)
                )
            )
            return [self._version(s, r) for r in rows[:page_size]], len(rows) > page_size

    # -- writing -------------------------------------------------------------------------------------
    def add_version(
        self, name: str, description: str, tags: dict, created_by: str, version: DatasetVersion
    ) -> tuple[Dataset, DatasetVersion, bool]:
        """Insert `version` under dataset `name` (created if new) with the next number. Returns the
        existing version instead (created False) when one with the same sha256 exists already, also
        when it was inserted by a racing upload a moment ago."""
        for _ in range(10):
            existing = self.find_by_sha(name, version.sha256)
            if existing is not None:
                return (*existing, False)
            try:
                return (
                    *self.db.transaction(
                        lambda s: self._insert(s, name, description, tags, created_by, version)
                    ),
                    True,
                )
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
                # lost a race: the name, the version number or the sha256; look again
        raise AlreadyExists("dataset version", name, "too many concurrent uploads to this dataset; try again")

    def _insert(self, s: Session, name, description, tags, created_by, v: DatasetVersion):
        row = s.scalar(sa.select(DatasetRow).where(DatasetRow.name == name))
        now = utcnow()
        if row is None:
            row = DatasetRow(
                id=str(uuid.uuid4()),
                name=name,
                description=description,
                created_by=created_by,
                create_time=now,
                update_time=now,
            )
            s.add(row)
            s.flush()
        else:
            row.update_time = now
            if description:
                row.description = description
        for key, value in tags.items():
            s.merge(TagRow(dataset_id=row.id, key=key, value=value))
        number = (
            s.scalar(sa.select(sa.func.max(VersionRow.version)).where(VersionRow.dataset_id == row.id)) or 0
        ) + 1
        vrow = VersionRow(
            dataset_id=row.id,
            version=number,
            source=v.source,
            filename=v.filename,
            format=v.format.value,
            compression=v.compression.value,
            original_key=v.original_key,
            original_uri=v.original_uri,
            canonical_key=v.canonical_key,
            canonical_uri=v.canonical_uri,
            key_prefix=v.key_prefix,
            sha256=v.sha256,
            size_bytes=v.size_bytes,
            row_count=v.row_count,
            columns_json=columns_to_json(v.columns),
            task_json=task_to_json(v.task),
            profile_json=json.dumps(v.profile),
            created_by=created_by,
            create_time=now,
        )
        s.add(vrow)
        s.flush()
        return self._dataset(s, row), self._version(s, vrow)

    def update_schema(
        self, dataset_id: str, version: int, columns: list[Column], task: TaskInference | None, profile: dict
    ) -> DatasetVersion:
        def work(s: Session):
            row = self._version_row(s, dataset_id, version)
            row.columns_json, row.task_json, row.profile_json = (
                columns_to_json(columns),
                task_to_json(task),
                json.dumps(profile),
            )
            self._dataset_row(s, dataset_id).update_time = utcnow()
            s.flush()
            return self._version(s, row)

        return self.db.transaction(work)

    def find_split(
        self, dataset_id: str, version: int, spec: SplitSpec, name: str
    ) -> tuple[Split | None, Split | None]:
        """(split with the same spec, split with the same name)."""
        spec_json = spec_to_json(spec)
        with self.db.session() as s:
            vrow = self._version_row(s, dataset_id, version)
            same_spec = s.scalar(
                sa.select(SplitRow).where(SplitRow.version_id == vrow.id, SplitRow.spec_json == spec_json)
            )
            same_name = (
                s.scalar(sa.select(SplitRow).where(SplitRow.version_id == vrow.id, SplitRow.name == name))
                if name
                else None
            )
            return (
                self._split(vrow, same_spec) if same_spec else None,
                self._split(vrow, same_name) if same_name else None,
            )

    def add_split(self, dataset_id: str, version: int, split: Split, profiles: dict[str, dict]) -> Split:
        """Store `split` with the profiles of its parts ({part value: profile})."""

        def work(s: Session):
            vrow = self._version_row(s, dataset_id, version)
            row = SplitRow(
                id=split.split_id,
                version_id=vrow.id,
                name=split.name or None,
                spec_json=spec_to_json(split.spec),
                train_rows=split.train_rows,
                validation_rows=split.validation_rows,
                test_rows=split.test_rows,
                key=split.key,
                create_time=split.create_time,
                profiles_json=json.dumps(profiles),
            )
            s.add(row)
            s.flush()
            return self._split(vrow, row)

        return self.db.transaction(work)

    def split_profile(self, dataset_id: str, version: int, split_id: str, part: str) -> dict | None:
        """The stored profile of one part of a split; None for a split stored without profiles."""

        with self.db.session() as s:
            vrow = self._version_row(s, dataset_id, version)
            row = s.get(SplitRow, split_id)
            if row is None or row.version_id != vrow.id:
                raise NotFound("split", split_id)
            return json.loads(row.profiles_json)[part] if row.profiles_json else None

    def get_split(self, dataset_id: str, version: int, split_id: str) -> Split:
        with self.db.session() as s:
            vrow = self._version_row(s, dataset_id, version)
            row = s.get(SplitRow, split_id)
            if row is None or row.version_id != vrow.id:
                raise NotFound("split", split_id)
            return self._split(vrow, row)

    def delete(self, dataset_id: str, version: int) -> list[DatasetVersion]:
        """Remove one version (or all, version 0) and the dataset when none is left; returns them."""

        def work(s: Session):
            row = self._dataset_row(s, dataset_id)
            query = sa.select(VersionRow).where(VersionRow.dataset_id == row.id)
            if version:
                query = query.where(VersionRow.version == version)
            vrows = list(s.scalars(query))
            if version and not vrows:
                raise NotFound("dataset version", f"{dataset_id}@{version}")
            gone = [self._version(s, v) for v in vrows]
            for v in vrows:
                s.execute(sa.delete(SplitRow).where(SplitRow.version_id == v.id))
                s.delete(v)
            s.flush()
            left = s.scalar(sa.select(sa.func.count(VersionRow.id)).where(VersionRow.dataset_id == row.id))
            if not left:
                s.execute(sa.delete(TagRow).where(TagRow.dataset_id == row.id))
                s.delete(row)
            return gone

        return self.db.transaction(work)

    def counts(self) -> tuple[int, int]:
        """(datasets, versions) in the database; for tests and health."""
        with self.db.session() as s:
            return (
                s.scalar(sa.select(sa.func.count(DatasetRow.id))),
                s.scalar(sa.select(sa.func.count(VersionRow.id))),
            )


def _order(order_by: str):
    text = (order_by or "update_time desc").strip().lower().split()
    if (
        not text
        or text[0] not in _ORDERS
        or len(text) > 2
        or (len(text) == 2 and text[1] not in ("asc", "desc"))
    ):
        raise InvalidArgument(
            "order_by", f"must be one of {', '.join(_ORDERS)} with optional ' desc', got {order_by!r}"
        )
    return _ORDERS[text[0]], len(text) == 2 and text[1] == "desc"
