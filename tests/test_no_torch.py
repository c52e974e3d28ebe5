"""The web app, analysis and metrics never import torch (it is the optional extra)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from mosplatform import create_app
app = create_app({"INSTANCE_PATH": sys.argv[1], "TESTING": True})
app.test_client().get("/healthz")
import mosplatform.analysis, mosplatform.metrics, mosplatform.services.importer
import mosplatform.cli, mosplatform.demo, separation.cli
from click.testing import CliRunner
CliRunner().invoke(mosplatform.cli.cli, ["--help"])
print("torch" in sys.modules)
"""


def test_web_app_does_not_import_torch(tmp_path):
    out = subprocess.run([sys.executable, "-c", CODE, str(tmp_path)], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
