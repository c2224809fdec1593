"""Unit tests of the report (zuotang_cli.outputs.report): formats, crash safety, sets, summary."""

from __future__ import annotations

import csv
import errno
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zuotang_cli.cells import stored_cells
from zuotang_cli.errors import LocalError, UsageError
from zuotang_cli.models import REPORT_FIELDS, DoneRow, Outcome, Record
from zuotang_cli.outputs.report import (
    CsvReportWriter,
    JsonLinesReportWriter,
    ReportSet,
    Summary,
    open_report,
    read_report,
    report_format,
    summarize,
)

RECORDS = [
    Record(
        input="http://example.com/a.jpg",
        outcome=Outcome.DONE,
        output="out/a-1234abcd.jpg",
        http_status=200,
        status=200,
        state=1,
        state_meaning="done",
        message="success",
        task_id="t-1",
        request_id="r-1",
        attempts=1,
        elapsed=1.23456,
        created_at=1700000000,
        completed_at=1700000002,
        result_bytes=12345,
        width=800,
        height=600,
    ),
    Record(
        input='照片, "quoted"\nnext line\u2028sep.jpg',
        outcome=Outcome.FAILED,
        message="state -7: invalid image, 'bad'",
        attempts=3,
        error_class="invalid-image",
    ),
    Record(input="ftp://x", outcome=Outcome.INVALID, message="not an http(s) URL"),
]


def as_csv_cells(record: Record) -> dict[str, str]:
    return {key: "" if value is None else str(value) for key, value in record.as_dict().items()}


def write_all(path: Path, records: list[Record] = RECORDS) -> None:
    with open_report(path) as writer:
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_formats_round_trip_with_types(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"report{suffix}"
    write_all(path)
    rows = read_report(path)
    assert rows == [record.as_dict() for record in RECORDS]
    assert list(rows[0]) == list(REPORT_FIELDS)
    assert rows[0]["elapsed"] == 1.235 and rows[2]["output"] is None


def test_csv_round_trip_header_and_empty_cells(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    write_all(path)
    with path.open(encoding="utf-8", newline="") as stream:
        header = next(csv.reader(stream))
    assert tuple(header) == REPORT_FIELDS
    rows = read_report(path)
    expected = [as_csv_cells(record) for record in RECORDS]
    # a line break inside a cell is shown escaped: one row is one line
    expected[1]["input"] = '照片, "quoted"\\nnext line\\u2028sep.jpg'
    assert rows == expected
    assert rows[2]["http_status"] == ""
    data = path.read_bytes()  # RFC 4180 line ends, and no line break inside a row
    assert data.endswith(b"\r\n") and data.count(b"\n") == data.count(b"\r") == len(RECORDS) + 1


HOSTILE_TEXT = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,1)",
    "\t=1+1",
    "\r=1+1",
    "'=already quoted",
    "'plain apostrophe",
    "a;=1+1",
    "\x1b[2J\x1b]0;owned\x07line\r\noverwritten",
    "安全的文本",
]


