"""The wheel carries templates, static files and migrations, and serves pages when installed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("mosplatform-*.whl"))


def test_wheel_contains_resources(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("mosplatform/_resources/templates/base.html",
                   "mosplatform/_resources/static/js/engine-worklet.js",
                   "mosplatform/_resources/static/i18n/ja.json",
                   "mosplatform/_resources/migrations/env.py",
                   "mosplatform/_resources/examples/mushra.yaml",
                   "separation/registry.py"):
        assert needed in names, needed
    assert not any(n.startswith("tests/") for n in names)


def test_installed_wheel_serves_pages(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpy = venv / "bin" / "python"
    # Dependencies come from the test environment; the package itself only from the wheel.
    site = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(vpy), "install", "--no-deps",
                    "--quiet", str(wheel)], check=True)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "MOSPLATFORM_INSTANCE_PATH": str(work / "instance"),
           "PYTHONPATH": ""}
    where = subprocess.run([str(vpy), "-c", "import mosplatform; print(mosplatform.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    subprocess.run([str(venv / "bin" / "mosplatform"), "init"], cwd=work, env=env, check=True,
                   capture_output=True)
    port = _free_port()
    server = subprocess.Popen([str(venv / "bin" / "mosplatform"), "serve", "--port", str(port),
                               "--workers", "1", "--threads", "2", "--no-access-log"],
                              cwd=work, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        js = urllib.request.urlopen(base + "/static/js/engine-worklet.js").read()
        assert b"AudioWorkletProcessor" in js
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + "/t/no-such-test")
        assert info.value.code == 404
        page = info.value.read().decode()
        assert "<html" in page and "404" in page
        login = urllib.request.urlopen(base + "/admin/login").read().decode()
        assert "<form" in login
    finally:
        server.terminate()
        server.wait(timeout=20)
