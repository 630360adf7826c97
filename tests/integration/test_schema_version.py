"""The embedded server skips Alembic when its database is already at the newest schema."""

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from pairpilot.storage.migrate import MIGRATIONS, migrate
from pairpilot.storage.schema_version import HEAD, at_head
from pairpilot.storage.sql import create_engine

pytestmark = pytest.mark.anyio


def test_head_is_alembics_newest_revision():
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


async def test_a_new_database_is_not_at_head_and_a_migrated_one_is(tmp_path: Path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        assert not await at_head(engine)
        await migrate(engine)
        assert await at_head(engine)
    finally:
        await engine.dispose()
