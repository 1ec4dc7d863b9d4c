"""Holding the content of tracked files and images in the run store, and reading it back.

``track_this`` hands each ``trackhook.File`` / ``trackhook.Image`` to a ``ContentHolder`` before
the call's line reaches the spool: the content is copied (a reflink where the file system can
share the blocks, a copy otherwise) and hashed in one pass, into::

    <store>/<run_id>/files/<sha256>/<name>

The copy is what makes "changing or deleting the original afterwards changes nothing" true: a
hard link would share the original's inode, and a checkpoint rewritten in place would change the
held content under the tracker. A reflink (``FICLONE``: Btrfs, XFS, bcachefs, overlayfs on them)
shares blocks copy-on-write, so it is both cheap and safe. A copy is hashed as it is written;
after a reflink the original is hashed (its pages are usually in memory), and the clone itself
when the original's size, mtime or ctime moved meanwhile: a rewrite of the same size within one
timestamp tick would go unseen, which only a hash of the clone could rule out (not done: it would
read every byte of a large checkpoint again). Content is addressed by its SHA-256, so tracking the
same bytes under the same name again holds them once.

The spool line then holds, at the value's key, the record the run log shows (``FILE_*`` fields of
``trackhook.formats``) and names the key in its ``"f"`` list; delivery turns it into a
``FileRecord`` whose ``path`` is the held copy.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeGuard

from trackhook import formats
from trackhook.errors import InvalidValueError
from trackhook.files import File, Image, TrackedContent
from trackhook.limits import TrackerLimits, is_normal_path
from trackhook.records import FileRecord

__all__ = [
    "ContentHolder",
    "held_path",
    "held_usage",
    "hold_all",
    "is_file_record",
    "leaves_of",
    "safe_file_name",
    "stored_file_path",
]

FILES_FOLDER = "files"
_CHUNK = 1 << 20
_FICLONE = 0x40049409
"""``ioctl`` request of Linux's ``FICLONE`` (``_IOW(0x94, 9, int)``): share the blocks of a file."""
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_HEX64 = re.compile(r"[0-9a-f]{64}")
_Digest = tuple[str, int]
"""The hex SHA-256 of some content, and its size in bytes."""


def safe_file_name(name: str) -> str:
    """``name`` as one file name: no separator, and never ``.`` or ``..`` (a folder above)."""
    safe = "".join(char if char.isalnum() or char in "-_." else "_" for char in name)
    return safe if safe.strip(".") else "_" * (len(safe) or 1)


def stored_file_path(file: FileRecord, folders: TrackerLimits | None = None) -> str:
    """Where a tracker that keeps files by path stores a tracked one: ``<key>/step_<s>/<name>``
    (MLflow's artifacts, W&B's run files). ``folders`` makes the key a folder the tracker takes,
    where its declared limits have not already (the key as a relative path that stays inside)."""
    folder = folders.storable_key(file.key) if folders is not None else file.key
    return f"{folder}/step_{file.step}/{safe_file_name(file.name)}"


@dataclass(frozen=True)
class _Held:
    """One content held for a ``track_this`` call: its record, where it goes, and the new file
    that holds it until the whole call is accepted (``ContentHolder.place``)."""

    record: dict[str, Any]
    path: Path
    incoming: Path


