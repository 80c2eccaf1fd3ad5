"""Settings fail fast, naming the environment variable, and derive embedded defaults."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loopml.runtime.settings import ServiceSettings, SettingsError, load_settings


def test_bad_values_name_the_variable(monkeypatch):
    monkeypatch.setenv("LOOPML_LISTEN_ADDRESS", "no-port")
    monkeypatch.setenv("LOOPML_MAX_WORKERS", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings)
    assert "LOOPML_LISTEN_ADDRESS" in str(caught.value)
    assert "LOOPML_MAX_WORKERS" in str(caught.value)


def test_embedded_defaults_live_under_the_data_dir(tmp_path):
    settings = ServiceSettings(data_dir=tmp_path)
    assert settings.resolved_database_url() == f"sqlite:///{tmp_path}/loopml.db"
    assert settings.resolved_object_store_url() == f"file://{tmp_path.resolve()}/objects"


def test_database_url_must_be_sqlite_or_postgresql():
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings, database_url="mysql://x")
    assert "LOOPML_DATABASE_URL" in str(caught.value)


def test_service_exits_with_a_clear_message_on_bad_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loopml.services.registry"],
        env={"LOOPML_LISTEN_ADDRESS": "nonsense", "LOOPML_DATA_DIR": str(tmp_path), "PATH": "/usr/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "LOOPML_LISTEN_ADDRESS" in result.stderr
