"""Pandera model of the serving layer."""

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series


class ServingSnapshot(pa.DataFrameModel):
    """The manifest of the snapshot published for the web service: one row per
    read-only Parquet file under ``$SALESINTEL_HOME/serving/snapshots/<snapshot>``."""

    snapshot: Series[str] = pa.Field(description="folder name; the CURRENT pointer names the live one")
    file: Series[str] = pa.Field(unique=True, description="a Parquet file of the snapshot")
    rows: Series[int] = pa.Field(ge=0, description="rows in that file")
    published_at: Series[pd.Timestamp] = pa.Field(description="when the snapshot was switched in (UTC)")
    as_of_date: Series[pd.Timestamp] = pa.Field(description="the analysis date of the run that built it")

    class Config:
        strict = True
        coerce = True

    @pa.dataframe_check
    def one_snapshot(cls, df: pd.DataFrame) -> bool:
        return df["snapshot"].nunique() == 1 and "deals.parquet" in set(df["file"])
