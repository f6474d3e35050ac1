"""GUI tests need napari, Qt and a display (Xvfb through pytest-xvfb); otherwise they are skipped."""

import os
import shutil

import pytest


def pytest_collection_modifyitems(config, items):
    has_display = bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None
    try:
        import napari  # noqa: F401
        import pytestqt  # noqa: F401
    except ImportError:
        reason = "napari and pytest-qt are not installed (pip install -e '.[gui-test]')"
    else:
        reason = None if has_display else "no display and no Xvfb"
    if reason:
        for item in items:
            if "viewer" in item.fixturenames or "widget" in item.fixturenames:
                item.add_marker(pytest.mark.skip(reason=reason))
