"""Plain-words explanations of anomalies: what changed, how sure we are, why
(root cause) and what is at stake. Numbers come with their sample sizes."""

from __future__ import annotations

import numpy as np
import pandas as pd

from salesintel_assets.domain.anomalies.root_cause import RootCause
from salesintel_assets.domain.common.stats import wilson_interval

DIM_WORDS = {"industry": "industry", "region": "region", "product_type": "product",
             "lead_source": "lead source", "sales_rep_id": "rep"}
METRIC_WORDS = {"pvs": "Pipeline Velocity Score (PVS)", "smi": "Stage Momentum Index (SMI)",
                "dqs": "Deal Quality Score (DQS)"}


def money(amount: float) -> str:
    amount = float(amount)
    if abs(amount) >= 1e6:
        return f"${amount / 1e6:,.2f}M"
    if abs(amount) >= 1e4:
        return f"${amount / 1e3:,.0f}k"
    return f"${amount:,.0f}"


def pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def day(ts) -> str:
    return pd.Timestamp(ts).strftime("%d %b %Y").lstrip("0")


def describe(keys: dict, adjective: str = "") -> str:
    """{'industry': 'FinTech', 'region': 'Europe'} -> 'FinTech deals in Europe'
    (with an adjective: 'open FinTech deals in Europe')."""
    words = [adjective] if adjective else []
    words += [str(keys[d]) for d in ("industry",) if d in keys]
    if "product_type" in keys:
        words.append(f"{keys['product_type']}-product")
    text = " ".join(words + ["deals"])
    if "lead_source" in keys:
        text += f" from {keys['lead_source']} leads"
    if "region" in keys:
        text += f" in {keys['region']}"
    if "sales_rep_id" in keys:
        text += f" of {keys['sales_rep_id']}"
    return text if keys or adjective else "all deals"


def evidence(q: float, tests: int) -> str:
    return (f"A change this large is unlikely to be chance (q = {q:.2g} after correcting for all "
            f"{tests} segment tests of this run).")


def _value(kind: str, x: float) -> str:
    if kind == "rate":
        return pct(x)
    if kind == "days":
        return f"{x:.0f} days"
    return f"{x:.2f}"


def _delta(kind: str, x: float) -> str:
    if kind == "rate":
        return f"{100 * x:+.1f} pts"
    if kind == "days":
        return f"{x:+.1f} days"
    return f"{x:+.3f}"


def root_cause_text(cause: RootCause | None, kind: str, what: str) -> str:
    """Short: the top contributing sub-segments, each with its rate and mix
    effect, and the split of the whole change into rate and mix."""
    if cause is None or not cause.top:
        return "No sub-segment stands out: the change is spread evenly."
    dim = DIM_WORDS.get(cause.dimension, cause.dimension)
    parts = [f"{dim} {c.label}: {what} {_value(kind, c.window_mean)} on {c.n} deals vs "
             f"{_value(kind, c.baseline_mean)} before (rate {_delta(kind, c.rate)}, "
             f"mix {_delta(kind, c.mix)})" for c in cause.top]
    return (f"Mostly {'; then '.join(parts)}. By {dim}: rate {_delta(kind, cause.rate)}, "
            f"mix {_delta(kind, cause.mix)} of {_delta(kind, cause.change)}.")


def _unknown_money(row: dict, what: str, deals: str = "open deals in this segment") -> str | None:
    """The money sentence when none of the deals it is on has an amount
    (many CRMs record none until a price is agreed): not known, never $0."""
    n, priced = int(row["money_deals"]), int(row["money_priced"])
    if priced:
        return None
    if not n:
        return f"There are no {deals}."
    return f"None of the {n:,} {deals} has an amount, so {what} is not known."


def _priced_on(row: dict, deals: str = "its {n:,} open deals") -> str:
    """When not every deal the money is on has an amount: on how many it is."""
    n, priced = int(row["money_deals"]), int(row["money_priced"])
    return f" (on the {priced:,} of {deals.format(n=n)} with an amount)" if priced < n else ""


