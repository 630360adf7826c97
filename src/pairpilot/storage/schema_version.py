"""Whether a database is at the newest schema, asked without importing Alembic.

Alembic and Mako cost an embedded server about 3 MB and a second of every start
(bench/README.md, "Where memory goes"); they are needed only when there is something to migrate.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

# The newest migration's revision (storage/migrations/versions); a test holds it to Alembic's head.
HEAD = "0011"


async def at_head(engine: AsyncEngine) -> bool:
    """True when the database's Alembic version is ``HEAD`` (False on a new database)."""
    try:
        async with engine.connect() as conn:
            versions = (
                (await conn.execute(sa.text("SELECT version_num FROM alembic_version")))
                .scalars()
                .all()
            )
    except SQLAlchemyError:  # no version table: a new database
        return False
    return list(versions) == [HEAD]
