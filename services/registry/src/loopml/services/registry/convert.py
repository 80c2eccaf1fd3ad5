"""Protobuf <-> domain converters of the registry (the only module besides api.py using *_pb2).

Sub-documents the registry stores without interpreting (signature, metrics, params, lineage,
feature importances) cross as the protobuf JSON mapping with proto field names.
"""

from __future__ import annotations

from datetime import datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from loopml.common.v1 import metric_pb2, refs_pb2, value_pb2
from loopml.common.v1 import model_pb2 as common_model_pb2
from loopml.registry.v1 import model_pb2
from loopml.registry.v1 import registry_service_pb2 as service_pb2
from loopml.services.registry.core import (
    AliasChange,
    Event,
    EventType,
    Model,
    ModelVersion,
    Selector,
    VersionSpec,
    VersionStatus,
)


def _to_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _from_dict(data: dict, message_class):
    return json_format.ParseDict(data, message_class(), ignore_unknown_fields=True)


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _flavor_name(value: int) -> str:
    return model_pb2.ModelFlavor.Name(value).removeprefix("MODEL_FLAVOR_")


def flavor_to_proto(name: str) -> int:
    return model_pb2.ModelFlavor.Value(f"MODEL_FLAVOR_{name}")


def status_to_proto(status: VersionStatus) -> int:
    return model_pb2.ModelVersionStatus.Value(f"MODEL_VERSION_STATUS_{status.value}")


def status_from_proto(value: int) -> VersionStatus:
    return VersionStatus(model_pb2.ModelVersionStatus.Name(value).removeprefix("MODEL_VERSION_STATUS_"))


def event_type_from_proto(value: int) -> EventType:
    return EventType(model_pb2.ModelEventType.Name(value).removeprefix("MODEL_EVENT_TYPE_"))


def event_type_to_proto(value: EventType) -> int:
    return model_pb2.ModelEventType.Value(f"MODEL_EVENT_TYPE_{value.value}")


# -- domain -> proto -------------------------------------------------------------------------------


def model_to_proto(model: Model) -> model_pb2.Model:
    return model_pb2.Model(
        name=model.name,
        description=model.description,
        tags=model.tags,
        create_time=_timestamp(model.create_time),
        update_time=_timestamp(model.update_time),
        latest_version=model.latest_version,
        aliases=model.aliases,
        created_by=model.created_by,
    )


def version_to_proto(version: ModelVersion) -> model_pb2.ModelVersion:
    return model_pb2.ModelVersion(
        model_name=version.model_name,
        version=version.version,
        status=status_to_proto(version.status),
        status_message=version.status_message,
        artifact=model_pb2.Artifact(
            uri=version.artifact_uri, sha256=version.sha256, size_bytes=version.size_bytes
        ),
        flavor=flavor_to_proto(version.flavor),
        signature=_from_dict(version.signature, common_model_pb2.ModelSignature),
        metrics=[_from_dict(m, metric_pb2.MetricScore) for m in version.metrics],
        params={k: _from_dict(v, value_pb2.Value) for k, v in version.params.items()},
        lineage=_from_dict(version.lineage, common_model_pb2.Lineage),
        feature_importances=[
            _from_dict(f, metric_pb2.FeatureImportance) for f in version.feature_importances
        ],
        requirements=version.requirements,
        tags=version.tags,
        description=version.description,
        aliases=version.aliases,
        create_time=_timestamp(version.create_time),
        update_time=_timestamp(version.update_time),
        created_by=version.created_by,
    )


def change_to_proto(change: AliasChange) -> model_pb2.AliasChange:
    return model_pb2.AliasChange(
        model_name=change.model_name,
        alias=change.alias,
        previous_version=change.previous_version,
        version=change.version,
        changed_by=change.changed_by,
        change_time=_timestamp(change.change_time),
        reason=change.reason,
    )


def event_to_proto(event: Event) -> model_pb2.ModelEvent:
    message = model_pb2.ModelEvent(
        sequence=event.sequence,
        type=event_type_to_proto(event.type),
        event_time=_timestamp(event.event_time),
        model_name=event.model_name,
        version=event.version,
    )
    if event.model_version is not None:
        message.model_version.CopyFrom(version_to_proto(event.model_version))
    elif event.alias_change is not None:
        message.alias_change.CopyFrom(change_to_proto(event.alias_change))
    elif event.model is not None:
        message.model.CopyFrom(model_to_proto(event.model))
    return message


def event_to_json(event: Event) -> dict:
    """The webhook body: the JSON mapping of ModelEvent."""
    return json_format.MessageToDict(event_to_proto(event), preserving_proto_field_name=True)


# -- proto -> domain -------------------------------------------------------------------------------


def spec_from_header(header: service_pb2.CreateModelVersionHeader) -> VersionSpec:
    return VersionSpec(
        model_name=header.model_name,
        sha256=header.sha256,
        size_bytes=header.size_bytes,
        existing_artifact_uri=header.existing_artifact_uri,
        create_model_if_missing=header.create_model_if_missing,
        flavor=_flavor_name(header.flavor),
        signature=_to_dict(header.signature),
        metrics=[_to_dict(m) for m in header.metrics],
        params={k: _to_dict(v) for k, v in header.params.items()},
        lineage=_to_dict(header.lineage),
        feature_importances=[_to_dict(f) for f in header.feature_importances],
        requirements=dict(header.requirements),
        tags=dict(header.tags),
        description=header.description,
        request_id=header.request_id,
    )


def selector_from_ref(ref: refs_pb2.ModelRef) -> tuple[str, Selector]:
    which = ref.WhichOneof("selector")
    if which == "version":
        return ref.name, Selector(version=ref.version)
    if which == "latest":
        return ref.name, Selector(latest=ref.latest) if ref.latest else Selector(alias="production")
    if which == "alias":
        if ref.alias == "latest":  # reserved: never a real alias
            return ref.name, Selector(latest=True)
        return ref.name, Selector(alias=ref.alias or "production")
    return ref.name, Selector(alias="production")
