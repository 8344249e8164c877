"""The rich table the CLI prints rows in (``NamedRows``), imported when a table is first
made so that ``evalkit --help`` never loads rich."""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table

__all__ = ["NamedRows", "RowName", "shorten_middle"]

# Fewer cells of a shortened name than this say too little to tell rows apart: below it the
# other columns give way instead (only on a terminal too narrow for the table anyway).
_SHORTEST_NAME = 12
# Names up to this long are kept whole even where the other columns must wrap around them.
_WHOLE_NAME = 40


def shorten_middle(text: str, width: int) -> str:
    """``text`` in at most ``width`` terminal cells: whole when it fits, else its start and
    its end around an ellipsis (ids sharing a long prefix, such as URLs, differ at the end)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head_cells = width // 2
    tail_cells = width - 1 - head_cells
    head: list[str] = []
    used = 0
    for character in text:
        used += cell_len(character)
        if used > head_cells:
            break
        head.append(character)
    tail: list[str] = []
    used = 0
    for character in reversed(text):
        used += cell_len(character)
        if used > tail_cells:
            break
        tail.append(character)
    return "".join(head) + "…" + "".join(reversed(tail))


class RowName:
    """A cell naming its row: drawn as its text is, or shortened in the middle when the
    column is narrower than it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # A str renders as any other cell does; only its length changes, when it must.
        yield shorten_middle(self.text, options.max_width)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement.get(console, options, self.text)


class NamedRows(Table):
    """A table whose first column (no_wrap, made of ``RowName`` cells) names each row.

    Rich never shortens a no_wrap column, so a name wider than the terminal squeezed every
    other column to nothing; before each render the first column is capped at what the others
    leave at their narrowest (their longest word each), when its widest name does not fit.
    """

    def __init__(self, title: str | None, names: Sequence[str]) -> None:
        super().__init__(title=title, title_justify="left")
        self.names = tuple(names)
        # The first column's least width, to add it with: a name is kept whole up to this
        # many characters even where the other columns must wrap to leave it room.
        self.name_min_width = min(max(map(len, self.names), default=0), _WHOLE_NAME)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self._fit_names(console, options)
        yield from super().__rich_console__(console, options)

    def _fit_names(self, console: Console, options: ConsoleOptions) -> None:
        if not self.columns:
            return
        first, *others = self.columns
        first.min_width, first.max_width = self.name_min_width, None
        _, pad_right, _, pad_left = self.padding
        padding = pad_left + pad_right
        borders = (len(self.columns) - 1 + (2 if self.show_edge else 0)) if self.box else 0
        # What each other column needs to show its values whole (its longest word), but no
        # more than a name kept whole: a long word in a message is not worth the name.
        narrowest = sum(
            min(
                max(
                    Measurement.get(console, options, cell).minimum
                    for cell in (column.header, *column.cells)
                ),
                _WHOLE_NAME,
            )
            + padding
            for column in others
        )
        widest = max(cell_len(text) for text in (str(first.header), *self.names))
        room = (self.width or options.max_width) - borders - narrowest - padding
        # A name up to _WHOLE_NAME long stays whole (a run id is copied into the next
        # command); the other columns wrap around it instead.
        cap = max(room, min(widest, max(self.name_min_width, _SHORTEST_NAME)))
        if widest > cap:
            first.min_width = first.max_width = cap
