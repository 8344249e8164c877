"""Reading golden-set files line by line while collecting every problem found.

Readers never stop at the first problem: they record it in a ``ProblemLog`` (file, 1-based
line, field) and go on, so a person sees all that is wrong in one pass. A UTF-8 byte-order
mark and CRLF line ends are tolerated; blank lines are skipped.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from evalkit.errors import GoldsetError, InputError
from evalkit.files import COMPRESSED_SUFFIXES, compression_in, compression_of
from evalkit.jsonsafe import REPEATED_KEY, TooDeepError, depth_checked, noting_repeated_keys

__all__ = [
    "MAX_LISTED_PROBLEMS",
    "MAX_NESTING",
    "NoticeSink",
    "ProblemLog",
    "archive_not_folder",
    "compressed_file",
    "default_notice_sink",
    "describe_value",
    "iter_json_objects",
    "iter_text_lines",
    "missing_file",
    "unpack_command",
]

MAX_LISTED_PROBLEMS = 1000
"""Problems kept in a ``GoldsetError``; more are counted but not listed (one bad column in a
million-line file should not build a million exception objects)."""

MAX_NESTING = 32
"""Levels of arrays and objects one JSON line may nest (a valid record needs two). Deeper
lines are refused before they are parsed, so no line can exhaust the parser's recursion."""

SUMMARY_PROBLEMS = 3
"""Problems quoted in a ``GoldsetError`` message; ``problems`` holds the rest."""

_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# The command that writes the decompressed content of each compressed format to stdout.
_UNPACK = {
    "gzip": "gunzip -c",
    "bzip2": "bunzip2 -c",
    "xz": "unxz -c",
    "zstd": "unzstd -c",
    "lz4": "unlz4 -c",
}
_SUFFIX_COMPRESSION = {
    ".gz": "gzip",
    ".bz2": "bzip2",
    ".xz": "xz",
    ".zst": "zstd",
    ".zip": "zip",
    ".lz4": "lz4",
}
# A \uD800-\uDFFF escape: Python's JSON decoder joins a pair into one character and keeps a
# lone one as a surrogate, which is no text and cannot be written as UTF-8.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")

NoticeSink = Callable[[str], None]
"""Receives notices about data an importer changed on purpose (e.g. -1 grades mapped to 0)."""

_logger = logging.getLogger("evalkit.goldset")


def default_notice_sink(message: str) -> None:
    """Report an import notice as a warning on the ``evalkit.goldset`` logger."""
    _logger.warning("%s", message)


_JSON_LISTS_EVERY = (
    "with JSON output (`--format json`, or `-o json` where the command takes it) the error "
    "lists the problems in 'problems'"
)
# Where a person reads every problem of what failed to load: a goldset has its own command.
# An imported collection's commands take --format for the source format, so the generic
# "--format json" would name a goldset format that does not exist.
_LISTS_EVERY = {
    "goldset": "`evalkit goldset validate` lists every problem",
    "collection": (
        "`evalkit goldset validate` with the same --format and --split or --topics lists "
        "every problem"
    ),
}


