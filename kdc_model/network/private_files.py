"""Files no other user can have written: private folders, reads and writes that follow no symlink.

The ONNX export cache (kdc_model.inference.runtime) keeps a network the process will run. Anyone who can write
the folder it lives in could swap that network, or plant a symlink where the export is written and
have it clobber another file. So a cache folder must be a directory owned by this user that group and
others cannot write (`folder_problem`); a cached file is opened without following symlinks and used
only when it is a regular file owned by this user that group and others cannot write
(`read_private`); a file is written under a fresh random name created with O_EXCL | O_NOFOLLOW in
the target's folder, then renamed over the target (`write_atomic`): rename replaces a planted symlink
itself, never what it points to, and readers never see half a file.
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

CACHE_SUBFOLDER = ("kdc_ros", "onnx")
_GROUP_OR_OTHER_WRITE = stat.S_IWGRP | stat.S_IWOTH


class UntrustedFile(OSError):
    """A file or folder that another user could have written, or is not what it should be; says why."""


def folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot hold files this user trusts (None when it can): it must be a directory owned
    by this user that group and others cannot write (a symlink to such a directory is fine: only this
    user can change what is inside it)."""
    try:
        info = os.stat(folder)
    except OSError as err:
        return f"{folder}: {err.strerror}"
    return _ownership_problem(folder, info, "directory", stat.S_ISDIR)


def user_cache_folder() -> tuple[Path | None, str | None]:
    """(the per-user cache folder $XDG_CACHE_HOME/kdc_ros/onnx or ~/.cache/kdc_ros/onnx, created 0700,
    None) or (None, why there is none)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    try:
        # The XDG spec: a relative XDG_CACHE_HOME is invalid and must be ignored.
        root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"
    except RuntimeError as err:  # no home folder (a service user without HOME)
        return None, f"no user cache folder: {err}"
    folder = root
    for name in (None, *CACHE_SUBFOLDER):
        folder = folder if name is None else folder / name
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as err:
            return None, f"cannot create {folder}: {err.strerror}"
    for owned in (root / CACHE_SUBFOLDER[0], folder):
        _tighten(owned)
        problem = folder_problem(owned)
        if problem is not None:
            return None, problem
    return folder, None


def _tighten(folder: Path) -> None:
    """Take group and other write permission off a folder of ours (one made under a umask of 002, as
    Ubuntu gives users): files in it are still checked one by one, so nothing planted before is used."""
    try:
        info = os.stat(folder)
        if info.st_uid == os.geteuid() and info.st_mode & _GROUP_OR_OTHER_WRITE:
            os.chmod(folder, stat.S_IMODE(info.st_mode) & ~_GROUP_OR_OTHER_WRITE)
    except OSError:
        pass  # folder_problem() says what is wrong


def read_private(path: Path, max_bytes: int) -> bytes:
    """The bytes of `path`, refused (UntrustedFile) unless it is a regular file (no symlink followed)
    owned by this user, that group and others cannot write, of at most max_bytes."""
    try:
        # O_NONBLOCK: a FIFO planted under the name must not hang the open.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as err:  # ELOOP: the name is a symlink
        raise UntrustedFile(f"{path}: cannot open without following links: {err.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        problem = _ownership_problem(path, info, "regular file", stat.S_ISREG)
        if problem is not None:
            raise UntrustedFile(problem)
        if info.st_size > max_bytes:
            raise UntrustedFile(f"{path}: {info.st_size} bytes, more than {max_bytes}")
        return file.read(max_bytes + 1)[:max_bytes]


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write `data` to `path` through a new file of a random name in the same folder (O_EXCL | O_NOFOLLOW,
    created with `mode` less the umask), flushed to disk, then renamed over `path`."""
    for _ in range(16):
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
            break
        except FileExistsError:
            continue  # someone holds that name (a planted file or link): draw another
    else:
        raise FileExistsError(f"{path.parent}: no free temporary name after 16 tries")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _ownership_problem(path: Path, info: os.stat_result, kind: str, is_kind) -> str | None:
    if not is_kind(info.st_mode):
        return f"{path}: not a {kind}"
    if info.st_uid != os.geteuid():
        return f"{path}: owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    if info.st_mode & _GROUP_OR_OTHER_WRITE:
        return f"{path}: group or others may write it (mode {stat.S_IMODE(info.st_mode):04o})"
    return None
