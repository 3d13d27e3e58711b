"""Reading a CRM export file: every cell as text, every line accounted for.

File-level problems (a missing path, a directory, an empty or binary file,
bytes in no text encoding, a missing column) raise ``BlockedInput`` before
anything is written. The delimiter is read off the header: ',', or ';' as
spreadsheets write it where the decimal mark is a comma, a tab or '|'.
Column names are the contract's in any spelling a person titles them with
(``column_name``). A line that does not split into as many fields as the
header is kept with its line number and the reason (``_defect``), so one
bad line never sinks the file.

A plain UTF-8 file whose every line is one record of the header's width
(the usual export) is split by DuckDB's CSV reader in one vectorised pass;
anything else (another encoding, NUL bytes, blank lines, a quoted line
break, a short or long line, an unclosed quote) is split by the exact
line-by-line reader below, which says what is wrong with each line. Both give
the same frame for a file both can read.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from salesintel_assets.constants import EXPORT_COLUMNS, REQUIRED_EXPORT_COLUMNS
from salesintel_assets.domain.ingestion.blocked import BlockedInput
from salesintel_assets.domain.ingestion.quality import DEFECT, LINE

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
DELIMITERS = (",", ";", "\t", "|")
_FIX_HINT = "check the --csv path (SALESINTEL_CSV)"
_SEPARATORS = re.compile(r"[\s.\-]+")


@dataclass
class ExportFile:
    frame: pd.DataFrame   # header-named text columns plus _line and _defect
    encoding: str


def detect_encoding(data: bytes, where: str) -> str:
    """The text encoding from evidence: a byte-order mark, UTF-16 without one
    (every other byte zero), valid UTF-8, else Windows-1252 / Latin-1 (the
    usual spreadsheet exports), which every byte sequence decodes in."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    sample = data[:4096]
    if sample.count(0) > max(2, len(sample) // 100):
        odd_zero = sample[1::2].count(0) / max(len(sample[1::2]), 1)
        even_zero = sample[0::2].count(0) / max(len(sample[0::2]), 1)
        if odd_zero > 0.3 and even_zero < 0.05:
            return "utf-16-le"
        if even_zero > 0.3 and odd_zero < 0.05:
            return "utf-16-be"
        raise BlockedInput(f"{where} is a binary file, not a CSV text export: export the deals as CSV "
                           f"and {_FIX_HINT}.")
    try:
        data.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        data.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return "latin-1"


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    return controls > max(2, len(sample) // 100)


def column_name(cell: str) -> str:
    """A header cell as the contract names columns: trimmed, lower case,
    spaces, hyphens and dots as one underscore ("Deal Amount" and
    "deal-amount" are ``deal_amount``): spreadsheets and CRM reports title
    their columns for people."""
    return _SEPARATORS.sub("_", cell.strip().lower()).strip("_")


def sniff_delimiter(header_line: str, names: tuple[str, ...] = EXPORT_COLUMNS) -> str:
    """The delimiter the header line is written with: the one that splits it
    into the most of the known column ``names``, then into the most cells (so a
    header with wrong names still reads as its columns, and the message names
    them); ',' on a tie."""
    def reading(mark: str) -> tuple[int, int]:
        cells = {column_name(cell) for cell in next(csv.reader([header_line], delimiter=mark), [])}
        return sum(name in cells for name in names), len(cells)
    return max(DELIMITERS, key=reading)   # max keeps the first of equals: ',' leads


def _known(required: tuple[str, ...]) -> tuple[str, ...]:
    """The names that tell a delimiter: the required ones and the export's own."""
    return tuple(dict.fromkeys(required + EXPORT_COLUMNS))


def _odd_quote(delimiter: str) -> re.Pattern:
    """A quote that neither opens nor closes a field nor doubles another
    (a"b, "a"b, ' "a'): the line-by-line reader's reading of it is the one to keep."""
    mark = re.escape(delimiter)
    return re.compile(rf'[^{mark}\r\n"]"[^{mark}\r\n"]')


def read_export(path: str | Path, required: tuple[str, ...] = REQUIRED_EXPORT_COLUMNS,
                what: str = "CRM export") -> ExportFile:
    """The export as text, or ``BlockedInput`` with one sentence."""
    where = f"The {what} {path}"
    target = Path(path)
    if not target.exists():
        raise BlockedInput(f"{where} does not exist: {_FIX_HINT}.")
    if target.is_dir():
        raise BlockedInput(f"{where} is a directory, not a file: pass the path of the CSV file itself.")
    try:
        data = target.read_bytes()
    except OSError as exc:
        raise BlockedInput(f"{where} cannot be read ({exc.strerror or exc}): check its permissions.") from None
    if not data.strip():
        raise BlockedInput(f"{where} is empty: export the deals again, with a header row and one row per deal.")
    encoding = detect_encoding(data, where)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BlockedInput(f"{where} is not valid {encoding} text (byte {exc.start}): save it as UTF-8 "
                           "and run again.") from None
    del data   # the text is what is read from here on
    if _looks_binary(text):
        raise BlockedInput(f"{where} is a binary file, not a CSV text export: export the deals as CSV "
                           f"and {_FIX_HINT}.")
    if encoding == "utf-8" and (layout := _fast_header(text, where, required)) is not None:
        del text   # DuckDB reads the file itself; the text comes back only if it cannot
        frame = _duckdb_split(target, layout)
        if frame is not None:
            return ExportFile(frame, encoding)
        text = target.read_bytes().decode(encoding)
    return ExportFile(_split(text.lstrip("\ufeff"), where, required), encoding)


@dataclass
class _Layout:
    header: list[str]
    lines: int
    delimiter: str


def _fast_header(text: str, where: str, required: tuple[str, ...]) -> _Layout | None:
    """The header, number of lines and delimiter when DuckDB's reader may
    split the file (no NUL byte, LF or CRLF line endings, no odd quote, a
    good header); None when it needs the line-by-line reader."""
    if "\x00" in text or text.count("\r") != text.count("\r\n"):
        return None
    first = text[: text.find("\n") + 1 if "\n" in text else len(text)]
    delimiter = sniff_delimiter(first, _known(required))
    if '"' in text and _odd_quote(delimiter).search(text):
        return None
    header_records = list(csv.reader([first], delimiter=delimiter))
    if not header_records or not first.strip():
        return None
    header = [column_name(cell) for cell in header_records[0]]
    try:
        _check_header(header, where, required)
    except BlockedInput:
        return None   # the line-by-line reader says what is wrong
    return _Layout(header, text.count("\n") + (0 if text.endswith("\n") else 1), delimiter)


def _fast_split(target: Path, text: str, where: str, required: tuple[str, ...]) -> pd.DataFrame | None:
    """The frame ``_split`` would give, read by DuckDB, or None when the file
    needs the line-by-line reader: every line after the header must be one
    record of the header's width, with LF or CRLF line endings."""
    layout = _fast_header(text, where, required)
    return None if layout is None else _duckdb_split(target, layout)


def _duckdb_split(target: Path, layout: _Layout) -> pd.DataFrame | None:
    """``_fast_split`` once the text has passed ``_fast_header``."""
    import duckdb

    header = layout.header
    with duckdb.connect() as con:
        if not _stage(con, target, layout, "export"):
            return None
        # Through Arrow: faster than .df(), and repeated values share one string object.
        held = [con.sql("SELECT " + ", ".join(f"coalesce(c{i}, '') AS c{i}" for i in range(len(header)))
                        + " FROM export ORDER BY _line").to_arrow_table()]
    return text_frame(held, header)


def text_frame(held: list, header: list[str]) -> pd.DataFrame:
    """The reader's frame from an Arrow table of the header's cells in order
    (plus ``_line`` when the table has it), handed over as the only item of
    ``held`` so it is freed once converted: object text, line numbers, no defects."""
    arrow = held.pop()
    lines = arrow.column("_line").to_numpy() if "_line" in arrow.column_names else None
    if lines is not None:
        arrow = arrow.drop_columns(["_line"])
    # Converted once DuckDB's copy is gone, so the file is held twice at most, not three times.
    frame = arrow.to_pandas()
    del arrow
    frame.columns = header
    frame = frame.astype(object)
    rows = len(frame)
    frame[LINE] = pd.Series(lines if lines is not None else range(2, rows + 2), dtype="int64", index=frame.index)
    frame[DEFECT] = pd.Series("", dtype=object, index=frame.index)
    return frame


def _stage(con, target: Path, layout: _Layout, table: str) -> bool:
    """Split the file into the temp table ``table`` of ``con``: text columns
    c0, c1, ... (NULL for an empty field) and ``_line``; False (and no
    table) when a line is not one record of the header's width."""
    import duckdb

    header, lines = layout.header, layout.lines
    names = [f"c{i}" for i in range(len(header))]
    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in names) + "}"
    # Rows with no visible ASCII character might be blank lines to skip: Python's strip() decides below.
    maybe_blank = " AND ".join(f"NOT regexp_matches(coalesce({name}, ''), '[!-~]')" for name in names)
    try:
        rel = con.sql(f"""SELECT * FROM read_csv(?, auto_detect = false, columns = {columns}, header = true,
                                                 delim = ?, quote = '"', escape = '"', strict_mode = true)""",
                      params=[str(target), layout.delimiter])
        # The reader keeps the file's order: the n-th row is line n + 1.
        con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT *, row_number() OVER () + 1 AS _line FROM rel")
    except duckdb.Error:
        return False
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
    blank = any(all(not (cell or "").strip() for cell in row[:-1])
                for row in con.execute(f"SELECT * FROM {table} WHERE {maybe_blank}").fetchall())
    if rows != lines - 1 or blank or rows == 0:
        con.execute(f"DROP TABLE {table}")
        return False
    return True


def stage_export(con, path: str | Path, table: str,
                 required: tuple[str, ...] = REQUIRED_EXPORT_COLUMNS) -> list[str] | None:
    """Split a plain UTF-8 export into the temp table ``table`` of ``con``
    (see ``_stage``) without loading it into Python, and return its header;
    None when the file needs ``read_export`` (which then says what, if
    anything, is wrong with it)."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except OSError:
        return None
    if not data.strip() or detect_encoding_quietly(data) != "utf-8":
        return None
    text = data.decode("utf-8")
    del data
    if _looks_binary(text):
        return None
    layout = _fast_header(text, str(target), required)
    del text
    if layout is None or not _stage(con, target, layout, table):
        return None
    return layout.header


def detect_encoding_quietly(data: bytes) -> str | None:
    """``detect_encoding``, None for a binary file."""
    try:
        return detect_encoding(data, "")
    except BlockedInput:
        return None


def _split(text: str, where: str, required: tuple[str, ...]) -> pd.DataFrame:
    if "\n" not in text:
        text = text.replace("\r", "\n")   # old Mac line endings
    lines = re.split(r"(?<=\n)", text)
    delimiter = sniff_delimiter(next((line for line in lines if line.strip()), ""), _known(required))
    # A stray NUL byte spoils its line only (the csv module refuses the whole file).
    nul_lines = {number for number, line in enumerate(lines, start=1) if "\x00" in line}
    if nul_lines:
        lines = [line.replace("\x00", "") for line in lines]
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []
    defects: list[str] = []
    for line_number, record, defect in _records(lines, where, delimiter):
        if header is None:
            header = [column_name(cell) for cell in record]
            _check_header(header, where, required)
            continue
        if not defect and line_number in nul_lines:
            defect = "the line holds a NUL byte"
        if not defect and len(record) != len(header):
            defect = f"the line has {len(record)} fields, the header has {len(header)}"
        if defect:
            record = (record + [""] * len(header))[: len(header)]
        rows.append(record)
        numbers.append(line_number)
        defects.append(defect)
    if header is None:
        raise BlockedInput(f"{where} is empty: export the deals again, with a header row and one row per deal.")
    if not rows:
        raise BlockedInput(f"{where} has a header but no deals: export the deals again, one row per deal.")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame[LINE] = pd.Series(numbers, dtype="int64", index=frame.index)
    frame[DEFECT] = pd.Series(defects, dtype=object, index=frame.index)
    return frame


def _records(lines: list[str], where: str, delimiter: str = ",") -> Iterator[tuple[int, list[str], str]]:
    """(first line number, fields, defect) of every non-blank record. A quote
    that is never closed would swallow the rest of the file into one field:
    that line alone is reported and reading restarts on the next line."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))   # a long note in one cell is not a broken file
    offset = 0
    width: int | None = None
    while offset < len(lines):
        reader = csv.reader(lines[offset:], delimiter=delimiter)
        end = 0
        restart = None
        try:
            for record in reader:
                start, end = end + 1, reader.line_num
                if not record or all(not cell.strip() for cell in record):
                    continue   # blank lines (and lines of bare commas) hold no deal
                if width is None:
                    width = len(record)
                elif len(record) != width and end > start:
                    single = lines[offset + start - 1].rstrip("\r\n").split(delimiter)
                    yield offset + start, single, "a quote opened on this line is never closed"
                    restart = offset + start
                    break
                yield offset + start, record, ""
        except csv.Error as exc:
            raise BlockedInput(f"{where} cannot be split into fields near line {offset + reader.line_num} "
                               f"({exc}): export it again as a plain comma-separated file.") from None
        if restart is None:
            return
        offset = restart


def _check_header(header: list[str], where: str, required: tuple[str, ...]) -> None:
    repeated = sorted({c for c in header if header.count(c) > 1 and c})
    if repeated:
        raise BlockedInput(f"{where} has the column(s) {', '.join(repeated)} more than once: keep one of each "
                           "and run again.")
    missing = [c for c in required if c not in header]
    if missing:
        raise BlockedInput(f"{where} has no column(s) {', '.join(missing)} (found: {', '.join(header)[:200]}): "
                           f"export it with at least the columns {','.join(required)}.")
