"""Files that appear complete or not at all: written under a temporary name in the same folder, then moved into place.

Every atomic write in the project goes through write_atomic: sprites, sheets, walks, model files, manifests,
checkpoints and the training run's links.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path


def temporary(path: Path) -> Path:
    """The temporary name beside `path` that this process writes it under (.NAME.PID.tmp)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def publish(tmp: Path, final: Path, overwrite: bool = True) -> None:
    """Move a complete temporary file into place; without `overwrite`, never replace an existing file
    (FileExistsError naming `final`)."""
    if overwrite:
        os.replace(tmp, final)
        return
    try:
        os.link(tmp, final)  # atomic, and fails if `final` exists, even if another process just wrote it
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
    except OSError:  # a filesystem without hard links
        if final.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(final)) from None
        os.replace(tmp, final)


def write_atomic(path: Path, save: Callable[[Path], None], overwrite: bool = True, durable: bool = False) -> None:
    """Call save(tmp) on a temporary path beside `path`, then move it to `path`. `overwrite=False` never replaces
    an existing file; `durable` flushes the file to disk first, so that a crash leaves the old file or the new one."""
    path = Path(path)
    tmp = temporary(path)
    try:
        save(tmp)
        if durable:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: Path, data: bytes, overwrite: bool = True) -> None:
    write_atomic(path, lambda tmp: tmp.write_bytes(data), overwrite)


def write_text_atomic(path: Path, text: str) -> None:
    write_atomic(path, lambda tmp: tmp.write_text(text))


def link_atomic(src: Path, dest: Path) -> None:
    """`dest` becomes another name for `src`'s current file (a copy where hard links are not possible)."""
    import shutil

    def link(tmp: Path) -> None:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    write_atomic(dest, link)
