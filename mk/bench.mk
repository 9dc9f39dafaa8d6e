# `make bench`: the benchmarks (docs/benchmarks.md). moto and the Personalize Events emulator run on loopback;
# the figures are printed and a full run writes them to benchmarks/results/latest.json, the reference figures
# committed with the code, so `git diff benchmarks/results/latest.json` shows what a change did to them.
# About 3 minutes on 2 cores.
#   BENCH_ARGS  more options for `python -m benchmarks`: '--quick' (small inputs, writes .bench/quick.json),
#               '--only prepare s3_items' or '--records 20000' (partial runs write .bench/partial.json),
#               '--output FILE'.
BENCH_ARGS ?=

bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)
