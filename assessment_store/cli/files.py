"""Files named on the command line: read or written, or one line saying why not.

Every failure is UnusableFileError naming the path and the reason (missing, a
directory, no permission, no space), so no command shows a traceback for a path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from assessment_store.errors import UnusableFileError


def _reason(exc: OSError) -> str:
    # strerror is the system's own words ("No such file or directory"); an OSError
    # raised by Python itself may have none.
    return exc.strerror or str(exc) or type(exc).__name__


def read_bytes(path: Path) -> bytes:
    """The whole file (decoding is the caller's: it reports bad text by line)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UnusableFileError(str(path), f"cannot read it: {_reason(exc)}") from None


@contextmanager
def written_whole(path: Path) -> Iterator[Callable[[str], None]]:
    """A function writing text to ``path``, which is put in place only once all is
    written.

    A half-written export would still be valid JSON lines, so importing it would
    quietly bring back fewer assessments: the text goes to ``.NAME.partial`` beside
    it, renamed over ``path`` on success, deleted on any failure. A path that exists
    but is no regular file (/dev/null, a pipe) is written directly: renaming over it
    would replace the device. It is opened at once, so a bad path is refused before
    any work is done."""
    if path.is_dir():
        raise UnusableFileError(str(path), "cannot write it: Is a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise UnusableFileError(str(path), "cannot write it: Permission denied")
    direct = path.exists() and not path.is_file()
    target = path if direct else path.with_name(f".{path.name}.partial")
    try:
        output = target.open("w", encoding="utf-8")
    except OSError as exc:
        raise _unwritable(path, exc) from None

    def write(text: str) -> None:
        try:
            output.write(text)
        except OSError as exc:  # no space left, quota, a disk gone
            raise _unwritable(path, exc) from None

    def discard() -> None:
        with suppress(OSError):
            output.close()
        if not direct:
            target.unlink(missing_ok=True)

    try:
        yield write
    except BaseException:
        discard()
        raise
    try:
        output.close()  # writes the last buffer: may still find the disk full
        if not direct:
            os.replace(target, path)
    except OSError as exc:
        discard()
        raise _unwritable(path, exc) from None


def _unwritable(path: Path, exc: OSError) -> UnusableFileError:
    return UnusableFileError(str(path), f"cannot write it: {_reason(exc)}")
