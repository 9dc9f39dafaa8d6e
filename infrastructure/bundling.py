"""The functions' code asset, bundled without Docker.

The asset is ``functions/`` (handlers + the shared ``personalize_ingest`` package) plus the distributions pinned
in ``functions/requirements.lock``, installed by pip for the *target* platform (``--platform ...
--only-binary=:all:``) rather than the machine running the synth, with ``--require-hashes --no-deps``: nothing
outside the lock, and nothing whose bytes differ from the hashes in it, can reach the asset. The lock lives under
``functions/``, so the asset's source hash changes when it does. The pip output is cached under
``build/lambda-deps/`` keyed by the lock's hash and the target, so a synth reaches PyPI only when the lock or the
target change.

The lock is written by ``make lock`` (mk/cdk.mk: pip-compile --generate-hashes from
``functions/requirements.txt``).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
LOCK_NAME = "requirements.lock"
"""The lock file, inside the source folder: every distribution of the asset, pinned with its hashes."""
CACHE_DIR = ROOT / "build" / "lambda-deps"
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", "requirements.txt", LOCK_NAME
)


@dataclass(frozen=True, slots=True)
class BundleTarget:
    """The platform pip installs wheels for."""

    platform: str
    """pip ``--platform`` tag, e.g. ``manylinux2014_aarch64``."""
    python_version: str
    """``major.minor`` of the interpreter that will import the wheels."""

    @classmethod
    def for_lambda(cls, runtime: lambda_.Runtime, architecture: lambda_.Architecture) -> BundleTarget:
        """The Lambda runtime's interpreter on the function's architecture (``python3.14`` on arm64 -> ...)."""
        machine = "aarch64" if architecture.name == lambda_.Architecture.ARM_64.name else "x86_64"
        return cls(platform=f"manylinux2014_{machine}", python_version=runtime.name.removeprefix("python"))

    @classmethod
    def local(cls) -> BundleTarget:
        """The interpreter running this code (tests import the handlers from such an asset)."""
        machine = sysconfig.get_platform().split("-", 1)[-1]
        return cls(
            platform=f"manylinux2014_{machine}", python_version=f"{sys.version_info[0]}.{sys.version_info[1]}"
        )

    def cache_key(self, lock: Path) -> str:
        """Names the installed dependencies: the lock's bytes and this target."""
        digest = hashlib.sha256(lock.read_bytes())
        digest.update(f"{self.platform}|{self.python_version}|cp".encode())
        return digest.hexdigest()[:16]


@jsii.implements(ILocalBundling)
class LocalPipBundling:
    """``ILocalBundling`` that copies ``functions/`` and adds the target platform's wheels (no Docker)."""

    def __init__(self, target: BundleTarget, *, source: Path = FUNCTIONS_DIR, cache_dir: Path = CACHE_DIR) -> None:
        self.target = target
        self.source = source
        self.cache_dir = cache_dir

    def try_bundle(self, output_dir: str, *_args: Any, **_options: Any) -> bool:
        """Bundle into ``output_dir``; called by CDK before it would try Docker.

        Raises
        ------
        subprocess.CalledProcessError
            when pip cannot install the requirements for the target (e.g. no wheel for that platform).
        """
        output = Path(output_dir)
        shutil.copytree(self.source, output, ignore=_IGNORED, dirs_exist_ok=True)
        shutil.copytree(self.dependencies(), output, dirs_exist_ok=True)
        return True

    def dependencies(self) -> Path:
        """Directory holding the locked distributions installed for the target, built once per lock + target."""
        lock = self.source / LOCK_NAME
        cached = self.cache_dir / self.target.cache_key(lock)
        if (cached / ".complete").exists():
            return cached
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=self.cache_dir))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-compile",
                # NOTE: --require-hashes refuses any distribution not pinned with a matching hash, --no-deps any
                # that the lock does not list itself: the lock is the whole list.
                "--require-hashes",
                "--no-deps",
                "--platform",
                self.target.platform,
                "--only-binary=:all:",
                "--python-version",
                self.target.python_version,
                "--implementation",
                "cp",
                "--target",
                str(staging),
                "-r",
                str(lock),
            ],
            check=True,
        )
        (staging / ".complete").touch()
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)
        return cached


def function_code(
    runtime: lambda_.Runtime, architecture: lambda_.Architecture, *, source: Path = FUNCTIONS_DIR
) -> lambda_.Code:
    """One code asset for every function: ``source`` (``functions/``) + its locked wheels for ``runtime`` on
    ``architecture``.

    NOTE: the Docker image is only the fallback CDK would use if the local bundler declined; it never does.
    """
    target = BundleTarget.for_lambda(runtime, architecture)
    return lambda_.Code.from_asset(
        str(source),
        exclude=["**/__pycache__", "**/*.pyc"],
        # NOTE: the source hash covers functions/, the lock included, so a new lock is a new asset; the bundling
        # options add the target.
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            image=DockerImage.from_registry(f"public.ecr.aws/sam/build-{runtime.name}"),
            command=[
                "bash",
                "-c",
                "cp -R /asset-input/. /asset-output/ && rm /asset-output/requirements.* && "
                f"pip install --require-hashes --no-deps -r {LOCK_NAME} -t /asset-output",
            ],
            platform=f"linux/{'arm64' if target.platform.endswith('aarch64') else 'amd64'}",
            local=LocalPipBundling(target, source=source),
        ),
    )
