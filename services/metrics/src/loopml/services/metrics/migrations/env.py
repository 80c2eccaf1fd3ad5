from loopml.runtime.db import alembic_env
from loopml.services.metrics.storage import Base

alembic_env.run(Base.metadata, version_table="alembic_version_metrics")
