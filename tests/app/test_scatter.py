"""The Clusters map's drawing at any size (app/scatter.py): the plain scatter below the density threshold, the density
image and sample above it, and box / lasso selections resolved against every point."""

from __future__ import annotations

import json
import math

import numpy as np
import plotly.io as pio
import pytest

from app import scatter
from app.scatter import in_box, in_polygon, keyed, map_figure, map_view, rank_groups, scatter_groups, selected_ids
from tests.app.helpers import plotly_values

# a 5 x 5 grid of points at integer coordinates 0..4; row i is the point (i % 5, i // 5)
GRID_XY = np.array([(i % 5, i // 5) for i in range(25)], np.float64)


def grid_rows(*points: tuple[int, int]) -> list[int]:
    return sorted(y * 5 + x for x, y in points)


def test_a_box_selects_exactly_the_grid_points_inside_it_edges_included():
    mask = in_box(GRID_XY, [3.0, 1.0], [0.5, 2.0])  # corners in any order: x 1..3, y 0.5..2
    expected = grid_rows((1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (3, 2))
    assert np.flatnonzero(mask).tolist() == expected


def test_a_lasso_triangle_selects_exactly_the_grid_points_inside_it():
    # vertices (0.5, 0.5), (4.5, 0.5), (0.5, 4.5): inside are the points with x >= 1, y >= 1 and x + y < 5
    mask = in_polygon(GRID_XY, [0.5, 4.5, 0.5], [0.5, 0.5, 4.5])
    expected = grid_rows((1, 1), (2, 1), (3, 1), (1, 2), (2, 2), (1, 3))
    assert np.flatnonzero(mask).tolist() == expected


def test_a_concave_lasso_leaves_out_the_points_in_its_notch():
    # an L: the square 0.5..3.5 x 0.5..3.5 without its top-right part 1.5..3.5 x 1.5..3.5
    xs, ys = [0.5, 3.5, 3.5, 1.5, 1.5, 0.5], [0.5, 0.5, 1.5, 1.5, 3.5, 3.5]
    expected = grid_rows((1, 1), (2, 1), (3, 1), (1, 2), (1, 3))
    assert np.flatnonzero(in_polygon(GRID_XY, xs, ys)).tolist() == expected


def test_a_selection_of_a_density_view_lists_every_product_inside_not_only_the_drawn_sample():
    points = {"product_ids": np.arange(100, 125), "xy": GRID_XY}
    selection = {
        "points": [{"customdata": 124}],  # a clicked point, outside the box
        "box": [{"x": [0, 1], "y": [0, 0]}],  # the bottom row's first two points: ids 100, 101
        "lasso": [{"x": [2.5, 4.5, 4.5, 2.5], "y": [-0.5, -0.5, 0.5, 0.5]}],  # (3, 0), (4, 0): ids 103, 104
    }
    assert selected_ids(selection, points) == [100, 101, 103, 104, 124]
    assert selected_ids({**selection, "box": [], "lasso": []}, points) == [124]
    assert selected_ids(selection) == [124]  # a plain view: the points Plotly reports (each drawn point is there)
    assert selected_ids(None, points) == []


def test_below_the_threshold_every_product_is_a_point_of_its_group_as_before():
    ids = np.array([10, 11, 12, 13, 14])
    xy = np.array([[0.1234, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]])
    names = ["b", "a", "b", "unassigned", "b"]
    view = map_view(ids, xy, names)
    assert view["density"] is None and view["n"] == 5
    assert [(g["name"], g["ids"], g["x"], g["muted"]) for g in view["groups"]] == [
        ("b (3)", [10, 12, 14], [0.123, 4.0, 8.0], False),
        ("a (1)", [11], [2.0], False),
        ("unassigned (1)", [13], [6.0], True),
    ]
    assert view["groups"] == scatter_groups(ids, xy, names)  # the traces of the page before the density view
    spec = json.loads(pio.to_json(map_figure(view), validate=False))
    traces = [plotly_values(t) for t in spec["data"]]
    assert [t["customdata"] for t in traces] == [[10, 12, 14], [11], [13]]
    assert traces[0]["x"] == pytest.approx([0.123, 4.0, 8.0], abs=1e-6) and traces[2]["y"] == [7.0]
    assert "images" not in spec["layout"] and spec["layout"]["meta"] == {"points": 5, "shown": 5}


def test_above_the_threshold_the_figure_is_a_density_image_of_every_point_and_a_sample(monkeypatch):
    monkeypatch.setattr(scatter, "DENSITY_ABOVE", 50)
    monkeypatch.setattr(scatter, "SAMPLE_POINTS", 30)
    monkeypatch.setattr(scatter, "GRID", (2, 2))
    # 60 products at (0, 10) in group "a", 40 at (10, 0) in group "b": after the 2% margin the two corners fall in the
    # top-left and bottom-right pixels of a 2 x 2 image
    xy = np.array([[0.0, 10.0]] * 60 + [[10.0, 0.0]] * 40)
    names = ["a"] * 60 + ["b"] * 40
    view = map_view(np.arange(100), xy, names)
    assert view["n"] == 100 and view["density"]["sampled"] == 30
    assert [g["name"] for g in view["groups"]] == ["a (60)", "b (40)"]  # the legend counts every product
    assert sum(len(g["x"]) for g in view["groups"]) == 30
    assert all(set(g["ids"].tolist()) <= set(range(60) if g["name"].startswith("a") else range(60, 100)) for g in view["groups"])
    image = decode_png(view["density"]["png"])
    red, light = scatter.hex_rgb(scatter.PALETTE[0]), scatter.hex_rgb(scatter.PALETTE[1])
    assert tuple(image[0, 0, :3]) == red and image[0, 0, 3] == 255  # the fuller pixel: fully opaque
    assert tuple(image[1, 1, :3]) == light and 0 < image[1, 1, 3] < 255
    assert image[0, 1, 3] == 0 and image[1, 0, 3] == 0  # no product there
    spec = json.loads(pio.to_json(map_figure(view), validate=False))
    assert spec["layout"]["images"][0]["source"].startswith("data:image/png;base64,")
    assert spec["layout"]["meta"] == {"points": 100, "shown": 30}


def test_a_pixel_holding_two_groups_takes_their_mean_colour():
    xy = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    rgb = np.array([[255.0, 0.0, 0.0], [0.0, 0.0, 255.0]])
    image = scatter.density_image(xy, np.array([0, 1, 0]), rgb, (-0.5, 1.5, -0.5, 1.5), grid=(2, 2))
    assert tuple(image[1, 0, :3]) == (128, 0, 128) and image[1, 0, 3] == 255  # bottom-left: one of each, two points
    assert tuple(image[0, 1, :3]) == (255, 0, 0) and image[0, 1, 3] == round(255 * (0.35 + 0.65 * math.log(2) / math.log(3)))


def test_group_names_made_per_key_rank_the_groups_as_per_product_names_do():
    clusters = np.array([5, 5, 7, -1, 7, 9, 5, 9, 3])
    per_product = [f"c{c}" if c >= 0 else "unassigned" for c in clusters]
    keys, inverse = keyed(clusters)
    assert keys.tolist() == [5, 7, -1, 9, 3]  # in the order they first appear
    per_key = [f"c{c}" if c >= 0 else "unassigned" for c in keys]
    order, codes = rank_groups(per_key, 3, inverse)
    plain_order, plain_codes = rank_groups(per_product, 3)
    assert order == plain_order and codes.tolist() == plain_codes.tolist()
    assert order == ["c5", "c7", "other", "unassigned"]  # c7 and c9 tie at 2: c7 appears first


def decode_png(uri: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


def picture(data: dict, size=(400, 200)) -> np.ndarray:
    """`scatter.map_image` decoded: (H, W, 3) uint8."""
    import io

    from PIL import Image

    png = scatter.map_image(data, size=size)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def blended(colour: str, alpha: float) -> np.ndarray:
    return np.round(alpha * np.array(scatter.hex_rgb(colour)) + (1 - alpha) * 255).astype(np.uint8)


def test_the_map_picture_draws_each_group_where_its_points_are_in_the_figures_colours():
    # group "a" in the left half, "b" in the right half, the unassigned ones along the bottom
    xy = np.array([[0, 1], [0.1, 1.1], [0.9, 1.0], [1.0, 1.1], [0.5, 0.0]], np.float64)
    data = map_view(np.arange(5), xy, ["a", "a", "b", "b", "unassigned"])
    img = picture(data)
    plot = img[:, : 400 - scatter.LEGEND_WIDTH]  # the legend is on the right
    a, b, grey = blended(scatter.PALETTE[0], 0.75), blended(scatter.PALETTE[1], 0.75), blended(scatter.MUTED, 0.35)
    found = {name: np.argwhere((plot == rgb).all(axis=2)) for name, rgb in (("a", a), ("b", b), ("grey", grey))}
    assert all(len(v) for v in found.values())
    width = plot.shape[1]
    assert found["a"][:, 1].max() < width / 2 < found["b"][:, 1].min()  # columns: a left of b
    assert found["grey"][:, 0].min() > max(found["a"][:, 0].max(), found["b"][:, 0].max())  # rows: the grey one lowest
    legend = img[:, 400 - scatter.LEGEND_WIDTH :]
    for colour in (scatter.PALETTE[0], scatter.PALETTE[1], scatter.MUTED):  # a square of each group's colour
        assert (legend == np.array(scatter.hex_rgb(colour), np.uint8)).all(axis=2).sum() >= 50


def test_the_map_picture_of_a_density_view_shows_its_image_and_a_long_legend_is_cut(monkeypatch):
    monkeypatch.setattr(scatter, "DENSITY_ABOVE", 10)
    rng = np.random.default_rng(0)
    n = 400
    names = [f"<b>group {i % 40}</b> & co" for i in range(n)]  # 40 groups: more than the legend's rows
    data = map_view(np.arange(n), rng.normal(size=(n, 2)), names, max_groups=100)
    assert data["density"] is not None and len(data["groups"]) == 40
    img = picture(data, size=(700, 600))
    plot = img[:, : 700 - scatter.LEGEND_WIDTH]
    assert (plot < 250).any(axis=2).sum() >= n / 2  # the density image is drawn: about a pixel a point
    legend = img[:, 700 - scatter.LEGEND_WIDTH :]
    squares = sum((legend == np.array(scatter.hex_rgb(c), np.uint8)).all(axis=2).any() for c in scatter.PALETTE)
    assert squares == len(scatter.PALETTE)
    rows = legend[:, 4:15]  # the column of colour squares: LEGEND_ROWS - 1 of them, then "+ N more groups"
    filled = np.flatnonzero((rows != 255).any(axis=(1, 2)))
    starts = filled[np.r_[True, np.diff(filled) > 1]]
    assert len(starts) == scatter.LEGEND_ROWS - 1


def test_an_empty_map_picture_is_blank():
    img = picture({"groups": [], "n": 0, "density": None})
    assert (img == 255).all()
