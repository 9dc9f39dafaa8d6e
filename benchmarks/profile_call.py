"""``python -m benchmarks.profile_call [--rows N] [--output FILE]``: where a warm invocation's CPU goes.

Runs the events function once over an S3 ratings object (after a warm-up invocation), under cProfile, with
``MAX_CONCURRENT_CALLS=1`` so every Personalize call runs on the profiled thread, then prints the functions with
the most cumulative and own time. Not part of ``make bench``: the profiler's overhead distorts the figures.
"""

from __future__ import annotations

import argparse
import pstats
import sys
from pathlib import Path

from benchmarks import movielens
from benchmarks.harness import running_bench

ENTITY = "events"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_call", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000, help="rows of the ratings object (default 2,000)")
    parser.add_argument("--output", type=Path, default=Path(".bench/profile.pstats"), help="cProfile stats file")
    parser.add_argument("--top", type=int, default=40, help="functions shown per table")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with running_bench() as bench:
        warmup = bench.put_object("events/profile/warmup.csv.gz", movielens.ratings_object(50))
        event = bench.put_object("events/profile/ratings.csv.gz", movielens.ratings_object(args.rows))
        job = {"kind": "invoke", "entity": ENTITY, "event": event, "warmup": warmup, "profile": str(args.output)}
        with bench.worker() as worker:
            measured = worker.run(job, bench.function_env(ENTITY, MAX_CONCURRENT_CALLS="1"))
        calls = bench.call_summary()["calls"]
    print(f"{args.rows:,} rows, {calls:,} calls, {measured['cpuS']:.2f} s CPU under the profiler")
    stats = pstats.Stats(str(args.output))
    stats.sort_stats("cumulative").print_stats(args.top)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
