"""``OptionalLibraries``: an adapter's optional library is used when it imports, and its absence
is said once per tracker, not once per value."""

from __future__ import annotations

import sys
import warnings

import pytest

from trackhook import TrackhookWarning
from trackhook.optional import OptionalLibraries


def test_libraries_that_import_are_available_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert OptionalLibraries("json", "xml.dom", missing="never said").available()


def test_a_missing_library_is_said_once_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import xml.dom  # loaded: a check of "xml.dom" alone would not see its package blocked

    monkeypatch.setitem(sys.modules, "xml", None)  # as if the package were not installed
    libraries = OptionalLibraries("json", "xml.dom", missing="pip install 'trackhook-x[xml]'")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [libraries.available() for _ in range(3)] == [False, False, False]
    said = [str(w.message) for w in caught if issubclass(w.category, TrackhookWarning)]
    assert said == ["pip install 'trackhook-x[xml]'"]
    assert xml.dom is not None
