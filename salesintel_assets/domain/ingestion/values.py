"""Exact parsing of the values a CRM export holds: dates and amounts are
turned into one canonical text (``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM:SS`` in
UTC, plain decimals) or get a reason why they cannot be.

Formats that a single value cannot settle (``05/01/2024``: day or month
first? ``1,234``: a thousands separator or a decimal comma?) are decided
once for the whole file from the values that can settle it, or stated by
the user; they are never guessed row by row. Dates that stay ambiguous block
the file with a question; amounts that stay ambiguous quarantine their rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation

import pandas as pd

from salesintel_assets.domain.ingestion.blocked import BlockedInput

DATE_COLUMNS = ("created_date", "closed_date", "stage_entered_date")
TIMESTAMP_COLUMNS = ("last_modified",)
AMOUNT_COLUMNS = ("deal_amount",)
DAY_FIRST, MONTH_FIRST = "day_first", "month_first"
DATE_ORDERS = (DAY_FIRST, MONTH_FIRST)
DECIMAL_MARKS = (".", ",")
DATE_ORDER_HINT = ("state the order with --date-order day_first|month_first (SALESINTEL_DATE_ORDER) "
                   "or quality.date_order in the rules file")
DECIMAL_HINT = ("state it with --decimal-mark '.' or ',' (SALESINTEL_DECIMAL_MARK) "
                "or quality.decimal_mark in the rules file")

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?"
                  r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?)?$")
_YMD = re.compile(r"^(\d{4})([-/.])(\d{1,2})\2(\d{1,2})$")   # 2024/1/5, 2024-1-5 (unpadded; padded is _ISO)
# 05/01/2024, with a time as reports write it (13:45, 1:45 PM)
_NUMERIC = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4})"
                      r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp][Mm]))?)?$")
_SHORT_YEAR = re.compile(r"^\d{1,2}([/.-])\d{1,2}\1\d{2}$")
_NAMED = ("%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y", "%d-%b-%Y", "%b %d %Y", "%B %d %Y", "%Y-%b-%d")
_PLAIN_NUMBER = r"-?\d+(?:\.\d+)?"
PLAIN_NUMBER = _PLAIN_NUMBER   # an amount that needs no parsing (and shows no decimal mark)
_CURRENCY_SIGNS = "$€£¥₹"
_DOT_CURRENCIES = {"$", "£", "¥", "₹", "USD", "GBP", "JPY", "INR", "CAD", "AUD", "CNY"}
_CODE = re.compile(r"^([A-Z]{3})\s*|\s*([A-Z]{3})$")
_NON_FINITE = re.compile(r"^[+-]?(inf|infinity|nan)$", re.IGNORECASE)
_SCIENTIFIC = re.compile(r"^\d+(?:\.\d+)?[eE][+-]?\d+$")
_GROUPING = " '\u00a0\u202f"


@dataclass(frozen=True)
class Formats:
    """The file-wide choices: ``date_order`` for ``NN/NN/YYYY`` dates and the
    ``decimal_mark`` of amounts (None when the file never needs one)."""

    date_order: str | None = None
    decimal_mark: str | None = None


# --- dates ---------------------------------------------------------------


def _numeric_parts(value: str) -> tuple[int, int] | None:
    match = _NUMERIC.match(value)
    return (int(match.group(1)), int(match.group(3))) if match else None


def decide_date_order(frame: pd.DataFrame, stated: str | None, where: str) -> str | None:
    """Day-first or month-first for the whole file: stated, or settled by a
    value with a first part above 12 (day-first) or a second part above 12
    (month-first). Evidence both ways, or ambiguous values and no evidence,
    block the file with a question."""
    if stated:
        return stated
    day_first: tuple[str, str] | None = None
    month_first: tuple[str, str] | None = None
    ambiguous: tuple[str, str] | None = None
    for col in DATE_COLUMNS + TIMESTAMP_COLUMNS:
        if col not in frame.columns:
            continue
        for value in pd.unique(frame[col]):
            parts = _numeric_parts(value) if isinstance(value, str) and len(value) >= 6 else None
            if parts is None:
                continue
            first, second = parts
            if first > 12 >= second and day_first is None:
                day_first = (col, value)
            elif second > 12 >= first and month_first is None:
                month_first = (col, value)
            elif first != second and first <= 12 and second <= 12 and ambiguous is None:
                ambiguous = (col, value)
    if day_first and month_first:
        raise BlockedInput(
            f"The dates in {where} mix day-first ({day_first[0]} '{day_first[1]}') and month-first "
            f"({month_first[0]} '{month_first[1]}') orders: fix the export so one order is used, or "
            f"{DATE_ORDER_HINT}.")
    if day_first:
        return DAY_FIRST
    if month_first:
        return MONTH_FIRST
    if ambiguous:
        raise BlockedInput(
            f"The dates in {where} (e.g. {ambiguous[0]} '{ambiguous[1]}') could be day-first or month-first "
            f"and no date in the file settles it: {DATE_ORDER_HINT}.")
    return None


def _one_date(value: str, order: str | None, with_time: bool) -> tuple[str | None, str]:
    """(canonical text, "") or (None, why it is not a date). Dates keep the
    calendar day as written; timestamps are converted to UTC."""
    parsed: datetime | None = None
    numeric = False
    try:
        if match := _ISO.match(value):
            year, month, day, hour, minute, second, _, zone = match.groups()
            if zone and with_time:
                parsed = datetime.fromisoformat(value.replace(" ", "T", 1).replace("Z", "+00:00"))
                parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
            else:
                parsed = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                                  int(second or 0))
        elif match := _YMD.match(value):
            year, _, month, day = match.groups()
            parsed = datetime(int(year), int(month), int(day))
        elif match := _NUMERIC.match(value):
            numeric = True
            first, _, second, year, hour, minute, sec, half = match.groups()
            if order is None and first != second:
                return None, f"could be day-first or month-first; {DATE_ORDER_HINT}"
            order = order or DAY_FIRST   # equal parts read alike in both orders
            day, month = (first, second) if order == DAY_FIRST else (second, first)
            hour = int(hour or 0)
            if half:   # 12 AM is midnight, 12 PM noon; a 24-hour clock with AM/PM is no time
                hour = hour % 12 + (12 if half.lower() == "pm" else 0) if 1 <= hour <= 12 else 99
            parsed = datetime(int(year), int(month), int(day), hour, int(minute or 0), int(sec or 0))
    except ValueError:
        return None, f"is not a real date when read {order.replace('_', '-')}" if numeric else "is not a real date"
    if parsed is None:
        if _SHORT_YEAR.match(value):
            return None, "has a two-digit year; export four-digit years"
        for fmt in _NAMED:
            try:
                parsed = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None, "is not a date"
    return (parsed.isoformat(timespec="seconds") if with_time else parsed.date().isoformat()), ""


def normalize_dates(text: pd.Series, order: str | None, with_time: bool = False) -> tuple[pd.Series, pd.Series]:
    """(canonical text, reason per row: "" when fine). Empty cells stay empty.
    Canonical values pass on a vectorised fast path."""
    fmt = "%Y-%m-%dT%H:%M:%S" if with_time else "%Y-%m-%d"
    width = 19 if with_time else 10
    fast = pd.to_datetime(text, format=fmt, errors="coerce").notna() & (text.str.len() == width)
    return _parse_rest(text, ~fast & (text != ""), lambda value: _one_date(value, order, with_time))


# --- amounts -------------------------------------------------------------


def _strip_currency(value: str) -> tuple[str, bool, bool]:
    """(body without currency and sign wrappers, negative?, dot-decimal currency seen?)."""
    body = value.strip()
    negative = False
    if body.startswith("(") and body.endswith(")"):
        negative, body = True, body[1:-1].strip()
    dot_currency = False
    for _ in range(2):
        if body[:1] in _CURRENCY_SIGNS:
            dot_currency |= body[:1] in _DOT_CURRENCIES
            body = body[1:].strip()
        if body[-1:] in _CURRENCY_SIGNS:
            dot_currency |= body[-1:] in _DOT_CURRENCIES
            body = body[:-1].strip()
        code = _CODE.search(body)
        if code:
            found = code.group(1) or code.group(2)
            dot_currency |= found in _DOT_CURRENCIES
            body = (body[code.end():] if code.group(1) else body[:code.start()]).strip()
        if body[:1] in "-\u2212+" and len(body) > 1:
            negative ^= body[:1] != "+"
            body = body[1:].strip()
        if body[-1:] == "-" and len(body) > 1:
            negative, body = not negative, body[:-1].strip()
    return body, negative, dot_currency


def _mark_evidence(value: str) -> str | None:
    """Which decimal mark one amount shows, if any."""
    body, _, dot_currency = _strip_currency(value)
    commas, dots = body.count(","), body.count(".")
    if commas and dots:
        return "," if body.rfind(",") > body.rfind(".") else "."
    for mark, other, count in ((",", ".", commas), (".", ",", dots)):
        if count > 1:
            return other
        if count == 1 and (len(body.split(mark)[1]) != 3 or body.startswith("0" + mark)):
            return mark
    return "." if dot_currency else None


def decide_decimal_mark(text: pd.Series, stated: str | None, where: str) -> str | None:
    """The decimal mark of the file's amounts: stated, or the one most
    amounts show ("1,234.50", "12,5"); a tie blocks the file."""
    if stated:
        return stated
    plain = text.str.fullmatch(_PLAIN_NUMBER) | (text == "")
    votes = {".": 0, ",": 0}
    examples: dict[str, str] = {}
    for value in pd.unique(text[~plain]):
        mark = _mark_evidence(value)
        if mark:
            votes[mark] += 1
            examples.setdefault(mark, value)
    if votes["."] and votes["."] == votes[","]:
        raise BlockedInput(
            f"The amounts in {where} use both '.' ('{examples['.']}') and ',' ('{examples[',']}') as the "
            f"decimal mark equally often: fix the export or {DECIMAL_HINT}.")
    if votes["."] == votes[","]:
        return None
    return "." if votes["."] > votes[","] else ","


def _grouped_ok(integer: str, grouping: str) -> bool:
    if not grouping:
        return integer.isdigit()
    groups = integer.split(grouping)
    return (groups[0].isdigit() and 1 <= len(groups[0]) <= 3
            and all(len(g) == 3 and g.isdigit() for g in groups[1:]))


def _one_amount(value: str, mark: str | None, max_amount: float) -> tuple[str | None, str]:
    body, negative, _ = _strip_currency(value)
    if _NON_FINITE.match(body):
        return None, "is not a finite number"
    if _SCIENTIFIC.match(body):
        number = Decimal(body)
    else:
        separators = {c for c in body if not c.isdigit()}
        if not body or not separators <= set(",." + _GROUPING):
            return None, "is not a number"
        decimal_mark = mark
        if decimal_mark is None and "," in body and "." in body:
            decimal_mark = "," if body.rfind(",") > body.rfind(".") else "."
        if decimal_mark is None:
            if "," in body or "." in body:
                sep = "," if "," in body else "."
                if body.count(sep) == 1 and len(body.split(sep)[1]) == 3:
                    return None, (f"is ambiguous: ',' or '.' could separate thousands or decimals "
                                  f"and nothing in the file settles it; {DECIMAL_HINT}")
                decimal_mark = sep if body.count(sep) == 1 else ("." if sep == "," else ",")
            else:
                decimal_mark = "."
        integer, _, fraction = body.partition(decimal_mark)
        if fraction and not fraction.isdigit():
            return None, f"is not a number with '{decimal_mark}' as the decimal mark"
        group_chars = {c for c in integer if not c.isdigit()}
        if len(group_chars) > 1 or not _grouped_ok(integer, group_chars.pop() if group_chars else ""):
            return None, f"is not a number with '{decimal_mark}' as the decimal mark"
        number = Decimal(integer.translate({ord(c): None for c in ",." + _GROUPING}) + "." + (fraction or "0"))
    try:
        if not number.is_finite() or abs(number) > Decimal(repr(max_amount)):
            return None, f"is out of range (above {max_amount:,.0f})"
    except InvalidOperation:
        return None, "is not a number"
    text = format(-number if negative else number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return (text if text not in ("-0", "") else "0"), ""


def normalize_amounts(text: pd.Series, mark: str | None, max_amount: float) -> tuple[pd.Series, pd.Series]:
    """(canonical text, reason per row: "" when fine). Empty cells stay empty."""
    fast = text.str.fullmatch(_PLAIN_NUMBER)
    if fast.any():
        big = fast & (pd.to_numeric(text.where(fast), errors="coerce").abs() > max_amount)
        fast &= ~big
    return _parse_rest(text, ~fast & (text != ""), lambda value: _one_amount(value, mark, max_amount))


def _parse_rest(text: pd.Series, slow: pd.Series, parse_one) -> tuple[pd.Series, pd.Series]:
    """Parse the cells off the fast path one distinct value at a time:
    (canonical text, reason per row). A cell that cannot be read keeps its
    text and gets the reason."""
    out = text.copy()
    reasons = pd.Series("", index=text.index, dtype=object)
    if slow.any():
        parsed = {value: parse_one(value) for value in pd.unique(text[slow])}
        out[slow] = [parsed[v][0] if parsed[v][0] is not None else v for v in text[slow]]
        reasons[slow] = [parsed[v][1] for v in text[slow]]
    return out, reasons


# --- a whole frame -------------------------------------------------------


def decide_formats(frame: pd.DataFrame, stated: Formats, where: str) -> Formats:
    """The file-wide formats, decided before any row is judged."""
    order = decide_date_order(frame, stated.date_order, where)
    mark = decide_decimal_mark(frame["deal_amount"], stated.decimal_mark, where) \
        if "deal_amount" in frame.columns else stated.decimal_mark
    return Formats(order, mark)


def normalize_frame(frame: pd.DataFrame, formats: Formats,
                    max_amount: float) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame]:
    """Canonical text for every date and amount column (cells that do not
    parse keep their text), the reasons ("" for rows that parse whole) and a
    mask of the cells that did not parse."""
    out = frame.copy()
    reasons = pd.Series("", index=frame.index, dtype=object)
    bad_cells = pd.DataFrame(index=frame.index)

    def add(col: str, col_reasons: pd.Series) -> None:
        bad = col_reasons != ""
        bad_cells[col] = bad.to_numpy(bool)
        if bad.any():
            words = col + " " + frame.loc[bad, col].map(repr) + " " + col_reasons[bad]
            reasons[bad] = (reasons[bad] + "; ").where(reasons[bad] != "", "") + words

    for col in DATE_COLUMNS + TIMESTAMP_COLUMNS:
        if col in frame.columns:
            out[col], col_reasons = normalize_dates(frame[col], formats.date_order, col in TIMESTAMP_COLUMNS)
            add(col, col_reasons)
    for col in AMOUNT_COLUMNS:
        if col in frame.columns:
            out[col], col_reasons = normalize_amounts(frame[col], formats.decimal_mark, max_amount)
            add(col, col_reasons)
    return out, reasons, bad_cells


def parse_analysis_date(text: str | None, what: str = "SALESINTEL_AS_OF") -> date | None:
    """The analysis date, strictly ``YYYY-MM-DD``; a bad one is a blocked input."""
    if text is None or str(text).strip() == "":
        return None
    value = str(text).strip()
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise BlockedInput(f"{what}={value!r} is not a date YYYY-MM-DD: set it to the analysis date, "
                           "e.g. --as-of 2024-07-20, or leave it unset for today.") from None
