# `make up` / `make down`: the local stack kept running in the background (docs/operations.md, "Local stack").
#   moto (Kinesis, SQS, S3, CloudWatch), the Personalize Events emulator (store kept in $(LOCAL_DIR)/emulator.sqlite)
#   and the local event-source runner, wired from the synthesized template. `make up` prints the endpoints, the
#   environment a producer exports ($(LOCAL_DIR)/env.sh) and the stream / queue / bucket names; `make down` stops
#   exactly the processes `make up` started.
#   LOCAL_DIR        state, logs and the emulator's store (default build/local)
#   LOCAL_TEMPLATE   the template to run (default: the one `make synth` writes)
LOCAL_DIR ?= build/local
LOCAL_TEMPLATE ?= $(CDK_OUT)/$(CDK_STACK).template.json
LOCAL_TIME_SCALE ?= 0.01

.PHONY: up down

up: install synth ## the local stack in the background; prints endpoints, producer environment and names
	$(PY) -m local.up start --stack $(CDK_STACK) --template $(LOCAL_TEMPLATE) --state-dir $(LOCAL_DIR) \
		--time-scale $(LOCAL_TIME_SCALE)

down: ## stop everything `make up` started (the emulator's store is kept)
	$(PY) -m local.up stop --state-dir $(LOCAL_DIR)
