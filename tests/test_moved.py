"""Old import paths of moved modules keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import sys

import pytest

import smoothcert
from smoothcert._moved import MOVED


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_path_is_the_new_module_and_warns(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_old_names_still_import_from_old_paths():
    sys.modules.pop("smoothcert.smooth", None)
    with pytest.warns(DeprecationWarning):
        from smoothcert.smooth import SmoothedClassifier
    assert SmoothedClassifier is smoothcert.SmoothedClassifier


def test_unknown_module_is_still_an_import_error():
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("smoothcert.nowhere")
