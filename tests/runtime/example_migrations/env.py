# The whole env.py of a migrations folder. A service passes its Base.metadata (for autogenerate);
# this example has no models module of its own, the contract tests declare theirs.
from loopml.runtime.db import alembic_env

alembic_env.run(target_metadata=None, version_table="alembic_version_example")
