"""Reading a CRM export file: every cell as text, every line accounted for.

File-level problems (a missing path, a directory, an empty or binary file,
bytes in no text encoding, a delimiter other than ',') raise
``BlockedInput`` before anything is written. A line that does not split
into as many fields as the header is kept with its line number and the
reason (``_defect``), so one bad line never sinks the file.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from salesintel_assets.constants import EXPORT_COLUMNS
from salesintel_assets.domain.ingestion.blocked import BlockedInput
from salesintel_assets.domain.ingestion.quality import DEFECT, LINE

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_OTHER_DELIMITERS = {";": "';'", "\t": "tabs", "|": "'|'"}
_FIX_HINT = "check the --csv path (SALESINTEL_CSV)"


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


def read_export(path: str | Path, required: tuple[str, ...] = EXPORT_COLUMNS,
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
    if _looks_binary(text):
        raise BlockedInput(f"{where} is a binary file, not a CSV text export: export the deals as CSV "
                           f"and {_FIX_HINT}.")
    return ExportFile(_split(text.lstrip("\ufeff"), where, required), encoding)


def _split(text: str, where: str, required: tuple[str, ...]) -> pd.DataFrame:
    if "\n" not in text:
        text = text.replace("\r", "\n")   # old Mac line endings
    lines = re.split(r"(?<=\n)", text)
    # A stray NUL byte spoils its line only (the csv module refuses the whole file).
    nul_lines = {number for number, line in enumerate(lines, start=1) if "\x00" in line}
    if nul_lines:
        lines = [line.replace("\x00", "") for line in lines]
    header: list[str] | None = None
    rows: list[list[str]] = []
    numbers: list[int] = []
    defects: list[str] = []
    for line_number, record, defect in _records(lines, where):
        if header is None:
            header = [cell.strip().lower() for cell in record]
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


def _records(lines: list[str], where: str) -> Iterator[tuple[int, list[str], str]]:
    """(first line number, fields, defect) of every non-blank record. A quote
    that is never closed would swallow the rest of the file into one field:
    that line alone is reported and reading restarts on the next line."""
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 26))   # a long note in one cell is not a broken file
    offset = 0
    width: int | None = None
    while offset < len(lines):
        reader = csv.reader(lines[offset:])
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
                    single = lines[offset + start - 1].rstrip("\r\n").split(",")
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
    if len(header) == 1:
        for mark, name in _OTHER_DELIMITERS.items():
            if header[0].count(mark) >= 2:
                raise BlockedInput(f"{where} separates its fields with {name}, not commas: export it "
                                   "comma-separated (the header must read deal_id,created_date,...).")
    repeated = sorted({c for c in header if header.count(c) > 1 and c})
    if repeated:
        raise BlockedInput(f"{where} has the column(s) {', '.join(repeated)} more than once: keep one of each "
                           "and run again.")
    missing = [c for c in required if c not in header]
    if missing:
        raise BlockedInput(f"{where} has no column(s) {', '.join(missing)} (found: {', '.join(header)[:200]}): "
                           f"export it with the columns {','.join(required)}.")
