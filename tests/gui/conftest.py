"""GUI tests need napari, pytest-qt and a display (a real one, or Xvfb through pytest-xvfb).

Without them every test here that starts Qt (through the ``qtbot``, ``qapp``,
``make_napari_viewer``, ``viewer`` or ``widget`` fixtures) is skipped with the
reason, before Qt is touched: Qt without a display aborts the whole process, and
with it the rest of the suite. Tests of the Qt-free project code still run.
"""

import os
import shutil

import pytest

QT_FIXTURES = {"qtbot", "qapp", "make_napari_viewer", "make_napari_viewer_proxy", "viewer", "widget"}


def gui_skip_reason() -> str | None:
    """Why GUI tests cannot run here, or None if they can."""
    try:
        import napari  # noqa: F401
        import pytestqt  # noqa: F401
    except ImportError:
        return "napari and pytest-qt are not installed (pip install -e '.[gui-test]')"
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    if shutil.which("Xvfb") is None:
        return "no display and no Xvfb (Debian/Ubuntu: sudo bash scripts/install-gui-test-deps.sh)"
    try:
        import pytest_xvfb  # noqa: F401
    except ImportError:
        return "no display, and pytest-xvfb is not installed to start Xvfb (pip install -e '.[gui-test]')"
    return None


def pytest_collection_modifyitems(config, items):
    reason = gui_skip_reason()
    if reason is None:
        return
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here) and QT_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.skip(reason=reason))
