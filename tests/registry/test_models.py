"""Models: create, get, list (prefix, tags, order, pages), delete, and their bad input."""

from __future__ import annotations

import pytest

from loopml.client.errors import (
    AlreadyExistsError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
)
from loopml.services.registry.core import MODEL_NAME_PATTERN


def test_create_get_and_delete_model(registry):
    created = registry.client.create_model("churn", description="churn model", tags={"team": "growth"})
    assert created.name == "churn" and created.created_by == "tester" and created.latest_version == 0
    fetched = registry.client.get_model("churn")
    assert fetched.description == "churn model" and dict(fetched.tags) == {"team": "growth"}
    assert fetched.create_time.ToDatetime() == created.create_time.ToDatetime()
    registry.client.delete_model("churn")
    with pytest.raises(NotFoundError):
        registry.client.get_model("churn")


def test_list_models_filters_orders_and_pages(registry):
    for name, team in [("b-model", "x"), ("a-model", "y"), ("c-model", "x"), ("other", "x")]:
        registry.client.create_model(name, tags={"team": team})
    assert [m.name for m in registry.client.list_models()] == ["a-model", "b-model", "c-model", "other"]
    assert [m.name for m in registry.client.list_models(name_prefix="b-")] == ["b-model"]
    assert [m.name for m in registry.client.list_models(tags={"team": "x"})] == [
        "b-model",
        "c-model",
        "other",
    ]
    newest_first = [m.name for m in registry.client.list_models(order_by="create_time desc")]
    assert newest_first == ["other", "c-model", "a-model", "b-model"]
    # pages of 3 then 1, through the raw page tokens
    from loopml.registry.v1 import registry_service_pb2 as pb

    first = registry.client._call("ListModels", pb.ListModelsRequest(page_size=3))
    assert [m.name for m in first.models] == ["a-model", "b-model", "c-model"] and first.next_page_token
    second = registry.client._call(
        "ListModels", pb.ListModelsRequest(page_size=3, page_token=first.next_page_token)
    )
    assert [m.name for m in second.models] == ["other"] and not second.next_page_token


def test_list_models_bad_order_and_token(registry):
    with pytest.raises(InvalidArgumentError) as error:
        registry.client.list_models(order_by="size")
    assert error.value.field_violations[0].field == "order_by"
    from loopml.registry.v1 import registry_service_pb2 as pb

    with pytest.raises(InvalidArgumentError) as error:
        registry.client._call("ListModels", pb.ListModelsRequest(page_token="garbage"))
    assert error.value.field_violations[0].field == "page_token"


def test_duplicate_model_name_is_already_exists(registry):
    registry.client.create_model("dup")
    with pytest.raises(AlreadyExistsError) as error:
        registry.client.create_model("dup")
    assert error.value.resource_name == "dup"
    assert [m.name for m in registry.client.list_models()] == ["dup"]


def test_invalid_model_names_give_the_pattern(registry):
    for name in ["", "-starts-with-dash", "has space", "slash/name", "x" * 129, "ümlaut"]:
        with pytest.raises(InvalidArgumentError) as error:
            registry.client.create_model(name)
        violation = error.value.field_violations[0]
        assert violation.field == "name" and MODEL_NAME_PATTERN in violation.description, name
    assert registry.client.list_models() == []


def test_unknown_model_is_not_found_naming_it(registry):
    with pytest.raises(NotFoundError) as error:
        registry.client.get_model("ghost")
    assert error.value.resource_type == "model" and error.value.resource_name == "ghost"
    with pytest.raises(NotFoundError):
        registry.client.delete_model("ghost")
    with pytest.raises(NotFoundError) as error:
        registry.client.list_versions("ghost")
    assert error.value.resource_name == "ghost"


def test_delete_model_with_versions_needs_force_and_removes_artifacts(registry):
    registry.client.upload_version("m", b"artifact-1", create_model_if_missing=True)
    registry.client.upload_version("m", b"artifact-2")
    registry.client.set_alias("m", "production", 2)
    assert len(registry.model_objects()) == 2
    with pytest.raises(FailedPreconditionError):
        registry.client.delete_model("m")
    assert registry.client.get_model("m").latest_version == 2
    registry.client.delete_model("m", force=True)
    with pytest.raises(NotFoundError):
        registry.client.get_model("m")
    assert registry.model_objects() == []
