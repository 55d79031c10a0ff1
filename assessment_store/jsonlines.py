"""JSON lines as files hold them: numbered as an editor numbers them, each line read
on its own, so that a bad line is reported by its number and the others still are.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence

from pydantic import ValidationError

# A bad line is reported in one line of bounded length: a line with 10,000 unknown
# keys, or a key of a megabyte, must not bury the others.
SHOWN_ERRORS = 5
MAX_FIELD_CHARS = 120


class BadLineError(ValueError):
    """Raised for a line that holds no JSON value we can read; says why."""


def numbered_lines(content: bytes | str) -> Iterator[tuple[int, bytes | str]]:
    """The non-blank lines with their 1-based numbers.

    Split on newlines only: ``str.splitlines`` also splits at characters a JSON
    string may hold (U+2028, U+0085, ...), and the numbers would drift from the file's.
    """
    lines: Sequence[bytes | str] = (
        content.split(b"\n") if isinstance(content, bytes) else content.split("\n")
    )
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, line


def _refuse_constant(name: str) -> object:
    raise BadLineError(f"not JSON ({name} is not a JSON number)")


def parse_line(line: bytes | str) -> object:
    """The line's JSON value; BadLineError when it is not UTF-8 or not JSON."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadLineError(
                f"not UTF-8 text (byte 0x{line[exc.start]:02x} at position {exc.start + 1})"
            ) from None
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except BadLineError:
        raise
    except json.JSONDecodeError as exc:
        raise BadLineError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError:  # json refuses to convert an integer this long
        raise BadLineError(
            f"not JSON we accept (an integer of more than {sys.get_int_max_str_digits()} digits)"
        ) from None
    except RecursionError:
        raise BadLineError("not JSON we accept (nested too deeply)") from None


def _field_part(part: str | int) -> str:
    text = str(part)
    if not text.isprintable():  # a newline in a key would split the report's line
        text = repr(text)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 3] + "..."


def describe(exc: ValidationError) -> str:
    """``field: problem; field: problem`` in one line: the first SHOWN_ERRORS errors,
    fields by their wire names, and how many more there are."""
    errors = exc.errors(include_url=False)
    shown = [
        f"{'.'.join(_field_part(p) for p in e['loc']) or 'value'}: {e['msg']}"
        for e in errors[:SHOWN_ERRORS]
    ]
    more = f" (and {len(errors) - SHOWN_ERRORS} more)" if len(errors) > SHOWN_ERRORS else ""
    return "; ".join(shown) + more