def segment_explanation(row: dict, keys: dict, tests: int) -> str:
    who = describe(keys)
    period = f"between {day(row['window_start'])} and {day(row['window_end'])}"
    base = f"the {row['baseline_days']} days before"
    q, n, nb = row["q_value"], int(row["n"]), int(round(row["baseline_n"]))
    kind = row["anomaly_type"]
    stake = row["amount_at_stake"]
    if kind in ("win_rate_dip", "win_rate_spike"):
        k = int(round(row["k"]))
        low, high = wilson_interval(k, n)
        verb = "fell" if kind == "win_rate_dip" else "rose"
        text = (f"Win rate of {who} {verb}: {k} of {n} deals closed {period} were won "
                f"({pct(row['observed'])}, 95 % interval {pct(float(low))}-{pct(float(high))}), against "
                f"{pct(row['expected'])} expected from {base} (about {nb} comparable deals). ")
        money_text = _unknown_money(row, f"how much {'less' if verb == 'fell' else 'more'} would close") or (
            f"{money(row['open_amount'])} of open pipeline is in this segment{_priced_on(row)}; at the "
            f"{'lower' if verb == 'fell' else 'higher'} rate about {money(stake)} "
            f"{'less' if verb == 'fell' else 'more'} of it would close.")
    elif kind == "cycle_slowdown":
        text = (f"Deals are taking longer to close for {who}: the {n} deals closed {period} took a median "
                f"{row['observed']:.0f} days, against {row['expected']:.0f} expected from {base} (about {nb} "
                f"comparable deals; {pct(0.5 + row['rank_effect'])} of recent deals took longer than a "
                f"typical baseline deal). ")
        money_text = (_unknown_money(row, "how much money may close later than forecast")
                      or f"{money(stake)} of open pipeline in this segment may close later than forecast"
                         f"{_priced_on(row)}.")
    elif kind == "open_age_increase":
        opened = describe(keys, "open")
        # Only ages every baseline date could show are compared: older open deals are left out, and said so.
        counted = (f"the {n} deals open on {day(row['window_end'])}" if n >= int(row["money_deals"]) else
                   f"the {n} of its {int(row['money_deals'])} deals open on {day(row['window_end'])} young enough "
                   f"to compare (an older one {row['older_left_out']})")
        text = (f"{opened[0].upper() + opened[1:]} are getting older: {counted} have a "
                f"median age of {row['observed']:.0f} days, against {row['expected']:.0f} expected from open "
                f"deals in {base} (about {nb} deals, adjusted for how many deals were created when). ")
        money_text = (_unknown_money(row, "the money in it")
                      or f"{money(stake)} of open pipeline is in this segment{_priced_on(row)}.")
    elif kind == "still_open_increase":
        k = int(round(row["k"]))
        low, high = wilson_interval(k, n)
        youngest, oldest = row["ages"]
        as_of = pd.Timestamp(row["window_end"])
        born = f"between {day(as_of - pd.Timedelta(days=oldest))} and {day(as_of - pd.Timedelta(days=youngest))}"
        text = (f"Deals are not closing{' for ' + who if keys else ''}: of the {n} deals created {born} "
                f"({youngest}-{oldest} days old), {k} are still open ({pct(row['observed'])}, 95 % interval "
                f"{pct(float(low))}-{pct(float(high))}), against {pct(row['expected'])} of deals as old still open "
                f"{row['baseline_words']} (about {nb} deals, adjusted for how many deals were created when). ")
        money_text = (_unknown_money(row, "how much of it is late", "deals of that age still open")
                      or f"{money(row['open_amount'])} is in the {k} still open{_priced_on(row, 'those {n:,}')}; "
                         f"about {money(stake)} of it would have closed (won or lost) by now at the usual pace.")
    elif kind == "quality_drop":
        text = (f"New pipeline quality dropped for {who}: of the {n} deals created {period}, "
                f"{pct(1 - row['observed'])} are low quality at entry, against {pct(1 - row['expected'])} "
                f"expected from the {nb} deals created in {base}. ")
        money_text = (_unknown_money(row, "the money in them", "new low-quality deals still open")
                      or f"{money(stake)} of the new low-quality deals are still open"
                         f"{_priced_on(row, 'those {n:,}')}.")
    else:  # metric_shift
        name = METRIC_WORDS.get(row["metric"], row["metric"])
        verb = "fell" if row["direction"] == "down" else "rose"
        # The test compares whole distributions: a small change of the mean can be a large, consistent one.
        text = (f"The {name} of {who} {verb}: the {n} deals closed {period} average {row['observed']:.3g}, "
                f"against {row['expected']:.3g} expected from {base} (about {nb} comparable deals; a recent deal "
                f"scored {'lower' if verb == 'fell' else 'higher'} than a comparable earlier one "
                f"{pct(0.5 + abs(row['rank_effect']))} of the time, where no change would be 50 %). ")
        money_text = (_unknown_money(row, "the money in it")
                      or f"{money(stake)} of open pipeline is in this segment{_priced_on(row)}.")
    return f"{text}{evidence(q, tests)} {money_text}"


def beyond_last_year(kind: str, last_day, observed: float, expected: float, beyond: float,
                     business: bool = False) -> str:
    """A finding that showed the same way a year earlier, but less: last
    year's figures (the whole business's when the segment was too small to
    test then), and how far this year's change goes beyond them."""
    who = "the whole business" if business else "it"
    then = (f" ({_value(kind, observed)} against {_value(kind, expected)} expected)"
            if np.isfinite(observed) and np.isfinite(expected) else "")
    more = {"rate": f"{100 * beyond:.0f} points", "days": pct(beyond)}.get(kind, "a reportable change")
    return (f"At this time last year (as of {day(last_day)}) {who} moved the same way{then}: part of this "
            f"change recurs every year, and this year's goes {more} beyond last year's.")


