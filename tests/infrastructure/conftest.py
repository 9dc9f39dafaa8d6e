"""Synthesize the app offline, once per configuration, for the infrastructure tests.

Each synth runs the real app (app.build_app: config parsing, bundling, cdk-nag AwsSolutions as a validation
plugin) into a temporary cloud assembly; tests read the template JSON, the validation report and the asset.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from app import build_app

ROOT = Path(__file__).resolve().parents[2]
STACK_NAME = "PersonalizeIngest"


def sample_context() -> dict[str, Any]:
    """The context shipped in cdk.json (the sample configuration of all five entities)."""
    return copy.deepcopy(json.loads((ROOT / "cdk.json").read_text())["context"])


@dataclass
class Synthesized:
    """One synthesized stack: its template (raw and as assertions.Template) and its cloud assembly."""

    outdir: Path
    raw: dict[str, Any]
    template: Template

    @property
    def validation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads((self.outdir / "validation-report.json").read_text())
        return report

    @property
    def asset_dirs(self) -> list[Path]:
        return sorted(p for p in self.outdir.glob("asset.*") if p.is_dir())

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.raw["Resources"].items() if v["Type"] == resource_type}

    def entity_resources(self, resource_type: str, entity: str, role: str | None = None) -> dict[str, Any]:
        """Resources of a type labelled (Metadata) with ``entity`` and, when given, ``role``."""
        return {
            k: v
            for k, v in self.resources(resource_type).items()
            if v.get("Metadata", {}).get("personalize:entity") == entity
            and (role is None or v["Metadata"].get("personalize:role") == role)
        }

    def logical_id(self, resource_type: str, entity: str, role: str) -> str:
        found = self.entity_resources(resource_type, entity, role)
        assert len(found) == 1, f"expected one {resource_type} {role} for {entity}, found {sorted(found)}"
        return next(iter(found))


def synthesize(outdir: Path, personalize: dict[str, Any] | str, **context: Any) -> Synthesized:
    """Run the app with this ``personalize`` context into ``outdir`` (raises when cdk-nag finds errors)."""
    app = cdk.App(
        outdir=str(outdir),
        # Stack traces in metadata triple the synth time; nothing here reads them.
        context={"personalize": personalize, "aws:cdk:disable-stack-trace": True, **context},
    )
    app, stack = build_app(app)
    app.synth()
    raw = json.loads((outdir / f"{stack.stack_name}.template.json").read_text())
    return Synthesized(outdir=outdir, raw=raw, template=Template.from_json(raw))


@pytest.fixture(scope="session")
def full(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """The sample configuration of cdk.json: five entities, every source."""
    return synthesize(tmp_path_factory.mktemp("full"), sample_context()["personalize"])
