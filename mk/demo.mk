# `make demo`: the whole pipeline on this machine, wired from the synthesized stack (docs/demo.md).
#   LOCAL_TIME_SCALE  factor applied to waits only: SQS visibility timeouts and Kinesis retry backoff
#                     (0.01 turns the template's 720 s visibility timeout into 7 s); every other setting comes
#                     from the template `make synth` writes ($(CDK_OUT)/$(CDK_STACK).template.json, mk/cdk.mk).
#   DEMO_ARGS         more options for `python -m local.demo`, e.g. DEMO_ARGS='--limit 20 --json report.json'.
LOCAL_TIME_SCALE ?= 0.01
DEMO_ARGS ?=

demo: install synth
	$(PY) -m local.demo --stack $(CDK_STACK) --template $(CDK_OUT)/$(CDK_STACK).template.json \
		--time-scale $(LOCAL_TIME_SCALE) $(DEMO_ARGS)