def test_csv_cells_cannot_start_a_formula_nor_a_new_line(tmp_path: Path) -> None:
    """OWASP's rule: a text cell that would start a formula starts with ' instead; every
    text cell is quoted (a ';' inside cannot start a cell in a semicolon locale); control
    characters are shown escaped; numbers (a state of -8) stay numbers."""
    path = tmp_path / "r.csv"
    records = [
        Record(input=text, outcome=Outcome.FAILED, message=text, state=-8, error_class="x")
        for text in HOSTILE_TEXT
    ]
    write_all(path, records)
    raw = path.read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x07" not in raw
    assert raw.count("\n") == len(records) + 1  # one line a row, whatever the text
    with path.open(encoding="utf-8", newline="") as stream:
        cells = list(csv.reader(stream))[1:]
    assert len(cells) == len(HOSTILE_TEXT)
    for row in cells:
        for cell in (row[0], row[REPORT_FIELDS.index("message")]):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert row[REPORT_FIELDS.index("state")] == "-8"
    lines = raw.split("\r\n")[1:-1]
    assert all(line.startswith('"') for line in lines)  # text cells are quoted
    assert cells[0][0] == "'" + HOSTILE_TEXT[0]
    assert cells[4][0] == "\\t=1+1"  # escaped first: it starts with a backslash
    assert cells[9][0] == "\\x1b[2J\\x1b]0;owned\\x07line\\r\\noverwritten"
    # zuotang's own reader takes the quote off again: the gallery shows the text
    assert [row["input"] for row in read_report(path)][:4] == HOSTILE_TEXT[:4]
    assert [row["input"] for row in read_report(path)][6:9] == HOSTILE_TEXT[6:9]


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_reports_keep_the_exact_text_and_no_raw_control(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    texts = [*HOSTILE_TEXT, "csi\x9b31m c1 and \u202ertl and \x7f del"]
    write_all(path, [Record(input=text, outcome=Outcome.FAILED, message=text) for text in texts])
    raw = path.read_text(encoding="utf-8")
    assert not any(char in raw for char in "\x1b\x07\x9b\u202e\x7f\r")
    assert [row["message"] for row in read_report(path)] == texts


def test_json_report_layout(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_all(path, RECORDS[:2])
    text = path.read_text(encoding="utf-8")
    assert text.startswith("[\n{") and text.endswith("}\n]\n")
    assert text.count(",\n{") == 1
    assert "照片" in text  # UTF-8, not \u escapes
    assert json.loads(text)[0]["input"] == RECORDS[0].input


def test_jsonl_one_object_a_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    write_all(path)
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == len(RECORDS) + 1
    assert json.loads(lines[1])["outcome"] == "failed"


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_empty_report_is_valid(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    open_report(path).close()
    assert read_report(path) == []


@pytest.mark.parametrize("suffix", [".csv", ".json", ".jsonl"])
def test_rows_are_on_disk_before_close(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    writer = open_report(path)
    assert read_report(path) == []
    writer.write(RECORDS[0])
    writer.write(RECORDS[2])
    rows = read_report(path)  # what a crash right now would leave
    assert [row["input"] for row in rows] == [RECORDS[0].input, RECORDS[2].input]
    writer.close()
    writer.close()  # idempotent


def test_crashed_json_is_an_unterminated_array_still_readable(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    writer = open_report(path)
    writer.write(RECORDS[0])
    writer.abandon()  # closed without the terminator, as a crash would
    text = path.read_text(encoding="utf-8")
    assert not text.rstrip().endswith("]")
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert read_report(path) == [RECORDS[0].as_dict()]


@pytest.mark.parametrize("name", ["report.xml", "report", "report.txt", "report.csv.gz"])
def test_unknown_suffix_is_a_usage_error(tmp_path: Path, name: str) -> None:
    suffix = Path(name).suffix or "(none)"
    message = f"unsupported report format '{suffix}': use .csv, .json or .jsonl"
    with pytest.raises(UsageError) as info:
        open_report(tmp_path / name)
    assert str(info.value) == message
    assert not (tmp_path / name).exists()


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    assert report_format(Path("R.JSONL")) == ".jsonl"
    write_all(tmp_path / "R.CSV")
    assert len(read_report(tmp_path / "R.CSV")) == len(RECORDS)


def test_parent_folders_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.jsonl"
    write_all(path)
    assert path.is_file()


def test_unwritable_path_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot write report"):
        open_report(tmp_path / "file" / "r.csv")


def test_existing_report_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_all(path)
    write_all(path, RECORDS[:1])
    assert len(read_report(path)) == 1


def test_writer_on_a_stream() -> None:
    stream = io.StringIO()
    writer = JsonLinesReportWriter(stream)
    writer.write(RECORDS[2])
    assert json.loads(stream.getvalue()) == RECORDS[2].as_dict()


# --------------------------------------------------------------------------- ReportSet


def test_report_set_writes_every_report(tmp_path: Path) -> None:
    paths = [tmp_path / "out" / "report.csv", tmp_path / "extra.jsonl"]
    with ReportSet([open_report(path) for path in paths]) as reports:
        for record in RECORDS:
            reports.write(record)
    assert [len(read_report(path)) for path in paths] == [3, 3]


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_report_set_writes_one_file_once(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"r{suffix}"
    link = tmp_path / f"link{suffix}"
    writers = [open_report(path), open_report(tmp_path / "." / path.name)]
    link.symlink_to(path)
    writers.append(open_report(link))
    with ReportSet(writers) as reports:
        assert len(reports.writers) == 1
        for record in RECORDS:
            reports.write(record)
    rows: list[dict[str, Any]] = read_report(path)
    assert len(rows) == len(RECORDS)
    assert [rows[0]["input"], rows[2]["input"]] == [RECORDS[0].input, RECORDS[2].input]


def test_report_set_open_checks_every_suffix_first(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        ReportSet.open([tmp_path / "ok.csv", tmp_path / "bad.xml"])
    assert not (tmp_path / "ok.csv").exists()
    with ReportSet.open([tmp_path / "ok.csv", tmp_path / "ok.csv"]) as reports:
        reports.write(RECORDS[0])
    assert len(read_report(tmp_path / "ok.csv")) == 1


class FullDisk(io.StringIO):
    """A stream whose disk fills after ``room`` characters (ENOSPC)."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(text)


def test_a_report_whose_disk_fills_is_dropped_and_the_others_keep_every_row(
    tmp_path: Path,
) -> None:
    full = FullDisk(room=600)
    lost: list[str] = []
    roomy = tmp_path / "roomy.jsonl"
    writers = [CsvReportWriter(full, tmp_path / "full.csv"), open_report(roomy)]
    with ReportSet(writers, on_lost=lost.append) as reports:
        for record in RECORDS * 3:
            reports.write(record)
    assert len(read_report(roomy)) == 9
    assert lost == [f"the report {tmp_path / 'full.csv'} failed: No space left on device"]


def test_a_lost_report_without_a_listener_is_a_local_error() -> None:
    reports = ReportSet([CsvReportWriter(FullDisk(room=600))])
    with pytest.raises(LocalError, match="No space left"):
        for record in RECORDS * 3:
            reports.write(record)


# --------------------------------------------------------------------------- Summary


def test_summary_line_leaves_out_zero_counts_but_done() -> None:
    assert summarize([]).line() == "0 done"
    outcomes = [Outcome.DONE] * 12 + [Outcome.SKIPPED, Outcome.FAILED, Outcome.FAILED]
    outcomes += [Outcome.INVALID, Outcome.NOT_ATTEMPTED]
    summary = summarize(Record(input=str(n), outcome=o) for n, o in enumerate(outcomes))
    assert summary.line() == "12 done, 1 skipped, 2 failed, 1 invalid, 1 not attempted"
    assert summary.total == 17
    assert summary.counts[Outcome.FAILED] == 2


def test_summary_add() -> None:
    summary = Summary()
    summary.add(Record(input="a", outcome=Outcome.FAILED))
    assert summary.line() == "0 done, 1 failed"


@settings(max_examples=200, deadline=None)
@given(
    source=st.text(max_size=40),
    output=st.text(min_size=1, max_size=40),
    meaning=st.text(max_size=20),
    request_id=st.one_of(st.none(), st.text(max_size=20)),
    factor=st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False)),
    width=st.one_of(st.none(), st.integers(min_value=-(2**40), max_value=2**40)),
)
def test_a_done_row_from_stored_cells_is_the_row_its_record_makes(
    source: str,
    output: str,
    meaning: str,
    request_id: str | None,
    factor: float | None,
    width: int | None,
) -> None:
    """The re-run's fast path (its stored CSV cells, nothing decoded) writes exactly the
    row the record would, hostile text included."""
    stored = Record(
        input="first",
        outcome=Outcome.DONE,
        output=output,
        http_status=200,
        status=200,
        state=1,
        state_meaning=meaning,
        message="=HYPERLINK(evil)",
        request_id=request_id,
        attempts=3,
        elapsed=1.5,
        width=width,
        factor=factor,
        paid_calls=2,
    )
    skipped = Record.from_dict(
        {
            **stored.as_dict(),
            "input": source,
            "outcome": "skipped",
            "message": "done in an earlier run",
            "attempts": 0,
            "elapsed": None,
            "paid_calls": 0,
        }
    )
    rows = []
    done = DoneRow(source, output, "done in an earlier run", stored_cells(stored), lambda: skipped)
    for row in (skipped, done):
        stream = io.StringIO()
        CsvReportWriter(stream, owned=False).write(row)
        rows.append(stream.getvalue())
    assert rows[0] == rows[1]
