"""One function's execution environment: ``python local/worker.py HANDLER RESPONSE_FD TIMEOUT_S FUNCTION_ARN``.

Started by :mod:`local.runner` with exactly the function's environment, in the code asset's folder (Lambda's
``LAMBDA_TASK_ROOT``), which replaces this script's folder at the head of ``sys.path``: the handler imports only
what it could import on Lambda (its asset and installed packages), and nothing is shared with other functions.

Protocol: one JSON request per stdin line ``{"requestId", "event"}``; one JSON response per line on RESPONSE_FD,
``{"requestId", "result"}`` or ``{"requestId", "errorType", "errorMessage"}``. The handler's own output (logs,
metrics) goes to stdout/stderr, which the runner sends to the function's log file. Standard library only.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LocalContext:
    """The attributes and method of Lambda's Python context object."""

    def __init__(self, request_id: str, timeout_s: float, function_arn: str) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = function_arn
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    handler_path, response_fd, timeout_s, function_arn = argv[1], int(argv[2]), float(argv[3]), argv[4]
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path[0] = task_root
    responses = os.fdopen(response_fd, "w", encoding="utf-8")

    module_name, _, function_name = handler_path.rpartition(".")
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # an init error fails every invocation, as on Lambda
        traceback.print_exc()
        init_error = {"errorType": "Runtime.ImportModuleError", "errorMessage": f"{type(exc).__name__}: {exc}"}
    # NOTE: Lambda runs the init phase (imports) under its own limit, before the invocation's timeout starts;
    # telling the runner when init is over keeps a slow cold start from eating the function's timeout.
    responses.write(json.dumps({"initDone": True}) + "\n")
    responses.flush()

    for line in sys.stdin:
        request = json.loads(line)
        response: dict[str, Any] = {"requestId": request["requestId"]}
        if init_error is not None:
            response.update(init_error)
        else:
            context = LocalContext(request["requestId"], timeout_s, function_arn)
            try:
                response["result"] = handler(request["event"], context)
                json.dumps(response)
            except Exception as exc:
                traceback.print_exc()
                response = {
                    "requestId": request["requestId"],
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                }
        sys.stdout.flush()
        sys.stderr.flush()
        responses.write(json.dumps(response) + "\n")
        responses.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
