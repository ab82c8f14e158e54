"""Rollout timelines as pictures: traffic share and error rate over time, with the rollback marked.

Input is backend-neutral: the controller's history (``traffic`` events carry weights) and optional
per-second metric series per deployment. Output is a self-contained HTML page with an inline SVG
(no dependencies) or a PNG (needs matplotlib: ``pip install 'cloudml[plot]'``).

Example:
    >>> history = [{"t": 0, "event": "traffic", "weights": {"v1": 100}},
    ...            {"t": 5, "event": "traffic", "weights": {"v1": 90, "v2": 10}},
    ...            {"t": 7, "event": "rolled back", "weights": {"v1": 100, "v2": 0}, "alarm": "errors"}]
    >>> series = traffic_series(history)
    >>> series["v2"]
    [(0, 0), (5, 10), (7, 0)]
    >>> "<svg" in render_html("churn", history, {})
    True
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

__all__ = ["render_html", "render_png", "traffic_series", "write_timeline"]

_COLORS = ["#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf"]


def traffic_series(history: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """Step series of each deployment's traffic share, from the weight-carrying events.

    Example:
        >>> traffic_series([{"t": 10, "weights": {"a": 100}}, {"t": 12, "weights": {"a": 50, "b": 50}}])["b"]
        [(0, 0), (2, 50)]
    """
    events = [h for h in history if "weights" in h]
    names: list[str] = []
    for h in events:
        names += [n for n in h["weights"] if n not in names]
    if not events:
        return {}
    t0 = events[0]["t"]
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for h in events:
        for n in names:
            out[n].append((round(h["t"] - t0, 3), h["weights"].get(n, 0)))
    return out


def _markers(history: list[dict[str, Any]], t0: float) -> list[tuple[float, str, bool]]:
    keep = ("rolled back", "rollout succeeded", "baking", "ready", "alarm with nothing to roll back to",
            "manual promotion", "resumed", "shadow discarded", "ab test concluded")
    return [(h["t"] - t0, h["event"] + (f" ({h['alarm']})" if h.get("alarm") else ""), h["event"] == "rolled back")
            for h in history if h["event"] in keep]


def render_html(endpoint: str, history: list[dict[str, Any]],
                errors: dict[str, list[tuple[float, float | None]]]) -> str:
    """A self-contained HTML page: traffic share (top) and error rate (bottom) over time.

    Example:
        >>> page = render_html("ep", [{"t": 0, "event": "traffic", "weights": {"a": 100}}], {"a": [(0.5, 0.0)]})
        >>> page.startswith("<!doctype html>") and "error rate" in page
        True
    """
    shares = traffic_series(history)
    t0 = float(next((h["t"] for h in history if "weights" in h), history[0]["t"] if history else 0.0))
    rel = [float(t - t0 if t > 1e6 else t) for s in errors.values() for t, _ in s]
    end = max([float(h["t"]) - t0 for h in history] + rel + [1.0])
    w, h, pad = 900, 200, 50

    def x(t: float) -> float:
        return pad + (w - 2 * pad) * max(0.0, t) / end

    def panel(series: dict[str, list[tuple[float, float | None]]], top: float, ymax: float, label: str,
              step: bool) -> list[str]:
        parts = [f'<text x="{pad}" y="{top - 8}" font-size="13" font-weight="bold">{html.escape(label)}</text>',
                 f'<rect x="{pad}" y="{top}" width="{w - 2 * pad}" height="{h}" fill="none" stroke="#999"/>']
        for i, (name, points) in enumerate(series.items()):
            color = _COLORS[i % len(_COLORS)]
            coords: list[str] = []
            prev_y: float | None = None
            for t, v in points:
                if v is None:
                    continue
                y = top + h - h * min(v, ymax) / ymax
                if step and prev_y is not None:
                    coords.append(f"{x(t):.1f},{prev_y:.1f}")
                coords.append(f"{x(t):.1f},{y:.1f}")
                prev_y = y
            if step and prev_y is not None:
                coords.append(f"{x(end):.1f},{prev_y:.1f}")
            if coords:
                parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(coords)}"/>')
            parts.append(f'<text x="{w - pad + 5}" y="{top + 15 + 15 * i}" font-size="11" fill="{color}">'
                         f"{html.escape(name)}</text>")
        return parts

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w + 120}" height="{2 * h + 140}" font-family="sans-serif">']
    svg += panel({k: [(t, float(v)) for t, v in s] for k, s in shares.items()}, 40, 100.0, "traffic share (%)", True)
    max_err = max([v for s in errors.values() for _, v in s if v is not None] + [0.05])
    svg += panel({k: [(t - t0 if t > 1e6 else t, v) for t, v in s] for k, s in errors.items()}, h + 90, max_err,
                 "error rate", False)
    for t, text, bad in _markers(history, t0):
        color = "#d62728" if bad else "#777"
        svg.append(f'<line x1="{x(t):.1f}" y1="40" x2="{x(t):.1f}" y2="{2 * h + 90}" stroke="{color}" '
                   f'stroke-dasharray="{"0" if bad else "4,3"}" stroke-width="{2 if bad else 1}"/>')
        svg.append(f'<text x="{x(t) + 3:.1f}" y="{2 * h + 105 + (12 if bad else 0)}" font-size="10" '
                   f'fill="{color}">{html.escape(text)}</text>')
    svg.append(f'<text x="{pad}" y="{2 * h + 135}" font-size="11">seconds since the first traffic change '
               f"(0 to {end:.1f} s)</text></svg>")
    title = html.escape(f"rollout timeline: {endpoint}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h2>{title}</h2>{''.join(svg)}</body></html>\n")


def render_png(endpoint: str, history: list[dict[str, Any]],
               errors: dict[str, list[tuple[float, float | None]]], path: Path) -> None:
    """The same picture as PNG (matplotlib).

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "t.png"
        >>> render_png("ep", [{"t": 0, "event": "traffic", "weights": {"a": 100}}], {}, out)
        >>> out.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from cloudml.errors import AdapterNotInstalledError

        raise AdapterNotInstalledError("timeline (png)", "plot", ["matplotlib"]) from None
    shares = traffic_series(history)
    t0 = next((h["t"] for h in history if "weights" in h), 0.0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    end = max([float(h["t"]) - t0 for h in history] + [1.0])
    for name, points in shares.items():
        xs = [t for t, _ in points] + [end]
        ys = [v for _, v in points] + [points[-1][1]]
        top.step(xs, ys, where="post", label=name, linewidth=2)
    top.set_ylabel("traffic share (%)")
    top.set_ylim(-5, 105)
    top.legend(loc="upper left")
    for name, err_points in errors.items():
        pts = [(t - t0 if t > 1e6 else t, v) for t, v in err_points if v is not None]
        bottom.plot([t for t, _ in pts], [v for _, v in pts], marker=".", label=name)
    bottom.set_ylabel("error rate")
    highest = max([v for s in errors.values() for _, v in s if v is not None] + [0.05])
    bottom.set_ylim(-0.02 * highest, highest * 1.1)
    bottom.set_xlabel("seconds since the first traffic change")
    if errors:
        bottom.legend(loc="upper left")
    for t, text, bad in _markers(history, t0):
        for ax in (top, bottom):
            ax.axvline(t, color="red" if bad else "grey", linestyle="-" if bad else ":", linewidth=2 if bad else 1)
        top.annotate(text, (t, 102), fontsize=8, color="red" if bad else "grey", rotation=90, va="top")
    fig.suptitle(f"rollout timeline: {endpoint}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_timeline(endpoint: str, history: list[dict[str, Any]],
                   errors: dict[str, list[tuple[float, float | None]]], path: str | Path) -> Path:
    """Write ``.html`` (SVG inside) or ``.png`` depending on the file name.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "t.html"
        >>> write_timeline("ep", [{"t": 0, "event": "traffic", "weights": {"a": 100}}], {}, out).suffix
        '.html'
    """
    target = Path(path)
    if target.suffix.lower() == ".png":
        render_png(endpoint, history, errors, target)
    elif target.suffix.lower() in (".html", ".htm", ".svg"):
        page = render_html(endpoint, history, errors)
        if target.suffix.lower() == ".svg":
            page = page[page.index("<svg"): page.index("</svg>") + 6]
        target.write_text(page, encoding="utf-8")
    else:
        raise ValueError(f"unknown timeline format {target.suffix!r}: use .png, .html or .svg")
    return target
