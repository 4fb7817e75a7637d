"""Tests for sweep.data.preprocess: every encoding rule, the refusals, JSON round trips and agreement with
scikit-learn."""

import json

import numpy as np
import pandas as pd
import pytest

from sweep.data.preprocess import MISSING_LEVEL, OTHER_LEVEL, Preprocessor
from sweep.errors import DataError


def mixed_table(rows: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every kind of column: numbers with gaps, text with gaps and a rare level, booleans with gaps, a category."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(100, 20, rows),
            "count": rng.integers(0, 10, rows),
            "color": rng.choice(["red", "blue", "green"], rows).astype(object),
            "member": rng.random(rows) < 0.4,
            "plan": pd.Categorical(rng.choice(["basic", "pro"], rows)),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "color"] = None
    frame.loc[:2, "color"] = "violet"  # 3 rows: rare at min_level_count 5
    frame["member"] = frame["member"].astype(object)
    frame.loc[rng.random(rows) < 0.05, "member"] = None
    return frame


COLUMNS = ("amount", "count", "color", "member", "plan")


@pytest.fixture(scope="module")
def fitted():
    return Preprocessor.fit(mixed_table(), COLUMNS, "mixed.csv")


def test_fitted_rules(fitted):
    """Check the learned rules: numbers vs categories, medians, indicators only where values were missing,
    rare levels merged into one other level, missing as a level of its own."""
    table = mixed_table()
    assert fitted.numeric == ("amount", "count") and fitted.categorical == ("color", "member", "plan")
    assert fitted.medians[0] == pytest.approx(table["amount"].median())
    assert fitted.indicators == ("amount",)
    color = dict(zip(fitted.categorical, fitted.levels))["color"]
    assert set(color) == {"red", "blue", "green", MISSING_LEVEL} and "violet" not in color
    assert fitted.has_other == (True, False, False)
    assert f"color={OTHER_LEVEL}" in fitted.output_names and "amount_missing" in fitted.output_names
    assert dict(zip(fitted.categorical, fitted.levels))["member"] == (MISSING_LEVEL, "False", "True")


@pytest.mark.parametrize(
    "row, column, expected",
    [
        ({"color": "violet"}, f"color={OTHER_LEVEL}", 1.0),  # rare at fit time
        ({"color": "purple"}, f"color={OTHER_LEVEL}", 1.0),  # never seen
        ({"color": None}, f"color={MISSING_LEVEL}", 1.0),
        ({"amount": None}, "amount_missing", 1.0),
        ({"amount": float("inf")}, "amount_missing", 1.0),
        ({"plan": "enterprise"}, "plan=basic", 0.0),  # unseen, no other level: all zeros like OneHotEncoder
        ({"plan": "enterprise"}, "plan=pro", 0.0),
    ],
)
def test_new_rows_are_encoded_by_the_rules(fitted, row, column, expected):
    """Check that unseen, rare and missing values of new rows land where the rules say (before scaling)."""
    base = {"amount": 90.0, "count": 3, "color": "red", "member": True, "plan": "pro"}
    encoded = fitted.encode(pd.DataFrame([base | row]), "new.csv")
    assert encoded[0, fitted.output_names.index(column)] == expected
    if "amount" in row:
        assert encoded[0, 0] == pytest.approx(fitted.medians[0])


