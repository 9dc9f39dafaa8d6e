# CDK: `make synth` (offline, no AWS account needed) and `make deploy` (needs credentials and a bootstrapped
# account/region). The CDK CLI is the npm package pinned in package.json/package-lock.json, installed into
# node_modules on first use; the app itself is Python (app.py, run with $(PY) as cdk.json says).
CDK_STACK ?= PersonalizeIngest
CDK_OUT ?= cdk.out
CDK_CLI := node_modules/.bin/cdk
CDK := $(CDK_CLI) --app "$(PY) app.py" --output $(CDK_OUT) --context stackName=$(CDK_STACK)
# Extra CLI arguments, e.g. CDK_ARGS='-c personalize={...}' or CDK_ARGS='--require-approval never'.
CDK_ARGS ?=

$(CDK_CLI): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: install $(CDK_CLI)
	CDK_DISABLE_VERSION_CHECK=1 $(CDK) synth --quiet --no-notices $(CDK_ARGS)
	@echo "Template: $(CDK_OUT)/$(CDK_STACK).template.json"

deploy: install $(CDK_CLI)
	$(CDK) deploy $(CDK_STACK) --no-notices $(CDK_ARGS)
