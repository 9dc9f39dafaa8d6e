"""Forward the functions' metrics (CloudWatch embedded metric format on stdout) to moto's CloudWatch.

On AWS, CloudWatch Logs extracts the metrics of every EMF document a function prints; locally the function logs go
to files, so this thread reads the new lines of each ``function-*.log`` and puts the metrics they declare with
PutMetricData, as CloudWatch would (namespace, dimensions and unit from the document's ``_aws`` directive). That
makes ``personalize-ingest status`` show the last hour's counts of a local stack.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

INTERVAL_S = 1.0


class EmfForwarder(threading.Thread):
    """Reads ``<log_dir>/function-*.log`` from where it last stopped and forwards the EMF metrics it finds."""

    def __init__(self, log_dir: Path, endpoint_url: str, region: str) -> None:
        super().__init__(name="emf-forwarder", daemon=True)
        self.log_dir = log_dir
        self.cloudwatch = boto3.client("cloudwatch", endpoint_url=endpoint_url, region_name=region)
        self.stopping = threading.Event()
        self._offsets: dict[Path, int] = {}
        self.forwarded = 0

    def run(self) -> None:
        while not self.stopping.wait(INTERVAL_S):
            self.poll()
        self.poll()

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(timeout=5)

    def poll(self) -> None:
        """Forward the metrics of every complete line written since the last poll."""
        for path in sorted(self.log_dir.glob("function-*.log")):
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as log:
                    log.seek(offset)
                    data = log.read()
            except OSError:
                continue
            complete = data[: data.rfind(b"\n") + 1]
            self._offsets[path] = offset + len(complete)
            for line in complete.splitlines():
                if b'"_aws"' in line:
                    self._forward(line)

    def _forward(self, line: bytes) -> None:
        try:
            document = json.loads(line)
        except ValueError:
            return
        for metric_data, namespace in metric_data_of(document):
            try:
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=metric_data)
                self.forwarded += len(metric_data)
            except (ClientError, BotoCoreError) as exc:
                logger.warning("metrics not forwarded: %s", exc)


def _values(value: Any) -> list[float]:
    """An EMF metric value: one number or an array of samples (Powertools writes ``[6.0]``)."""
    samples = value if isinstance(value, list) else [value]
    return [float(v) for v in samples if isinstance(v, int | float) and not isinstance(v, bool)]


def metric_data_of(document: dict[str, Any]) -> list[tuple[list[Any], str]]:
    """(PutMetricData entries, namespace) of each directive of one EMF document."""
    directive = document.get("_aws")
    if not isinstance(directive, dict):
        return []
    timestamp = datetime.fromtimestamp(directive.get("Timestamp", 0) / 1000, UTC)
    result = []
    for entry in directive.get("CloudWatchMetrics", []):
        for dimension_set in entry.get("Dimensions", [[]]) or [[]]:
            dimensions = [
                {"Name": name, "Value": str(document[name])} for name in dimension_set if name in document
            ]
            data = []
            for metric in entry.get("Metrics", []):
                values = _values(document.get(metric["Name"]))
                if values:
                    data.append(
                        {
                            "MetricName": metric["Name"],
                            "Dimensions": dimensions,
                            "Timestamp": timestamp,
                            "Values": values,
                            "Unit": metric.get("Unit", "None"),
                        }
                    )
            if data:
                result.append((data, entry["Namespace"]))
    return result