def _chance(row: dict, prefix: str, horizon: int) -> str:
    """'31 % won within 180 days (95 % CI 22-41 %)'."""
    return (f"{pct(row[prefix + '_win_rate'])} won within {horizon} days "
            f"(95 % CI {pct(row[prefix + '_win_low'])}–{pct(row[prefix + '_win_high'])})")


def stalled_explanation(row: dict, stage_pct: float, age_pct: float, min_n: int, horizon: int = 180) -> str:
    """What the stall is, how unusual among won deals, how deals that lasted
    as long ended (survival estimate: still-open deals censored, with the
    sample and an interval; "not enough data" below the minimum) and the
    money at stake = amount x the drop in win chance."""
    priced = np.isfinite(row["amount"])
    amount = money(row["amount"]) if priced else "no amount"
    head = f"Deal {row['deal_id']} ({amount}, {row['sales_rep_id']}) "
    beyond = row.get("won_percentile")
    beyond_text = (f" (longer than {pct(beyond)} of won deals)" if beyond is not None and np.isfinite(beyond)
                   else "")
    read, total = int(row.get("won_read") or 0), int(row.get("won_total") or 0)
    # In a young CRM the limit comes from the older won deals: the newer ones could only have been quick.
    older = (f" (read from the {read:,} of {total:,} won deals that started long enough ago for the slower wins "
             "to have happened)" if 0 < 2 * read < total else "")
    if row["rule"] == "stage":
        text = (f"{head}has been in {row['deal_stage']} for {row['days_in_stage']:.0f} days{beyond_text}; "
                f"{pct(stage_pct)} of won deals left {row['deal_stage']} within {row['limit']:.0f} days{older}. ")
        what = f"stayed in {row['deal_stage']} at least {row['days_in_stage']:.0f} days"
        fresh = f"a deal entering {row['deal_stage']}"
    elif row["rule"] == "age":
        text = (f"{head}has been open {row['age']:.0f} days{beyond_text}, now in {row['crm_stage']}; "
                f"{pct(age_pct)} of won deals closed within {row['limit']:.0f} days{older}. Without stage history "
                "it is judged by its age. ")
        what = f"stayed open at least {row['age']:.0f} days"
        fresh = "a new deal"
    else:
        time = ("its time is not beyond what won deals took" if row.get("time_judged", True) else
                "how long won deals take is not known yet (too few won deals, or a history too short for the "
                "slower wins), so its time is not judged")
        return (f"{head}is in {row['crm_stage']} after {row['age']:.0f} days: its Stage "
                f"Momentum Index is {row['smi']:.3f}, below the critical {row['limit']:.2f}, but {time}, and it is "
                "listed at low priority.")
    n, still_open = int(row["history_n"]), int(row["history_open"])
    censored = "still-open deals counted while observed, never as lost"
    if np.isfinite(row["history_win_rate"]):
        text += (f"Of the {n:,} deals that {what} ({still_open:,} still open; {censored}), an estimated "
                 f"{_chance(row, 'history', horizon)} from that point. ")
        now = "this"
    elif n >= min_n:
        followed = int(row.get("history_followed") or 0)
        text += (f"Not enough data to say how deals this stale end: of the {n:,} deals that {what}, only "
                 f"{followed:,} were followed to an outcome or for {horizon} days (the history is too short), "
                 f"fewer than the {min_n} needed. ")
    else:
        text += (f"Not enough data to say how deals this stale end: only {n:,} deal{'s' if n != 1 else ''} "
                 f"{what}, fewer than the {min_n} needed. ")
        past_n = int(row.get("past_limit_n") or 0)
        if np.isfinite(row.get("past_limit_win_rate", np.nan)):
            text += (f"Of the {past_n:,} deals that lasted at least {row['past_limit_days']:.0f} days (the longest "
                     f"stay past the {row['limit']:.0f}-day limit with {min_n}+ deals; "
                     f"{int(row['past_limit_open']):,} still open, {censored}), an estimated "
                     f"{_chance(row, 'past_limit', horizon)} from that point. ")
        now = "that"
    if row.get("stake_known"):
        drop = (f"Against {pct(row['base_win_rate'])} for {fresh}, {now} is a "
                f"{100 * row['win_probability_drop']:.0f}-point drop")
        text += (f"{drop}: about {money(row['stake'])} of money at stake ({amount} x the drop)." if priced
                 else f"{drop}; money at stake not known: the deal has no amount.")
        if row["level"] >= 2 and not row.get("drop_confirmed"):
            text += " The interval does not confirm the drop, so it is no crisis."
    elif not priced:
        text += "Money at stake not known: the deal has no amount; ranked by staleness."
    else:
        text += "Money at stake not known (not enough data): ranked by staleness and amount."
    return text
