"""A new sqlite store is created whole or not at all; a store left half-migrated is named as such.

MLflow creates a missing sqlite database in place: it creates the tables, then migrates them with
alembic, which on sqlite copies each altered table through ``_alembic_tmp_<table>`` and commits
step by step. A process that ends in the middle (killed, or exiting while the delivery thread, a
daemon thread, still migrates) leaves a database that no MLflow client can open again ("table
_alembic_tmp_experiments already exists"). So this tracker creates and migrates a new database
under a temporary name in the same folder, ``.<name>.<pid>-<random>.creating``, and links it to
its final name only if that name is still free (``os.link`` never replaces a file): an interrupted
process leaves a stray temporary file, never a broken store, and of two processes creating the
same store at once one links its database and the other uses it. Stray files of processes that
are gone are removed the next time.

Only the tables and their migrations are made here; MLflow's store adds its default experiment
when it opens the final file, so the artifact root it records (``./mlruns`` of the working
folder, or the configured one) is the one it would have recorded anyway.

This module imports MLflow's database helpers, and so is imported only on the delivery side.
Two of them are private (MLflow's public ``SqlAlchemyStore`` would create the tables in place,
under the final name), reached through ``_mlflow_internals``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mlflow.store.db.utils import create_sqlalchemy_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from trackhook.processes import process_exists
from trackhook_mlflow._mlflow_internals import initialize_tables, latest_schema_revision
from trackhook_mlflow._tracker import MlflowTrackerError

__all__ = ["prepare_sqlite_store"]

_SUFFIX = ".creating"
_STRAY_AFTER = 60.0
"""Seconds without a write after which a temporary file of a process that is gone is removed (a
migration writes to its file all along; the wait also spares a file on a shared folder whose
process runs on another machine)."""
_HALF_MIGRATED_PREFIX = "_alembic_tmp_"
_EXPERIMENT_TABLES = frozenset({"experiments", f"{_HALF_MIGRATED_PREFIX}experiments"})


def prepare_sqlite_store(tracking_uri: str) -> None:
    """Make sure the sqlite database of ``tracking_uri`` exists whole, or say why it cannot.

    Any other tracking URI (a server, a folder, an in-memory or ``uri=true`` sqlite database) is
    left to MLflow as it is.
    """
    database = _database_file(tracking_uri)
    if database is None:
        return
    if database.exists():
        _refuse_half_migrated(database)
        return
    database.parent.mkdir(parents=True, exist_ok=True)
    _remove_stray_temporaries(database)
    _create_whole(database)


def _database_file(tracking_uri: str) -> Path | None:
    """The file of a sqlite tracking URI, as MLflow would open it; None for anything else."""
    try:
        url = make_url(tracking_uri)
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or "uri" in url.query:
        return None
    if not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _create_whole(database: Path) -> None:
    """Create and migrate the database under a temporary name, then give it its final name.

    Another process may have created the store meanwhile: its database is kept and this one
    dropped. A process killed before the link leaves only its temporary file.
    """
    temporary = database.with_name(
        f".{database.name}.{os.getpid()}-{secrets.token_hex(4)}{_SUFFIX}"
    )
    try:
        engine = create_sqlalchemy_engine(f"sqlite:///{temporary.absolute()}")
        try:
            initialize_tables(engine)
        finally:
            engine.dispose()  # the last connection closed: every change is in the file itself
        _give_final_name(temporary, database)
    finally:
        _remove_with_journal(temporary)


def _give_final_name(temporary: Path, database: Path) -> None:
    """Link the new database to its final name unless another process created the store first
    (its database is then the store, and this one is dropped)."""
    try:
        os.link(temporary, database)
    except FileExistsError:
        pass
    except OSError:
        # A file system without hard links: the check and the rename are two steps there.
        if not database.exists():
            os.rename(temporary, database)


def _remove_stray_temporaries(database: Path) -> None:
    """Remove temporary files left by processes that were stopped while creating this store."""
    prefix = f".{database.name}."
    for path in database.parent.iterdir():
        if path.name.startswith(prefix) and path.name.endswith(_SUFFIX) and _is_stray(path):
            _remove_with_journal(path)


def _is_stray(path: Path) -> bool:
    """Whether no process is creating ``path`` any more: its process is gone, its file idle."""
    pid_text = path.name.removesuffix(_SUFFIX).rsplit(".", 1)[-1].split("-", 1)[0]
    if not pid_text.isdigit() or process_exists(int(pid_text)):
        return False
    try:
        idle = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return idle > _STRAY_AFTER


def _remove_with_journal(path: Path) -> None:
    """Remove a temporary database and the journal files sqlite may have left beside it."""
    for name in (path.name, f"{path.name}-journal", f"{path.name}-wal", f"{path.name}-shm"):
        with contextlib.suppress(FileNotFoundError):
            path.with_name(name).unlink()


def _refuse_half_migrated(database: Path) -> None:
    """Raise ``MlflowTrackerError`` if an interrupted migration left the store unusable.

    Decided on the database itself: alembic's ``_alembic_tmp_<table>`` exists only while a
    migration runs; one left behind in a store whose schema is not MLflow's latest makes every
    MLflow client fail. Dropping it is no repair: on sqlite the steps of a migration before it
    were committed one by one, so the migration cannot run again. A store that holds no experiment
    was being created and can simply be removed; one that holds data needs the copy taken before
    the upgrade. A migration running in another process right now looks the same for a moment;
    the core retries the tracker, so that case passes on its next try.
    """
    try:
        state = _StoreState.read(database)
    except sqlite3.Error:
        return  # not a database this check can read: MLflow's own error says more
    if not state.half_migrated_tables or state.schema == latest_schema_revision():
        return
    found = (
        f"the MLflow sqlite store {database} was left half-migrated by a process stopped while "
        f"it created or upgraded it (it holds {', '.join(state.half_migrated_tables)}): no "
        "MLflow client can open it"
    )
    if state.experiments:
        raise MlflowTrackerError(
            f"{found}. Restore the copy taken before the upgrade, then run `mlflow db upgrade "
            f"sqlite:///{database.absolute()}`; the values wait in the spool until then "
            "(`trackhook sync` delivers them)"
        )
    raise MlflowTrackerError(
        f"{found}. It holds no experiment yet: remove the file ({database}) and the tracker "
        "creates the store again, whole; the values wait in the spool until then (`trackhook "
        "sync` delivers them)"
    )


@dataclass(frozen=True)
class _StoreState:
    """What an existing sqlite store holds that tells whether a migration was interrupted."""

    half_migrated_tables: list[str]
    """alembic's ``_alembic_tmp_*`` copies of tables."""
    schema: str | None
    """The alembic revision the store records."""
    experiments: int
    """Experiments held, in ``experiments`` or alembic's copy of it."""

    @classmethod
    def read(cls, database: Path) -> _StoreState:
        """Read the state without writing to the file (opened read-only)."""
        location = f"{database.absolute().as_uri()}?mode=ro"
        with contextlib.closing(sqlite3.connect(location, uri=True)) as connection:
            tables = {
                str(name)
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            }
            schema = (
                connection.execute("SELECT version_num FROM alembic_version").fetchone()
                if "alembic_version" in tables
                else None
            )
            experiments = sum(
                connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in _EXPERIMENT_TABLES & tables
            )
        return cls(
            sorted(name for name in tables if name.startswith(_HALF_MIGRATED_PREFIX)),
            str(schema[0]) if schema else None,
            experiments,
        )