class ProblemLog:
    """Every problem found in the files of one golden set, in the order found."""

    def __init__(self, *, limit: int = MAX_LISTED_PROBLEMS) -> None:
        self.problems: list[InputError] = []
        self.total = 0
        self._limit = limit
        self._unread: set[str] = set()

    def __bool__(self) -> bool:
        return self.total > 0

    def add(
        self,
        message: str,
        *,
        path: Path | str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        """Record one problem at ``path`` (and ``line`` / ``field`` when known)."""
        self.total += 1
        if line is None:
            self._unread.add(str(path))
        if len(self.problems) < self._limit:
            self.problems.append(InputError(message, path=str(path), line=line, field=field))

    def unread(self, path: Path | str) -> bool:
        """Whether a problem of the whole file ``path`` (missing, compressed, unreadable) was
        recorded: what it holds is unknown, so nothing should be checked against it."""
        return str(path) in self._unread

    def error(self, subject: str, *, path: Path | str) -> GoldsetError:
        """One ``GoldsetError`` at ``path`` that summarises the first problems and lists all.

        ``subject`` names what is invalid ("goldset", "corpus"). Problems are listed file by
        file (in the order the files were read), by line; the summary shows their files
        relative to ``path`` to keep it short, ``problems`` keeps the full paths.
        """
        file_order: dict[str | None, int] = {}
        for problem in self.problems:
            file_order.setdefault(problem.path, len(file_order))
        self.problems.sort(key=lambda problem: (file_order[problem.path], problem.line or 0))
        base = Path(path)
        plural = "" if self.total == 1 else "s"
        lines = [f"invalid {subject}, {self.total} problem{plural}:"]
        lines.extend(f"  {_short(problem, base)}" for problem in self.problems[:SUMMARY_PROBLEMS])
        if self.total > SUMMARY_PROBLEMS:
            lines.append(f"  ... and {self.total - SUMMARY_PROBLEMS} more")
        unlisted = self.total - len(self.problems)
        if unlisted:
            lines.append(f"(only the first {len(self.problems)} are listed in 'problems')")
        lines.append(f"Fix them and load again; {_LISTS_EVERY.get(subject, _JSON_LISTS_EVERY)}.")
        return GoldsetError("\n".join(lines), path=str(path), problems=list(self.problems))

    def raise_if_any(self, subject: str, *, path: Path | str) -> None:
        """Raise the summary ``GoldsetError`` when any problem was recorded."""
        if self.total:
            raise self.error(subject, path=path)


def _short(problem: InputError, base: Path) -> str:
    """The problem as text, with its file relative to ``base`` (or its folder) when inside."""
    if problem.path is None:
        return str(problem)
    folder = base if base.is_dir() else base.parent
    try:
        shown = str(Path(problem.path).relative_to(folder))
    except ValueError:
        shown = problem.path
    if shown == ".":
        shown = problem.path
    return str(InputError(problem.detail, path=shown, line=problem.line, field=problem.field))


def iter_text_lines(
    path: Path, problems: ProblemLog, *, keep_undecodable: bool = False
) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` for each non-blank line of a UTF-8 text file.

    Line numbers are 1-based and count blank lines, so they match what an editor shows.
    A missing file, an unreadable file and bytes that are not UTF-8 are recorded as problems.
    A line that is not UTF-8 is skipped, or with ``keep_undecodable`` yielded with U+FFFD in
    place of its bad bytes: a reader of tagged text (``<title>`` on that line) then keeps
    its structure instead of adding a second, wrong problem ("no <title>").
    """
    # Not is_file(): a pipe (`--topics <(zcat topics.gz)`, /dev/stdin) is read as well.
    if path.is_dir() or not path.exists():
        problems.add(missing_file(path), path=path)
        return
    try:
        handle = path.open("rb")
    except OSError as error:
        problems.add(f"cannot be read ({error.strerror}); check its permissions", path=path)
        return
    try:
        # Peeked, not read: a pipe cannot be read from the start again.
        head = handle.peek(16)
    except OSError as error:
        handle.close()
        problems.add(f"cannot be read ({error.strerror})", path=path)
        return
    compression = compression_in(head)
    if compression is not None:
        handle.close()
        problems.add(compressed_file(path, compression), path=path)
        return
    if head[:2] in _UTF16_BOMS:
        # PowerShell 5's `>` and Notepad's "Unicode" write UTF-16: every line would be
        # "not valid UTF-8", or, for ASCII text, hold a NUL between each character.
        handle.close()
        problems.add(
            "is UTF-16 text (it starts with a UTF-16 byte order mark); save it as UTF-8 "
            "(in PowerShell: Out-File -Encoding utf8)",
            path=path,
        )
        return
    with handle:
        for number, raw in enumerate(handle, start=1):
            data = raw[len(_BOM) :] if number == 1 and raw.startswith(_BOM) else raw
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.add(
                    f"is not valid UTF-8 (byte {error.start + 1} of the line); "
                    "save the file as UTF-8",
                    path=path,
                    line=number,
                )
                if not keep_undecodable:
                    continue
                text = data.decode("utf-8", errors="replace")
            text = text.rstrip("\r\n")
            if text.strip():
                yield number, text


def missing_file(path: Path) -> str:
    """Why ``path`` cannot be read as a file: a folder, or nothing there (naming a compressed
    copy beside it, as downloads of BEIR datasets hold ``queries.jsonl.gz``)."""
    if path.is_dir():
        return "is a directory, not a file; check the path"
    for suffix in sorted(COMPRESSED_SUFFIXES):
        packed = path.with_name(path.name + suffix)
        if packed.is_file():
            return (
                f"does not exist, but {packed.name} is beside it: evalkit reads uncompressed "
                f"text, so decompress it first ({unpack_command(packed, path.name)})"
            )
    return "does not exist; check the path"


def archive_not_folder(path: Path) -> str | None:
    """The problem of a compressed file given where a folder is read, else None."""
    try:
        compression = compression_of(path)
    except OSError:
        return None
    if compression is None:
        return None
    return (
        f"is a {compression} file, not a folder: unpack it first "
        f"({unpack_command(path, path.stem, compression)}) and give the folder it holds"
    )


def compressed_file(path: Path, compression: str) -> str:
    """The problem of a file holding ``compression``-compressed data where text is read."""
    plain = path.stem if path.suffix.lower() in COMPRESSED_SUFFIXES else "FILE"
    return (
        f"holds {compression}-compressed data, not text: evalkit reads uncompressed UTF-8 "
        f"files, so decompress it first ({unpack_command(path, plain, compression)}) and "
        "give the result"
    )


def unpack_command(path: Path, plain: str, compression: str | None = None) -> str:
    """The shell command that decompresses ``path`` into ``plain`` (a zip: unpacks it)."""
    kind = compression or _SUFFIX_COMPRESSION.get(path.suffix.lower(), "gzip")
    if kind == "zip":
        return f"unzip {path.name}"
    return f"{_UNPACK[kind]} {path.name} > {plain}"


def iter_json_objects(path: Path, problems: ProblemLog) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield ``(line number, object)`` for each line of a JSON Lines file that is an object.

    Lines that are not valid JSON, are not an object, or repeat a key are recorded as
    problems and skipped.
    """
    repeated: list[str] = []
    # One decoder per file: building a decoder per line costs as much as parsing the line.
    decoder = json.JSONDecoder(object_pairs_hook=noting_repeated_keys(repeated))
    first = True
    for number, text in iter_text_lines(path, problems):
        if first and text.lstrip().startswith("["):
            # A JSON array (json.dump of a list) is not JSON Lines: read line by line, an
            # indented one gives a "not valid JSON" problem per line, none saying why.
            problems.add(
                "holds a JSON array, not JSON Lines (one object per line); convert it, e.g. "
                f"jq -c '.[]' {path.name} > {path.stem}.lines.jsonl",
                path=path,
                line=number,
            )
            return
        first = False
        repeated.clear()
        nested = _too_deep(text)
        if nested is not None:
            problems.add(
                f"nests arrays and objects deeper than {MAX_NESTING} levels; a record holds "
                "flat values and lists of strings",
                path=path,
                line=number,
                field=nested or None,
            )
            continue
        try:
            value = depth_checked(decoder.decode, text)
        except TooDeepError:
            problems.add(
                f"nests arrays and objects deeper than {MAX_NESTING} levels",
                path=path,
                line=number,
            )
            continue
        except json.JSONDecodeError as error:
            problems.add(
                f"not valid JSON ({error.msg} at column {error.colno}); each line must hold "
                "one JSON object",
                path=path,
                line=number,
            )
            continue
        except ValueError:  # an integer of more digits than Python converts
            problems.add(
                f"holds a number too long to read (over {sys.get_int_max_str_digits()} digits)",
                path=path,
                line=number,
            )
            continue
        if not isinstance(value, dict):
            problems.add(
                f"expected a JSON object {{...}} on each line, got {describe_value(value)}",
                path=path,
                line=number,
            )
            continue
        for key in repeated:
            problems.add(REPEATED_KEY, path=path, line=number, field=key)
        lone = _lone_surrogate_fields(value) if _SURROGATE_ESCAPE.search(text) else []
        for key in lone:
            problems.add(
                "holds a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair), "
                "which is not text",
                path=path,
                line=number,
                field=key,
            )
        if not repeated and not lone:
            yield number, value


def _lone_surrogate_fields(record: dict[str, object]) -> list[str]:
    """The keys of ``record`` whose value (or a key or value within it) holds a surrogate."""

    def holds(value: object) -> bool:
        if isinstance(value, str):
            return any("\ud800" <= character <= "\udfff" for character in value)
        if isinstance(value, dict):
            return any(holds(key) or holds(item) for key, item in value.items())
        if isinstance(value, list):
            return any(holds(item) for item in value)
        return False

    return [
        key if not holds(key) else repr(key)
        for key, value in record.items()
        if holds(key) or holds(value)
    ]


def _too_deep(text: str) -> str | None:
    """None when ``text`` nests at most ``MAX_NESTING`` levels; else the top-level key whose
    value nests deeper ("" when it is not under a key). Brackets inside strings are text."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None
    depth = 0
    in_string = escaped = False
    string_start = 0
    last_string = ""
    key = ""
    for position, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if depth == 1:
                    last_string = text[string_start : position + 1]
        elif char == '"':
            in_string = True
            string_start = position
        elif char == ":" and depth == 1:
            key = last_string
        elif char in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return _key_name(key)
        elif char in "]}":
            depth -= 1
            if depth == 1:
                key = ""
    return None


def _key_name(literal: str) -> str:
    try:
        name = json.loads(literal) if literal else ""
    except json.JSONDecodeError:
        return ""
    return name if isinstance(name, str) else ""


def describe_value(value: object) -> str:
    """Name a JSON value's type for an error message, e.g. ``a number (12)``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({json.dumps(shown, ensure_ascii=False)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
