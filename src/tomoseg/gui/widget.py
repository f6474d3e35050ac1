"""The tomoseg dock widget: annotate, train, apply and inspect inside napari.

A thin front end: every action calls the same library functions as the CLI
(:mod:`tomoseg.workflows`, :mod:`tomoseg.steps`) on a :class:`Project`, and
long work runs in a :class:`~tomoseg.gui.jobs.Job` (progress bar, cancel
button, the viewer stays responsive). Every public method is also what a
button does, so tests and scripts drive the widget without clicking.

Keys (viewer-wide): P positive box, N negative box, B paint, Escape off,
U undo the last box edit; suggested tiles: J next, Y positive, X negative, K skip. Click on the tomogram to place a box on the current
slice; drag a box to move it; Shift-click a box to delete it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import (QFileDialog, QHBoxLayout, QInputDialog, QLabel, QMessageBox, QProgressBar, QVBoxLayout,
                            QWidget)

from tomoseg.allocator import keep_freed_memory
from tomoseg.errors import TomosegError, VoxelSizeMissing
from tomoseg.gui.jobs import Job
from tomoseg.gui.panels import FeaturePanel, ParticlesPanel, ProjectPanel, SuggestPanel, TrainPanel, button
from tomoseg.nn.threads import share_cores_politely
from tomoseg.steps.picking_modes import PICKING_MODES
from tomoseg.steps.trainset import TILE_SIZE
from tomoseg.workflows.project import Project

MODES = ("off", "positive", "negative", "paint")
NEGATIVE_EDGE = "#9a9a9a"


def _rgba(colour: str, alpha: float = 1.0) -> np.ndarray:
    from napari.utils.colormaps.standardize_color import transform_color

    rgba = transform_color(colour)[0].copy()
    rgba[3] = alpha
    return rgba


def _sphere_sections(zyx: np.ndarray, diameter: float, depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each point as the discs its sphere of ``diameter`` cuts out of the z slices 0..depth-1 it crosses.

    Returns disc centres (m, 3), disc diameters (m,) and the point each disc belongs to (m,).
    A Points layer of these shows a pick on every slice through it, at its true cross-section,
    in any napari version (napari 0.9 replaced ``out_of_slice_display`` by projection modes that
    need thick slicing).
    """
    radius = diameter / 2
    offsets = np.arange(-np.floor(radius), np.floor(radius) + 1)
    widths = np.maximum(2 * np.sqrt(np.maximum(radius**2 - offsets**2, 0.0)), 1.0)  # at least a dot
    n = len(zyx)
    centres = np.repeat(np.asarray(zyx, dtype=np.float64).reshape(-1, 3), len(offsets), axis=0)
    centres[:, 0] += np.tile(offsets, n)
    inside = (centres[:, 0] >= 0) & (centres[:, 0] <= depth - 1)
    return centres[inside], np.tile(widths, n)[inside], np.repeat(np.arange(n), len(offsets))[inside]


DOCK_WORDS = {"voxel_size": "the voxel size", "overwrite": "replace", "tta": "test-time aug.",
              "imaging_jitter": "imaging jitter", "context": "slab context", "threshold": "threshold",
              "calibrate": "calibrate", "force": "apply anyway"}
"""What the dock calls the config fields that library messages name (`field`, :mod:`tomoseg.errors`)."""


def dock_words(err: BaseException) -> str:
    """An error's message with its fields in the dock's words (others: the field with spaces)."""
    message = err if isinstance(err, TomosegError) else TomosegError(str(err))
    return message.in_words(lambda field: DOCK_WORDS.get(field, field.replace("_", " ")))


