"""The napari widget in a real (hidden) viewer under Xvfb: boxes by clicks, paint, train, apply, merge, pick."""

import numpy as np
import pytest

from tomoseg.io.mrc import header_label, write_volume
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.steps.trainset import choose_boxes
from tomoseg.workflows.project import Project


@pytest.fixture
def widget(make_napari_viewer, tmp_path, small_pre):
    from tomoseg.gui.widget import TomosegWidget

    path = tmp_path / "pre.mrc"
    write_volume(path, small_pre, 10.0, origin=(1.0, 2.0, 3.0),
                 labels=(header_label("preprocess", PreprocessConfig().describe()),))
    viewer = make_napari_viewer()
    w = TomosegWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.new_project(tmp_path / "proj", path)
    return w


def click(layer, zyx, modifiers=()):
    """A simulated mouse press + release at data coordinates ``zyx`` on ``layer``."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import mouse_press_callbacks, mouse_release_callbacks
    from vispy.app.canvas import MouseEvent  # noqa: F401  (vispy is napari's canvas)

    class Event:
        def __init__(self, kind):
            self.type = kind
            self.is_dragging = False
            self.modifiers = list(modifiers)
            self.position = tuple(layer.data_to_world(zyx))
            self.view_direction = None
            self.dims_displayed = [1, 2]
            self.handled = False

    mouse_press_callbacks(layer, ReadOnlyWrapper(Event("mouse_press"), exceptions=("handled",)))
    mouse_release_callbacks(layer, ReadOnlyWrapper(Event("mouse_release"), exceptions=("handled",)))


def test_boxes_by_clicks_undo_and_keys(widget):
    viewer = widget.viewer
    assert "tomogram" in viewer.layers and viewer.layers["tomogram"].scale[0] == pytest.approx(10.0)
    widget.set_mode("positive")
    assert widget.mode == "off" and "no feature" in widget.status.text()  # a clear message, no crash
    assert widget.add_feature("particle")
    widget.set_mode("positive")
    image = viewer.layers["tomogram"]
    click(image, (10, 50, 60))
    widget.set_mode("negative")
    click(image, (12, 70, 40))
    boxes = widget.project.features["particle"].boxes
    assert [(b.x, b.y, b.z, b.positive) for b in boxes] == [(60, 50, 10, True), (40, 70, 12, False)]
    assert len(viewer.layers["boxes"].data) == 2
    click(image, (12, 72, 42), modifiers=("Shift",))  # Shift-click on a box deletes it
    assert len(widget.project.features["particle"].boxes) == 1
    widget.undo()
    assert len(widget.project.features["particle"].boxes) == 2
    click(image, (10, 5, 5))  # a box sticking out is refused with a message
    assert "sticks out" in widget.status.text() and len(widget.project.features["particle"].boxes) == 2
    assert Project.open(widget.project.folder).features["particle"].boxes == boxes  # autosaved


def test_the_dock_offers_every_recipe_and_starts_on_the_default(widget):
    from tomoseg.steps.recipes import RECIPES

    # every recipe that trains afresh (fine-tune continues a network: the Fine-tune button)
    assert [widget.recipe.itemText(i) for i in range(widget.recipe.count())] == [r for r in RECIPES if r != "fine-tune"]
    assert widget.recipe.currentText() == "default"


def test_train_without_paint_is_a_message(widget):
    widget.add_feature("particle")
    widget.place_box(60, 50, 10, True)
    assert not widget.train()
    assert "holds no painted" in widget.status.text()


def _paint_particles(w, small_tomo) -> int:
    """A "particle" feature with 6 positive boxes painted through the masks layer and 30 negative ones."""
    viewer = w.viewer
    w.add_feature("particle")
    value = w.project.features["particle"].value
    labels = small_tomo.labels
    for b in choose_boxes(labels, 3, n_positive=6, n_negative=30, seed=1):
        assert w.place_box(b.x, b.y, b.z, b.positive)
    w.set_mode("paint")
    masks = viewer.layers["masks"]
    assert masks.mode == "paint" and masks.selected_label == value
    for b in w.project.features["particle"].boxes:
        if b.positive:  # paint the particle voxels of each positive box's slice through the layer
            zyx = np.argwhere(labels[b.z] == 3)
            for y, x in zyx[:: max(1, len(zyx) // 40)]:
                masks.paint((b.z, y, x), value, refresh=False)
    masks.refresh()
    assert (w.project.masks == value).sum() > 100  # the layer paints into the project's array
    return value


def test_paint_train_preview_apply_merge_pick(widget, small_tomo):
    w, viewer = widget, widget.viewer
    value = _paint_particles(w, small_tomo)
    labels = small_tomo.labels
    w.epochs.setValue(6)
    assert w.train()
    w.wait()
    assert w.project.path("model", "particle").exists() and len(w.losses) == 6
    assert "trained particle" in w.status.text()
    viewer.dims.set_current_step(0, 16)
    assert w.preview() and "tomoseg preview: particle" in viewer.layers
    preview = viewer.layers["tomoseg preview: particle"]
    assert preview.data.shape == (1, *labels.shape[1:]) and preview.translate[0] == pytest.approx(16 * 10.0)
    assert w.apply()
    w.wait()
    scores = viewer.layers["tomoseg scores: particle"].data
    assert scores.shape == labels.shape
    assert np.median(np.asarray(scores)[labels == 3]) > np.median(np.asarray(scores)[labels == 0])
    assert w.merge()
    w.wait()
    assert "tomoseg merged" in viewer.layers
    _save_maps_and_layers(w, scores)
    assert w.pick()
    w.wait()
    picks = viewer.layers["tomoseg picks: particle"]
    assert len(w.picks) > 0 and set(picks.features["pick"]) == set(range(len(w.picks)))
    # each pick is drawn on every slice its sphere (250 A = 25 voxels across) crosses, widest at its centre
    first = picks.features["pick"].to_numpy() == 0
    z0, depth = w.picks.xyz[0, 2], labels.shape[0]
    assert picks.data[first][:, 0].min() == max(z0 - 12, 0) and picks.data[first][:, 0].max() == min(z0 + 12, depth - 1)
    assert picks.size[first].max() == pytest.approx(25.0) and np.all(picks.data[first][:, 1:] == w.picks.xyz[0, 1::-1])
    out = w.project.folder / "picks.star"
    assert w.export(out) and out.exists()
    w.show_3d()
    assert viewer.dims.ndisplay == 3 and viewer.layers["tomoseg scores: particle"].rendering == "iso"
    assert np.array_equal(picks.data, w.picks.xyz[:, ::-1]) and np.all(picks.size == 25.0)  # one sphere per pick
    viewer.dims.ndisplay = 2
    assert len(picks.data) > len(w.picks) and set(picks.features["pick"]) == set(range(len(w.picks)))
    reopened = Project.open(w.project.folder)
    assert (reopened.masks == value).sum() == (w.project.masks == value).sum()


def _save_maps_and_layers(w, scores) -> None:
    """Save maps... writes OME-Zarr copies of the score and merged maps; napari's File > Save with the
    tomoseg writer saves a layer with the voxel size, origin and labels of its file."""
    from tomoseg.io.mrc import read_volume

    out = w.project.folder / "saved"
    out.mkdir()
    assert w.save_maps(out)
    w.wait()
    assert "saved particle.zarr, merged.zarr" in w.status.text()
    z = read_volume(out / "particle.zarr")
    np.testing.assert_array_equal(np.asarray(z.data[:]), np.asarray(scores))
    assert z.voxel_size == 10.0 and z.label_value("feature") == "particle"
    assert read_volume(out / "merged.zarr").label_value("label 1") == "particle"
    assert w.save_maps(out)  # again: refused before anything is written
    w.wait()
    assert "exists already" in w.status.text()
    w.viewer.layers.selection = {w.viewer.layers["tomoseg merged"]}
    w.viewer.layers.save(str(out / "layer.mrc"), selected=True, plugin="tomoseg")
    layer = read_volume(out / "layer.mrc")
    assert layer.voxel_size == 10.0 and layer.label_value("label 1") == "particle"
    np.testing.assert_array_equal(np.asarray(layer.data), np.asarray(read_volume(w.project.path("merged")).data))


def test_cancel_training(widget, small_tomo):
    w = widget
    w.add_feature("particle")
    labels = small_tomo.labels
    for b in choose_boxes(labels, 3, n_positive=4, n_negative=10, seed=2):
        w.place_box(b.x, b.y, b.z, b.positive)
        if b.positive:
            w.project.masks[b.z][labels[b.z] == 3] = w.project.features["particle"].value
    w.epochs.setValue(50)
    assert w.train()
    w.cancel()
    w.wait()
    assert "cancelled" in w.status.text()
    assert not w.project.path("model", "particle").exists()


def test_reader_gives_scaled_layers(tmp_path, small_pre, make_napari_viewer):
    from tomoseg.gui.reader import get_reader

    path = tmp_path / "t.mrc"
    write_volume(path, small_pre, 12.5)
    assert get_reader(str(tmp_path / "x.txt")) is None
    layers = get_reader(str(path))(str(path))
    data, meta, kind = layers[0]
    assert kind == "image" and meta["scale"] == (12.5, 12.5, 12.5) and data.shape == small_pre.shape
    viewer = make_napari_viewer()
    viewer.open(str(path), plugin="tomoseg")
    assert viewer.layers[0].scale[0] == pytest.approx(12.5)
    # an OME-Zarr folder: the same, read lazily; the dock adopts it as the project's tomogram
    write_volume(tmp_path / "z.zarr", small_pre, 12.5, origin=(1.0, 2.0, 3.0))
    viewer.open(str(tmp_path / "z.zarr"), plugin="tomoseg")
    layer = viewer.layers["z"]
    assert layer.scale[0] == pytest.approx(12.5) and layer.metadata["origin"] == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(np.asarray(layer.data[3]), small_pre[3])
    from tomoseg.gui.widget import TomosegWidget

    viewer.layers.selection.active = layer
    w = TomosegWidget(viewer)
    assert w.new_project(tmp_path / "proj") and w.project.tomogram.name == "z.zarr"
    assert w.project.volume.voxel_size == pytest.approx(12.5)


def test_the_reader_opens_an_ngff05_store(tmp_path, small_pre, make_napari_viewer, write_ngff05):
    write_ngff05(tmp_path / "v5.zarr", small_pre, 12.5, translation_zyx=(3.0, 2.0, 1.0))
    viewer = make_napari_viewer()
    viewer.open(str(tmp_path / "v5.zarr"), plugin="tomoseg")
    layer = viewer.layers["v5"]
    assert layer.scale[0] == pytest.approx(12.5) and layer.metadata["origin"] == (1.0, 2.0, 3.0)
    viewer.dims.set_point(0, 3 * 12.5)  # napari slices the lazy level as it shows slice 3
    np.testing.assert_array_equal(np.asarray(layer.data[3]), small_pre[3])
    assert viewer.screenshot(canvas_only=True).std() > 0  # something drawn, not a blank canvas


def test_preprocess_from_the_dock_and_import_a_cli_model(make_napari_viewer, tmp_path, small_tomo, particle_model):
    from tomoseg.gui.widget import TomosegWidget
    from tomoseg.io.model_file import save_model
    from tomoseg.nn.model import Model

    raw = tmp_path / "raw.mrc"
    write_volume(raw, small_tomo.volume, 10.0)
    w = TomosegWidget(make_napari_viewer())
    assert w.new_project(tmp_path / "proj", raw)
    assert not w.project.preprocessed
    assert w.preprocess()
    w.wait()
    assert w.project.preprocessed and w.project.tomogram.name == "preprocessed.mrc"
    assert not w.preprocess() and "preprocessed already" in w.status.text()
    model_path = tmp_path / "cli.model"
    save_model(model_path, Model(net=particle_model.net, amplitude=particle_model.amplitude, name="ribo",
                                 voxel_size=10.0, preprocessing=PreprocessConfig().to_dict(), colour="#ff0000"))
    assert w.import_model(model_path)
    assert w.feature == "ribo" and w.project.features["ribo"].colour == "#ff0000"
    assert w.preview() and "tomoseg preview: ribo" in w.viewer.layers
    reopened = Project.open(tmp_path / "proj")
    assert reopened.tomogram.name == "preprocessed.mrc" and "ribo" in reopened.features


def test_a_tomogram_without_voxel_size_asks_for_one(make_napari_viewer, tmp_path, small_tomo):
    import mrcfile

    from tomoseg.gui.reader import get_reader
    from tomoseg.gui.widget import TomosegWidget
    from tomoseg.io.mrc import read_volume

    raw = tmp_path / "novox.mrc"
    write_volume(raw, small_tomo.volume, 1.0)
    with mrcfile.open(raw, mode="r+") as m:
        m.voxel_size = 0.0
    with pytest.warns(UserWarning, match="records no voxel size"):  # the reader shows it in pixels
        (_data, meta, _kind), = get_reader(str(raw))(str(raw))
    assert meta["scale"] == (1.0, 1.0, 1.0) and meta["metadata"]["voxel_size"] is None
    w = TomosegWidget(make_napari_viewer())
    asked = []
    assert not w.new_project(tmp_path / "proj", raw, ask_voxel_size=lambda path: asked.append(path))
    assert asked == [raw] and "no voxel size" in w.status.text() and w.project is None
    assert w.new_project(tmp_path / "proj", raw, ask_voxel_size=lambda path: 12.0)
    assert w.project.volume.voxel_size == 12.0 and "12 A/voxel, given" in w.project_label.text()
    assert w.viewer.layers["tomogram"].scale[0] == pytest.approx(12.0)
    assert w.preprocess()  # the raw file records no size: preprocessing uses the given one
    w.wait()
    assert w.project.tomogram.name == "preprocessed.mrc" and w.project.voxel_size_given is None
    assert read_volume(w.project.tomogram).voxel_size == pytest.approx(12.0)


def test_pick_filaments_with_axes_then_back_to_blobs(widget):
    from tomoseg.ops.rotations import z_axes

    w, viewer = widget, widget.viewer
    w.add_feature("microtubule")
    z, y, x = np.mgrid[:32, :128, :128]
    centre, axis = np.array([64.0, 64.0, 16.0]), np.array([1.0, 1.0, 0.3]) / np.linalg.norm([1.0, 1.0, 0.3])
    p = np.stack([x, y, z], -1) - centre
    dist = np.linalg.norm(p - (p @ axis)[..., None] * axis, axis=-1)
    w._add_score_layer("tomoseg scores: microtubule", ((dist >= 4) & (dist <= 6)).astype(np.float32) * 2,
                       "microtubule")
    from tomoseg.steps.picking_modes import PICKING_MODES

    assert [w.pick_mode.itemText(i) for i in range(w.pick_mode.count())] == list(PICKING_MODES)
    w.pick_mode.setCurrentText("filament")
    assert not w.min_size.isEnabled() and w.spacing.isEnabled() and w.diameter.isEnabled()
    w.diameter.setValue(120)
    assert w.pick(), w.status.text()
    w.wait()
    points = w.picks.xyz[:, ::-1]
    assert len(points) >= 8 and "points along filaments" in w.status.text()
    assert viewer.layers["tomoseg picks: microtubule"].features["pick"].nunique() == len(points)
    rel = points[:, ::-1] - centre
    assert np.median(np.linalg.norm(rel - (rel @ axis)[:, None] * axis, axis=1)) < 1.5  # on the axis
    vectors = viewer.layers["tomoseg axes: microtubule"].data  # one per disc of the picks layer (2D view)
    assert vectors.shape == (len(viewer.layers["tomoseg picks: microtubule"].data), 2, 3)
    viewer.dims.ndisplay = 3
    vectors = viewer.layers["tomoseg axes: microtubule"].data  # one per pick
    assert vectors.shape == (len(points), 2, 3) and np.allclose(vectors[:, 0], points)
    assert np.median(np.abs(vectors[:, 1, ::-1] @ axis) / np.linalg.norm(vectors[:, 1], axis=1)) > 0.98
    assert np.allclose(z_axes(w.picks.angles)[:, ::-1] * 4.0, vectors[:, 1])  # spacing 80 A / 2 / 10 A
    viewer.dims.ndisplay = 2
    out = w.project.folder / "filament.star"
    assert w.export(out) and out.exists()
    w.pick_mode.setCurrentText("blob")  # re-picks live (after a short rest, in the background): no axes
    w.wait()
    assert w.min_size.isEnabled() and not w.spacing.isEnabled()
    assert "tomoseg axes: microtubule" not in viewer.layers and "particles" in w.status.text()


@pytest.mark.slow
def test_the_dock_trains_with_context_and_jitter_and_applies_with_tta(widget, small_tomo):
    from tomoseg.io.model_file import load_model
    from tomoseg.io.mrc import read_volume

    w, viewer = widget, widget.viewer
    _paint_particles(w, small_tomo)
    w.epochs.setValue(2)
    w.context.setValue(1)
    w.jitter.setValue(0.5)
    w.tta.setValue(2)
    assert w.train()
    w.wait()
    model = load_model(w.project.path("model", "particle"))
    assert model.net.config.context == 1 and model.training["config"]["imaging_jitter"] == 0.5
    viewer.dims.set_current_step(0, 0)  # the first slice: its context reaches beyond the volume
    assert w.preview() and viewer.layers["tomoseg preview: particle"].data.shape == (1, *small_tomo.labels.shape[1:])
    assert w.apply()
    w.wait()
    scores = read_volume(w.project.path("scores", "particle"))
    assert scores.label_value("tta") == "2" and scores.label_value("level") is not None
    w.calibrate.setChecked(True)
    assert w.pick()
    w.wait()
    assert len(w._scales) == 1  # measured once, reused by merge and by live picking
    assert w.merge()
    w.wait()
    assert "tomoseg merged" in viewer.layers and len(w._scales) == 1


@pytest.mark.slow
def test_dragging_the_threshold_never_blocks_the_viewer(widget, qtbot):
    """Live picking on a 256 x 1024 x 1024 score map: the spin box is dragged through 12 values while a
    timer measures the event loop; no gap may exceed 0.5 s (issue #18). The picks come back after."""
    import time

    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    w, viewer = widget, widget.viewer
    w.add_feature("ribosome")
    scores = np.zeros((256, 1024, 1024), np.float32)
    rng = np.random.default_rng(0)
    for z, y, x in rng.integers((20, 40, 40), (236, 984, 984), size=(60, 3)):
        scores[z - 4 : z + 4, y - 6 : y + 6, x - 6 : x + 6] = 2.0 + rng.random()
    w._add_score_layer("tomoseg scores: ribosome", scores, "ribosome")
    w.diameter.setValue(120)
    assert w.pick()
    w.wait()
    assert len(w.picks) > 30
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    try:
        value = 1.0
        for _ in range(12):  # a drag: a new value every 50 ms
            value += 0.05
            w.threshold.setValue(value)
            end = time.perf_counter() + 0.05
            while time.perf_counter() < end:
                QApplication.processEvents()
        end = time.perf_counter() + 2.0  # the re-pick runs meanwhile, in the background
        while time.perf_counter() < end:
            QApplication.processEvents()
    finally:
        timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.5, f"the event loop stopped for {gaps.max():.2f} s"
    w.wait()
    assert f"at threshold {value:g}" in w.status.text() and len(w.picks) > 30


def test_the_dock_adopts_a_tomogram_opened_in_napari(make_napari_viewer, tmp_path, small_pre):
    """File > Open through the plugin's reader, then New: no second question for the file."""
    from tomoseg.gui.widget import TomosegWidget

    path = tmp_path / "pre.mrc"
    write_volume(path, small_pre, 10.0, labels=(header_label("preprocess", PreprocessConfig().describe()),))
    viewer = make_napari_viewer()
    w = TomosegWidget(viewer)
    assert not w.new_project(tmp_path / "none") and "no tomogram" in w.status.text()
    viewer.open(str(path), plugin="tomoseg")
    assert "pre.mrc is open: New... makes a project for it" in w.status.text()
    assert w.opened_tomogram() == path
    assert w.new_project(tmp_path / "proj")
    assert w.project.tomogram == path.resolve() and w.project.volume.voxel_size == pytest.approx(10.0)
    assert [layer.name for layer in viewer.layers].count("tomogram") == 1 and "pre" not in viewer.layers


def test_suggest_answer_and_fine_tune_in_the_dock(widget, small_tomo):
    """Where to click next: Suggest shows tiles on their slices, J goes to one, Y / X / K answer it,
    Fine-tune continues the network and updates the preview; the project keeps the rounds."""
    w, viewer = widget, widget.viewer
    labels = small_tomo.labels
    w.add_feature("particle")
    value = w.project.features["particle"].value
    for b in choose_boxes(labels[:6], 3, n_positive=2, n_negative=0, seed=0):  # room on the other slices
        assert w.place_box(b.x, b.y, b.z, True)
        w.project.masks[b.z, b.y - 32:b.y + 32, b.x - 32:b.x + 32][labels[b.z, b.y - 32:b.y + 32, b.x - 32:b.x + 32] == 3] = value
    assert not w.suggest() and "no trained network" in w.status.text()
    w.epochs.setValue(2)
    assert w.train()
    w.wait()
    w.suggest_n.setValue(2)
    assert w.suggest()
    w.wait()
    layer = viewer.layers["tomoseg suggestions"]
    pending = w.project.features["particle"].pending()
    assert len(pending) == 2 and len(layer.data) == 2 and "round 1" in w.suggest_label.text()
    assert viewer.dims.current_step[0] == pending[0].z and pending[0].reason.split(":")[0] in w.status.text()
    assert w.answer("positive")  # Y
    box = w.project.features["particle"].boxes[-1]
    assert (box.x, box.y, box.z, box.positive) == (pending[0].x, pending[0].y, pending[0].z, True)
    assert len(viewer.layers["tomoseg suggestions"].data) == 1
    assert w.next_suggestion() and viewer.dims.current_step[0] == pending[1].z
    assert w.answer("skip")  # K
    assert not w.answer("negative") and "no suggested tile" in w.status.text()
    w.project.paint("particle", np.where(labels == 3, True, False) & (np.arange(labels.shape[0]) == pending[0].z)[:, None, None])
    assert w.fine_tune()
    w.wait()
    model = w.project.path("model", "particle")
    from tomoseg.io.model_file import load_model

    tuned = load_model(model)
    assert tuned.training["init"]["rounds"] == 1 and tuned.training["config"]["recipe"] == "fine-tune"
    assert (w.project.folder / "models" / "history" / "particle.1.model").exists()
    assert "fine-tuned particle" in w.status.text() and "tomoseg preview: particle" in viewer.layers
    again = Project.open(w.project.folder).features["particle"]
    assert [t.answer for t in again.suggested] == ["positive", "skip"] and again.rounds == 1