def test_transform_equals_scikit_learns_pipeline(fitted):
    """Check that the JSON-stored transform gives what the fitted scikit-learn pipeline gives, also on rows with
    unseen levels and missing values."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    def as_text(frame):
        return frame.astype(object).where(frame.notna(), MISSING_LEVEL).astype(str)

    pipeline = make_pipeline(
        ColumnTransformer(
            [
                ("numbers", SimpleImputer(strategy="median", add_indicator=True), ["amount", "count"]),
                (
                    "levels",
                    make_pipeline(
                        FunctionTransformer(as_text),
                        OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False),
                    ),
                    ["color", "member", "plan"],
                ),
            ]
        ),
        StandardScaler(),
    )
    pipeline.fit(mixed_table())
    new = mixed_table(rows=200, seed=1)
    new["plan"] = new["plan"].astype(object)
    new.loc[:4, "color"] = "purple"
    new.loc[5:9, "plan"] = "enterprise"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the unseen levels it encodes
        expected = pipeline.transform(new)
    assert np.allclose(fitted.transform(new, "new.csv"), expected, atol=1e-5)


@pytest.mark.parametrize(
    "values",
    [
        [3.0, 1.0, np.nan, 2.0, 10.0],  # four present values: the median averages the middle two
        [3.0, 1.0, np.nan, 2.0, np.nan, 7.0, 5.0],
        [4.0, 1.0, 2.0, 8.0],  # no gap: no indicator
    ],
)
def test_medians_and_indicators_are_simple_imputers(values):
    """Check that each numeric column's median and missing indicator are SimpleImputer(strategy="median",
    add_indicator=True)'s, whose results the preprocessor computes with np.nanmedian."""
    from sklearn.impute import SimpleImputer

    frame = pd.DataFrame({"x": values, "y": np.arange(len(values), dtype=float)})
    found = Preprocessor.fit(frame, ("x", "y"), "t.csv")
    imputer = SimpleImputer(strategy="median", add_indicator=True).fit(frame[["x", "y"]])
    assert found.medians == tuple(float(v) for v in imputer.statistics_)
    indicated = [] if imputer.indicator_ is None else [("x", "y")[i] for i in imputer.indicator_.features_]
    assert list(found.indicators) == indicated


def test_json_round_trip(fitted):
    """Check that the preprocessing survives JSON unchanged and transforms identically after it."""
    again = Preprocessor.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again == fitted
    table = mixed_table(seed=3)
    assert np.array_equal(again.transform(table), fitted.transform(table))


@pytest.mark.parametrize(
    "change, dropped, why",
    [
        ({"empty": np.nan}, "empty", "entirely missing"),
        ({"same": 7.0}, "same", "constant"),
        ({"same_text": "x"}, "same_text", "constant"),
    ],
)
def test_useless_columns_are_dropped_with_a_reason(change, dropped, why):
    """Check that an entirely missing or constant column is dropped and named with the reason."""
    table = mixed_table().assign(**change)
    fitted = Preprocessor.fit(table, COLUMNS + (dropped,), "t.csv")
    assert dropped not in fitted.columns and why in fitted.dropped[dropped]


@pytest.mark.parametrize(
    "table, columns, options, match",
    [
        (
            pd.DataFrame({"a": [np.nan] * 50, "b": [1.0] * 50}),
            ("a", "b"),
            {},
            r"no usable feature column in 't.csv' \(a: entirely missing .*; b: constant",
        ),
    ],
)
def test_refusals(table, columns, options, match):
    """Check that no usable column is a one-line DataError that says what to do."""
    with pytest.raises(DataError, match=match):
        Preprocessor.fit(table, columns, "t.csv", **options)


def test_text_in_a_numeric_column_is_named(fitted):
    """Check that a new table with text where the model learned numbers is a DataError naming the column."""
    bad = mixed_table(rows=5).astype({"amount": object})
    bad.loc[2, "amount"] = "n/a?"
    with pytest.raises(DataError, match=r"column 'amount' in 'new.csv' holds 'n/a\?' where a number is expected"):
        fitted.transform(bad, "new.csv")


def test_a_column_with_more_levels_than_max_levels_keeps_the_most_frequent():
    """Check that past max_levels frequent levels the most frequent ones are kept and the rest go to (other) (as
    OneHotEncoder(max_categories=) does), with the reason in `grouped`, and the encoding still equals sklearn's."""
    from sklearn.preprocessing import OneHotEncoder

    levels = [f"s{i % 30}" for i in range(300)] + ["s7"] * 40 + ["s3"] * 20
    table = pd.DataFrame({"state": levels})
    fitted = Preprocessor.fit(table, ("state",), "t.csv", max_levels=10)
    assert len(fitted.levels[0]) == 10 and fitted.has_other == (True,) and {"s7", "s3"} <= set(fitted.levels[0])
    assert (
        "30 levels seen at least 5 times; the 10 most frequent are kept and the other 20 go to '(other)'"
        in fitted.grouped["state"]
    )
    reference = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=11).fit(
        table[["state"]].to_numpy()
    )
    new = pd.DataFrame({"state": ["s7", "s21", "never seen"]})
    assert np.array_equal(fitted.encode(new, "new.csv"), reference.transform(new[["state"]].to_numpy()).toarray())
