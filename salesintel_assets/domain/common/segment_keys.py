"""The segment key every layer uses: ``industry=EdTech&region=Europe`` (keys
sorted), ``all`` for the whole business. '%' and '&' inside a value are
percent-encoded so a key always splits back into the same segment."""

from __future__ import annotations

ALL = "all"


def _escape(value) -> str:
    return str(value).replace("%", "%25").replace("&", "%26")


def _unescape(value: str) -> str:
    return value.replace("%26", "&").replace("%25", "%")


def format_segment(keys: dict) -> str:
    if not keys:
        return ALL
    return "&".join(f"{k}={_escape(keys[k])}" for k in sorted(keys))


def parse_segment(segment) -> dict[str, str]:
    """The inverse of ``format_segment``; ``all``, empty or missing -> {}."""
    if segment is None or segment != segment or str(segment).strip() in ("", ALL):
        return {}
    return {key: _unescape(value) for key, value in
            (part.split("=", 1) for part in str(segment).split("&") if "=" in part)}
