# `make soak`: the events function under Lambda's Kinesis and SQS retry semantics against the Personalize Events
# emulator injecting throttling, 5xx, dropped connections, lost responses and latency spikes (docs/failure-semantics.md).
# Prints sent / delivered / rejected / lost / duplicates / calls per record and each target as met / not met; exits
# non-zero when one is not met. About 10 minutes on 2 cores; `make soak SOAK_ARGS=--quick` takes about one.
SOAK_ARGS ?=

.PHONY: soak
soak: install ## reliability soak: Kinesis, SQS and FIFO under injected faults, targets met / not met
	$(PY) -m benchmarks.soak $(SOAK_ARGS)
