"""What every function shares: runtime and architecture.

NOTE: Powertools is bundled into the code asset from the hash-locked functions/requirements.lock, not taken from
its public Lambda layer. The layer is published per region (its SSM public parameter exists in about 30 regions,
and China and GovCloud publish under other accounts), so a layer ARN or parameter pins the stack to the regions
that have it; a bundled Powertools deploys wherever Lambda runs this runtime and architecture. Cold start is the
same either way: layers and the function package are both extracted before the first import, and the functions
import the same modules (Logger, Metrics; no Tracer). The package grows by about 3 MB unzipped, far below Lambda's
250 MB limit. And the asset carries exactly the release the tests ran against (docs/deploy.md, "Regions").
"""

from __future__ import annotations

from aws_cdk import aws_lambda as lambda_

RUNTIME = lambda_.Runtime.PYTHON_3_14
"""Latest Python runtime of aws-cdk-lib 2.275."""
ARCHITECTURE = lambda_.Architecture.ARM_64