class ContentHolder:
    """Copies tracked content into ``<store>/<run_id>/files`` (see the module's documentation)."""

    def __init__(self, store_root: Path, run_id: str) -> None:
        self._folder = store_root / run_id / FILES_FOLDER
        self._relative = f"{run_id}/{FILES_FOLDER}"

    def hold(self, key: str, content: TrackedContent) -> _Held:
        """Hold ``content`` tracked at ``key``; ``InvalidValueError`` naming both when it cannot
        be read (the store's own failures are ``OSError``)."""
        if isinstance(content, File):
            return self._hold_file(key, content.path, "file")
        assert isinstance(content, Image)
        from trackhook.images import png_of, readable_image_path

        path = readable_image_path(key, content.data)
        if path is not None:
            return self._hold_file(key, path, "image")
        data = png_of(key, content.data)
        name = f"{safe_file_name(key)}.png"
        return self._store(name, "image", lambda out: _write_bytes(data, out))

    def _hold_file(self, key: str, path: Path, kind: str) -> _Held:
        try:
            # O_NONBLOCK: a FIFO given by mistake is refused below instead of waiting for a writer
            source = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as error:
            raise InvalidValueError(key, f"{str(path)!r} cannot be read: {_why(error)}") from None
        try:
            if not _is_regular_file(source):
                raise InvalidValueError(
                    key, f"{str(path)!r} is not a file (a folder?): track a file, or an archive"
                )
            name = safe_file_name(path.name)
            return self._store(name, kind, lambda out: _clone_or_copy(key, path, source, out))
        finally:
            os.close(source)

    def _store(self, name: str, kind: str, fill: Callable[[int], _Digest | None]) -> _Held:
        """Write the content with ``fill(descriptor)`` into a new file beside its place: ``place``
        moves it there once the call is accepted whole (or drops it, when that content is held
        already under that name), ``forget`` drops it.

        ``fill`` returns the content's digest and size when it saw every byte it wrote; after a
        reflink, which shares blocks unseen, the new file is read to hash it.
        """
        self._folder.mkdir(parents=True, exist_ok=True)
        temporary = self._folder / f".incoming-{uuid.uuid4().hex}"
        try:
            out = os.open(temporary, _NEW_FILE_FLAGS, 0o644)
            try:
                seen = fill(out)
            finally:
                os.close(out)
            digest, size = seen if seen is not None else _sha256_of(temporary)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        record = {
            formats.FILE_PATH: f"{self._relative}/{digest}/{name}",
            formats.FILE_NAME: name,
            formats.FILE_KIND: kind,
            formats.FILE_SHA256: digest,
            formats.FILE_SIZE: size,
        }
        return _Held(record, self._folder / digest / name, temporary)

    def place(self, held: _Held) -> None:
        """Move the call's new file to its place, or drop it when the same content is there.

        Only a call that was accepted whole places its files, and a placed file is never removed:
        another call (another thread) that holds the same content points to the same place.
        """
        try:
            if not _holds(held.path, held.record[formats.FILE_SIZE]):
                held.path.parent.mkdir(exist_ok=True)
                os.replace(held.incoming, held.path)
        finally:
            held.incoming.unlink(missing_ok=True)

    def forget(self, held: _Held) -> None:
        """Drop the call's new file: the call was refused, nothing of it is recorded."""
        held.incoming.unlink(missing_ok=True)


