"""Atomic writers: write to a temporary sibling, then rename, so nothing is ever half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from oa_kit.errors import OAKitError


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    tmp_path.chmod(0o666 & ~_umask())  # mkstemp creates 0600; give the file the permissions a plain open() would
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces ``path`` whole, on error it is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target}: already exists; pass overwrite=True to replace it")
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def replace_dir(build: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished folder ``build`` onto ``target``; an existing ``target`` is set aside first and removed only
    once ``build`` is in its place (two renames on one filesystem: never a half-replaced folder)."""
    build, target = Path(build), Path(target)
    if not target.exists():
        os.replace(build, target)
        return
    old = target.with_name(f".{target.name}.old")
    if old.exists():
        shutil.rmtree(old)
    os.replace(target, old)
    os.replace(build, target)
    shutil.rmtree(old)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def check_writable_parent(path: str | os.PathLike, what: str | None = "--out") -> Path:
    """Check, before any work, that ``path`` can be created: no file among its parents and the nearest existing
    folder writable (probed with an unnamed temporary file, so nothing is left behind); returns ``path``.
    ``what`` names the argument in messages (None: the path alone)."""
    target = Path(path)
    name = f"{what}: {target}" if what else str(target)
    ancestor = target.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OAKitError(f"{name}: {ancestor} is a file; expected a writable folder there")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise OAKitError(f"{name}: cannot write in {ancestor} ({exc.strerror}); expected a writable location") from None
    return target


def check_output_dir(path: str | os.PathLike, overwrite: bool = True, what: str = "--out") -> Path:
    """Check an output FOLDER before any work: not an existing file, creatable (see :func:`check_writable_parent`),
    and, unless ``overwrite``, not an existing non-empty folder; returns it as a Path."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise OAKitError(f"{what}: {target} is a file; expected a folder (new or existing)")
    if not overwrite and target.is_dir() and any(target.iterdir()):
        raise OAKitError(f"{what}: {target} exists and is not empty; expected a new folder or --overwrite")
    return check_writable_parent(target, what)


def check_output_file(path: str | os.PathLike, suffixes: tuple[str, ...], what: str = "--out") -> Path:
    """Check an output FILE before any work: one of ``suffixes`` (e.g. ``(".csv",)``), not a folder, creatable;
    returns it as a Path."""
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise OAKitError(
            f"{what}: {target}: unsupported suffix {target.suffix!r}; expected a file name ending in "
            f"{' or '.join(suffixes)}"
        )
    if target.is_dir():
        raise OAKitError(f"{what}: {target} is a folder; expected a {' or '.join(suffixes)} file name")
    return check_writable_parent(target, what)
