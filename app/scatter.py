"""What the Clusters page draws of a map (`core.steps.maps`): each product's colour group, the scatter traces (or,
for a large map, a density image of every product with a sample of them as points), the figure, the same map drawn
as a picture on the server (the page's first view: no plotly.js to load), which products a box or lasso selects, and
the caption's note on unassigned products."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from app.text import label, short
from core.data.dataset import PATH_SEP

LEGEND_CHARS = 60  # of a group's name in the legend and the hover text
DENSITY_ABOVE = 100_000  # more products than this: a density image of them all and a sample as points (`map_view`)
SAMPLE_POINTS = 20_000  # the points a density view draws (hover, legend, clicks)
GRID = (640, 360)  # the density image's pixels (width, height)
PALETTE = ("#0068c9", "#83c9ff", "#ff2b2b", "#ffabab", "#29b09d", "#7defa1", "#ff8700", "#ffd16a", "#6d3fc0", "#d5dae5")
MUTED = "#d3d3d3"  # "lightgrey": products in no group, and the rest lumped together as "other"


# the picture of a map (`map_image`): its size in pixels, the legend's width and rows, the point radius by map size
IMAGE_SIZE = (1200, 560)
LEGEND_WIDTH = 330
LEGEND_ROWS = 27
LEGEND_ROW = 19


def group_names(
    colour: str, product_ids: np.ndarray, *, clusters=None, proposals=None, labels=None, predictions=None, depth: int = 1
) -> list[str]:
    """The colour group of every product of a map.

    Args:
        colour: "cluster" (the map's clusters), "proposal" ({product id: proposal name}), "label" or "prediction"
            ({product id: full path}, shown cut to `depth` levels).
    """
    if colour == "cluster":
        return [f"cluster {c}" if c >= 0 else "unassigned" for c in clusters]
    if colour == "proposal":
        return [proposals.get(int(p), "unassigned") for p in product_ids]
    source = labels if colour == "label" else predictions
    if source is None:
        raise ValueError(f"no {colour}s to colour by")
    cut = lambda path: PATH_SEP.join(path.split(PATH_SEP)[:depth]) if path else f"no {colour}"  # noqa: E731
    return [cut(source.get(int(p))) for p in product_ids]


def keyed(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the distinct values in the order they first appear, each row's index into them): so a map's group names are
    made once per distinct product or cluster, not once per row."""
    distinct, first, inverse = np.unique(np.asarray(values), return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return distinct[order], rank[inverse.ravel()]


def rank_groups(names: list[str], max_groups: int, inverse: np.ndarray | None = None) -> tuple[list[str], np.ndarray]:
    """The groups a map shows and each product's group: the `max_groups - 1` largest, then "other" for the rest, with
    "unassigned" / "no ..." groups (and "other") last; equal sizes in the order the groups first appear.

    Args:
        names: each product's group, or with `inverse` each distinct key's (`keyed`: in order of first appearance),
            product i's being names[inverse[i]].

    Returns:
        (group names in legend order, each product's index into them as an int32 array).
    """
    weights = np.bincount(inverse, minlength=len(names)) if inverse is not None else np.ones(len(names), np.int64)
    counts: Counter[str] = Counter()
    for name, weight in zip(names, weights.tolist()):
        if weight:
            counts[name] += weight
    special = {n for n in counts if n == "unassigned" or n.startswith("no ")}
    ranked = [n for n, _ in counts.most_common() if n not in special]
    keep = ranked[: max_groups - 1]
    lumped = len(ranked) > len(keep)
    order = keep + sorted(special | ({"other"} if lumped else set()))
    index = {n: i for i, n in enumerate(order)}
    other = index.get("other", -1)
    codes = np.fromiter((index.get(n, other) for n in names), np.int32, len(names))
    return order, codes if inverse is None else codes[inverse]


def is_muted(name: str) -> bool:
    """Drawn in grey: products in no group ("unassigned", "no label", ...) and the lumped-together rest ("other")."""
    return name in ("unassigned", "other") or name.startswith("no ")


def legend_name(name: str, size: int) -> str:
    """A group's legend text: its name cut to LEGEND_CHARS and escaped for Plotly (which renders HTML in it), and its size."""
    return f"{label(short(name, LEGEND_CHARS))} ({size:,})"


def scatter_groups(
    product_ids: np.ndarray, xy: np.ndarray, names: list[str], *, max_groups: int = 24, inverse: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """Traces for the scatter: the `max_groups - 1` largest groups, then the rest as "other" (coordinates
    rounded to 3 decimals: the page payload is mostly these numbers).

    Returns:
        [{"name", "x", "y", "ids", "muted"}], largest first, "unassigned"/"other" last; "name" is the legend's text
        (`legend_name`). `names` and `inverse`: as `rank_groups` takes them.
    """
    order, codes = rank_groups(names, max_groups, inverse)
    xy = np.round(np.asarray(xy, np.float64), 3)
    product_ids = np.asarray(product_ids)
    out = []
    for i, name in enumerate(order):
        rows = np.flatnonzero(codes == i)
        if len(rows):
            out.append(
                {
                    "name": legend_name(name, len(rows)),
                    "x": xy[rows, 0].tolist(),
                    "y": xy[rows, 1].tolist(),
                    "ids": product_ids[rows].tolist(),
                    "muted": is_muted(name),
                }
            )
    return out


def map_view(
    product_ids: np.ndarray, xy: np.ndarray, names: list[str], *, max_groups: int = 24, inverse: np.ndarray | None = None
) -> dict[str, Any]:
    """What the page draws of a map: {"groups": one trace per group, "n", "density"}.

    Up to DENSITY_ABOVE products every product is a point (`scatter_groups`; "density" None). Above it the browser
    gets a density image of every product (`density_image`) and a sample of SAMPLE_POINTS of them as the traces
    (for hover and the legend: each group's "size" is its full count), so the page's payload stays the same size
    however large the map; a selection is then resolved against every product (`selected_rows`).
    """
    n = len(product_ids)
    if n <= DENSITY_ABOVE:
        groups = scatter_groups(product_ids, xy, names, max_groups=max_groups, inverse=inverse)
        return {"groups": groups, "n": n, "density": None}
    order, codes = rank_groups(names, max_groups, inverse)
    xy = np.asarray(xy, np.float32)
    colours = [MUTED if is_muted(name) else PALETTE[i % len(PALETTE)] for i, name in enumerate(order)]
    bounds = map_bounds(xy)
    image = density_image(xy, codes, np.array([hex_rgb(c) for c in colours], np.float64), bounds)
    rows = sample_rows(n, SAMPLE_POINTS)
    sizes = np.bincount(codes, minlength=len(order))
    groups = []
    for i, name in enumerate(order):
        picked = rows[codes[rows] == i]
        if sizes[i]:
            groups.append(
                {
                    "name": legend_name(name, int(sizes[i])),
                    "x": xy[picked, 0],
                    "y": xy[picked, 1],
                    "ids": np.asarray(product_ids)[picked],
                    "muted": is_muted(name),
                    "colour": colours[i],
                }
            )
    return {"groups": groups, "n": n, "density": {"png": png_uri(image), "bounds": bounds, "sampled": len(rows)}}


def map_image(data: dict[str, Any], size: tuple[int, int] | None = None) -> bytes:
    """The map of a map view (`map_view`'s dict) drawn on the server as a PNG: every product a dot in its group's
    colour (the colours, sizes, opacities and drawing order the Plotly figure gives them), or for a density view its
    image of every product; the legend on the right, each group's
    name and size drawn as pixels (never markup), up to LEGEND_ROWS of them then "+ N more groups".

    The Clusters page shows this first: the browser only shows a picture, where the interactive figure needs the 4.7
    MB plotly.js evaluated and a WebGL context (2-3 s in a new browser, BENCHMARKS.md)."""
    import io

    from PIL import Image, ImageDraw, ImageFont

    width, height = size or IMAGE_SIZE
    groups = data["groups"]
    legend = LEGEND_WIDTH if groups else 0
    plot = (8, 8, width - legend - 8, height - 8)  # x0, y0, x1, y1 of the points' area
    canvas = np.full((height, width, 3), 255, np.uint8)
    density = data.get("density")
    colours = [group_colour(i, g, density) for i, g in enumerate(groups)]
    if density:
        draw_density(canvas, density["png"], plot)
    else:
        draw_points(canvas, groups, colours, plot, radius=1 if data["n"] > 10_000 else 2)
    image = Image.fromarray(canvas, "RGB")
    if legend:
        draw_legend(ImageDraw.Draw(image), ImageFont.load_default(size=13), groups, colours, left=width - legend + 4)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


def group_colour(i: int, group: dict[str, Any], density) -> str:
    """A group's colour in both views: its own in a density view, else grey for "unassigned" / "other" and the
    theme's colour sequence by trace order (what Streamlit's Plotly theme gives the traces)."""
    if density and group.get("colour"):
        return group["colour"]
    return MUTED if group["muted"] else PALETTE[i % len(PALETTE)]


def draw_points(canvas: np.ndarray, groups: list[dict[str, Any]], colours: list[str], plot, *, radius: int) -> None:
    """Every group's points as discs of `radius` pixels onto `canvas` (H, W, 3), in trace order (the largest group at
    the bottom, "unassigned" / "other" on top) at the figure's opacities (0.75; grey groups 0.35), as Plotly draws
    them."""
    xy = [np.column_stack([np.asarray(g["x"], np.float64), np.asarray(g["y"], np.float64)]) for g in groups]
    drawn = [p for p in xy if len(p)]
    if not drawn:
        return
    bounds = map_bounds(np.concatenate(drawn))
    x0, y0, x1, y1 = plot
    x_lo, x_hi, y_lo, y_hi = bounds
    span = range(-radius, radius + 1)
    disc = [(dy, dx) for dy in span for dx in span if dx * dx + dy * dy <= radius * radius + radius]
    for i, group in enumerate(groups):
        if not len(xy[i]):
            continue
        alpha = 0.35 if group["muted"] else 0.75
        ink = alpha * np.array(hex_rgb(colours[i]), np.float64)
        cols = np.round(x0 + (xy[i][:, 0] - x_lo) / (x_hi - x_lo) * (x1 - x0)).astype(np.int64)
        rows = np.round(y1 - (xy[i][:, 1] - y_lo) / (y_hi - y_lo) * (y1 - y0)).astype(np.int64)
        for dy, dx in disc:
            r, c = np.clip(rows + dy, 0, canvas.shape[0] - 1), np.clip(cols + dx, 0, canvas.shape[1] - 1)
            canvas[r, c] = np.round(ink + (1 - alpha) * canvas[r, c]).astype(np.uint8)


def draw_density(canvas: np.ndarray, uri: str, plot) -> None:
    """A density view's image (`png_uri`), stretched over the points' area of `canvas` and laid over white."""
    import base64
    import io

    from PIL import Image

    x0, y0, x1, y1 = plot
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA").resize((x1 - x0, y1 - y0))
    rgba = np.asarray(image, np.float64)
    alpha = rgba[:, :, 3:] / 255
    canvas[y0:y1, x0:x1] = np.round(alpha * rgba[:, :, :3] + (1 - alpha) * canvas[y0:y1, x0:x1]).astype(np.uint8)


def draw_legend(draw, font, groups: list[dict[str, Any]], colours: list[str], *, left: int) -> None:
    """The groups' names and sizes (the legend's text, unescaped: pixels, not HTML) beside a square of their colour."""
    import html

    shown = groups if len(groups) <= LEGEND_ROWS else groups[: LEGEND_ROWS - 1]
    for row, (group, colour) in enumerate(zip(shown, colours)):
        top = 10 + row * LEGEND_ROW
        draw.rectangle((left, top + 3, left + 10, top + 13), fill=colour)
        name, cut, count = html.unescape(group["name"]).rpartition(" (")
        text = f"{short(name, 38)}{cut}{count}" if cut else short(count, 44)  # the size is never cut off
        draw.text((left + 16, top), text, fill=(49, 51, 63), font=font)
    if len(shown) < len(groups):
        more = len(groups) - len(shown)
        draw.text((left + 16, 10 + len(shown) * LEGEND_ROW), f"+ {more} more groups", fill=(110, 110, 120), font=font)


def map_bounds(xy: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the points' extent with a 2% margin (never empty)."""
    lo, hi = xy.min(axis=0).astype(np.float64), xy.max(axis=0).astype(np.float64)
    pad = np.maximum((hi - lo) * 0.02, 1e-6)
    return float(lo[0] - pad[0]), float(hi[0] + pad[0]), float(lo[1] - pad[1]), float(hi[1] + pad[1])


def bin_index(xy: np.ndarray, bounds: tuple[float, float, float, float], grid: tuple[int, int] | None = None) -> np.ndarray:
    """Each point's pixel in a `grid` (width, height; default GRID) image over `bounds`, row-major with row 0 at the
    top (largest y)."""
    width, height = grid or GRID
    x0, x1, y0, y1 = bounds
    col = np.clip(((xy[:, 0] - x0) / (x1 - x0) * width).astype(np.int64), 0, width - 1)
    row = np.clip(((y1 - xy[:, 1]) / (y1 - y0) * height).astype(np.int64), 0, height - 1)
    return row * width + col


def density_image(
    xy: np.ndarray,
    codes: np.ndarray,
    rgb: np.ndarray,
    bounds: tuple[float, float, float, float],
    grid: tuple[int, int] | None = None,
) -> np.ndarray:
    """An RGBA image (height, width, 4) uint8 of every point: each pixel the mean colour of the groups of the points in
    it (`rgb[codes]`, weighted by their counts), its opacity growing with the log of its count; empty pixels clear."""
    width, height = grid = grid or GRID
    pix = bin_index(xy, bounds, grid)
    count = np.bincount(pix, minlength=width * height).astype(np.float64)
    filled = count > 0
    out = np.zeros((width * height, 4), np.float64)
    for channel in range(3):
        summed = np.bincount(pix, weights=rgb[codes, channel], minlength=width * height)
        out[filled, channel] = summed[filled] / count[filled]
    out[filled, 3] = 255 * (0.35 + 0.65 * np.log1p(count[filled]) / np.log1p(count.max()))
    return np.round(out).astype(np.uint8).reshape(height, width, 4)


def png_uri(image: np.ndarray) -> str:
    """An RGBA array as a PNG data URI (what a Plotly layout image's "source" takes)."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGBA").save(buf, format="PNG", optimize=False, compress_level=6)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def sample_rows(n: int, k: int, seed: int = 0) -> np.ndarray:
    """`k` of the rows 0..n-1 (all when n <= k), sorted: the same ones every time for the same n."""
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def hex_rgb(colour: str) -> tuple[int, int, int]:
    value = colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)


def in_box(xy: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    """Mask of the points inside the box spanned by `xs` and `ys` (two x and two y values, in any order; edges inside)."""
    x0, x1 = sorted(float(v) for v in xs[:2])
    y0, y1 = sorted(float(v) for v in ys[:2])
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)  # compared in float64, as the browser's numbers are
    return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)


def in_polygon(xy: np.ndarray, xs: list[float], ys: list[float]) -> np.ndarray:
    """Mask of the points inside the polygon with vertices (`xs`, `ys`) (closed implicitly; even-odd rule: a
    horizontal ray from the point crosses its edges an odd number of times). Only points in its bounding box are
    tested, so a small lasso over a million points is cheap."""
    px, py = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    mask = np.zeros(len(xy), bool)
    if len(px) < 3:
        return mask
    rows = np.flatnonzero(in_box(xy, [px.min(), px.max()], [py.min(), py.max()]))
    x, y = xy[rows, 0].astype(np.float64), xy[rows, 1].astype(np.float64)
    inside = np.zeros(len(rows), bool)
    for ax, ay, bx, by in zip(px, py, np.roll(px, -1), np.roll(py, -1)):
        if ay == by:
            continue  # a horizontal edge: a horizontal ray never crosses it
        spans = (ay > y) != (by > y)
        cross = ax + (y - ay) * (bx - ax) / (by - ay)
        inside ^= spans & (x < cross)
    mask[rows] = inside
    return mask


def selected_rows(xy: np.ndarray, selection: dict[str, Any]) -> np.ndarray:
    """Rows of the map inside any box or lasso of a Plotly selection (Streamlit's `event.selection`: "box" and
    "lasso" lists, each with "x" and "y" lists), sorted."""
    mask = np.zeros(len(xy), bool)
    for box in selection.get("box") or []:
        mask |= in_box(xy, box["x"], box["y"])
    for lasso in selection.get("lasso") or []:
        mask |= in_polygon(xy, lasso["x"], lasso["y"])
    return np.flatnonzero(mask)


def selected_ids(selection: dict[str, Any] | None, points: dict[str, Any] | None = None) -> list[int]:
    """The product ids a map selection picks: the clicked or enclosed points' ids (each drawn point carries its id);
    with `points` (a density view's whole map: "product_ids", "xy"), every product inside its boxes and lassos too,
    not only the drawn sample's. Each id once, in map order then click order."""
    if not selection:
        return []
    picked = [int(p["customdata"]) for p in selection.get("points") or [] if "customdata" in p]
    if points is None:
        return picked
    inside = np.asarray(points["product_ids"])[selected_rows(np.asarray(points["xy"]), selection)].tolist()
    return list(dict.fromkeys([*inside, *picked]))


def map_figure(data: dict[str, Any]):
    """The Plotly figure of a map view (`map_view`'s dict): one Scattergl trace per group; a density view adds its
    image under the sampled points, with the axes fixed to the image's extent."""
    import plotly.graph_objects as go

    density = data.get("density")
    size = 3 if density else 4 if data["n"] > 10_000 else 5
    fig = go.Figure()
    for group in data["groups"]:
        muted = group["muted"]
        colour = {"color": group["colour"]} if density else {"color": MUTED} if muted else {}
        fig.add_trace(
            go.Scattergl(  # arrays, not lists: Plotly checks them at once and sends them as base64 ("bdata")
                x=np.asarray(group["x"], np.float32),
                y=np.asarray(group["y"], np.float32),
                mode="markers",
                name=group["name"],
                customdata=id_array(group["ids"]),
                marker={"size": size, "opacity": (0.35 if muted else 0.75) * (0.6 if density else 1), **colour},
                hovertemplate="%{fullData.name}<extra></extra>",
            )
        )
    layout: dict[str, Any] = {"meta": {"points": data["n"], "shown": sum(len(g["x"]) for g in data["groups"])}}
    if density:
        x0, x1, y0, y1 = density["bounds"]
        image = {"source": density["png"], "xref": "x", "yref": "y", "x": x0, "y": y1, "sizex": x1 - x0, "sizey": y1 - y0}
        layout["images"] = [{**image, "sizing": "stretch", "layer": "below", "opacity": 1}]
        layout["xaxis"], layout["yaxis"] = {"range": [x0, x1]}, {"range": [y0, y1]}
    fig.update_layout(height=560, margin=dict(t=10, l=0, r=0, b=0), legend={"font": {"size": 10}}, dragmode="lasso", **layout)
    return fig


def unassigned_note(meta: dict[str, Any]) -> str:
    """ "18% unassigned (6 unclear groups among them) · " for a map's caption; "" when the map does not say."""
    if "unassigned" not in meta:
        return ""
    groups = int(meta.get("unclear_groups") or 0)
    among = f" ({groups} unclear group{'s' if groups != 1 else ''} among them)" if groups else ""
    return f"{float(meta['unassigned']):.0%} unassigned{among} · "


def id_array(ids) -> np.ndarray:
    """Product ids as int32 when they fit (a typed array Plotly.js reads; it has no int64), else as float64 (exact)."""
    ids = np.asarray(ids, np.int64)
    return ids.astype(np.int32) if not len(ids) or (ids.min() >= -(2**31) and ids.max() < 2**31) else ids.astype(np.float64)


def density_note(data: dict[str, Any]) -> str:
    """ "density of all 1,000,000 · 20,000 drawn as points · " for a density view's caption; "" for a plain one."""
    density = data.get("density")
    if not density:
        return ""
    return f"shaded by the density of all {data['n']:,} · {density['sampled']:,} drawn as points (hover, click) · "
