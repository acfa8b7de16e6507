"""Filtering, sorting and CSV export of predictions for the Predictions page."""

from __future__ import annotations

import io

import pandas as pd

from app.prediction_view import filter_predictions, prediction_frame, to_csv

ROWS = [
    {
        "product_id": 1,
        "external_id": "1",
        "platform": "a",
        "title": "t1",
        "image": None,
        "label": "A > B > C",
        "predicted": "A > B > C",
        "stage": 1,
        "confidence": 0.9,
        "levels": [1.0, 0.95, 0.95],
        "agrees": True,
    },
    {
        "product_id": 2,
        "external_id": "2",
        "platform": "a",
        "title": "t2",
        "image": None,
        "label": "A > B > C",
        "predicted": "A > E > F",
        "stage": 2,
        "confidence": 0.2,
        "levels": [0.9, 0.3, 0.74],
        "agrees": False,
    },
    {
        "product_id": 3,
        "external_id": "3",
        "platform": "b",
        "title": "t3",
        "image": None,
        "label": None,
        "predicted": "G > H",
        "stage": 1,
        "confidence": 0.5,
        "levels": [0.5, 1.0],
        "agrees": None,
    },
]


def ids(df):
    return list(df["product_id"])


def test_frame_has_one_column_per_level():
    df = prediction_frame(ROWS)
    assert list(df["level_2"]) == [0.95, 0.3, 1.0]
    assert pd.isna(df["level_3"].iloc[2])


def test_filters_combine_and_sort():
    df = prediction_frame(ROWS)
    assert ids(filter_predictions(df)) == [2, 3, 1]
    assert ids(filter_predictions(df, ascending=False)) == [1, 3, 2]
    assert ids(filter_predictions(df, node_path="A > B")) == [2, 1]  # label or prediction under A > B
    assert ids(filter_predictions(df, node_path="A > E")) == [2]
    assert ids(filter_predictions(df, node_path="A > B > C > X")) == []
    assert ids(filter_predictions(df, confidence_range=(0.4, 1.0))) == [3, 1]
    assert ids(filter_predictions(df, confidence_of="level_2", confidence_range=(0.0, 0.5))) == [2]
    assert ids(filter_predictions(df, platforms=["b"])) == [3]
    assert ids(filter_predictions(df, agreement="disagrees with label")) == [2]
    assert ids(filter_predictions(df, agreement="agrees with label")) == [1]


def test_csv_round_trips_the_filtered_rows():
    df = filter_predictions(prediction_frame(ROWS), platforms=["a"])
    back = pd.read_csv(io.BytesIO(to_csv(df)))
    assert list(back["product_id"]) == [2, 1] and "predicted" in back.columns
