"""A CSV export split by DuckDB is pulled incrementally: only rows not stored
unchanged are judged in pandas, with the same tables and lake as a pull
that judges the whole file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from salesintel_assets.domain.ingestion import pulls
from salesintel_assets.resources.crm import CsvCRM
from salesintel_assets.resources.factory import build_resources
from salesintel_assets_tests.support import read_table, run_selection

AS_OF = "2024-07-20"
HEADER = ("deal_id,created_date,closed_date,sales_rep_id,industry,region,product_type,lead_source,deal_stage,"
          "deal_amount,sales_cycle_days,outcome,note\n")


class WholeFileCsv(CsvCRM):
    """The same export, always loaded whole into pandas (the reference)."""

    def stage_deals(self, con, table):
        return None


def _rows(n: int = 30) -> list[str]:
    rows = [f"D{i:03d},2024-0{1 + i % 6}-1{i % 9},2024-0{2 + i % 6}-2{i % 8},rep_{i % 4},SaaS,EMEA,Core,Inbound,"
            f"Closed Won,{1000 + i},{30 + i},Won,n{i}" for i in range(n)]
    rows[3] = rows[3].replace("SaaS", "  SaaS ")                     # spaces to strip
    rows[4] = rows[4].replace(",1004,", ",-5,")                      # quarantined, but stored
    rows[5] = rows[5].replace(",1005,", ",12abc,")                   # unparseable: never stored
    rows[6] = ",2024-01-01,,rep_1,SaaS,EMEA,Core,Inbound,Demo,10,,,x"  # no deal id
    rows[7] = rows[7].replace("2024-01-1", "2024-09-1")              # created after the analysis date
    rows[8] = rows[8].replace(",1008,", ",\"1,008.50\",")            # a decimal mark to decide
    return rows


def _edited(rows: list[str]) -> list[str]:
    rows = list(rows)
    rows[10] = rows[10].replace(",1010,", ",2010,")                  # a changed amount
    rows[11] = rows[11].replace(",n11", ",other note")               # only an unknown column changed
    rows[12] = rows[12].replace("rep_0", " rep_0")                   # only whitespace changed
    rows.append("D900,2024-03-01,,rep_2,SaaS,EMEA,Core,Inbound,Demo,500,,,new")   # a new deal
    del rows[20]                                                    # a row gone from the file
    rows.append(rows[2])                                            # a line repeated
    return rows


def _pull(home: Path, export: Path, crm_class) -> None:
    crm = crm_class(path=str(export))
    run_selection(build_resources(home=str(home), crm=crm, as_of=AS_OF), "group:ingestion")


def _tables(home: Path) -> dict[str, pd.DataFrame]:
    lineage = ["_pull_id", "_pulled_at", "pull_id", "pulled_at", "_raw_digest", "_source", "source"]
    out = {}
    for name in ("raw_deals", "quarantined_deals", "data_quality_report"):
        frame = read_table(home, name).drop(columns=lineage, errors="ignore")
        out[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    lake = sorted((home / "lake" / "raw_deals").glob("*.parquet"))
    out["lake"] = pd.read_parquet(lake[-1]).drop(columns=lineage, errors="ignore")
    out["lake"]["_row_hash"] = out["lake"]["_row_hash"].astype("uint64")
    return out


@pytest.fixture
def judged(monkeypatch):
    """How many rows each pull conformed (judged in pandas)."""
    sizes: list[int] = []
    conform = pulls.conform_raw

    def counting(page):
        sizes.append(len(page))
        return conform(page)

    monkeypatch.setattr(pulls, "conform_raw", counting)
    return sizes


def test_a_staged_pull_judges_only_changed_rows_with_the_same_results(tmp_path, judged):
    rows = _rows()
    homes = {crm: tmp_path / crm.__name__ for crm in (CsvCRM, WholeFileCsv)}
    for crm, home in homes.items():
        export = home / "export.csv"
        home.mkdir()
        export.write_text(HEADER + "\n".join(rows) + "\n")
        _pull(home, export, crm)
        export.write_text(HEADER + "\n".join(_edited(rows)) + "\n")
        _pull(home, export, crm)
    staged, whole = (_tables(homes[crm]) for crm in (CsvCRM, WholeFileCsv))
    for name in staged:
        pd.testing.assert_frame_equal(staged[name], whole[name], check_dtype=False, obj=name)
    # Staged: everything at first, then the edited, new, repeated and never stored rows.
    assert judged == [30, 7, 30, 31]
    assert len(staged["lake"]) == 31 and staged["lake"]["_line"].tolist() == list(range(2, 33))
    raw = read_table(homes[CsvCRM], "raw_deals").set_index("deal_id")
    assert raw.loc["D010", "deal_amount"] == "2010" and raw.loc["D012", "sales_rep_id"] == "rep_0"
    assert staged["lake"].loc[staged["lake"]["deal_id"] == "D011", "note"].tolist() == ["other note"]
    # A second version of a deal stored unchanged: the whole file is judged, so both versions are compared.
    export = homes[CsvCRM] / "export.csv"
    edited = _edited(rows)
    export.write_text(HEADER + "\n".join(edited + [edited[13].replace(",1013,", ",3013,")]) + "\n")
    _pull(homes[CsvCRM], export, CsvCRM)
    assert judged[-1] == 32
    raw = read_table(homes[CsvCRM], "raw_deals").set_index("deal_id")
    assert raw.loc["D013", "deal_amount"] == "3013"
    quarantined = read_table(homes[CsvCRM], "quarantined_deals").set_index("deal_id")
    assert "superseded" in quarantined.loc["D013", "reason"]
