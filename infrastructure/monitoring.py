"""Alarms, the topic they notify and the dashboard, with plain CloudWatch constructs.

Every alarm notifies one SNS topic: the stack's own (encrypted with a customer key CloudWatch may use, an e-mail
subscription when ``alarmEmail`` is set), or an existing topic named by ``alarmTopicArn``. Its ARN is an output,
so a pager, chat integration or ticketing system can subscribe to it.

NOTE: plain ``aws_cloudwatch`` rather than cdk-monitoring-constructs: the handful of alarms this pipeline needs
(DLQs, rejects, iterator age, errors, throttled calls) are a few lines each, and one dependency less keeps the
synth offline-friendly and the alarm properties easy to assert in tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infrastructure.buckets import FAILED_BATCHES_METRICS_FILTER
from infrastructure.entity_pipeline import EntityPipeline, pascal
from personalize_ingest.contract import (
    ENTITY_DIMENSION,
    RECORDS_DELIVERED,
    RECORDS_FAILED,
    RECORDS_RECEIVED,
    RECORDS_REJECTED,
    THROTTLED_CALLS,
)

PERIOD = Duration.minutes(5)
RECORD_METRICS = (RECORDS_RECEIVED, RECORDS_DELIVERED, RECORDS_REJECTED, RECORDS_FAILED)


class AlarmTopic(Construct):
    """The topic every alarm notifies: the stack's own, encrypted, or an existing one.

    Attributes
    ----------
    topic
        The topic (imported when ``existing_arn`` is given).
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, email: str | None, existing_arn: str | None
    ) -> None:
        super().__init__(scope, construct_id)
        if existing_arn is not None:
            # NOTE: its encryption and access policy are its owner's: CloudWatch must be allowed to publish (and,
            # with a customer key, to use the key), as for the topic built below.
            self.topic: sns.ITopic = sns.Topic.from_topic_arn(self, "Topic", existing_arn)
            return
        # NOTE: CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed aws/sns key: a
        # customer key whose policy admits CloudWatch is required. It goes with the stack (7 days' waiting
        # period): it encrypts notifications in flight, no data worth keeping.
        key = kms.Key(
            self,
            "Key",
            enable_key_rotation=True,
            description="Encrypts the alarm topic",
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        topic = sns.Topic(self, "Topic", master_key=key, enforce_ssl=True)
        if email is not None:
            topic.add_subscription(subscriptions.EmailSubscription(email))
        self.topic = topic


class Monitoring(Construct):
    """Alarms, all notifying one SNS topic, and one dashboard for the stack.

    Attributes
    ----------
    alarms
        Every alarm, keyed by a readable name (``items/Errors``, ``rejects/Arriving`` ...).
    topic
        The alarm topic (the stack's own, or the existing one configured).
    dashboard
        The CloudWatch dashboard.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        pipelines: Sequence[EntityPipeline],
        rejects_queue: sqs.IQueue,
        failed_batches_bucket: s3.IBucket | None,
        metrics_namespace: str,
        iterator_age_alarm_s: int,
        alarm_email: str | None,
        alarm_topic_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._namespace = metrics_namespace
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self.topic = AlarmTopic(self, "Alarm", email=alarm_email, existing_arn=alarm_topic_arn).topic

        self._alarm(
            "rejects/Arriving",
            rejects_queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum"),
            "Records were rejected (invalid for Personalize): read the rejects queue.",
        )
        if failed_batches_bucket is not None:
            self._alarm(
                "kinesis/FailedBatches",
                cloudwatch.Metric(
                    namespace="AWS/S3",
                    metric_name="PutRequests",
                    dimensions_map={
                        "BucketName": failed_batches_bucket.bucket_name,
                        "FilterId": FAILED_BATCHES_METRICS_FILTER,
                    },
                    statistic="Sum",
                    period=PERIOD,
                ),
                "A Kinesis batch exhausted its retries or age and was written to the failed-batches bucket.",
            )
        for pipeline in pipelines:
            self._pipeline_alarms(pipeline, iterator_age_alarm_s)
        self.dashboard = self._dashboard(pipelines, rejects_queue)

    def entity_metric(self, entity: str, name: str) -> cloudwatch.Metric:
        """A runtime metric (Powertools EMF) of one entity.

        NOTE: an alarm must name the exact dimension set a metric is published with: the runtime publishes with
        the single dimension ``entity`` (observability.py creates Metrics with ``service=""`` so Powertools adds
        no ``service`` dimension).
        """
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={ENTITY_DIMENSION: entity},
            statistic="Sum",
            period=PERIOD,
        )

    def _alarm(self, name: str, metric: cloudwatch.Metric, description: str, threshold: float = 1) -> None:
        alarm = metric.create_alarm(
            self,
            "".join(pascal(part) for part in name.replace("-", "_").split("/")) + "Alarm",
            alarm_description=description,
            threshold=threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        self.alarms[name] = alarm

    def _pipeline_alarms(self, pipeline: EntityPipeline, iterator_age_alarm_s: int) -> None:
        entity = pipeline.config.entity.name
        self._alarm(
            f"{entity}/Errors",
            pipeline.function.metric_errors(period=PERIOD, statistic="Sum"),
            f"The {entity} function failed whole invocations (configuration or code errors).",
        )
        self._alarm(
            f"{entity}/ThrottledCalls",
            self.entity_metric(entity, THROTTLED_CALLS),
            f"Personalize throttled {pipeline.config.entity.operation} calls: lower callsPerSecond or raise the "
            "quota.",
        )
        for label, queue in (
            ("DeadLetters", pipeline.dead_letter_queue),
            ("NotificationDeadLetters", pipeline.notifications_dead_letter_queue),
        ):
            if queue is None or (label == "NotificationDeadLetters" and queue is pipeline.dead_letter_queue):
                continue
            self._alarm(
                f"{entity}/{label}",
                queue.metric_approximate_number_of_messages_visible(period=PERIOD, statistic="Maximum"),
                f"Messages of the {entity} pipeline reached a dead-letter queue.",
            )
        if pipeline.stream is not None:
            self._alarm(
                f"{entity}/IteratorAge",
                pipeline.function.metric("IteratorAge", period=PERIOD, statistic="Maximum"),
                f"The {entity} function is falling behind its Kinesis stream.",
                threshold=iterator_age_alarm_s * 1000,
            )

    def _dashboard(self, pipelines: Sequence[EntityPipeline], rejects_queue: sqs.IQueue) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=f"{Stack.of(self).stack_name}-ingest")
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms.values()), width=24, height=4)
        )
        for pipeline in pipelines:
            entity = pipeline.config.entity.name
            candidates = [("queue", pipeline.queue), ("DLQ", pipeline.dead_letter_queue)]
            if pipeline.notifications_queue is not pipeline.queue:
                candidates += [
                    ("S3 notifications", pipeline.notifications_queue),
                    ("S3 notifications DLQ", pipeline.notifications_dead_letter_queue),
                ]
            queues = [(label, queue) for label, queue in candidates if queue is not None]
            widgets: list[cloudwatch.IWidget] = [
                cloudwatch.GraphWidget(
                    title=f"{entity}: records",
                    left=[self.entity_metric(entity, name).with_(label=name) for name in RECORD_METRICS],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"{entity}: iterator age (ms)",
                    left=[pipeline.function.metric("IteratorAge", period=PERIOD, statistic="Maximum")]
                    if pipeline.stream is not None
                    else [],
                    width=8,
                ),
                cloudwatch.GraphWidget(
                    title=f"{entity}: queue depth",
                    left=[
                        queue.metric_approximate_number_of_messages_visible(
                            period=PERIOD, statistic="Maximum", label=label
                        )
                        for label, queue in queues
                    ],
                    width=8,
                ),
            ]
            dashboard.add_widgets(*widgets)
        dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="rejects queue",
                left=[rejects_queue.metric_number_of_messages_sent(period=PERIOD, statistic="Sum")],
                width=24,
            )
        )
        return dashboard
