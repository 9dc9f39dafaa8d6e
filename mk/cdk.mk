# CDK: `make synth` (offline, no AWS account needed), `make deploy` and `make destroy` (need credentials and a
# bootstrapped account/region; docs/deploy.md), `make lock` (re-resolve the functions' dependencies). The CDK CLI is the npm package pinned in package.json/package-lock.json, installed into
# node_modules on first use; the app itself is Python (app.py, run with $(PY) as cdk.json says).
CDK_STACK ?= PersonalizeIngest
CDK_OUT ?= cdk.out
CDK_CLI := node_modules/.bin/cdk
CDK := $(CDK_CLI) --app "$(PY) app.py" --output $(CDK_OUT) --context stackName=$(CDK_STACK)
# Extra CLI arguments, e.g. CDK_ARGS='-c personalizeConfig=my-config.json' or CDK_ARGS='--require-approval never'.
CDK_ARGS ?=
FUNCTION_REQUIREMENTS := functions/requirements.txt
FUNCTION_LOCK := functions/requirements.lock

.PHONY: destroy lock

$(CDK_CLI): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: install $(CDK_CLI)
	CDK_DISABLE_VERSION_CHECK=1 $(CDK) synth --quiet --no-notices $(CDK_ARGS)
	@echo "Template: $(CDK_OUT)/$(CDK_STACK).template.json"

deploy: install $(CDK_CLI)
	$(CDK) deploy $(CDK_STACK) --no-notices $(CDK_ARGS)

# Deletes the stack. With removalPolicy RETAIN (the default) streams, buckets, queues and log groups stay, and so do
# their costs: docs/deploy.md, "Teardown". Add CDK_ARGS=--force to skip the confirmation.
destroy: install $(CDK_CLI) ## delete the deployed stack (data kept unless removalPolicy is DESTROY; docs/deploy.md)
	$(CDK) destroy $(CDK_STACK) --no-notices $(CDK_ARGS)

# Every transitive dependency of the functions pinned with its hashes (reaches PyPI). Commit the result: the
# bundler installs from it only (pip --require-hashes), and the asset hash changes with it.
lock: install ## regenerate functions/requirements.lock (hash-pinned bundle dependencies)
	$(VENV)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
		--no-emit-trusted-host --no-emit-find-links --output-file $(FUNCTION_LOCK) $(FUNCTION_REQUIREMENTS)
