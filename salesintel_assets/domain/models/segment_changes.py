"""Segments whose win rate moved in the latest weeks, for the forecast.

A segment that starts losing (a competitor in one region's fintech deals)
shows in its latest closes weeks before the 90-day backtest can see it, and
a model trained on many months has barely moved. Each segment (every value
of the single dimensions and of the pairs in the rules) compares the win
rate of its deals closed in the last ``recent_days`` with the
``baseline_days`` before them (closes of deals at least ``min_age_days``
old: a burst of new leads disqualified within days says how leads arrive,
not how the deals in play will end), against the same change in the rest
of the business: a difference of log odds ratios, so a business-wide swing
or the quarter-end bunching that moves every segment alike is no segment
change. It is made once per window of ``recent_days`` (45 and 90 days): a
sudden change fills the last weeks' closes, but one in the deals created
from a day on reaches the closes over months, as those deals close, and in
45 days too few of them have closed to prove it. A segment both windows
prove is read on the shorter, its latest level: the longer one proves a
change of the last 45 days more strongly (more closes) but at about half
its size (on the sample CRM, FinTech x Europe's odds moved x0.58 on 90 days
against x0.49 on 45). The comparison is made
within bands of age at close (``age_bands_days``) and pooled by inverse
variance: deals that linger for months are mostly closed lost in
clean-ups, and how many of those a segment had lately is chance, not
news. Compared across all ages, a segment that had none in its latest
closes looked like it started winning (a false rise of +1.6 log odds in
one seasonal scenario world moved its 90-day forecast from +13 % to
+21 %; within bands it found the real drop and forecast +6 %). One band
edge at 90 days: finer bands left too few closes per band and let other
false rises through.

Benjamini-Hochberg across every tested segment and window controls false
discoveries (a second window costs the bar a little: on outside-world CRMs
with one industry's odds planted 1.5 lower for deals created from one day
on, 36 runs of seeds 743-754 three to five and a half months later, the
planted drop was found on 3 runs against 1 with 45 days alone, and other
segments on 0 against 4; on the sample CRM's 45-day FinTech x Europe drop,
seeds 81-84 at 6,000 and 3,000 deals, on 18 of 32 worlds either way; on
300 runs of worlds without a change, 13 segments against 14),
and only a material change counts (``min_change`` in log odds: a smaller
one moves the forecast by less than its noise, and is more often an echo of
a stronger change elsewhere than news).
One real change also moves the segments that contain it (a pair's drop shows
in both its singles) and, as the rest of the business, every other
segment, so the discoveries are resolved greedily: the strongest is kept,
then every segment is tested again without its deals, with a fresh
Benjamini-Hochberg (the first round's many echoes of one change would
otherwise lower the bar for the rest), and the strongest first-round
discovery that still passes is kept, until none does. A kept change,
corrected for having been picked (``stats.selection_adjusted``: among
many tested segments, the one that passed the bar is the one whose noise
added most, so its raw change overstates the truth; the bar is the |z|
Benjamini-Hochberg let through for as many distinct changes as were kept),
moves the log odds of that segment's open deals in the forecast, and its
standard error widens the interval -- but never further than the
segment's own win rate moved (its latest closes against its earlier
ones, shrunk for its noise: positive-part James-Stein, change x (1 -
se^2 / change^2); none when the two disagree in sign). Shrunk for noise
alone, a change found just past the bar was applied at about its raw
size: on outside-world CRMs with a segment's odds planted 1.0-1.5 lower
or 1.2 higher for deals created from one day on (seeds 632-671), the 30
changes found in the planted segment went 0.33 in log odds beyond the
shift today's open deals truly took (the worlds' own chances with and
without the plant) on average, 0.35 off it; corrected, 0.08 beyond and
0.20 off. An echo in another segment had moved its deals x2.8. Seven
such runs forecast the 90-day wins 15 points from the worlds' own
chances on average, and 12 with the pick corrected (658: +35 % to +17 %,
where the world's own read +3 %). The
change is measured against the rest, whose swings (a quarter-end push, a
slow month) the model's level already carries; a segment that held while
the rest fell has not started winning. In a CRM where nothing changed, one
region went from 50 % to 61 % won while the rest of the business fell
from 51 % to 34 % in one quarter's last weeks: against the rest its odds
rose x3.0, which moved its open deals x2.7 and the 90-day forecast from
its model's 83 wins to 118, outside its 80 % interval (75 came). Its own
rise, x1.6 (x1.4 shrunk), moves them now: 92 (70-116).

Closes of a clean-up day are left out (``clean_ups``, the rule in
``warehouse.clean_ups``): a day with many times the usual closes, nearly
all lost, is the CRM being tidied (every deal untouched for months closed
lost at once), not how deals end, and it hits segments by how many stale
deals they held. On a generated CRM with a
yearly clean-up, the rest of the business went from 47 % to 8 % won in the
45 days after one while a segment of slow Suite deals went from 31 % to
18 %: its open deals' odds were moved x13 and the 90-day forecast was a
third too high.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from salesintel_assets.domain.common import stats
from salesintel_assets.domain.warehouse.clean_ups import CleanUp, clean_ups_of

READ_COLUMNS = ("created_date", "closed_date", "is_won", "industry", "region", "product_type", "lead_source")
CHANGE_COLUMNS = ["segment", "recent_days", "change", "own_change", "shift", "se", "q_value", "recent_deals",
                  "recent_win_rate", "baseline_deals", "baseline_win_rate", "rest_recent_win_rate",
                  "rest_baseline_win_rate"]


@dataclass(frozen=True)
class SegmentChange:
    """A segment's win-rate change in log odds beyond the rest of the
    business (``change``), its own (``own_change``: its latest closes
    against its earlier ones), what the forecast applies (``shift``: the
    smaller of the two, the first corrected for being picked, the second
    shrunk for its noise) and the evidence: the
    segment's closes and the rest's, lately and before."""

    columns: tuple[str, ...]
    values: tuple[str, ...]
    recent_days: int          # the window of latest closes it was found in
    change: float
    own_change: float
    shift: float
    se: float
    q_value: float
    recent_deals: int
    recent_won: int
    baseline_deals: int
    baseline_won: int
    rest_recent_deals: int
    rest_recent_won: int
    rest_baseline_deals: int
    rest_baseline_won: int

    @property
    def label(self) -> str:
        return ", ".join(f"{c}={v}" for c, v in zip(self.columns, self.values))

    def row(self) -> dict:
        return {"segment": self.label, "recent_days": self.recent_days, "change": round(self.change, 3),
                "own_change": round(self.own_change, 3), "shift": round(self.shift, 3),
                "se": round(self.se, 3), "q_value": float(f"{self.q_value:.3g}"), "recent_deals": self.recent_deals,
                "recent_win_rate": round(self.recent_won / self.recent_deals, 3),
                "baseline_deals": self.baseline_deals,
                "baseline_win_rate": round(self.baseline_won / self.baseline_deals, 3),
                "rest_recent_win_rate": round(self.rest_recent_won / max(self.rest_recent_deals, 1), 3),
                "rest_baseline_win_rate": round(self.rest_baseline_won / max(self.rest_baseline_deals, 1), 3)}

    def sentence(self) -> str:
        # The rest's rates too: the change is against them, and a segment that held while the season (or
        # the market) moved everyone else shows a change its own two rates alone do not explain.
        rest = (f"{self.rest_baseline_won / max(self.rest_baseline_deals, 1):.0%} to "
                f"{self.rest_recent_won / max(self.rest_recent_deals, 1):.0%}")
        return (f"{self.label} won {self.recent_won / self.recent_deals:.0%} of {self.recent_deals} deals closed "
                f"in the last {self.recent_days} days against {self.baseline_won / self.baseline_deals:.0%} of "
                f"{self.baseline_deals} before, "
                f"while the rest of the business went from {rest}: its open deals' odds are moved "
                f"x{np.exp(self.shift):.2f} (the change against the rest among deals of like age at close, "
                f"x{np.exp(self.change):.2f}, and its own, x{np.exp(self.own_change):.2f}: the smaller, each "
                "corrected for its noise and the first for being picked among the segments tested)")


def window_start(as_of: pd.Timestamp, cfg) -> pd.Timestamp:
    """The day after which ``find`` reads closes: the longest window of
    latest closes and the baseline before it."""
    return pd.Timestamp(as_of) - pd.Timedelta(days=max(cfg.recent_days) + cfg.baseline_days)


def clean_ups(closed: pd.DataFrame, as_of: pd.Timestamp, cfg) -> list[CleanUp]:
    """The clean-up days (``clean_ups.clean_up_days``) of the window ``find`` reads."""
    as_of = pd.Timestamp(as_of)
    when = closed["closed_date"]
    inside = ((when <= as_of) & (when > window_start(as_of, cfg))).to_numpy(dtype=bool)
    return clean_ups_of(when[inside], closed.loc[inside, "is_won"].astype(bool))


def _cells(frame: pd.DataFrame, groups: list[tuple[str, ...]]) -> list[tuple[tuple[str, ...], np.ndarray, list]]:
    """Per dimension group present in ``frame``: each row's cell code and the
    cells' values (as text, as ``applied`` matches them). Each column is
    factorised once; a pair's codes combine its columns' codes."""
    present = [g for g in groups if set(g) <= set(frame.columns)]
    coded = {}
    for column in {c for g in present for c in g}:
        codes, labels = pd.factorize(frame[column], use_na_sentinel=False)
        coded[column] = (codes.astype(np.int64), [str(v) for v in labels])
    out = []
    for columns in present:
        codes, labels = coded[columns[0]][0], [(v,) for v in coded[columns[0]][1]]
        for column in columns[1:]:
            more, more_labels = coded[column]
            combined, codes = np.unique(codes * len(more_labels) + more, return_inverse=True)
            labels = [labels[c // len(more_labels)] + (more_labels[c % len(more_labels)],) for c in combined]
        out.append((columns, codes.reshape(-1), labels))
    return out


def _log_odds(won: np.ndarray, deals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Log odds of win rates and their variances (0.5 added to each count)."""
    won, lost = won + 0.5, deals - won + 0.5
    return np.log(won / lost), 1 / won + 1 / lost