class TomosegWidget(QWidget):
    """Dock widget; ``napari_viewer`` is injected by napari (or passed by a script)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        share_cores_politely()  # before the first job loads torch: napari and a batch beside it keep their cores
        keep_freed_memory()  # training and scoring reuse freed arrays (tomoseg.allocator)
        self.viewer = napari_viewer
        self.project: Project | None = None
        self.mode = "off"
        self.job: Job | None = None
        self._on_done = None
        self.losses: list[float] = []
        self.picks = None
        self._scales: dict[tuple[str, int], float] = {}  # calibration scales of score maps (file, version)
        self._build()
        self.viewer.dims.events.ndisplay.connect(self._ndisplay_changed)
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self._timer = QTimer(self)
        self._timer.setInterval(100)
        self._timer.timeout.connect(self.poll)
        self._live_timer = QTimer(self)
        self._live_timer.setSingleShot(True)
        self._live_timer.timeout.connect(self._live_pick_now)
        self._pick_again = False
        self._autosave = QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(1500)
        self._autosave.timeout.connect(self.save)
        for key, mode in (("p", "positive"), ("n", "negative"), ("b", "paint"), ("Escape", "off")):
            self.viewer.bind_key(key, lambda _v, m=mode: self.set_mode(m), overwrite=True)
        self.viewer.bind_key("u", lambda _v: self.undo(), overwrite=True)
        self.viewer.bind_key("j", lambda _v: self.next_suggestion(), overwrite=True)
        for key, answer in (("y", "positive"), ("x", "negative"), ("k", "skip")):
            self.viewer.bind_key(key, lambda _v, a=answer: self.answer(a), overwrite=True)
        self._suggestion = None  # the suggested tile on show (tomoseg.workflows.project.Suggested)

    # -- layout ---------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        self.panels = [ProjectPanel(self), FeaturePanel(self), TrainPanel(self), SuggestPanel(self), ParticlesPanel(self)]
        for panel in self.panels:
            layout.addWidget(panel)
            for name in panel.CONTROLS:  # the handlers below read the controls as the dock's own
                setattr(self, name, getattr(panel, name))
        self._pick_mode_changed(self.pick_mode.currentText())

        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = button("Cancel", self.cancel)
        self.cancel_button.setVisible(False)
        row = QHBoxLayout()
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.status = QLabel("Open a tomogram to start: New... or Open...")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch()

    # -- messages -------------------------------------------------------------
    def say(self, text: str) -> None:
        self.status.setText(text)
        self.viewer.status = text

    def _guard(self, action) -> bool:
        """Run ``action``; show bad input (a TomosegError, or a ValueError from below) as a one-line
        message in the dock's words. Returns success."""
        try:
            action()
            return True
        except (TomosegError, ValueError) as err:
            self.say(f"error: {dock_words(err)}")
            return False

    # -- project --------------------------------------------------------------
    def opened_tomogram(self) -> Path | None:
        """The file of a tomogram the user opened in napari already (the active layer first, then any
        image layer read from an MRC or TIFF file, by tomoseg's reader or napari's ``source``)."""
        layers = [self.viewer.layers.selection.active, *reversed(list(self.viewer.layers))]
        for layer in layers:
            if layer is None or type(layer).__name__ != "Image" or layer.name == "tomogram" or layer.ndim != 3:
                continue
            path = layer.metadata.get("path") or getattr(getattr(layer, "source", None), "path", None)
            if path and Path(path).suffix.lower() in (".mrc", ".rec", ".map", ".st", ".ali", ".tif", ".tiff", ".zarr") \
                    and Path(path).exists():
                return Path(path)
        return None

    def _layers_changed(self, _event=None) -> None:
        if self.project is None and (opened := self.opened_tomogram()) is not None:
            self.say(f"{opened.name} is open: New... makes a project for it")

    def _ask_new(self) -> None:
        tomo = self.opened_tomogram()
        if tomo is None:
            tomo, _ = QFileDialog.getOpenFileName(self, "Tomogram", "", "Tomogram (*.mrc *.rec *.map *.tif *.tiff)")
            # an OME-Zarr tomogram is a folder: open it with File > Open first (it is then adopted)
        if tomo:
            folder = QFileDialog.getExistingDirectory(self, "Empty project folder")
            if folder:
                self.new_project(folder, tomo, ask_voxel_size=self._ask_voxel_size)

    def _ask_voxel_size(self, tomogram: str) -> float | None:
        size, ok = QInputDialog.getDouble(
            self, "Voxel size", f"{Path(tomogram).name} records no voxel size.\nVoxel size in A:",
            10.0, 0.01, 1000.0, 3)
        return size if ok else None

    def _ask_open(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            self.open_project(folder)

    def new_project(self, folder, tomogram=None, voxel_size: float | None = None, ask_voxel_size=None) -> bool:
        """Start a project on ``tomogram`` in ``folder`` (default: the tomogram open in napari already,
        :meth:`opened_tomogram`). A file that records no voxel size needs ``voxel_size`` (A), or
        ``ask_voxel_size(tomogram)`` to return one (None: give up)."""
        def act():
            nonlocal tomogram
            if tomogram is None:
                tomogram = self.opened_tomogram()
                if tomogram is None:
                    raise TomosegError("no tomogram: open one (File > Open) or choose its file")
            try:
                project = Project.create(folder, tomogram, voxel_size)
            except VoxelSizeMissing:
                size = ask_voxel_size(tomogram) if ask_voxel_size is not None else None
                if size is None:
                    raise
                project = Project.create(folder, tomogram, size)
            self._set_project(project)
        return self._guard(act)

    def open_project(self, folder) -> bool:
        return self._guard(lambda: self._set_project(Project.open(folder)))

    def _set_project(self, project: Project) -> None:
        self.project = project
        for layer in list(self.viewer.layers):
            opened_here = layer.metadata.get("path") and Path(layer.metadata["path"]).resolve() == project.tomogram
            if layer.name.startswith("tomoseg") or layer.name in ("tomogram", "boxes", "masks") or opened_here:
                self.viewer.layers.remove(layer)  # the project's own layers replace them
        vol = project.volume
        scale = (vol.voxel_size,) * 3
        image = self.viewer.add_image(vol.data, name="tomogram", scale=scale, colormap="gray")
        image.mouse_drag_callbacks.append(self._on_click)
        masks = self.viewer.add_labels(project.masks, name="masks", scale=scale, opacity=0.5)
        masks.brush_size = self.brush.value()
        masks.events.paint.connect(lambda _e: self._autosave.start())
        self.viewer.add_shapes(name="boxes", ndim=3, scale=scale, face_color="transparent", edge_width=2)
        self.viewer.layers.selection.active = image
        self.viewer.dims.set_current_step(0, vol.data.shape[0] // 2)
        given = ", given" if project.voxel_size_given is not None else ""
        self.project_label.setText(f"{project.folder.name} ({vol.voxel_size:g} A/voxel{given})")
        self.feature_combo.clear()
        self.feature_combo.addItems(list(project.features))
        for name in project.features:
            for kind in ("scores",):
                path = project.path(kind, name)
                if path.exists():
                    self._show_scores(name, path)
        self._refresh_layers()
        self.say(f"project {project.folder} on {project.tomogram.name}: "
                 f"{' x '.join(map(str, vol.data.shape[::-1]))} voxels at {vol.voxel_size:g} A")

    def preprocess(self) -> bool:
        """Preprocess the project's tomogram (defaults of ``tomoseg preprocess``) and annotate the result."""
        def act():
            from tomoseg.workflows import preprocess_file

            project = self._need_project()
            if project.preprocessed:
                raise TomosegError(f"{project.tomogram.name} is preprocessed already (see its header)")
            out = project.folder / "preprocessed.mrc"

            def work(progress):
                preprocess_file(project.tomogram, out, voxel_size=project.voxel_size_given, progress=progress,
                                overwrite=True)
                return out

            def done(path):
                self._guard(lambda: (project.use_tomogram(path), project.save(), self._set_project(project)))
            self._start("preprocessing", work, done)
        return self._guard(act)

    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model", "", "tomoseg model (*)")
        if path:
            self.import_model(path)

    def import_model(self, path) -> bool:
        """Use a model file made elsewhere (CLI, another project) as a feature of this project."""
        def act():
            from tomoseg.workflows.project import import_model_file

            name = import_model_file(self._need_project(), path)
            if self.feature_combo.findText(name) < 0:
                self.feature_combo.addItem(name)
            self.feature_combo.setCurrentText(name)
            self.say(f"model {Path(path).name} is now feature {name!r}: Preview slice or Apply")
        return self._guard(act)

    def _ask_import_set(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training set", "", "tomoseg training set (*)")
        if path:
            self.import_trainset(path)

    def import_trainset(self, path) -> bool:
        """Boxes and masks of a training-set file become (part of) a feature of this project."""
        def act():
            from tomoseg.workflows.project import import_trainset_file

            feature = import_trainset_file(self._need_project(), path)
            if self.feature_combo.findText(feature.name) < 0:
                self.feature_combo.addItem(feature.name)
            self.feature_combo.setCurrentText(feature.name)
            self._boxes_changed(f"imported {Path(path).name}: {feature.n_positive} positive, "
                                f"{feature.n_negative} negative boxes of {feature.name}")
        return self._guard(act)

    def save(self) -> None:
        if self.project is not None:
            self._guard(self.project.save)

    def _need_project(self) -> Project:
        if self.project is None:
            raise TomosegError("no project: create one with New... or open one")
        return self.project

    # -- features, boxes, masks ----------------------------------------------
    @property
    def feature(self) -> str | None:
        return self.feature_combo.currentText() or None

    def add_feature(self, name: str, colour: str | None = None) -> bool:
        def act():
            if colour:
                try:
                    _rgba(colour)
                except (ValueError, KeyError):
                    raise TomosegError(f"colour {colour!r}: use a name (e.g. orange) or #rrggbb") from None
            feature = self._need_project().add_feature(name.strip(), colour)
            self.feature_combo.addItem(feature.name)
            self.feature_combo.setCurrentText(feature.name)
            self.feature_name.clear()
            self.save()
        return self._guard(act)

    def _need_feature(self) -> str:
        self._need_project()
        if not self.feature:
            raise TomosegError("no feature: add one first (name, then Add)")
        return self.feature

    def set_mode(self, mode: str) -> None:
        refused = mode != "off" and not self._guard(self._need_feature)
        if refused:
            mode = "off"
        self.mode = mode
        for m, b in self.mode_buttons.items():
            b.setChecked(m == mode)
        masks = self._masks_layer()
        if masks is not None:
            if mode == "paint":
                masks.selected_label = self.project.features[self.feature].value
                masks.brush_size = self.brush.value()
                masks.mode = "paint"
                self.viewer.layers.selection.active = masks
            else:
                masks.mode = "pan_zoom"
                self.viewer.layers.selection.active = self.viewer.layers["tomogram"]
        hints = {"positive": "click: add a positive box on this slice; drag: move; Shift-click: delete",
                 "negative": "click: add a negative box (no feature inside); drag: move; Shift-click: delete",
                 "paint": "paint the feature inside the positive boxes; [ and ] change the brush",
                 "off": "P / N: place boxes, B: paint, U: undo a box edit"}
        if not refused:
            self.say(hints[mode])

    def _on_click(self, layer, event):
        if self.mode not in ("positive", "negative") or self.project is None or not self.feature:
            return
        z, y, x = np.round(layer.world_to_data(event.position)).astype(int)
        name = self.feature
        hit = self.project.nearest_box(name, x, y, z)
        if hit is not None and "Shift" in event.modifiers:
            self.project.remove_box(name, hit)
            self._boxes_changed(f"deleted the box at x={hit.x}, y={hit.y}")
            return
        if hit is None:
            self.place_box(x, y, z, self.mode == "positive")
            return
        yield  # drag an existing box
        while event.type == "mouse_move":
            yield
        z2, y2, x2 = np.round(layer.world_to_data(event.position)).astype(int)
        if (x2, y2) != (hit.x, hit.y):
            self._guard(lambda: self.project.move_box(name, hit, x2, y2))
            self._boxes_changed(f"moved a box to x={x2}, y={y2}")

    def place_box(self, x: int, y: int, z: int, positive: bool) -> bool:
        """Add a box of the active feature centred at voxel (x, y, z)."""
        def act():
            box = self._need_project().add_box(self._need_feature(), x, y, z, positive)
            self._boxes_changed(f"{'positive' if positive else 'negative'} box at x={box.x}, y={box.y}, z={box.z}")
        return self._guard(act)

    def undo(self) -> None:
        if self.project is not None:
            what = self.project.undo()
            self._boxes_changed(f"undo: {what}" if what else "nothing to undo")

    def _boxes_changed(self, message: str) -> None:
        self._refresh_layers()
        self.save()
        self.say(message)

    def _masks_layer(self):
        return self.viewer.layers["masks"] if "masks" in self.viewer.layers else None

    def _refresh_layers(self) -> None:
        if self.project is None or "boxes" not in self.viewer.layers:
            return
        from napari.utils.colormaps import DirectLabelColormap

        layer = self.viewer.layers["boxes"]
        name = self.feature
        feature = self.project.features.get(name) if name else None
        boxes = feature.boxes if feature else []
        h = TILE_SIZE / 2
        rects = [np.array([[b.z, b.y - h, b.x - h], [b.z, b.y - h, b.x + h], [b.z, b.y + h, b.x + h],
                           [b.z, b.y + h, b.x - h]]) for b in boxes]
        colours = [feature.colour if b.positive else NEGATIVE_EDGE for b in boxes] if feature else []
        layer.data = []
        if rects:
            layer.add_rectangles(rects, edge_color=colours, face_color="transparent", edge_width=2)
        colours = {0: np.zeros(4), None: np.zeros(4)}
        colours.update({f.value: _rgba(f.colour, 0.8) for f in self.project.features.values()})
        self._masks_layer().colormap = DirectLabelColormap(color_dict=colours)
        if feature:
            self.box_count.setText(f"{name}: {feature.n_positive} positive, {feature.n_negative} negative boxes")

    # -- long jobs ------------------------------------------------------------
    def _start(self, name: str, work, on_done) -> None:
        if self.job is not None and not self.job.poll().finished:
            raise TomosegError(f"{self.job.name} is still running; wait or cancel it")
        self.job = Job(name, work).start()
        self._on_done = on_done
        self.progress.setVisible(True)
        self.progress.setValue(0)
        self.cancel_button.setVisible(True)
        self._timer.start()
        self.say(f"{name}...")

    def poll(self) -> None:
        """Move the progress bar; when the job ends, show its result or error (timer slot)."""
        if self.job is None:
            return
        state = self.job.poll()
        self.progress.setMaximum(max(state.total, 1))
        self.progress.setValue(state.done)
        self.progress.setFormat(f"{self.job.name}: {state.message} %p%")
        self._draw_losses()
        if not state.finished:
            return
        self._timer.stop()
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        if state.error is not None:
            cancelled = self.job.cancelled
            self.say(f"{self.job.name} cancelled" if cancelled else f"error: {dock_words(state.error)}")
        else:
            self._guard(lambda: self._on_done(state.result))
        if self._pick_again:
            self._pick_again = False
            self._live_pick_now()

    def wait(self, timeout: float = 600) -> None:
        """Block until the running job (and a re-pick waiting for its delay or for that job) ends, then
        handle it as the timers would (scripts, tests)."""
        if self._live_timer.isActive():
            self._live_timer.stop()
            self._live_pick_now()
        while self.job is not None:
            self.job.wait(timeout)
            self.poll()
            if self.job.poll().finished and not self._live_timer.isActive():
                break

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.say(f"cancelling {self.job.name}...")

    def _draw_losses(self) -> None:
        if not self.losses:
            return
        self.loss_label.setText(f"loss per epoch: {self.losses[0]:.3f} -> {self.losses[-1]:.3f}")
        if self._loss_canvas is not None:
            ax = self._loss_axes
            ax.clear()
            ax.plot(range(1, len(self.losses) + 1), self.losses, "o-", ms=3)
            ax.set_xlabel("epoch", fontsize=8)
            ax.set_ylabel("ln MSE", fontsize=8)
            ax.tick_params(labelsize=7)
            self._loss_canvas.draw_idle()

    # -- train, preview, apply, merge -----------------------------------------
    def train(self) -> bool:
        """Train the active feature's network in the background; saves trainset and model."""
        def act():
            from tomoseg.steps.recipes import recipe
            from tomoseg.workflows.project import save_feature_trainset, train_feature

            project = self._need_project()
            name = self._need_feature()
            config = recipe(self.recipe.currentText(), epochs=self.epochs.value() or None,
                            imaging_jitter=self.jitter.value() or None)
            # the set is cut here, on the Qt thread: painting on while it trains changes nothing
            set_path = save_feature_trainset(project, name, context=self.context.value())
            self.losses = []

            def work(progress):
                return train_feature(project, name, config, trainset_path=set_path, progress=progress,
                                     on_epoch=lambda _e, loss: self.losses.append(loss))

            def done(model):
                self._draw_losses()
                self.say(f"trained {name}: loss {model.training['losses'][0]:.3f} -> "
                         f"{model.training['losses'][-1]:.3f}, amplitude {model.amplitude:.3g}; "
                         "Preview slice to check it")
            self._start(f"training {name}", work, done)
        return self._guard(act)

    # -- where to click next ----------------------------------------------------
    def suggest(self) -> bool:
        """A round of suggested tiles for the active feature (background): shown as dashed boxes of their
        own layer; J goes to the next, Y / X / K answer it."""
        def act():
            from tomoseg.steps.suggest import SuggestConfig
            from tomoseg.workflows.project import feature_suggestions

            project = self._need_project()
            name = self._need_feature()
            if not project.path("model", name).exists():
                raise TomosegError(f"feature {name!r} has no trained network yet: Train first")
            config = SuggestConfig(n=self.suggest_n.value(), strategy=self.suggest_strategy.currentText(),
                                   threshold=self.threshold.value())

            def work(progress):  # computes only: the project is edited on the Qt thread (done)
                return feature_suggestions(project, name, config, progress=progress)

            def done(found):
                tiles = project.add_suggestions(name, found, config.strategy)
                self.save()
                self._show_suggestions()
                if not tiles:
                    self.say(f"no tile to suggest for {name}: the strategy {config.strategy} finds nothing more "
                             "to fix (try another, or Fine-tune)")
                    return
                self.next_suggestion()
                self.say(f"round {project.features[name].rounds} of {name}: {len(tiles)} tiles suggested; "
                         f"{self.status.text()}")
            self._start(f"suggesting tiles for {name}", work, done)
        return self._guard(act)

    def _show_suggestions(self) -> None:
        """The active feature's unanswered suggestions as dashed yellow boxes (layer "tomoseg suggestions")."""
        title = "tomoseg suggestions"
        if self.project is None:
            return
        feature = self.project.features.get(self.feature) if self.feature else None
        pending = feature.pending() if feature else []
        h = TILE_SIZE / 2
        rects = [np.array([[t.z, t.y - h, t.x - h], [t.z, t.y - h, t.x + h], [t.z, t.y + h, t.x + h],
                           [t.z, t.y + h, t.x - h]]) for t in pending]
        if title not in self.viewer.layers:
            if not rects:
                return
            self.viewer.add_shapes(name=title, ndim=3, scale=(self.project.volume.voxel_size,) * 3, opacity=0.9)
        layer = self.viewer.layers[title]
        layer.data = []
        if rects:
            layer.add_rectangles(rects, edge_color="yellow", face_color=[1, 1, 0, 0.08], edge_width=3)
            layer.features = {"reason": [t.reason for t in pending]}
        pending_text = f"{len(pending)} suggested tiles to answer" if pending else "no suggested tile to answer"
        self.suggest_label.setText(f"{feature.name if feature else ''}: {pending_text}"
                                   + (f"; round {feature.rounds}" if feature and feature.rounds else ""))

    def next_suggestion(self) -> bool:
        """Go to the next unanswered suggested tile of the active feature: its slice, centred."""
        def act():
            project = self._need_project()
            pending = project.features[self._need_feature()].pending()
            if not pending:
                self._suggestion = None
                raise TomosegError("no suggested tile to answer: Suggest first (or Fine-tune now)")
            if self._suggestion in pending:  # the one after the tile on show, round and round
                tile = pending[(pending.index(self._suggestion) + 1) % len(pending)]
            else:
                tile = pending[0]
            self._suggestion = tile
            vs = project.volume.voxel_size
            step = list(self.viewer.dims.current_step)
            step[0] = tile.z
            self.viewer.dims.current_step = tuple(step)
            self.viewer.camera.center = (tile.z * vs, tile.y * vs, tile.x * vs)
            self.say(f"tile at x={tile.x}, y={tile.y}, z={tile.z}: {tile.reason}; Y positive, X negative, K skip")
        return self._guard(act)

    def answer(self, answer: str) -> bool:
        """Answer the suggested tile on show: positive (a positive box: paint it next), negative, or skip."""
        def act():
            project = self._need_project()
            name = self._need_feature()
            tile = self._suggestion
            if tile is None or tile not in project.features[name].pending():
                raise TomosegError("no suggested tile on show: J goes to the next")
            project.answer(name, tile, answer)
            self._refresh_layers()
            self._show_suggestions()
            self.save()
            left = len(project.features[name].pending())
            hint = "; paint the feature in it (B)" if answer == "positive" else ""
            self.say(f"{answer}{hint}; {left} left" + (": J for the next" if left else ": Fine-tune to see the effect"))
        return self._guard(act)

    def fine_tune(self) -> bool:
        """Continue the active feature's network on its boxes now (background, seconds: the fine-tune
        recipe); the preview of the current slice updates when it ends."""
        def act():
            from tomoseg.steps.recipes import recipe
            from tomoseg.workflows.project import save_feature_trainset, train_feature

            project = self._need_project()
            name = self._need_feature()
            if not project.path("model", name).exists():
                raise TomosegError(f"feature {name!r} has no trained network to fine-tune yet: Train first")
            set_path = save_feature_trainset(project, name, context=self.context.value())
            self.losses = []

            def work(progress):
                return train_feature(project, name, recipe("fine-tune"), trainset_path=set_path, progress=progress,
                                     on_epoch=lambda _e, loss: self.losses.append(loss), fine_tune=True)

            def done(model):
                self._draw_losses()
                self.preview()
                self.say(f"fine-tuned {name} (round {model.training['init']['rounds']}): loss "
                         f"{model.training['losses'][0]:.3f} -> {model.training['losses'][-1]:.3f}; preview updated")
            self._start(f"fine-tuning {name}", work, done)
        return self._guard(act)

    def preview(self) -> bool:
        """Score the current slice with the active feature's network (immediate, one slice)."""
        def act():
            from tomoseg.workflows.project import preview_slice

            name = self._need_feature()
            z = int(self.viewer.dims.current_step[0])
            scores = preview_slice(self._need_project(), name, z)
            # a one-slice layer placed at z (no tomogram-sized array for one slice)
            self._add_score_layer(f"tomoseg preview: {name}", scores, name, first_slice=z)
            self.say(f"preview of {name} on slice {z}: {np.count_nonzero(scores >= 1)} pixels score >= 1")
        return self._guard(act)

    def apply(self) -> bool:
        """Apply the active feature's network to the whole tomogram (background, resumable)."""
        def act():
            from tomoseg.workflows import apply_file

            project = self._need_project()
            name = self._need_feature()
            model_path, out = project.path("model", name), project.path("scores", name)
            if not model_path.exists():
                raise TomosegError(f"feature {name!r} has no trained network yet: Train first")

            def work(progress):
                apply_file(model_path, project.tomogram, out, force=True, progress=progress, resume=True,
                           voxel_size=project.voxel_size_given, overwrite=True, tta=self.tta.value())
                return out
            self._start(f"applying {name}", work, lambda path: self._show_scores(name, path))
        return self._guard(act)

    def _show_scores(self, name: str, path: Path) -> None:
        from tomoseg.workflows.convert import layer_metadata
        from tomoseg.workflows.project import read_scores

        self._add_score_layer(f"tomoseg scores: {name}", read_scores(self._need_project(), name), name,
                              metadata=layer_metadata(path))
        self.say(f"scores of {name} in {path}")

    def _add_score_layer(self, layer_name: str, data: np.ndarray, feature: str, first_slice: int = 0,
                         metadata: dict | None = None):
        from napari.utils.colormaps import Colormap

        colour = _rgba(self.project.features[feature].colour)
        cmap = Colormap([[0, 0, 0, 0], colour], name=f"tomoseg-{feature}")
        if layer_name in self.viewer.layers:
            self.viewer.layers.remove(layer_name)
        vs = self.project.volume.voxel_size
        metadata = metadata or {"voxel_size": vs, "origin": tuple(self.project.volume.origin)}
        return self.viewer.add_image(data, name=layer_name, scale=(vs,) * 3, translate=(first_slice * vs, 0, 0),
                                     colormap=cmap, contrast_limits=(0, 2), blending="additive", opacity=0.7,
                                     metadata=metadata)

    def merge(self) -> bool:
        """Merge all features with score maps into one label layer (feature colours), in the background."""
        def act():
            from tomoseg.workflows.project import merge_features

            project = self._need_project()
            if not any(project.path("scores", n).exists() for n in project.features):
                raise TomosegError("no feature has a score map yet: Apply first")
            threshold, calibrate = self.threshold.value(), self.calibrate.isChecked()

            def work(progress):
                return merge_features(project, threshold, calibrate, scale_of=self._calibration)

            def done(result):
                from napari.utils.colormaps import DirectLabelColormap

                from tomoseg.workflows.convert import layer_metadata

                merged, names = result
                colours = {0: np.zeros(4), None: np.zeros(4)}
                colours.update({k: _rgba(project.features[n].colour) for k, n in enumerate(names, start=1)})
                if "tomoseg merged" in self.viewer.layers:
                    self.viewer.layers.remove("tomoseg merged")
                self.viewer.add_labels(merged, name="tomoseg merged", scale=(project.volume.voxel_size,) * 3,
                                       colormap=DirectLabelColormap(color_dict=colours), opacity=0.6,
                                       metadata=layer_metadata(project.path("merged")))
                self.say("merged: " + ", ".join(f"{k}={n}" for k, n in enumerate(names, start=1)))
            self._start("merging", work, done)
        return self._guard(act)

    def _ask_save_maps(self) -> None:
        from tomoseg.workflows.project import map_copies

        folder = QFileDialog.getExistingDirectory(self, "Save the score maps and the merged map in")
        if not folder:
            return
        suffix = self.map_format.currentText().split(" ")[0]
        existing = []
        if not self._guard(lambda: existing.extend(t.name for _, t in map_copies(self._need_project(), folder, suffix)
                                                   if t.exists())):
            return
        if existing:
            asked = QMessageBox.question(self, "Save maps", f"Replace {', '.join(existing)} in {folder}?")
            if asked != QMessageBox.StandardButton.Yes:
                return
        self.save_maps(folder, suffix, overwrite=bool(existing))

    def save_maps(self, folder, suffix: str = ".zarr", overwrite: bool = False) -> bool:
        """Copies of the score maps and the merged map in ``folder`` (``NAME.zarr``, ``merged.zarr``:
        OME-Zarr with a pyramid; or ``.mrc``/``.tif``), in the background; without ``overwrite``,
        refused before anything is written if one exists there."""
        def act():
            from tomoseg.workflows.project import map_copies, save_maps

            project = self._need_project()
            map_copies(project, folder, suffix)  # nothing to save: said now, not from the job

            def work(progress):
                return save_maps(project, folder, suffix, overwrite=overwrite, progress=progress)
            self._start("saving maps", work,
                        lambda paths: self.say(f"saved {', '.join(p.name for p in paths)} in {folder}"))
        return self._guard(act)

    def _calibration(self, path: Path) -> float:
        """A score map's calibration scale (tomoseg.workflows.maps), measured once per file version.
        Called from the background jobs (a dict's get and set are atomic)."""
        from tomoseg.workflows.maps import calibration_scale_of

        key = (str(path), path.stat().st_mtime_ns)
        if key not in self._scales:
            self._scales[key] = calibration_scale_of(path)[0]
        return self._scales[key]

    def show_3d(self) -> None:
        """3D view with each score map as an isosurface at the threshold."""
        for layer in self.viewer.layers:
            if layer.name.startswith("tomoseg scores: "):
                layer.rendering = "iso"
                layer.iso_threshold = self.threshold.value()
        for name in ("tomogram", "boxes", "masks", "tomoseg merged"):
            if name in self.viewer.layers:
                self.viewer.layers[name].visible = False
        self.viewer.dims.ndisplay = 3
        self.viewer.reset_view()

    # -- particles ------------------------------------------------------------
    def _pick_options(self) -> dict:
        """The dock's picking options that apply to the chosen mode (None: the mode's default)."""

        values = {"diameter": self.diameter.value(), "min_size": self.min_size.value() or None,
                  "min_distance": self.min_distance.value() or None, "spacing": self.spacing.value() or None}
        return {k: v for k, v in values.items() if k in PICKING_MODES[self.pick_mode.currentText()].options}

    def _pick_mode_changed(self, mode: str) -> None:

        for name, spin in (("diameter", self.diameter), ("min_size", self.min_size),
                           ("min_distance", self.min_distance), ("spacing", self.spacing)):
            spin.setEnabled(name in PICKING_MODES[mode].options)
        self._live_pick()

    def pick(self) -> bool:
        """Pick the active feature's score map in the background: particles (blob mode) into a Points
        layer; points along filaments or on membranes with their axes or normals (a Vectors layer)."""
        def act():
            from tomoseg.steps.picking_modes import PICKING_MODES, pick_config
            from tomoseg.workflows.particles import pick_scores

            project = self._need_project()
            name = self._need_feature()
            layer = f"tomoseg scores: {name}"
            if layer not in self.viewer.layers:
                raise TomosegError(f"feature {name!r} has no score map yet: Apply first")
            mode = self.pick_mode.currentText()
            config = pick_config(mode, self.threshold.value(), **self._pick_options())
            data = self.viewer.layers[layer].data
            scores_file = project.path("scores", name) if self.calibrate.isChecked() else None
            vs = project.volume.voxel_size

            def work(progress):
                scores = np.asarray(data, dtype=np.float32)
                if scores_file is not None:
                    scores = scores / np.float32(self._calibration(scores_file))
                return pick_scores(scores, vs, config), scores.shape[0]

            def done(result):
                self.picks, depth = result
                self._show_picks(name, mode, config, depth)
                self.say(f"{name}: {len(self.picks)} {PICKING_MODES[mode].what} at threshold {config.threshold:g}")
            self._start(f"picking {name}", work, done)
        return self._guard(act)

    def _show_picks(self, name: str, mode: str, config, depth: int) -> None:
        from tomoseg.ops.rotations import z_axes

        project = self._need_project()
        vs = project.volume.voxel_size
        points = self.picks.xyz[:, ::-1] if len(self.picks) else np.zeros((0, 3))
        colour = project.features[name].colour
        title, axes = f"tomoseg picks: {name}", f"tomoseg axes: {name}"
        for old in (title, axes):
            if old in self.viewer.layers:
                self.viewer.layers.remove(old)
        size = (config.spacing / 2 if mode == "membrane" else config.diameter) / vs
        # White rings: the feature's colour would vanish over its own score and merged layers.
        layer = self.viewer.add_points(np.zeros((0, 3)), name=title, scale=(vs,) * 3, border_color="white",
                                       face_color=_rgba(colour, 0.2), border_width=0.06)
        directions = None
        if mode != "blob" and len(self.picks):
            directions = z_axes(self.picks.angles)[:, ::-1] * (config.spacing / 2 / vs)
            self.viewer.add_vectors(np.zeros((0, 2, 3)), name=axes, scale=(vs,) * 3, edge_color="white",
                                    edge_width=1.5)
        layer.metadata["tomoseg picks"] = (points, size, depth, directions)
        self._draw_picks(layer)

    def _draw_picks(self, layer) -> None:
        """A picks layer as spheres in 3D, and as the discs they cut out of each slice in 2D; its
        axes or normals (a Vectors layer), if any, from the centre of every disc."""
        points, size, depth, directions = layer.metadata["tomoseg picks"]
        if self.viewer.dims.ndisplay == 3:
            centres, sizes, index = points, np.full(len(points), size), np.arange(len(points))
        else:
            centres, sizes, index = _sphere_sections(points, size, depth)
        layer.data = centres
        layer.size = sizes
        layer.features = {"pick": index}
        axes = layer.name.replace("tomoseg picks: ", "tomoseg axes: ", 1)
        if directions is not None and axes in self.viewer.layers:
            self.viewer.layers[axes].data = np.stack([centres, directions[index]], axis=1)

    def _ndisplay_changed(self, _event=None) -> None:
        for layer in self.viewer.layers:
            if "tomoseg picks" in layer.metadata:
                self._draw_picks(layer)

    LIVE_PICK_DELAY_MS = 300
    """A changed picking option re-picks once it has rested this long (dragging a spin box re-picks once)."""

    def _live_pick(self) -> None:
        """Re-pick after the options stopped changing (debounced); the picking runs in the background,
        and a change made meanwhile re-picks once more when it ends. Never blocks the viewer."""
        if self.feature and f"tomoseg picks: {self.feature}" in self.viewer.layers:
            self._live_timer.start(self.LIVE_PICK_DELAY_MS)

    def _live_pick_now(self) -> None:
        if self.job is not None and not self.job.poll().finished:
            if self.job.name.startswith("picking "):
                self._pick_again = True  # after this one
            return  # another job (training, applying) runs: the user re-picks with Pick
        if self.feature and f"tomoseg picks: {self.feature}" in self.viewer.layers:
            self.pick()

    def _ask_export(self) -> None:
        from tomoseg.io.particle_formats import EXTENSIONS, PARTICLE_FORMATS

        kinds = ";;".join(f"{PARTICLE_FORMATS[name].help} (*{ext})" for ext, name in EXTENSIONS.items())
        path, _ = QFileDialog.getSaveFileName(self, "Export particles", "", kinds)
        if path:
            self.export(path)

    def export(self, path) -> bool:
        def act():
            from tomoseg.workflows.project import export_picks

            n = export_picks(self._need_project(), self.picks, path)
            self.say(f"wrote {n} particles to {path}")
        return self._guard(act)
