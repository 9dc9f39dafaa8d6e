"""The functions' asset: wheels for the Lambda platform, and handlers that import from the asset alone."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from email.parser import HeaderParser
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_lambda as lambda_

from infrastructure.bundling import FUNCTIONS_DIR, LOCK_NAME, BundleTarget, LocalPipBundling, function_code
from infrastructure.runtime import ARCHITECTURE, RUNTIME
from personalize_ingest.entities import ENTITIES
from tests.infrastructure.conftest import ROOT, Synthesized

KPL_EVENT = ROOT / "tests" / "events" / "kinesisKplAggregatedEvent.json"

# What the Lambda runtime provides (boto3 and its dependencies), standing in for it in the import test. Powertools
# is not here: the asset bundles it, so the test fails if the handlers could only import it from elsewhere.
RUNTIME_PROVIDED = (
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "dateutil",
    "urllib3",
    "six",
)


def wheel_tags(asset: Path) -> dict[str, list[str]]:
    """``{distribution: [tag, ...]}`` from every ``*.dist-info/WHEEL`` in the asset."""
    return {
        wheel.parent.name: [
            line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")
        ]
        for wheel in asset.glob("*.dist-info/WHEEL")
    }


def tag_fits(tag: str, python_version: str, machine: str) -> bool:
    """Whether a wheel tag (``interpreter-abi-platform``) loads in CPython ``python_version`` on ``machine``."""
    interpreter, abi, platform = tag.split("-")
    major, minor = python_version.split(".")
    if platform != "any" and not platform.endswith(f"_{machine}"):
        return False
    if abi == "abi3":  # stable ABI: built for this minor version or an earlier one
        return interpreter.startswith("cp3") and int(interpreter[3:]) <= int(minor)
    if abi == "none":
        return interpreter in {"py3", f"py{major}{minor}", f"cp{major}{minor}"}
    # A version-specific ABI loads only in that exact interpreter.
    return interpreter == f"cp{major}{minor}" and abi == f"cp{major}{minor}"


def test_every_bundled_wheel_matches_the_function_architecture_and_python(full: Synthesized) -> None:
    # GIVEN the code asset of the synthesized stack (bundled for the Lambda runtime on arm64)
    (asset,) = full.asset_dirs
    target = BundleTarget.for_lambda(RUNTIME, ARCHITECTURE)
    assert target == BundleTarget(platform="manylinux2014_aarch64", python_version="3.14")

    # WHEN its wheels' tags are read
    tags = wheel_tags(asset)

    # THEN the requirements are there and every wheel fits CPython 3.14 on aarch64
    assert {name.split("-")[0] for name in tags} >= {"aws_kinesis_agg", "protobuf", "aws_lambda_powertools"}
    for distribution, distribution_tags in tags.items():
        assert any(tag_fits(tag, "3.14", "aarch64") for tag in distribution_tags), (
            distribution,
            distribution_tags,
        )
    # AND compiled extensions are for aarch64, never for the machine that ran the synth
    for extension in asset.rglob("*.so"):
        assert "x86_64" not in extension.name, extension
    # AND the handlers and the shared package are at the asset root (handler strings <entity>.handler....)
    for entity in ENTITIES:
        assert (asset / entity / "handler.py").is_file()
    assert (asset / "personalize_ingest" / "entities.py").is_file()
    assert not list(asset.rglob("__pycache__"))


def test_wheel_tag_check_refuses_other_platforms_and_pythons() -> None:
    # GIVEN tags of wheels that would not load on python3.14/arm64
    # THEN the check used above refuses them (so it can fail)
    assert not tag_fits("cp310-abi3-manylinux2014_x86_64", "3.14", "aarch64")
    assert not tag_fits("cp311-cp311-manylinux2014_aarch64", "3.14", "aarch64")
    assert not tag_fits("cp315-abi3-manylinux2014_aarch64", "3.14", "aarch64")
    assert tag_fits("cp310-abi3-manylinux2014_aarch64", "3.14", "aarch64")
    assert tag_fits("cp314-cp314-manylinux_2_17_aarch64", "3.14", "aarch64")
    assert tag_fits("py3-none-any", "3.14", "aarch64")


@pytest.fixture(scope="module")
def local_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same bundler, targeting this machine's interpreter, writing into a fresh directory."""
    output = tmp_path_factory.mktemp("local-asset")
    assert LocalPipBundling(BundleTarget.local()).try_bundle(str(output))
    return output


