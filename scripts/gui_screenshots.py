"""Screenshots of the real napari plugin for the README (docs/images/gui_2d.png, gui_3d.png, gui_suggest.png).

Runs the whole interactive loop through the widget's own methods on a generated
tomogram: project, two features, boxes, painted masks, training, apply, merge,
picks, 3D isosurfaces; then suggested tiles for the membrane network (where to click next).
Needs a display (use ``xvfb-run -a python scripts/gui_screenshots.py``).

    python scripts/gui_screenshots.py [--out docs/images] [--epochs 8] [--shots 2d 3d suggest]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--shots", nargs="+", default=["2d", "3d", "suggest"], choices=["2d", "3d", "suggest"])
    args = parser.parse_args(argv)

    import napari
    from qtpy.QtWidgets import QApplication

    from tomoseg.gui.widget import TomosegWidget
    from tomoseg.io.mrc import header_label, write_volume
    from tomoseg.steps.preprocess import PreprocessConfig, preprocess
    from tomoseg.steps.trainset import choose_boxes
    from tomoseg.testing import make_tomogram

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sim = make_tomogram((40, 160, 160), voxel_size=10.0, seed=5)
    pre = preprocess(sim.volume, 10.0, PreprocessConfig())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tomogram.mrc"
        write_volume(path, pre, 10.0, labels=(header_label("preprocess", PreprocessConfig().describe()),))
        viewer = napari.Viewer(show=True)
        viewer.window.resize(1500, 950)
        w = TomosegWidget(viewer)
        viewer.window.add_dock_widget(w, name="tomoseg", area="right")
        w.new_project(Path(tmp) / "project", path)
        for name, value in (("membrane", 1), ("particle", 3)):
            w.add_feature(name)
            for b in choose_boxes(sim.labels, value, n_positive=8, n_negative=40, seed=value):
                w.place_box(b.x, b.y, b.z, b.positive)
                if b.positive:
                    w.project.masks[b.z][sim.labels[b.z] == value] = w.project.features[name].value
            w.epochs.setValue(args.epochs)
            w.train()
            w.wait(1800)
            w.apply()
            w.wait(1800)
        w.merge()
        w.wait(600)
        w.pick()
        w.wait(600)
        viewer.layers["masks"].refresh()
        viewer.dims.set_current_step(0, 20)
        w.feature_combo.setCurrentText("particle")
        viewer.layers.selection.active = viewer.layers["boxes"]
        viewer.reset_view()
        written = []

        def shot(name: str) -> None:
            for _ in range(5):
                QApplication.processEvents()
            viewer.screenshot(str(out / name), canvas_only=False)
            written.append(str(out / name))

        if "2d" in args.shots:
            shot("gui_2d.png")
        if "3d" in args.shots:
            w.show_3d()
            viewer.camera.angles = (10, -30, 70)
            shot("gui_3d.png")
            viewer.dims.ndisplay = 2
            for name in ("tomogram", "boxes", "masks"):
                viewer.layers[name].visible = True
        if "suggest" in args.shots:  # where to click next: the membrane network's uncertain tiles
            for name in ("tomoseg picks: particle", "tomoseg merged", "tomoseg scores: particle"):
                if name in viewer.layers:
                    viewer.layers[name].visible = False
            w.feature_combo.setCurrentText("membrane")
            w.suggest_n.setValue(6)
            w.suggest()
            w.wait(600)
            w.next_suggestion()
            viewer.reset_view()
            shot("gui_suggest.png")
        print(f"wrote {', '.join(written)}; status: {w.status.text()}")
        viewer.close()


if __name__ == "__main__":
    main()
