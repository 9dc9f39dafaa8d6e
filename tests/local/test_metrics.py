"""The local stack's stand-in for CloudWatch Logs' metric extraction: EMF documents -> PutMetricData entries."""

from __future__ import annotations

from local.metrics import metric_data_of

EMF = {
    "_aws": {
        "Timestamp": 1764400000000,
        "CloudWatchMetrics": [
            {
                "Namespace": "PersonalizeIngest",
                "Dimensions": [["entity"]],
                "Metrics": [
                    {"Name": "RecordsDelivered", "Unit": "Count"},
                    {"Name": "RecordsFailed", "Unit": "Count"},
                ],
            }
        ],
    },
    "entity": "events",
    "RecordsDelivered": [5.0],
    "RecordsFailed": 0,
}


def test_each_metric_of_a_directive_becomes_one_entry_with_its_dimensions_and_samples() -> None:
    # WHEN the document Powertools prints is read
    [(data, namespace)] = metric_data_of(EMF)

    # THEN both metrics are there, with the entity dimension, the samples and the unit
    assert namespace == "PersonalizeIngest"
    assert [(d["MetricName"], d["Values"], d["Unit"]) for d in data] == [
        ("RecordsDelivered", [5.0], "Count"),
        ("RecordsFailed", [0.0], "Count"),
    ]
    assert all(d["Dimensions"] == [{"Name": "entity", "Value": "events"}] for d in data)
    assert data[0]["Timestamp"].timestamp() == 1764400000


def test_a_log_line_that_is_not_emf_gives_nothing() -> None:
    assert metric_data_of({"level": "INFO", "message": "delivery finished"}) == []