def hold_all(holder: ContentHolder, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each file or image replaced by its held record; all or nothing: the call's
    files are placed only once every value of it is held, and dropped on a failure."""
    done: list[_Held] = []

    def held(key: str, content: TrackedContent) -> dict[str, Any]:
        item = holder.hold(key, content)
        done.append(item)
        return item.record

    try:
        replaced = {key: _replace(key, value, held) for key, value in values.items()}
        for item in done:
            holder.place(item)
    except BaseException:
        for item in done:
            holder.forget(item)  # what is placed stays: it may be another call's too
        raise
    return replaced


def _replace(key: str, value: Any, held: Callable[[str, TrackedContent], dict[str, Any]]) -> Any:
    if isinstance(value, TrackedContent):
        return held(key, value)
    if type(value) is dict:
        return {inner: _replace(f"{key}.{inner}", item, held) for inner, item in value.items()}
    return value


def is_file_record(value: object) -> TypeGuard[dict[str, Any]]:
    """Whether ``value`` is a held file's record as the spool holds it: planted lines never
    point a tracker outside the store's ``files`` folders."""
    if type(value) is not dict:
        return False
    path, name = value.get(formats.FILE_PATH), value.get(formats.FILE_NAME)
    size, digest = value.get(formats.FILE_SIZE), value.get(formats.FILE_SHA256)
    return (
        isinstance(path, str)
        and is_normal_path(path)
        and path.split("/")[1:2] == [FILES_FOLDER]
        and isinstance(name, str)
        and path.endswith(f"/{name}")
        and value.get(formats.FILE_KIND) in ("file", "image")
        and isinstance(digest, str)
        and _HEX64.fullmatch(digest) is not None
        and type(size) is int
        and size >= 0
    )


def leaves_of(key: str, value: Any) -> Iterator[tuple[str, Any]]:
    """``values.flatten`` for the run log's values, which name no files: a held file's record is
    known by its shape, and is a leaf."""
    if type(value) is dict and not is_file_record(value):
        for inner_key, inner in value.items():
            yield from leaves_of(f"{key}.{inner_key}", inner)
    else:
        yield key, value


def held_path(store_root: Path, record: Mapping[str, Any]) -> Path:
    """The held copy a file record points to, as an absolute path."""
    return store_root.absolute() / str(record[formats.FILE_PATH])


def held_usage(store_root: Path, run_id: str) -> dict[str, Any] | None:
    """What the run's held files take on disk, for the run log; ``None`` when it holds none."""
    folder = store_root / run_id / FILES_FOLDER
    count = size = 0
    try:
        for entry in folder.glob("*/*"):
            if entry.is_file() and not entry.is_symlink():
                count += 1
                size += entry.stat().st_size
    except OSError:
        return None
    if not count:
        return None
    return {
        formats.HELD_FOLDER: f"{run_id}/{FILES_FOLDER}",
        formats.HELD_COUNT: count,
        formats.HELD_BYTES: size,
    }


def _holds(path: Path, size: int) -> bool:
    """Whether ``path`` is a file of ``size`` bytes: the same content, by its name's digest."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return False
    return stat.S_ISREG(found.st_mode) and found.st_size == size


def _is_regular_file(descriptor: int) -> bool:
    return stat.S_ISREG(os.fstat(descriptor).st_mode)


def _clone_or_copy(key: str, path: Path, source: int, out: int) -> _Digest | None:
    """Share the source's blocks (a reflink) where the file system can, else copy and hash them
    in one pass.

    After a reflink, the original is hashed rather than the clone: its pages are usually in
    memory (a checkpoint just saved), the clone's never are. That digest is the clone's only if
    the original did not change from before the clone to after the hash; otherwise ``None`` says
    to hash the clone itself.
    """
    before = os.fstat(source)
    try:
        fcntl.ioctl(out, _FICLONE, source)
    except OSError:
        return _copy(key, path, source, out)  # no reflinks here (ext4, tmpfs, ...): copy
    try:
        seen = _pass_over(source, None)
    except _UnreadableSource:
        return None  # the clone is whole: hash it instead
    return seen if _same_version(before, os.fstat(source)) else None


def _copy(key: str, path: Path, source: int, out: int) -> _Digest:
    try:
        return _pass_over(source, out)
    except _UnreadableSource as error:
        reason = f"{str(path)!r} cannot be read: {_why(error.cause)}"
        raise InvalidValueError(key, reason) from None


class _UnreadableSource(Exception):
    def __init__(self, cause: OSError) -> None:
        self.cause = cause


def _pass_over(source: int, out: int | None) -> _Digest:
    """Hash ``source`` from its start, writing it to ``out`` on the way if given.

    Raises ``_UnreadableSource`` when ``source`` cannot be read, and ``OSError`` when ``out``
    cannot be written.
    """
    digest = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    while True:
        try:
            count = os.preadv(source, [buffer], size)
        except OSError as error:
            raise _UnreadableSource(error) from error
        if not count:
            return digest.hexdigest(), size
        chunk = memoryview(buffer)[:count]
        digest.update(chunk)
        if out is not None:
            _write_all(out, chunk)
        size += count


def _same_version(before: os.stat_result, after: os.stat_result) -> bool:
    """Whether a file was not written between two ``fstat`` calls (by its times and size)."""
    return (before.st_mtime_ns, before.st_ctime_ns, before.st_size) == (
        after.st_mtime_ns,
        after.st_ctime_ns,
        after.st_size,
    )


def _write_bytes(data: bytes, out: int) -> _Digest:
    _write_all(out, memoryview(data))
    return hashlib.sha256(data).hexdigest(), len(data)


def _write_all(out: int, view: memoryview) -> None:
    while view:
        view = view[os.write(out, view) :]


def _sha256_of(path: Path) -> _Digest:
    """The digest of the held copy itself (after a reflink whose source changed meanwhile); a
    failure to read it is the store's (``OSError``)."""
    held = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _pass_over(held, None)
    except _UnreadableSource as error:
        raise error.cause from None
    finally:
        os.close(held)


def _why(error: OSError) -> str:
    return error.strerror or type(error).__name__