@pytest.fixture(scope="module")
def runtime_provided(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only Powertools and boto3 (and their dependencies), as the layer and runtime do."""
    directory = tmp_path_factory.mktemp("runtime-provided")
    for name in RUNTIME_PROVIDED:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        origin = Path(spec.origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (directory / source.name).symlink_to(source)
    return directory


@pytest.mark.parametrize("entity", list(ENTITIES))
def test_handlers_import_from_the_asset_in_a_clean_interpreter(
    entity: str, local_asset: Path, runtime_provided: Path, full: Synthesized
) -> None:
    # GIVEN the function's environment from the template (references replaced by what Lambda would resolve)
    function_id = full.logical_id("AWS::Lambda::Function", entity, "function")
    variables = full.raw["Resources"][function_id]["Properties"]["Environment"]["Variables"]
    environment = {
        name: value if isinstance(value, str) else "https://sqs.eu-west-1.amazonaws.com/123456789012/rejects"
        for name, value in variables.items()
    }
    environment |= {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1", "PATH": "/usr/bin:/bin"}
    handler = full.raw["Resources"][function_id]["Properties"]["Handler"]
    module, attribute = handler.rsplit(".", 1)

    # WHEN a Python with no site-packages (-I -S) imports the handler with only the asset and the runtime's
    # packages on its path, then decodes a KPL-aggregated Kinesis event (which imports the bundled
    # aws-kinesis-agg and protobuf lazily, as the runtime does)
    probe = (
        "import importlib, json, sys\n"
        f"sys.path[:0] = [{str(local_asset)!r}, {str(runtime_provided)!r}]\n"
        f"handler = getattr(importlib.import_module({module!r}), {attribute!r})\n"
        "from personalize_ingest.sources import decode_event\n"
        f"decoded = decode_event(json.load(open({str(KPL_EVENT)!r})))\n"
        "files = [getattr(m, '__file__', None) or '' for m in list(sys.modules.values())]\n"
        "origin = lambda name: sys.modules[name].__file__\n"
        "print(json.dumps({'callable': callable(handler), "
        "'user_records': sum(len(item.records) for item in decoded.items), "
        "'from_asset': sorted(n for n in ('personalize_ingest', 'aws_kinesis_agg', 'google.protobuf', "
        "'aws_lambda_powertools') "
        f"if origin(n).startswith({str(local_asset)!r})), "
        "'site_packages': sorted(f for f in files if 'site-packages' in f)}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, env=environment, check=False
    )

    # THEN it imports and de-aggregates the three user records with the asset's own packages, and nothing came
    # from an installed site-packages
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {
        "callable": True,
        "user_records": 3,
        "from_asset": ["aws_kinesis_agg", "aws_lambda_powertools", "google.protobuf", "personalize_ingest"],
        "site_packages": [],
    }


def locked_versions(lock: Path) -> dict[str, str]:
    """``{normalized name: version}`` of every ``name==version`` pin in a pip-compile lock."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", lock.read_text(), re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_lock_pins_every_distribution_in_the_asset_with_hashes(full: Synthesized) -> None:
    # GIVEN the synthesized asset and the committed lock
    (asset,) = full.asset_dirs
    lock = FUNCTIONS_DIR / LOCK_NAME
    pins = locked_versions(lock)

    # WHEN the asset's installed distributions are listed from their metadata
    installed = {}
    for metadata in asset.glob("*.dist-info/METADATA"):
        fields = HeaderParser().parsestr(metadata.read_text(encoding="utf-8"))
        installed[re.sub(r"[-_.]+", "-", fields["Name"]).lower()] = fields["Version"]

    # THEN every one is in the lock at the installed version, and nothing the lock lists is missing
    assert installed == pins
    # AND every pin carries at least one sha256 hash (pip --require-hashes would refuse it otherwise)
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock.read_text().split("\n\n", 1)[-1])
    assert all("--hash=sha256:" in block for block in blocks if "==" in block)
    # AND the bundled Powertools is the release the tests run against (requirements.txt)
    assert f"aws-lambda-powertools=={pins['aws-lambda-powertools']}" in (ROOT / "requirements.txt").read_text()
    # AND neither the requirements nor the lock ship in the asset
    assert not list(asset.glob("requirements*"))


def asset_hash(source: Path) -> str:
    """The S3 key CDK gives the code asset of ``source`` (its hash), without bundling it."""
    app = cdk.App(context={"aws:cdk:bundling-stacks": []})
    stack = cdk.Stack(app, "Probe")
    lambda_.Function(
        stack,
        "Function",
        runtime=RUNTIME,
        architecture=ARCHITECTURE,
        handler="items.handler.lambda_handler",
        code=function_code(RUNTIME, ARCHITECTURE, source=source),
    )
    template = app.synth().get_stack_by_name("Probe").template
    (function,) = (r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    key: str = function["Properties"]["Code"]["S3Key"]
    return key


def test_the_asset_hash_changes_when_the_lock_does(tmp_path: Path) -> None:
    # GIVEN two copies of functions/ that differ only in one hash of the lock
    original, relocked = tmp_path / "original", tmp_path / "relocked"
    for copy in (original, relocked):
        shutil.copytree(FUNCTIONS_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    lock = relocked / LOCK_NAME
    text = lock.read_text()
    first_hash = re.search(r"sha256:([0-9a-f]{64})", text)
    assert first_hash is not None
    lock.write_text(text.replace(first_hash.group(1), "0" * 64, 1))

    # WHEN CDK hashes each as the code asset
    # THEN the hashes differ, while the same source hashes the same
    assert asset_hash(original) != asset_hash(relocked)
    assert asset_hash(original) == asset_hash(original)
