"""Figures for the asset metadata of the metrics and drivers layers, where a
person would rather look than read: win rate by month with its intervals,
drivers as a diverging bar chart, attribution as a waterfall, importances
with their spread. Built on ``matplotlib.figure.Figure`` (no pyplot: no GUI
backend, no global state)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(**kwargs) -> Figure:
    """A new figure; matplotlib is imported on first use (about a second
    of start-up that a run which draws nothing should not pay)."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)

HURT, HELP, NEUTRAL = "#c0392b", "#27ae60", "#b0b7bf"


def win_rate_by_month(monthly: pd.DataFrame, without_clean_ups: bool = False) -> Figure:
    """The company's monthly win rate with Wilson 95 % intervals; faint
    points are months with too few deals to read. ``without_clean_ups``:
    the title says the closes of clean-up days are left out."""
    fig = _figure(figsize=(8, 3.2))
    ax = fig.add_subplot()
    if monthly.empty:
        ax.text(0.5, 0.5, "no closed deals yet", ha="center", va="center", transform=ax.transAxes)
        return fig
    x = pd.to_datetime(monthly["period_start"])
    ax.fill_between(x, monthly["ci_low"], monthly["ci_high"], color="#3498db", alpha=0.2, label="95 % interval")
    ax.plot(x, monthly["win_rate"], color="#2c3e50", marker="o", markersize=3, label="win rate")
    thin = ~monthly["enough_data"].astype(bool)
    ax.scatter(x[thin], monthly.loc[thin, "win_rate"], color="white", edgecolor="#2c3e50", zorder=3,
               s=18, label="not enough data")
    total = monthly["won"].sum() / monthly["deals"].sum()
    ax.axhline(total, color="#7f8c8d", linestyle="--", linewidth=1, label=f"all history {total:.1%}")
    ax.set_ylabel("win rate")
    ax.set_ylim(0, 1)
    ax.set_title("Win rate by month of close" + (" (without clean-up days' closes)" if without_clean_ups else ""))
    ax.legend(loc="upper left", fontsize=7, ncol=4)
    fig.autofmt_xdate()
    return fig


def driver_bars(scores: pd.DataFrame, top: int = 15) -> Figure:
    """Diverging bars of SPI for the material segments with the largest
    impact; coloured only when the difference is significant."""
    rows = scores[scores["material"]].copy()
    rows = rows.reindex(rows["spi"].abs().sort_values(ascending=False).index).head(top).iloc[::-1]
    fig = _figure(figsize=(7, 0.32 * max(len(rows), 3) + 1.2))
    ax = fig.add_subplot()
    if rows.empty:
        ax.text(0.5, 0.5, "no material segment", ha="center", va="center", transform=ax.transAxes)
        return fig
    colours = np.select([rows["direction"] == "hurting", rows["direction"] == "helping"], [HURT, HELP],
                        default=NEUTRAL)
    labels = rows["dimension"] + " = " + rows["segment"].astype(str)
    ax.barh(labels, rows["spi"] * 100, color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("SPI (win-rate points x volume share)")
    ax.tick_params(axis="y", labelsize=7)
    drivers = int(rows["significant"].sum())
    ax.set_title("Win-rate drivers" if drivers else "Win-rate drivers: none distinguishable from noise (grey)")
    return fig


def attribution_waterfall(attribution: pd.DataFrame, dimension: str | None = None) -> Figure:
    """From period a's win rate to period b's, one step per segment of the
    dimension whose segments explain the change most unevenly."""
    fig = _figure(figsize=(7, 3.4))
    ax = fig.add_subplot()
    if attribution.empty:
        ax.text(0.5, 0.5, "nothing to attribute", ha="center", va="center", transform=ax.transAxes)
        return fig
    if dimension is None:
        dimension = attribution.groupby("dimension")["total_effect"].apply(lambda s: s.abs().max()).idxmax()
    rows = attribution[attribution["dimension"] == dimension]
    start, end = rows["overall_rate_a"].iloc[0], rows["overall_rate_b"].iloc[0]
    steps = rows["total_effect"].to_numpy()
    bottoms = start + np.concatenate([[0.0], np.cumsum(steps)[:-1]])
    labels = [rows["period_a"].iloc[0]] + list(rows["segment"].astype(str)) + [rows["period_b"].iloc[0]]
    heights = np.concatenate([[start], steps, [end]]) * 100
    base = np.concatenate([[0.0], bottoms, [0.0]]) * 100
    colours = ["#34495e"] + [HELP if s >= 0 else HURT for s in steps] + ["#34495e"]
    ax.bar(labels, heights, bottom=base, color=colours)
    low = min(base[1:-1].min(), (base + heights)[1:-1].min(), start * 100, end * 100)
    high = max(base[1:-1].max(), (base + heights)[1:-1].max(), start * 100, end * 100)
    pad = max((high - low) * 0.5, 1.0)
    ax.set_ylim(max(low - pad, 0), min(high + pad, 100))
    ax.set_ylabel("win rate (%)")
    ax.set_title(f"Win-rate change by {dimension}: {(end - start) * 100:+.1f} points (rate + mix effects)")
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    return fig


def importance_bars(importance: pd.DataFrame, auc: float | None) -> Figure:
    """Permutation importance of each factor with its spread."""
    rows = importance[importance["kind"] == "main"].iloc[::-1]
    fig = _figure(figsize=(6, 0.35 * max(len(rows), 3) + 1.2))
    ax = fig.add_subplot()
    if rows.empty:
        ax.text(0.5, 0.5, "no model: not enough data", ha="center", va="center", transform=ax.transAxes)
        return fig
    colours = np.where(rows["meaningful"], "#2980b9", NEUTRAL)
    ax.barh(rows["factor"], rows["importance"], xerr=rows["importance_std"], color=colours)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("held-out AUC drop when shuffled")
    ax.set_title(f"Driver importance (model AUC {auc:.3f})" if auc is not None else "Driver importance")
    return fig
