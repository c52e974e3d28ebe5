"""The Examples sections of the analysis package's docstrings run and hold."""

import doctest
import importlib

import pytest

MODULES = ["validate", "ci", "mos", "mushra", "ordinal", "screening", "correlation", "power",
           "plots", "report", "synthetic"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"mosplatform.analysis.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
