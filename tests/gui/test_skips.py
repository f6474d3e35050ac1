"""The README's test command on a machine without a display or Xvfb: GUI tests skip, the run goes on."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_gui_tests_skip_with_a_reason_where_there_is_no_display_and_no_xvfb():
    pytest.importorskip("napari")
    pytest.importorskip("pytestqt")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's programs only: no Xvfb
    widget_tests = Path(__file__).with_name("test_widget.py")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(widget_tests)],
                       env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]  # Qt without a display aborts (exit 134)
    assert "no display and no Xvfb" in r.stdout and " skipped" in r.stdout and "passed" not in r.stdout
    assert "scripts/install-gui-test-deps.sh" in r.stdout
