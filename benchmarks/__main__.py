"""``python -m benchmarks [--quick] [--only SCENARIO ...] [--records N] [--output FILE]``.

Runs the scenarios against moto and the Personalize Events emulator on loopback, prints one table per scenario
and writes every figure, with the machine and commit they were measured on, to a JSON file.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import (
    baselines,
    bulk_import,
    files,
    items,
    kinesis,
    machine,
    movielens,
    prepare_cpu,
    report,
    s3_events,
    schema_calls,
)
from benchmarks.harness import Bench, running_bench

REPO_ROOT = Path(__file__).resolve().parent.parent
FULL_RESULTS = REPO_ROOT / "benchmarks" / "results" / "latest.json"
QUICK_RESULTS = REPO_ROOT / ".bench" / "quick.json"
PARTIAL_RESULTS = REPO_ROOT / ".bench" / "partial.json"

SCENARIOS: dict[str, Callable[[Bench, bool, argparse.Namespace], list[dict[str, Any]]]] = {
    prepare_cpu.SCENARIO: lambda bench, quick, _: prepare_cpu.run(bench, quick),
    s3_events.SCENARIO: lambda bench, quick, args: s3_events.run(bench, quick, args.records),
    items.SCENARIO: lambda bench, quick, _: items.run(bench, quick),
    kinesis.SCENARIO: lambda bench, quick, _: kinesis.run(bench, quick),
    baselines.SCENARIO: lambda bench, quick, _: baselines.run(bench, quick),
    schema_calls.SCENARIO: lambda bench, quick, _: schema_calls.run(bench, quick),
    files.SCENARIO: lambda bench, quick, _: files.run(bench, quick),
    bulk_import.SCENARIO: lambda bench, quick, _: bulk_import.run(bench, quick),
}
NEEDS_MOVIELENS = frozenset({prepare_cpu.SCENARIO, s3_events.SCENARIO, items.SCENARIO, kinesis.SCENARIO})
"""Scenarios that read MovieLens small; the others generate their data and run without it."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs: a smoke run of a few seconds")
    parser.add_argument("--only", nargs="+", choices=sorted(SCENARIOS), help="run only these scenarios")
    parser.add_argument(
        "--records", type=int, help="rows of the S3 ratings object of the main events run (default: all 100,836)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"results file (default: {FULL_RESULTS.relative_to(REPO_ROOT)} for a full run, "
        f"{QUICK_RESULTS.relative_to(REPO_ROOT)} with --quick, {PARTIAL_RESULTS.relative_to(REPO_ROOT)} with "
        "--only or --records: only a full run replaces the reference figures)",
    )
    return parser.parse_args(argv)


def default_output(args: argparse.Namespace) -> Path:
    """Where the results go when ``--output`` is not given: only a full run replaces the reference figures."""
    if args.quick:
        return QUICK_RESULTS
    if args.only or args.records:
        return PARTIAL_RESULTS
    return FULL_RESULTS


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    selected = args.only or list(SCENARIOS)
    # NOTE: checked before any server starts, so a missing data set is one line, not a worker's traceback. The
    # scenarios that generate their own data still run; asked for by name, a scenario that needs the data fails.
    problem = movielens.missing()
    if problem:
        needing = [name for name in selected if name in NEEDS_MOVIELENS]
        if args.only and needing:
            print(f"error: {', '.join(needing)} need(s) the data set: {problem}", file=sys.stderr)
            return 2
        if needing:
            selected = [name for name in selected if name not in NEEDS_MOVIELENS]
            print(f"note: skipped {', '.join(needing)}: {problem}", file=sys.stderr)
    output = args.output or (PARTIAL_RESULTS if problem and not args.quick else default_output(args))
    facts = machine.describe()
    print(
        f"benchmarks ({'quick' if args.quick else 'full'}) on {facts['cpus']} CPU(s) {facts['cpu'] or ''}, "
        f"Python {facts['python']}, commit {(facts['git']['commit'] or 'unknown')[:12]}"
        f"{' (dirty tree)' if facts['git']['dirty'] else ''}, load average {facts['loadAverage'][0]:.2f}"
    )
    if facts["cpus"] and facts["loadAverage"][0] > facts["cpus"]:
        print("   note: the machine is busy; wall times are disturbed more than CPU times")
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    try:
        with running_bench() as bench:
            for name in selected:
                scenario_started = time.perf_counter()
                results.extend(SCENARIOS[name](bench, args.quick, args))
                print(f"   {name}: {time.perf_counter() - scenario_started:.1f} s", flush=True)
    except movielens.DataMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report.print_tables(results, sys.stdout)
    document = {
        "mode": "quick" if args.quick else "full",
        "scenarios": selected,
        "dataDir": str(movielens.DATA_DIR),
        "durationS": round(time.perf_counter() - started, 1),
        "machine": {**facts, "loadAverageAtEnd": list(machine.load_average())},
        "results": results,
    }
    report.write_json(output, document)
    print(f"\nresults written to {_shown(output)} in {document['durationS']} s")
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
