"""MovieLens (small) as the pipeline's inputs: bulk-import CSV rows, camelCase JSON records, S3 object bodies.

The data set stays in ``../shared/data/movielens-small`` beside the repository (its licence keeps it out of the
project); ``BENCH_DATA_DIR`` points elsewhere. Ratings (userId,movieId,rating,timestamp) become interactions,
movies (movieId,title,genres) become items and actions; users and action interactions are derived from ratings.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
from collections import Counter
from collections.abc import Iterator
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("BENCH_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "movielens-small"))
RATINGS_FILE = DATA_DIR / "ratings.csv.gz"
MOVIES_FILE = DATA_DIR / "movies.csv.gz"
ALL_RATINGS = 100_836
ALL_MOVIES = 9_742
EVENT_TYPE = "rating"
ACTION_EVENT_TYPE = "Taken"

EVENT_COLUMNS = ("USER_ID", "ITEM_ID", "EVENT_TYPE", "EVENT_VALUE", "TIMESTAMP")
ITEM_COLUMNS = ("ITEM_ID", "TITLE", "GENRES")


SOURCE = "https://grouplens.org/datasets/movielens/ (ml-latest-small.zip)"


class DataMissing(FileNotFoundError):
    """The MovieLens files are not where the benchmarks look for them."""


def missing(data_dir: Path = DATA_DIR) -> str | None:
    """One line saying which MovieLens file is absent from ``data_dir`` and where to get it; None if all are there.

    The line is the whole explanation a user sees (``make bench``, skipped tests), so it names the files, the
    folder looked in, the download and the variable that points elsewhere.
    """
    absent = [
        path.name for path in (data_dir / RATINGS_FILE.name, data_dir / MOVIES_FILE.name) if not path.exists()
    ]
    if not absent:
        return None
    return (
        f"MovieLens small not found: {' and '.join(absent)} missing in {data_dir}. Get ratings.csv and movies.csv "
        f"from {SOURCE}, gzip them into ../shared/data/movielens-small beside the repository, "
        "or set BENCH_DATA_DIR to their folder"
    )


def require(data_dir: Path = DATA_DIR) -> None:
    """Raise :class:`DataMissing` (one line, see :func:`missing`) unless both MovieLens files are present."""
    problem = missing(data_dir)
    if problem:
        raise DataMissing(problem)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    require(path.parent)
    with gzip.open(path, "rt", encoding="utf-8", newline="") as source:
        yield from csv.DictReader(source)


@cache
def ratings() -> tuple[dict[str, str], ...]:
    """Every rating, in file order (sorted by user, as MovieLens ships it)."""
    return tuple(_rows(RATINGS_FILE))


@cache
def movies() -> tuple[dict[str, str], ...]:
    """Every movie, in file order."""
    return tuple(_rows(MOVIES_FILE))


def take(rows: tuple[dict[str, str], ...], count: int) -> list[dict[str, str]]:
    """The first ``count`` rows, cycling through the file again when ``count`` exceeds it."""
    if count <= len(rows):
        return list(rows[:count])
    return [rows[i % len(rows)] for i in range(count)]


# ------------------------------------------------------------------------------------------- record values


def event_bulk(rating: dict[str, str]) -> dict[str, str]:
    """A rating as a bulk-layout interactions row (what ``csv`` yields for USER_ID,ITEM_ID,...)."""
    return {
        "USER_ID": rating["userId"],
        "ITEM_ID": rating["movieId"],
        "EVENT_TYPE": EVENT_TYPE,
        "EVENT_VALUE": rating["rating"],
        "TIMESTAMP": rating["timestamp"],
    }


def event_camel(rating: dict[str, str]) -> dict[str, Any]:
    """A rating as a camelCase JSON event (what a producer puts on Kinesis)."""
    return {
        "sessionId": f"session-{rating['userId']}",
        "userId": rating["userId"],
        "eventType": EVENT_TYPE,
        "eventValue": float(rating["rating"]),
        "itemId": rating["movieId"],
        "sentAt": int(rating["timestamp"]),
    }


def item_bulk(movie: dict[str, str]) -> dict[str, str]:
    return {"ITEM_ID": movie["movieId"], "TITLE": movie["title"], "GENRES": movie["genres"]}


def item_camel(movie: dict[str, str]) -> dict[str, Any]:
    return {
        "itemId": movie["movieId"],
        "properties": {"title": movie["title"], "genres": movie["genres"].split("|")},
    }


def action_bulk(movie: dict[str, str]) -> dict[str, str]:
    return {"ACTION_ID": f"watch-{movie['movieId']}", "TITLE": movie["title"], "GENRES": movie["genres"]}


def action_camel(movie: dict[str, str]) -> dict[str, Any]:
    return {
        "actionId": f"watch-{movie['movieId']}",
        "properties": {"title": movie["title"], "genres": movie["genres"].split("|")},
    }


@cache
def _ratings_per_user() -> Counter[str]:
    return Counter(rating["userId"] for rating in ratings())


def user_bulk(rating: dict[str, str]) -> dict[str, str]:
    return {"USER_ID": rating["userId"], "NUMBER_OF_RATINGS": str(_ratings_per_user()[rating["userId"]])}


def user_camel(rating: dict[str, str]) -> dict[str, Any]:
    return {"userId": rating["userId"], "properties": {"numberOfRatings": _ratings_per_user()[rating["userId"]]}}


def action_interaction_bulk(rating: dict[str, str]) -> dict[str, str]:
    return {
        "ACTION_ID": f"watch-{rating['movieId']}",
        "USER_ID": rating["userId"],
        "EVENT_TYPE": ACTION_EVENT_TYPE,
        "TIMESTAMP": rating["timestamp"],
    }


def action_interaction_camel(rating: dict[str, str]) -> dict[str, Any]:
    return {
        "actionId": f"watch-{rating['movieId']}",
        "sessionId": f"session-{rating['userId']}",
        "userId": rating["userId"],
        "eventType": ACTION_EVENT_TYPE,
        "timestamp": int(rating["timestamp"]),
    }


# ------------------------------------------------------------------------------------------- S3 bodies


def csv_object(columns: tuple[str, ...], rows: Iterator[dict[str, str]] | list[dict[str, str]]) -> bytes:
    """A gzip CSV object in the bulk-import layout: header row, then one line per row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row[column] for column in columns])
    return gzip.compress(out.getvalue().encode(), compresslevel=6)


def ratings_object(count: int) -> bytes:
    """The first ``count`` ratings as a gzip bulk-layout interactions CSV."""
    return csv_object(EVENT_COLUMNS, [event_bulk(r) for r in take(ratings(), count)])


def movies_object(count: int) -> bytes:
    """The first ``count`` movies as a gzip items CSV (ITEM_ID,TITLE,GENRES)."""
    return csv_object(ITEM_COLUMNS, [item_bulk(m) for m in islice(movies(), count)])
