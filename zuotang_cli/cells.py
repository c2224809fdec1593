"""How a value is written in a cell of the CSV report, shared by the report's writer and
the journal, which keeps the cells of a saved result so that a re-run writes its row
without decoding the record (:class:`~zuotang_cli.models.DoneRow`).

Every text cell is quoted, its control characters escaped, and a formula neutralised
(:func:`zuotang_cli.sanitize.spreadsheet_cell`); numbers stay numbers; None is an empty
cell.
"""

from __future__ import annotations

import csv
import io
from typing import Final

from zuotang_cli.models import Record
from zuotang_cli.sanitize import spreadsheet_cell

NUL_SHOWN = "\u2400"
"""What a NUL character in a cell is written as (csv on Python 3.10 cannot write one, and
no spreadsheet reads one back)."""
QUOTING: Final = csv.QUOTE_NONNUMERIC
"""Text quoted, numbers bare: the report's csv dialect (with RFC 4180 line ends)."""
STORED_CELLS = (slice(3, 7), slice(8, 10), slice(12, 20))
"""The cells of a record that its ``skipped`` row copies as they are: http_status to
state_meaning, task_id and request_id, created_at to factor (REPORT_FIELDS order)."""


def csv_cell(value: object) -> object:
    """What the csv writer is given for ``value``: text made spreadsheet-safe, None an
    empty cell, a number as it is."""
    if type(value) is not str:
        return "" if value is None else value
    return spreadsheet_cell(value.replace("\0", NUL_SHOWN) if "\0" in value else value)


def quoted_cell(text: str) -> str:
    """A text cell as the report's csv writer writes it."""
    cell = csv_cell(text)
    assert isinstance(cell, str)
    return '"' + cell.replace('"', '""') + '"'


def stored_cells(record: Record) -> str:
    """The CSV cells (:data:`STORED_CELLS`) of ``record``, NUL between the three groups (a
    cell never holds a NUL), as the report writes them."""
    cells = [csv_cell(value) for value in record.as_row()]
    groups = []
    for part in STORED_CELLS:
        line = io.StringIO()
        csv.writer(line, lineterminator="", quoting=QUOTING).writerow(cells[part])
        groups.append(line.getvalue())
    return "\0".join(groups)
