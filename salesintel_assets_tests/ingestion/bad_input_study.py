"""The bad-export study: many kinds of broken CRM export, each run through
the real ``salesintel run`` command into a fresh warehouse, then a clean
export into the same warehouse.

For every kind it prints what was expected, the rows lost (neither loaded
nor quarantined nor refused with a message), the rows silently wrong (loaded
with a value other than the truth), the exit code, the message and whether
the warehouse still loads a good export correctly afterwards.

    python -m salesintel_assets_tests.ingestion.bad_input_study [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import random
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import duckdb
import pandas as pd

AS_OF = "2024-07-20"
N_DEALS = 80
HEADER = ["deal_id", "created_date", "closed_date", "sales_rep_id", "industry", "region", "product_type",
          "lead_source", "deal_stage", "deal_amount", "sales_cycle_days", "outcome"]
CONTRACT = ("SALESINTEL_HOME", "SALESINTEL_SOURCE", "SALESINTEL_CSV", "SALESINTEL_AS_OF", "SALESINTEL_RULES",
            "SALESINTEL_DATE_ORDER", "SALESINTEL_DECIMAL_MARK", "SALESINTEL_ORG")
TABLES = ("raw_deals", "quarantined_deals", "data_quality_report", "fact_deals", "deal_history")


@dataclass
class Deal:
    deal_id: str
    created: date
    closed: date | None
    amount: float
    outcome: str          # Won, Lost or Open
    stage: str
    rep: str
    industry: str
    region: str
    product: str
    lead_source: str


def base_deals(n: int = N_DEALS, seed: int = 7) -> list[Deal]:
    """Deals whose truth is known. Created days run past the 12th, so ISO
    renderings are unambiguous; each case renders them as it needs."""
    rng = random.Random(seed)
    deals = []
    for i in range(n):
        created = date(2024, 1, 2) + timedelta(days=rng.randrange(0, 150))
        is_open = i % 4 == 3
        closed = None if is_open else min(created + timedelta(days=rng.randrange(5, 60)), date(2024, 7, 19))
        amount = float(rng.randrange(500, 95000)) + (0.5 if i % 5 == 0 else 0.0)
        deals.append(Deal(f"D{i + 1:04d}", created, closed, amount,
                          "Open" if is_open else rng.choice(["Won", "Lost"]),
                          rng.choice(["Qualified", "Demo", "Proposal", "Negotiation"]) if is_open else "Closed",
                          f"rep_{rng.randrange(1, 6)}", rng.choice(["SaaS", "FinTech", "EdTech"]),
                          rng.choice(["Europe", "North America", "APAC"]), rng.choice(["Core", "Pro"]),
                          rng.choice(["Inbound", "Referral", "Outbound"])))
    return deals


def _amount_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def rows_of(deals: list[Deal], date_fmt: str = "%Y-%m-%d", amount: Callable[[float], str] = _amount_text,
            ) -> list[dict[str, str]]:
    """Deals as the text of an export."""
    rows = []
    for d in deals:
        rows.append({
            "deal_id": d.deal_id, "created_date": d.created.strftime(date_fmt),
            "closed_date": d.closed.strftime(date_fmt) if d.closed else "", "sales_rep_id": d.rep,
            "industry": d.industry, "region": d.region, "product_type": d.product, "lead_source": d.lead_source,
            "deal_stage": d.stage, "deal_amount": amount(d.amount),
            "sales_cycle_days": str((d.closed - d.created).days) if d.closed else "",
            "outcome": "" if d.outcome == "Open" else d.outcome})
    return rows


def csv_text(rows: list[dict[str, str]], header: list[str] | None = None, sep: str = ",") -> str:
    header = header or list(rows[0].keys())
    out = io.StringIO()
    pd.DataFrame(rows, columns=header).to_csv(out, index=False, sep=sep, lineterminator="\n")
    return out.getvalue()


@dataclass
class Case:
    kind: str
    family: str
    expected: str                                   # "load", "quarantine", "block", "stable"
    build: Callable[[Path, list[Deal]], Path]       # writes the input, returns its path
    quarantined: set[str] = field(default_factory=set)   # deal ids expected in quarantine
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    repeat: int = 1                                  # pulls of the same input (idempotence)
    truth: Callable[[list[Deal]], list[Deal]] | None = None   # the truth when the case changes values


# --- builders ------------------------------------------------------------


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def plain(mutate: Callable[[list[dict]], list[dict]] | None = None, **render) -> Callable[[Path, list[Deal]], Path]:
    def build(folder: Path, deals: list[Deal]) -> Path:
        rows = rows_of(deals, **render)
        return write(folder / "export.csv", csv_text(mutate(rows) if mutate else rows))
    return build


def edit(ids: dict[str, dict[str, str]]) -> Callable[[list[dict]], list[dict]]:
    def mutate(rows: list[dict]) -> list[dict]:
        return [{**r, **ids.get(r["deal_id"], {})} for r in rows]
    return mutate


def text_edit(change: Callable[[str], str], **render) -> Callable[[Path, list[Deal]], Path]:
    def build(folder: Path, deals: list[Deal]) -> Path:
        return write(folder / "export.csv", change(csv_text(rows_of(deals, **render))))
    return build


def replace_line(number: int, change: Callable[[str], str]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        lines = text.split("\n")
        lines[number - 1] = change(lines[number - 1])
        return "\n".join(lines)
    return apply


def encoded(encoding: str, industry: str) -> Callable[[Path, list[Deal]], Path]:
    def build(folder: Path, deals: list[Deal]) -> Path:
        rows = [{**r, "industry": industry} if i % 3 == 0 else r for i, r in enumerate(rows_of(deals))]
        return write(folder / "export.csv", csv_text(rows), encoding)
    return build


def raw_bytes(data: bytes) -> Callable[[Path, list[Deal]], Path]:
    def build(folder: Path, deals: list[Deal]) -> Path:
        (folder / "export.csv").write_bytes(data)
        return folder / "export.csv"
    return build


def gzipped(folder: Path, deals: list[Deal]) -> Path:
    (folder / "export.csv").write_bytes(gzip.compress(csv_text(rows_of(deals)).encode()))
    return folder / "export.csv"


def directory(folder: Path, deals: list[Deal]) -> Path:
    (folder / "export.csv").mkdir()
    return folder / "export.csv"


def missing_path(folder: Path, deals: list[Deal]) -> Path:
    return folder / "no-such-export.csv"


def with_rules(extra: str) -> Callable[[Path], str]:
    from salesintel_assets.domain.common.rules import default_rules_path

    def make(folder: Path) -> str:
        text = default_rules_path().read_text()
        path = folder / "rules.yaml"
        path.write_text(text.replace("  names:\n", "  names:\n" + extra, 1))
        return str(path)
    return make


def crm_stage_names(folder: Path, deals: list[Deal]) -> Path:
    names = {"Qualified": "Discovery", "Demo": "Evaluation", "Proposal": "Proposal", "Negotiation": "Negotiation"}
    rows = []
    for r in rows_of(deals):
        stage = r["outcome"] if r["outcome"] else names[r["deal_stage"]]
        rows.append({**r, "deal_stage": stage, "outcome": ""})   # the CRM says won/lost only by stage
    with_rules("    Discovery: Qualified\n    Evaluation: Demo\n")(folder)
    return write(folder / "export.csv", csv_text(rows))


def versions(with_modified: bool) -> Callable[[Path, list[Deal]], Path]:
    """Deals D0001-D0010 appear twice: an older version with another amount."""
    def build(folder: Path, deals: list[Deal]) -> Path:
        rows = rows_of(deals)
        header = HEADER + (["last_modified"] if with_modified else [])
        newest = [{**r, "last_modified": "2024-07-01T10:00:00Z"} for r in rows]
        older = [{**r, "deal_amount": "1", "last_modified": "2024-06-01T10:00:00Z"} for r in rows[:10]]
        # Older versions come after the newest when the time can say so, before it when only order can.
        ordered = newest + older if with_modified else older + newest
        return write(folder / "export.csv", csv_text(ordered, header))
    return build


def without_columns(*names: str, stage_says_outcome: bool = False) -> Callable[[Path, list[Deal]], Path]:
    """The export without ``names`` (a closed deal's stage Won or Lost when
    ``stage_says_outcome``, as CRMs without an outcome field write it)."""
    def build(folder: Path, deals: list[Deal]) -> Path:
        rows = [{**r, "deal_stage": r["outcome"] or r["deal_stage"]} if stage_says_outcome else r
                for r in rows_of(deals)]
        kept = [c for c in HEADER if c not in names]
        return write(folder / "export.csv", csv_text([{c: r[c] for c in kept} for r in rows], kept))
    return build


def day_first_ambiguous(folder: Path, deals: list[Deal]) -> Path:
    """Every day is 12 or less: nothing in the file says which part is the day."""
    shifted = [Deal(**{**d.__dict__, "created": d.created.replace(day=min(d.created.day, 12)),
                       "closed": d.closed.replace(day=min(d.closed.day, 12)) if d.closed else None})
               for d in deals]
    return write(folder / "export.csv", csv_text(rows_of(shifted, date_fmt="%d/%m/%Y")))


def ambiguous_truth(deals: list[Deal]) -> list[Deal]:
    return [Deal(**{**d.__dict__, "created": d.created.replace(day=min(d.created.day, 12)),
                    "closed": d.closed.replace(day=min(d.closed.day, 12)) if d.closed else None}) for d in deals]


def mixed_orders(folder: Path, deals: list[Deal]) -> Path:
    rows = rows_of(deals[:40], date_fmt="%d/%m/%Y") + rows_of(deals[40:], date_fmt="%m/%d/%Y")
    return write(folder / "export.csv", csv_text(rows))


def euro(value: float) -> str:
    whole, cents = f"{value:,.2f}".split(".")
    return whole.replace(",", ".") + "," + cents


def breaker_file(folder: Path, deals: list[Deal]) -> Path:
    rows = [{**r, "outcome": "Pending"} if i % 4 == 0 and r["outcome"] else r for i, r in enumerate(rows_of(deals))]
    return write(folder / "export.csv", csv_text(rows))


def empty_ids(folder: Path, deals: list[Deal]) -> Path:
    rows = rows_of(deals) + [{**rows_of(deals[:1])[0], "deal_id": ""}, {**rows_of(deals[1:2])[0], "deal_id": ""}]
    return write(folder / "export.csv", csv_text(rows))


def future(col: str) -> Callable[[Path, list[Deal]], Path]:
    def build(folder: Path, deals: list[Deal]) -> Path:
        change = {"created_date": "2024-08-02", "closed_date": "2024-09-02", "sales_cycle_days": "31",
                  "outcome": "Won", "deal_stage": "Closed"} if col == "created_date" else \
            {"closed_date": "2024-09-02", "outcome": "Won", "deal_stage": "Closed", "sales_cycle_days": ""}
        return plain(edit({"D0001": change}))(folder, deals)
    return build


S, O, I = "Silently wrong values", "One defect sinks everything", "Not idempotent"
CASES = [
    Case("dates day-first with a day above 12", S, "load", plain(date_fmt="%d/%m/%Y")),
    Case("dates month-first with a day above 12", S, "load", plain(date_fmt="%m/%d/%Y")),
    Case("dates dd.mm.yyyy", S, "load", plain(date_fmt="%d.%m.%Y")),
    Case("dates yyyy/mm/dd", S, "load", plain(date_fmt="%Y/%m/%d")),
    Case("dates 05 Jan 2024", S, "load", plain(date_fmt="%d %b %Y")),
    Case("dates ISO with time and Z", S, "load", plain(date_fmt="%Y-%m-%dT%H:%M:%SZ")),
    Case("dates ISO with a -05:00 offset", S, "load", plain(date_fmt="%Y-%m-%dT09:30:00-05:00")),
    Case("dates day-first, every day 12 or less", S, "block", day_first_ambiguous, truth=ambiguous_truth),
    Case("dates day-first, every day 12 or less, order stated", S, "load", day_first_ambiguous,
         args=["--date-order", "day_first"], truth=ambiguous_truth),
    Case("dates in both orders in one file", S, "block", mixed_orders),
    Case("a 30 February", S, "quarantine", plain(edit({"D0002": {"created_date": "2024-02-30"}})), {"D0002"}),
    Case("a two-digit year", S, "quarantine", plain(edit({"D0003": {"created_date": "05/03/24"}})), {"D0003"}),
    Case("an Excel serial number as a date", S, "quarantine", plain(edit({"D0004": {"created_date": "45292"}})),
         {"D0004"}),
    Case("amount 1e309", S, "quarantine", plain(edit({"D0005": {"deal_amount": "1e309"}})), {"D0005"}),
    Case("amounts inf and nan", S, "quarantine",
         plain(edit({"D0006": {"deal_amount": "inf"}, "D0007": {"deal_amount": "NaN"}})), {"D0006", "D0007"}),
    Case("amount far beyond any deal (1e15)", S, "quarantine", plain(edit({"D0008": {"deal_amount": "1e15"}})),
         {"D0008"}),
    Case("amounts 1.234,50 (decimal comma)", S, "load", plain(amount=euro)),
    Case("amounts 1,234.50 (thousands comma)", S, "load", plain(amount=lambda v: f"{v:,.2f}")),
    Case("amounts $1,234 and USD", S, "load", plain(amount=lambda v: f"${v:,.0f}" if v == int(v) else f"USD {v:,.2f}")),
    Case("amounts 1 234,50 EUR", S, "load", plain(amount=lambda v: euro(v).replace(".", " ") + " EUR")),
    Case("amount (1,234) accounting negative", S, "quarantine",
         plain(edit({"D0009": {"deal_amount": "(1,234.00)"}})), {"D0009"}),
    Case("a negative amount", S, "quarantine", plain(edit({"D0010": {"deal_amount": "-500"}})), {"D0010"}),
    Case("amounts with only 45,000 to go by", S, "quarantine",
         plain(edit({"D0011": {"deal_amount": "45,000"}}), amount=lambda v: f"{v:.0f}"), {"D0011"},
         truth=lambda ds: [Deal(**{**d.__dict__, "amount": float(f"{d.amount:.0f}")}) for d in ds]),
    Case("an amount that is words", S, "quarantine", plain(edit({"D0012": {"deal_amount": "lots"}})), {"D0012"}),
    Case("a deal created after the analysis date", S, "quarantine", future("created_date"), {"D0001"}),
    Case("a deal closed after the analysis date", S, "quarantine", future("closed_date"), {"D0001"}),
    Case("stage Won with outcome Lost", S, "quarantine",
         plain(edit({"D0013": {"deal_stage": "Won", "outcome": "Lost"}})), {"D0013"}),
    Case("the CRM's own stage names, mapped in the rules file", S, "load", crm_stage_names,
         env={"SALESINTEL_RULES": "{folder}/rules.yaml"}),
    Case("the CRM's own stage names, not mapped", S, "load",
         plain(lambda rows: [{**r, "deal_stage": "Discovery Call"} for r in rows]),
         truth=lambda ds: [Deal(**{**d.__dict__, "stage": "Discovery Call"}) for d in ds]),
    Case("lead_source blank on every row", S, "load", plain(lambda rows: [{**r, "lead_source": ""} for r in rows]),
         truth=lambda ds: [Deal(**{**d.__dict__, "lead_source": "Unknown"}) for d in ds]),
    Case("a row with an extra field", O, "quarantine", text_edit(replace_line(4, lambda l: l + ",surplus")),
         {"D0003"}),
    Case("a row with a missing field", O, "quarantine", text_edit(replace_line(5, lambda l: l.rsplit(",", 1)[0])),
         {"D0004"}),
    Case("a quote that is never closed", O, "quarantine", text_edit(replace_line(6, lambda l: l.replace(",", ',"', 1))),
         {"D0005"}),
    Case("quoted fields with commas and line breaks", O, "load",
         plain(lambda rows: [{**r, "product_type": 'Core, "plus"\nsupport'} for r in rows]),
         truth=lambda ds: [Deal(**{**d.__dict__, "product": 'Core, "plus"\nsupport'}) for d in ds]),
    Case("blank lines and rows of bare commas", O, "load",
         text_edit(lambda t: t.replace("\nD0010", "\n\n,,,,,,,,,,,\nD0010"))),
    Case("header in capitals with spaces", O, "load", text_edit(lambda t: t.replace("deal_id,", " DEAL_ID ,", 1))),
    Case("UTF-8 with a byte-order mark", O, "load", encoded("utf-8-sig", "Télécom")),
    Case("UTF-16 with a byte-order mark", O, "load", encoded("utf-16", "Télécom")),
    Case("latin-1", O, "load", encoded("latin-1", "Télécom")),
    Case("Windows-1252 with curly quotes", O, "load", encoded("cp1252", "Ad’Tech")),
    Case("Windows line endings", O, "load", text_edit(lambda t: t.replace("\n", "\r\n"))),
    Case("a NUL byte in one row", O, "quarantine", text_edit(replace_line(7, lambda l: l.replace(",", ",\x00", 1))),
         {"D0006"}),
    Case("a 200,000-character note in one cell", O, "load",
         plain(lambda rows: [{**r, "notes": "long, \"quoted\" note " * 10_000 if i == 0 else ""}
                             for i, r in enumerate(rows)])),
    Case("an empty file", O, "block", raw_bytes(b"")),
    Case("only a header", O, "block", raw_bytes((",".join(HEADER) + "\n").encode())),
    Case("a binary file", O, "block", raw_bytes(bytes(range(256)) * 8)),
    Case("a gzip file named .csv", O, "block", gzipped),
    Case("a directory", O, "block", directory),
    Case("a path that does not exist", O, "block", missing_path),
    Case("semicolon-separated", O, "load", text_edit(lambda t: t.replace(",", ";"))),
    Case("tab-separated", O, "load", text_edit(lambda t: t.replace(",", "\t"))),
    Case("a required column missing (deal_amount)", O, "block", without_columns("deal_amount")),
    Case("no sales_cycle_days, lead_source or outcome column (won and lost said by the stage)", O, "load",
         without_columns("sales_cycle_days", "lead_source", "outcome", stage_says_outcome=True),
         truth=lambda ds: [Deal(**{**d.__dict__, "lead_source": "Unknown"}) for d in ds], repeat=2),
    Case("a column twice", O, "block", text_edit(lambda t: t.replace("region,", "industry,", 1))),
    Case("a bad SALESINTEL_AS_OF", O, "block", plain(), env={"SALESINTEL_AS_OF": "2024-13-45"}),
    Case("an unknown --date-order in the environment", O, "block", plain(), env={"SALESINTEL_DATE_ORDER": "ymd"}),
    Case("two versions of ten deals with last_modified, pulled 3 times", I, "stable", versions(True),
         {"~D0001", "~D0010"}, repeat=3),
    Case("two versions of ten deals without last_modified, pulled 3 times", I, "stable", versions(False),
         {"~D0001", "~D0010"}, repeat=3),
    Case("two rows without deal_id, pulled 3 times", I, "stable", empty_ids, repeat=3),
    Case("rows broken in several ways, pulled 3 times", I, "stable",
         text_edit(replace_line(4, lambda l: l + ",x")), {"D0003"}, repeat=3),
    Case("a file that trips the circuit breaker, pulled twice", I, "block", breaker_file, repeat=2),
    Case("the same good file pulled 3 times", I, "stable", plain(), repeat=3),
]


# --- running -------------------------------------------------------------


@contextlib.contextmanager
def contract(env: dict[str, str]):
    saved = {name: os.environ.get(name) for name in CONTRACT}
    for name in CONTRACT:
        os.environ.pop(name, None)
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def salesintel_run(home: Path, path: Path, args: list[str], env: dict[str, str]) -> tuple[int, str]:
    """``salesintel run --job ingestion_job`` in process: (exit code, what it printed to stderr)."""
    from salesintel_assets.cli import main

    err = io.StringIO()
    with contract(env), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        argv = ["run", "--job", "ingestion_job", "--csv", str(path), "--home", str(home)] + args
        if "SALESINTEL_AS_OF" not in env:
            argv += ["--as-of", AS_OF]
        try:
            code = main(argv)
        except SystemExit as exc:   # argparse refuses an option value
            code = int(exc.code or 0)
    return code, err.getvalue().strip()


def snapshot(home: Path) -> dict[str, pd.DataFrame]:
    database = home / "warehouse.duckdb"
    if not database.exists():
        return {}
    con = duckdb.connect(str(database), read_only=True)
    try:
        names = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        return {t: con.sql(f'SELECT * FROM main."{t}"').df() for t in TABLES if t in names}
    finally:
        con.close()


def same_tables(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> bool:
    if a.keys() != b.keys():
        return False
    for name in a:
        x, y = a[name], b[name]
        if list(x.columns) != list(y.columns) or len(x) != len(y):
            return False
        order = [c for c in x.columns if c not in ("_pulled_at", "observed_at")]
        if not x[order].astype(str).sort_values(order).reset_index(drop=True).equals(
                y[order].astype(str).sort_values(order).reset_index(drop=True)):
            return False
    return True


def judge(deals: list[Deal], tables: dict[str, pd.DataFrame]) -> tuple[int, int, set[str]]:
    """(rows lost, rows silently wrong, ids quarantined) of a warehouse against
    the truth; superseded versions count as quarantined ids with a "~" prefix."""
    fact = tables.get("fact_deals", pd.DataFrame(columns=["deal_id"])).set_index("deal_id")
    quarantine = tables.get("quarantined_deals", pd.DataFrame(columns=["deal_id", "rule"]))
    quarantined = set(quarantine.loc[quarantine["rule"] != "duplicates", "deal_id"])
    lost = wrong = 0
    for d in deals:
        if d.deal_id not in fact.index:
            lost += d.deal_id not in quarantined
            continue
        row = fact.loc[d.deal_id]
        closed = None if pd.isna(row["closed_date"]) else row["closed_date"].date()
        if (row["created_date"].date() != d.created or closed != d.closed or abs(row["deal_amount"] - d.amount) > 1e-6
                or row["outcome"] != d.outcome or row["deal_stage"] != d.stage or row["lead_source"] != d.lead_source):
            wrong += 1
    wrong += len(set(fact.index) - {d.deal_id for d in deals})
    superseded = {f"~{i}" for i in quarantine.loc[quarantine["rule"] == "duplicates", "deal_id"]}
    return lost, wrong, quarantined | superseded


@dataclass
class Outcome:
    kind: str
    family: str
    expected: str
    handled: bool
    lost: int
    wrong: int
    exit_code: int
    message: str
    usable_after: bool


def run_case(case: Case, folder: Path, deals: list[Deal]) -> Outcome:
    folder.mkdir(parents=True)
    home = folder / "home"
    path = case.build(folder, deals)
    env = {k: v.format(folder=folder) for k, v in case.env.items()}
    truth = case.truth(deals) if case.truth else deals
    codes, messages, snapshots = [], [], []
    for _ in range(case.repeat):
        code, message = salesintel_run(home, path, case.args, env)
        codes.append(code)
        messages.append(message)
        snapshots.append(snapshot(home))
    tables = snapshots[-1]
    blocked = codes[-1] == 2
    lost, wrong, quarantined = judge(truth, tables) if not blocked else (0, 0, set())
    if blocked:   # a refused input must leave nothing of itself behind
        wrong = sum(len(t) for name, t in tables.items() if name in ("fact_deals", "quarantined_deals"))
    one_sentence = bool(messages[-1]) and "Traceback" not in messages[-1] and len(messages[-1].splitlines()) == 1
    stable = all(same_tables(snapshots[0], s) for s in snapshots[1:])
    expected_quarantine = case.quarantined <= quarantined
    handled = {
        "load": codes[-1] == 0 and not quarantined and lost == wrong == 0,
        "quarantine": codes[-1] == 0 and expected_quarantine,
        "block": blocked and one_sentence,
        "stable": codes[-1] == 0 and expected_quarantine,
    }[case.expected] and stable and len(set(codes)) == 1
    good = folder / "good.csv"
    write(good, csv_text(rows_of(deals)))
    code, _ = salesintel_run(home, good, [], {})
    after_lost, after_wrong, after_quarantined = judge(deals, snapshot(home))
    fact = snapshot(home).get("fact_deals", pd.DataFrame())
    usable = code == 0 and after_lost == 0 and after_wrong == 0 and len(fact) == len(deals)
    shown = messages[-1].splitlines()[0] if messages[-1] else (
        f"{len(quarantined)} deal(s) quarantined or superseded" if quarantined else "")
    return Outcome(case.kind, case.family, case.expected, handled, lost, wrong, codes[-1],
                   shown.removeprefix("salesintel: "), usable)


def run_cases(cases: list[Case], root: Path | None = None) -> list[Outcome]:
    deals = base_deals()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(root or tmp)
        return [run_case(case, base / f"case{i:02d}", deals) for i, case in enumerate(cases)]


def table(outcomes: list[Outcome]) -> str:
    frame = pd.DataFrame([o.__dict__ for o in outcomes])
    frame["handled"] = frame["handled"].map({True: "yes", False: "NO"})
    frame["usable_after"] = frame["usable_after"].map({True: "yes", False: "NO"})
    frame["message"] = frame["message"].str.slice(0, 150)
    return frame.to_markdown(index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="substrings of the kinds to run")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or any(s in c.kind for s in args.only)]
    outcomes = run_cases(cases)
    print(table(outcomes))
    frame = pd.DataFrame([o.__dict__ for o in outcomes])
    print(f"\n{len(frame)} kinds of bad export: handled as expected {int(frame['handled'].sum())}, "
          f"rows lost {int(frame['lost'].sum())}, rows silently wrong {int(frame['wrong'].sum())}, "
          f"blocked with exit code 2 {int((frame['exit_code'] == 2).sum())}, "
          f"warehouse usable after {int(frame['usable_after'].sum())}")
    return 0 if frame["handled"].all() and frame["usable_after"].all() and not frame[["lost", "wrong"]].any().any() \
        else 1


if __name__ == "__main__":
    sys.exit(main())
