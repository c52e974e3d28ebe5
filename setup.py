"""Build hook: ship the repository-root ``templates/``, ``static/`` and ``migrations/``
folders inside the wheel as ``mosplatform/_resources/`` so an installed package can
serve pages and upgrade its database without the source checkout."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RESOURCE_DIRS = ("templates", "static", "migrations", "examples")


class BuildWithResources(build_py):
    def run(self):
        super().run()
        root = Path(__file__).parent
        target = Path(self.build_lib) / "mosplatform" / "_resources"
        for name in RESOURCE_DIRS:
            src = root / name
            if src.is_dir():
                dst = target / name
                if dst.exists():
                    shutil.rmtree(dst)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithResources})
