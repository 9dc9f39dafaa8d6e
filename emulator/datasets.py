"""The datasets the control plane knows: each group's ITEMS/USERS/ACTIONS, plus the interactions datasets.

An INTERACTIONS dataset stands behind every event tracker and an ACTION_INTERACTIONS dataset behind every action
tracker (``.../dataset/<group>/INTERACTIONS``); their imported rows are stored under the tracker's id, where
PutEvents / PutActionInteractions store theirs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from emulator.config import DEFAULT_ACCOUNT, DEFAULT_REGION, EmulatorConfig


@dataclass(frozen=True)
class Dataset:
    """One dataset the control plane knows."""

    arn: str
    dataset_type: str
    group: str
    group_arn: str
    store_target: str
    """Target the imported rows are stored under: the tracking id behind an interactions dataset, else the ARN."""
    schema: Mapping[str, Any] | None
    tracking_id: str | None = None

    @property
    def schema_arn(self) -> str | None:
        if self.schema is None:
            return None
        prefix = self.group_arn.split(":dataset-group/")[0]
        return f"{prefix}:schema/{self.group}-{self.dataset_type.lower().replace('_', '-')}"


def datasets_of(config: EmulatorConfig) -> dict[str, Dataset]:
    """Dataset ARN -> Dataset, for every group of ``config``."""
    datasets: dict[str, Dataset] = {}
    for group in config.groups:
        some_arn = next(iter(group.datasets.values()), None)
        base = (
            some_arn.rsplit("/", 2)[0]
            if some_arn
            else f"arn:aws:personalize:{DEFAULT_REGION}:{DEFAULT_ACCOUNT}:dataset"
        )
        group_arn = base.replace(":dataset", ":dataset-group", 1) + f"/{group.name}"
        by_type: dict[str, tuple[str, str, str | None]] = {
            kind: (arn, arn, None) for kind, arn in group.datasets.items()
        }
        if group.tracking_id:
            by_type["INTERACTIONS"] = (f"{base}/{group.name}/INTERACTIONS", group.tracking_id, group.tracking_id)
        if group.action_tracking_id:
            by_type["ACTION_INTERACTIONS"] = (
                f"{base}/{group.name}/ACTION_INTERACTIONS",
                group.action_tracking_id,
                group.action_tracking_id,
            )
        for kind, (arn, store_target, tracking_id) in by_type.items():
            datasets[arn] = Dataset(
                arn=arn,
                dataset_type=kind,
                group=group.name,
                group_arn=group_arn,
                store_target=store_target,
                schema=group.schemas.get(kind),
                tracking_id=tracking_id,
            )
    return datasets
