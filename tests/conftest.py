"""Root test configuration: shared fixtures come from tests/fixtures as pytest plugins."""

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.postgres",
    "tests.fixtures.stack",
]
