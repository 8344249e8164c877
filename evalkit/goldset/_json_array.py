"""The elements of a file holding one JSON array, read one at a time in bounded memory.

A Label Studio export is one JSON array of tasks; ``json.loads`` of a 167 MB export of small
objects took 1.85 GB before a single task was checked. ``json_array_elements`` reads the
file a megabyte at a time and decodes each element on its own, so that what is held at once
is one chunk of text and the element being decoded (at most ``MAX_ELEMENT_CHARS``), not the
file.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Literal, NoReturn

from evalkit.jsonsafe import TooDeepError, depth_checked

__all__ = ["MAX_ELEMENT_CHARS", "JsonArrayError", "json_array_elements"]

MAX_ELEMENT_CHARS = 64 * 2**20
"""The largest element (in characters of JSON) read: a larger one is refused, not held."""

CHUNK_BYTES = 2**20

_BOM = codecs.BOM_UTF8
_NOT_SPACE = re.compile(r"[^ \t\n\r]")
# A value cut by the end of the text read so far fails within a few characters of that end
# (`-Infinit` is the longest such prefix) or is a string not closed yet, and a number cut
# there (`1.` of `1.5`) decodes short of it: both are read again with more text.
_CUT_MARGIN = 16
_UNCLOSED_STRING = "Unterminated string"

Problem = Literal["not_utf8", "not_json", "too_deep", "not_array", "too_large"]


class JsonArrayError(ValueError):
    """The file cannot be read on as a JSON array: ``problem`` says why, ``detail`` in
    words (the JSON error and its column, the byte that is not UTF-8, the element's number),
    ``line`` where (from 1) when known; ``value`` is the top-level value when it is not an
    array."""

    def __init__(
        self, problem: Problem, detail: str, *, line: int | None = None, value: object = None
    ) -> None:
        super().__init__(detail)
        self.problem: Problem = problem
        self.detail = detail
        self.line = line
        self.value = value


def json_array_elements(path: Path) -> Iterator[object]:
    """Each element of the JSON array in the UTF-8 file ``path`` (a byte order mark is
    skipped), decoded as ``json.loads`` decodes it. Raises ``JsonArrayError`` where the file
    stops being one (elements before it have been given), OSError when it cannot be read."""
    with path.open("rb") as handle:
        yield from _Elements(handle).read()


class _Elements:
    """The text read so far that is not decoded yet (``text[at:]``), and where it stands in
    the file, to name lines and bytes."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._json = json.JSONDecoder()
        self.text = ""
        self.at = 0
        self.ended = False
        self._bytes_read = 0
        self._lines_before = 0  # newlines in the text dropped before ``text``
        self._column_before = 0  # characters since the last of them
        self._started = False

    def read(self) -> Iterator[object]:
        first = self._next_char()
        if not first:
            self._not_json("Expecting value", self.at)
        if first != "[":
            raise JsonArrayError("not_array", "not an array", value=self._value(0))
        self.at += 1
        if self._next_char() == "]":
            self.at += 1
            self._end()
            return
        number = 0
        while True:
            number += 1
            yield self._value(number)
            following = self._next_char()
            self.at += 1
            if following == "]":
                self._end()
                return
            if following != ",":
                self._not_json("Expecting ',' delimiter", self.at - 1)

    def _value(self, number: int) -> object:
        """The value starting at ``at`` (element ``number``), read on until it is whole."""
        self._next_char()
        while True:
            try:
                value, end = depth_checked(lambda at: self._json.raw_decode(self.text, at), self.at)
            except TooDeepError:
                raise JsonArrayError(
                    "too_deep", "nests arrays and objects too deeply", line=self._line(self.at)
                ) from None
            except json.JSONDecodeError as error:
                cut = error.pos >= len(self.text) - _CUT_MARGIN or error.msg.startswith(
                    _UNCLOSED_STRING
                )
                if self.ended or not cut:
                    self._not_json(error.msg, error.pos)
                self._more(number)
                continue
            if end > len(self.text) - _CUT_MARGIN and not self.ended:  # `1.` of `1.5`
                self._more(number)
                continue
            self.at = end
            return value

    def _more(self, number: int) -> None:
        """Read another chunk (as much again as the value being read, when it is longer),
        refusing an element longer than ``MAX_ELEMENT_CHARS``."""
        pending = len(self.text) - self.at
        if pending > MAX_ELEMENT_CHARS:
            raise JsonArrayError(
                "too_large",
                f"element {number} is longer than {MAX_ELEMENT_CHARS // 2**20} MiB of JSON",
                line=self._line(self.at),
            )
        self._read(max(CHUNK_BYTES, pending))

    def _next_char(self) -> str:
        """The next character after white space (reading on as needed), "" at the end."""
        while True:
            found = _NOT_SPACE.search(self.text, self.at)
            if found is not None:
                self.at = found.start()
                return self.text[self.at]
            self.at = len(self.text)
            if self.ended:
                return ""
            self._read(CHUNK_BYTES)

    def _end(self) -> None:
        if self._next_char():
            self._not_json("Extra data", self.at)

    def _read(self, size: int) -> None:
        """Append the next ``size`` bytes, decoded; drop the text decoded already."""
        if self.at:
            dropped = self.text[: self.at]
            newlines = dropped.count("\n")
            self._lines_before += newlines
            self._column_before = (
                len(dropped) - dropped.rfind("\n") - 1
                if newlines
                else self._column_before + len(dropped)
            )
            self.text, self.at = self.text[self.at :], 0
        chunk = self._handle.read(size if self._started else max(size, len(_BOM)))
        self.ended = not chunk
        if not self._started:
            self._started = True
            chunk = chunk.removeprefix(_BOM)
        try:
            self.text += self._decoder.decode(chunk, final=self.ended)
        except UnicodeDecodeError as error:
            held = len(error.object) - len(chunk)
            byte = self._bytes_read - held + error.start + 1
            raise JsonArrayError("not_utf8", f"is not valid UTF-8 (byte {byte})") from None
        self._bytes_read += len(chunk)

    def _line(self, position: int) -> int:
        return self._lines_before + self.text.count("\n", 0, position) + 1

    def _not_json(self, message: str, position: int) -> NoReturn:
        newline = self.text.rfind("\n", 0, position)
        column = position - newline if newline >= 0 else self._column_before + position + 1
        raise JsonArrayError("not_json", f"{message} at column {column}", line=self._line(position))