def _pooled(change: np.ndarray, variance: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: the bands' changes pooled by inverse variance over the
    usable bands, and its se (inf without one)."""
    weight = np.where(usable, 1 / variance, 0.0)
    total = weight.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.where(total > 0, (weight * change).sum(axis=1) / total, 0.0),
                np.where(total > 0, 1 / np.sqrt(total), np.inf))


def _contrasts(codes: np.ndarray, cells: int, rows: np.ndarray, recent: np.ndarray, won: np.ndarray,
               bands: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per cell of one dimension group, on ``rows``: (change, se, counts,
    own, own_se). ``change``: its log odds ratio (recent against baseline)
    less the rest's, within each band of age at close (``bands``: each
    close's band) and pooled across them by inverse variance (a band where
    one of the four parts has no close says nothing); ``own``: its log odds
    ratio alone, pooled alike; counts [cell, part] = (won, deals) of the
    cell's recent, the cell's baseline, the rest's recent and the rest's
    baseline closes, over all bands. A cell with no usable band has se inf."""
    n_bands = int(bands.max()) + 1 if len(bands) else 1
    counts = np.zeros((cells, n_bands, 4, 2), dtype=np.int64)
    for part, period in enumerate((rows & recent, rows & ~recent)):
        for kind, mask in enumerate((period & won, period)):
            cell_band = codes[mask] * n_bands + bands[mask]
            inside = np.bincount(cell_band, minlength=cells * n_bands).reshape(cells, n_bands)
            counts[:, :, part, kind] = inside
            counts[:, :, part + 2, kind] = np.bincount(bands[mask], minlength=n_bands)[None, :] - inside
    lo, variance = _log_odds(counts[..., 0].astype(float), counts[..., 1].astype(float))
    own_by_band = lo[..., 0] - lo[..., 1]
    pooled, se = _pooled(own_by_band - (lo[..., 2] - lo[..., 3]), variance.sum(axis=2),
                         (counts[..., 1] > 0).all(axis=2))
    own, own_se = _pooled(own_by_band, variance[..., :2].sum(axis=2), (counts[..., :2, 1] > 0).all(axis=2))
    return pooled, se, counts.sum(axis=1), own, own_se


def _applied_shift(change: float, se: float, own: float, own_se: float, threshold_z: float) -> float:
    """The shift a kept change applies: the contrast against the rest,
    corrected for having passed the bar ``threshold_z``, no further than the
    segment's own move (shrunk for its noise; 0 when they disagree)."""
    against = stats.selection_adjusted(change, se, threshold_z)
    alone = stats.shrunk(own, own_se)   # an unmeasured own change shrinks to 0
    return float(np.sign(against) * min(abs(against), abs(alone))) if against * alone > 0 else 0.0


def _discoveries(tested: list, looks: list[tuple[np.ndarray, np.ndarray]], won: np.ndarray, bands: np.ndarray,
                 cfg) -> tuple[list[tuple], int]:
    """The material changes among the cells of the ``tested`` dimension
    groups (columns, codes, labels) in each look (rows, recent: one window
    of latest closes and its baseline) that Benjamini-Hochberg keeps at
    ``fdr_alpha`` over every cell and look with enough closes there,
    strongest (by z) first: (look, group, cell, change, se, q, counts, own,
    own_se); and how many were tested."""
    from scipy.stats import norm

    found = []   # (look, group, cell, change, se, counts, own, own_se) of the cells with enough closes
    for look, (rows, recent) in enumerate(looks):
        for g, (_, codes, labels) in enumerate(tested):
            change, se, counts, own, own_se = _contrasts(codes, len(labels), rows, recent, won, bands)
            enough = ((counts[:, 0, 1] >= cfg.min_recent_deals) & (counts[:, 1, 1] >= cfg.min_baseline_deals)
                      & np.isfinite(se))
            found += [(look, g, int(k), float(change[k]), float(se[k]), counts[k], float(own[k]), float(own_se[k]))
                      for k in np.flatnonzero(enough)]
    if not found:
        return [], 0
    z = np.array([abs(f[3]) / f[4] for f in found])
    q = stats.benjamini_hochberg(2 * norm.sf(z))
    kept = [i for i in np.argsort(-z, kind="stable") if q[i] <= cfg.fdr_alpha and abs(found[i][3]) >= cfg.min_change]
    return [(*found[i][:5], float(q[i]), *found[i][5:]) for i in kept], len(found)


def find(closed: pd.DataFrame, as_of: pd.Timestamp, cfg,
         cleaned: list[CleanUp] | None = None) -> list[SegmentChange]:
    """The segment changes to apply, strongest first. ``closed``: deals
    closed on or before ``as_of`` with ``closed_date``, ``is_won`` and the
    segment columns; ``cfg``: the rules' ``risk.forecast.segment_changes``;
    ``cleaned``: its clean-up days when the caller has them (``clean_ups``)."""
    if not cfg.enabled or not len(closed):
        return []
    as_of = pd.Timestamp(as_of)
    when = closed["closed_date"]
    age = (when - closed["created_date"]).dt.days
    cleaned = clean_ups(closed, as_of, cfg) if cleaned is None else cleaned
    tidied = when.dt.normalize().isin([c.day for c in cleaned])
    keep = ((when <= as_of) & (when > window_start(as_of, cfg)) & (age >= cfg.min_age_days)
            & ~tidied).to_numpy(dtype=bool)
    frame, closed_on = closed[keep], when[keep]
    # one look per window: its latest closes against the baseline_days before them
    looks = [((closed_on > as_of - pd.Timedelta(days=days + cfg.baseline_days)).to_numpy(),
              (closed_on > as_of - pd.Timedelta(days=days)).to_numpy()) for days in cfg.recent_days]
    won = frame["is_won"].astype(bool).to_numpy()
    bands = np.searchsorted(np.asarray(cfg.age_bands_days, dtype=float), age[keep].to_numpy(),
                            side="right")
    groups = [(d,) for d in cfg.dimensions] + [tuple(p) for p in cfg.pairs]
    tested = _cells(frame, groups)   # a cell is tested while it has enough closes left (``_discoveries``)
    kept, taken = [], np.zeros(len(frame), dtype=bool)
    discoveries, cells = _discoveries(tested, looks, won, bands, cfg)
    first_round = {found[:3] for found in discoveries}
    while discoveries:
        # the strongest cell, read on the shortest window that proved it: the latest level (a change of the last
        # 45 days read on 90 is half the change)
        kept.append(min((d for d in discoveries if d[1:3] == discoveries[0][1:3]), key=lambda d: d[0]))
        group, cell = discoveries[0][1:3]
        taken |= tested[group][1] == cell   # the kept cell's closes, in every look: its group's cell codes
        discoveries = [d for d in _discoveries(tested, [(rows & ~taken, recent) for rows, recent in looks],
                                               won, bands, cfg)[0] if d[:3] in first_round]
    return [_change(tested, found, _passing_z(len(kept), cells, cfg.fdr_alpha), cfg.recent_days)
            for found in kept]


def _passing_z(changes: int, cells: int, alpha: float) -> float:
    """The |z| a change had to pass: Benjamini-Hochberg keeps p up to R x
    alpha / m, R counted as the distinct changes kept (a change's echoes in
    the segments that contain it, also let through, do not lower the bar)."""
    from scipy.stats import norm

    return float(norm.isf(changes * alpha / (2 * cells)))


def _change(tested: list, found: tuple, passing_z: float, windows: list[int]) -> SegmentChange:
    look, g, k, change, se, q_value, counts, own, own_se = found
    columns, _, labels = tested[g]
    deals_and_wins = [int(v) for won_, deals_ in counts for v in (deals_, won_)]   # per part: deals, won
    return SegmentChange(columns, labels[k], windows[look], change, own,
                         _applied_shift(change, se, own, own_se, passing_z), se, q_value, *deals_and_wins)


def _members(deals: pd.DataFrame, changes: list[SegmentChange]) -> list[np.ndarray]:
    """Per change, the deals it applies to: those in its segment and in no
    stronger change's segment (a deal takes one change)."""
    done = np.zeros(len(deals), dtype=bool)
    out = []
    for change in changes:
        inside = np.ones(len(deals), dtype=bool)
        for column, value in zip(change.columns, change.values):
            inside &= (deals[column].astype(str) == value).to_numpy() if column in deals else False
        out.append(inside & ~done)
        done |= inside
    return out


def applied(deals: pd.DataFrame, p: np.ndarray, changes: list[SegmentChange]) -> tuple[np.ndarray, float]:
    """What the changes do to ``deals`` (probabilities ``p``): each deal's
    log-odds shift (that of the strongest change whose segment holds it, 0
    for the others), and the pipeline-wide log-odds sd equivalent to the
    changes' own standard errors (a segment holding a share s of the
    pipeline's binomial information, sum p(1-p), moves the total as a shared
    shift of s x se)."""
    shift = np.zeros(len(deals))
    v = np.asarray(p, dtype=float) * (1 - np.asarray(p, dtype=float))
    total, variance = float(v.sum()), 0.0
    for change, members in zip(changes, _members(deals, changes)):
        shift[members] = change.shift
        if total > 0:
            variance += (float(v[members].sum()) / total * change.se) ** 2
    return shift, float(np.sqrt(variance))


def note(changes: list[SegmentChange], cleaned: list[CleanUp] = ()) -> str:
    """The changes in words, for the forecast's metadata, and the clean-up
    days whose closes were left out."""
    said = ("; ".join(c.sentence() for c in changes) if changes
            else "no segment's latest closes moved beyond the rest of the business")
    if cleaned:
        said += ("; the closes of clean-up days (stale deals closed lost at once) were left out: "
                 + ", ".join(c.sentence() for c in cleaned))
    return said


def changes_table(changes: list[SegmentChange]) -> pd.DataFrame:
    return pd.DataFrame([c.row() for c in changes], columns=CHANGE_COLUMNS)
