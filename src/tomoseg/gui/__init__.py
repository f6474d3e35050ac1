"""The napari plugin (``pip install "tomoseg[gui]"``): reader and dock widget.

:mod:`tomoseg.workflows.project` and :mod:`tomoseg.gui.jobs` need no Qt; the widget
(:mod:`tomoseg.gui.widget`) imports napari and Qt.
"""
