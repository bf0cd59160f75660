from __future__ import annotations

from pathlib import Path

import pytest

from marketplace.db import MigrationError, load_migrations
from marketplace.settings import Settings


def test_project_migrations_are_numbered_without_gaps() -> None:
    migrations = load_migrations(Settings.from_env({}).migrations_dir)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert all(m.sql.strip() for m in migrations)


def test_migrations_load_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2;")
    (tmp_path / "0001_first.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    loaded = load_migrations(tmp_path)
    assert [(m.version, m.name) for m in loaded] == [(1, "first"), (2, "second")]
    assert loaded[0].checksum != loaded[1].checksum


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (["1_short.sql"], "named NNNN_lower_snake.sql"),
        (["0001_Upper.sql"], "named NNNN_lower_snake.sql"),
        (["0001_a.sql", "0001_b.sql"], "share a version"),
    ],
)
def test_badly_named_migrations_are_refused(tmp_path: Path, files: list[str], reason: str) -> None:
    for name in files:
        (tmp_path / name).write_text("SELECT 1;")
    with pytest.raises(MigrationError, match=reason):
        load_migrations(tmp_path)


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="does not exist"):
        load_migrations(tmp_path / "nowhere")
