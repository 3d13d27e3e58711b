"""The vectorised reader of a CRM export gives exactly what the line-by-line
reader gives, and leaves every file it cannot read faithfully to it."""

from __future__ import annotations

import pandas as pd
import pytest

from salesintel_assets.sources import csv_export

HEADER = "deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source,deal_stage," \
         "deal_amount,sales_cycle_days,outcome\n"
ROW = "D1,2024-01-02,2024-02-01,rep_1,SaaS,Europe,Core,Inbound,Closed,1200,30,Won\n"
OPEN = "D2,2024-03-02,,rep_2,FinTech,APAC,Pro,Referral,Demo,3400,,Open\n"


def _both(path):
    text = path.read_bytes().decode("utf-8")
    fast = csv_export._fast_split(path, text, "the export", csv_export.EXPORT_COLUMNS)
    slow = csv_export._split(text, "the export", csv_export.EXPORT_COLUMNS)
    return fast, slow


@pytest.mark.parametrize("body", [
    ROW + OPEN,
    "CRLF",
    ROW + OPEN.rstrip("\n"),                                        # no final line break
    ROW.replace("SaaS", '"Saa,S ""x"""') + OPEN.replace("Demo", " Demo "),   # quoting, spaces kept
    ROW.replace("SaaS", "Säas €"),
])
def test_clean_files_read_alike(tmp_path, body):
    path = tmp_path / "deals.csv"
    text = (HEADER + ROW + OPEN).replace("\n", "\r\n") if body == "CRLF" else HEADER + body
    path.write_bytes(text.encode("utf-8"))
    fast, slow = _both(path)
    assert fast is not None
    pd.testing.assert_frame_equal(fast, slow)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_other_delimiters_read_as_commas_do(tmp_path, delimiter):
    comma = tmp_path / "comma.csv"
    comma.write_text(HEADER + ROW.replace("SaaS", '"Saa,S"') + OPEN)
    other = tmp_path / "other.csv"
    other.write_text((HEADER + ROW + OPEN).replace(",", delimiter).replace("SaaS", '"Saa,S"'))
    fast, slow = _both(other)
    expected = csv_export.read_export(comma).frame
    assert expected.loc[0, "industry"] == "Saa,S" and expected.loc[1, "deal_stage"] == "Demo"
    pd.testing.assert_frame_equal(fast, expected)
    pd.testing.assert_frame_equal(slow, expected)


@pytest.mark.parametrize("body", [
    ROW + "\n" + OPEN,                                              # a blank line
    ROW + ",,,,,,,,,,,\n" + OPEN,                                   # a line of bare commas
    ROW + " , ,\t,,,,,,,,,\n" + OPEN,                               # blanks of spaces and tabs
    ROW + "D3,2024-01-02\n" + OPEN,                                 # a short line
    ROW + OPEN.rstrip("\n") + ",extra\n",                           # a long line
    ROW.replace("SaaS", '"Saa\nS"') + OPEN,                         # a quoted line break
    ROW.replace("SaaS", '"SaaS') + OPEN,                            # a quote never closed
    ROW.replace("SaaS", 'Sa"aS') + OPEN,                            # a stray quote
    ROW.replace("SaaS", 'Sa\x00aS') + OPEN,                         # a NUL byte
    "CR",                                                           # old Mac line endings
    (ROW + OPEN).replace("\n", "\r\n"),                             # mixed line endings
])
def test_files_the_fast_reader_cannot_read_faithfully_go_line_by_line(tmp_path, body):
    path = tmp_path / "deals.csv"
    text = (HEADER + ROW + OPEN).replace("\n", "\r") if body == "CR" else HEADER + body
    path.write_bytes(text.encode("utf-8"))
    text = path.read_bytes().decode("utf-8")
    assert csv_export._fast_split(path, text, "the export", csv_export.EXPORT_COLUMNS) is None
    slow = csv_export._split(text.replace("\r", "\n") if body == "CR" else text, "the export",
                             csv_export.EXPORT_COLUMNS)
    pd.testing.assert_frame_equal(csv_export.read_export(path).frame, slow)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_headers_titled_for_people_read_as_the_contracts_names(tmp_path, delimiter):
    # a spreadsheet or CRM report titles its columns: "Deal ID", "Created Date", "deal-amount", "Lead.Source"
    titled = ("Deal ID,Created Date,Closed  Date, Sales Rep Id ,Industry,Region,Product-Type,Lead.Source,Deal Stage,"
              "deal-amount,Sales Cycle Days,OUTCOME\n")
    path = tmp_path / "titled.csv"
    path.write_text((titled + ROW + OPEN).replace(",", delimiter))
    plain = tmp_path / "plain.csv"
    plain.write_text((HEADER + ROW + OPEN).replace(",", delimiter))
    fast, slow = _both(path)
    expected = csv_export.read_export(plain).frame
    assert list(expected.columns[:12]) == HEADER.strip().split(",")
    pd.testing.assert_frame_equal(fast, expected)
    pd.testing.assert_frame_equal(slow, expected)


def test_a_header_naming_one_column_twice_in_two_spellings_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(HEADER.rstrip("\n") + ",Deal Amount\n" + ROW.rstrip("\n") + ",1200\n")
    with pytest.raises(csv_export.BlockedInput, match="deal_amount more than once"):
        csv_export.read_export(path)
