"""Where ``personalize-ingest`` finds the stack: an outputs file, flat or as `cdk deploy --outputs-file` has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest_cli.stack import DEFAULT_NAMESPACE, StackError, load


def test_a_cdk_outputs_file_names_the_stack_and_its_entities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the file `cdk deploy --outputs-file` writes
    path = tmp_path / "outputs.json"
    outputs = {"EventsStreamName": "s", "ItemsQueueUrl": "q", "ActionInteractionsFunctionName": "f"}
    path.write_text(json.dumps({"Shop": outputs}))
    monkeypatch.setenv("PERSONALIZE_INGEST_OUTPUTS", str(path))

    # WHEN loaded through the variable
    stack = load(None, None)

    # THEN the stack's name, entities and resources come from it
    assert stack.name == "Shop"
    assert stack.entities() == ["action_interactions", "items"]
    assert stack.entity("events", "StreamName") == "s"
    assert stack.source_queues("items") == ["q"]
    assert stack.namespace == DEFAULT_NAMESPACE


def test_a_flat_outputs_file_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"RejectsQueueUrl": "r", "MetricsNamespace": "Mine"}))
    stack = load(path, None)
    assert (stack.name, stack.get("RejectsQueueUrl"), stack.namespace) == (None, "r", "Mine")


def test_without_outputs_or_stack_it_says_how_to_give_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PERSONALIZE_INGEST_OUTPUTS", raising=False)
    monkeypatch.delenv("PERSONALIZE_INGEST_STACK", raising=False)
    with pytest.raises(StackError, match=r"--outputs FILE .* or --stack NAME"):
        load(None, None)


@pytest.mark.parametrize(
    ("content", "message"), [("{not json", "is not JSON"), ("[1]", "must hold a JSON object")]
)
def test_a_broken_outputs_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "outputs.json"
    path.write_text(content)
    with pytest.raises(StackError, match=message):
        load(path, None)


def test_a_missing_output_is_named_with_what_it_is_for(tmp_path: Path) -> None:
    path = tmp_path / "outputs.json"
    path.write_text("{}")
    with pytest.raises(StackError, match="no output RejectsQueueUrl \\(the rejects queue\\)"):
        load(path, None).require("RejectsQueueUrl", "the rejects queue")
