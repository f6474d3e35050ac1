"""The dock's panels: each builds its controls and wires them to the dock's actions.

The dock (:class:`tomoseg.gui.widget.TomosegWidget`) composes them and reads their controls as its own.
"""

from __future__ import annotations

from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
)

from tomoseg.ops.context import MAX_CONTEXT
from tomoseg.steps.picking_modes import PICKING_MODES
from tomoseg.steps.recipes import RECIPES
from tomoseg.steps.suggest import STRATEGIES, SuggestConfig


def button(text: str, slot, tip: str = "") -> QPushButton:
    b = QPushButton(text)
    b.clicked.connect(lambda _=False: slot())
    b.setToolTip(tip)
    return b


def loss_canvas():
    """A small matplotlib canvas for the training loss, and its axes (None, None without matplotlib's Qt)."""
    try:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None, None
    fig = Figure(figsize=(3, 1.6), tight_layout=True)
    axes = fig.add_subplot(111)
    canvas = FigureCanvasQTAgg(fig)
    canvas.setMinimumHeight(120)
    return canvas, axes


class ProjectPanel(QGroupBox):
    """New, Open, Preprocess and imports: the project the dock works on.
    Its controls are the dock's too (``dock.threshold`` ...)."""

    CONTROLS = ("project_label",)

    def __init__(self, dock) -> None:
        super().__init__("Project")
        rows = QVBoxLayout(self)
        row = QHBoxLayout()
        self.project_label = QLabel("no project")
        row.addWidget(self.project_label)
        row.addWidget(button("New...", dock._ask_new, "choose a tomogram and an empty project folder"))
        row.addWidget(button("Open...", dock._ask_open, "open a project folder"))
        rows.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(button("Preprocess", dock.preprocess,
                                   "low-pass 20 A, high-pass 4000 A, normalise, clamp 3 sd (as the CLI)"))
        row.addWidget(button("Import model...", dock._ask_import,
                                   "a model trained with 'tomoseg train': becomes a feature"))
        row.addWidget(button("Import training set...", dock._ask_import_set,
                                   "boxes and masks from 'tomoseg trainset' on this tomogram"))
        rows.addLayout(row)


class FeaturePanel(QGroupBox):
    """The active feature, adding one, the box and paint modes, the brush.
    Its controls are the dock's too (``dock.threshold`` ...)."""

    CONTROLS = ("box_count", "brush", "feature_colour", "feature_combo", "feature_name", "mode_buttons")

    def __init__(self, dock) -> None:
        super().__init__("Feature")
        form = QFormLayout(self)
        self.feature_combo = QComboBox()
        self.feature_combo.currentTextChanged.connect(lambda _t: (dock._refresh_layers(), dock._show_suggestions()))
        self.feature_name = QLineEdit()
        self.feature_name.setPlaceholderText("name, e.g. membrane")
        add = QHBoxLayout()
        self.feature_colour = QLineEdit()
        self.feature_colour.setPlaceholderText("colour (auto)")
        self.feature_colour.setMaximumWidth(110)
        add.addWidget(self.feature_name)
        add.addWidget(self.feature_colour)
        add.addWidget(button("Add", lambda: dock.add_feature(self.feature_name.text(),
                                                                   self.feature_colour.text() or None)))
        form.addRow("active", self.feature_combo)
        form.addRow("new", add)
        modes = QHBoxLayout()
        self.mode_buttons = {}
        for mode, text in (("positive", "+ box (P)"), ("negative", "- box (N)"), ("paint", "paint (B)"),
                           ("off", "off (Esc)")):
            b = button(text, lambda m=mode: dock.set_mode(m))
            b.setCheckable(True)
            self.mode_buttons[mode] = b
            modes.addWidget(b)
        form.addRow(modes)
        self.brush = QSpinBox()
        self.brush.setRange(1, 40)
        self.brush.setValue(5)
        self.brush.valueChanged.connect(lambda v: dock._masks_layer() and setattr(dock._masks_layer(), "brush_size", v))
        form.addRow("brush", self.brush)
        self.box_count = QLabel("")
        form.addRow(self.box_count)


class TrainPanel(QGroupBox):
    """Training options, Train, Preview, Apply, Merge, 3D, Save maps, the loss curve.
    Its controls are the dock's too (``dock.threshold`` ...)."""

    CONTROLS = ("_loss_axes", "_loss_canvas", "context", "epochs", "jitter", "loss_label", "map_format", "recipe", "tta")

    def __init__(self, dock) -> None:
        super().__init__("Train and apply")
        form = QFormLayout(self)
        self.recipe = QComboBox()
        self.recipe.addItems([name for name in RECIPES if name != "fine-tune"])  # that one: Fine-tune below
        self.epochs = QSpinBox()
        self.epochs.setRange(0, 200)
        self.epochs.setSpecialValueText("recipe's")
        self.context = QSpinBox()
        self.context.setRange(0, MAX_CONTEXT)
        self.context.setSpecialValueText("none (2D)")
        self.context.setToolTip("slab context (2.5D): the network sees this many slices above and below each "
                                "slice it annotates (trainset --context)")
        self.jitter = QDoubleSpinBox()
        self.jitter.setRange(0.0, 3.0)
        self.jitter.setSingleStep(0.5)
        self.jitter.setSpecialValueText("none")
        self.jitter.setToolTip("augmentation imitating other imaging conditions while training (train --imaging-jitter)")
        self.tta = QSpinBox()
        self.tta.setRange(1, 8)
        self.tta.setSpecialValueText("none")
        self.tta.setToolTip("test-time augmentation: average the map over this many of the 8 rotations by 90 degrees "
                            "and flips (apply --tta; N times the time)")
        form.addRow("recipe", self.recipe)
        form.addRow("epochs", self.epochs)
        form.addRow("slab context", self.context)
        form.addRow("imaging jitter", self.jitter)
        form.addRow("test-time aug.", self.tta)
        self.map_format = QComboBox()
        self.map_format.addItems([".zarr (OME-Zarr)", ".mrc (MRC)", ".tif (TIFF)"])
        self.map_format.setToolTip("the format Save maps... writes")
        form.addRow("maps saved as", self.map_format)
        buttons = QHBoxLayout()
        buttons.addWidget(button("Train", dock.train, "train the active feature's network"))
        buttons.addWidget(button("Preview slice", dock.preview, "apply the network to the current slice"))
        form.addRow(buttons)
        buttons = QHBoxLayout()
        buttons.addWidget(button("Apply", dock.apply, "score the whole tomogram"))
        buttons.addWidget(button("Merge", dock.merge, "one label map from all features' scores"))
        buttons.addWidget(button("3D", dock.show_3d, "isosurfaces of the score maps at threshold 1"))
        buttons.addWidget(button("Save maps...", dock._ask_save_maps,
                                 "copies of the score maps and the merged map in a folder: OME-Zarr (with a pyramid, "
                                 "for napari, the Data Portal's tools, copick), MRC or TIFF"))
        form.addRow(buttons)
        self.loss_label = QLabel("")
        form.addRow(self.loss_label)
        self._loss_canvas, self._loss_axes = loss_canvas()
        if self._loss_canvas is not None:
            form.addRow(self._loss_canvas)


class SuggestPanel(QGroupBox):
    """Where to click next: Suggest tiles, answer them (J next, Y positive, X negative, K skip), Fine-tune.
    Its controls are the dock's too."""

    CONTROLS = ("suggest_strategy", "suggest_n", "suggest_label")

    def __init__(self, dock) -> None:
        super().__init__("Where to click next")
        form = QFormLayout(self)
        self.suggest_strategy = QComboBox()
        self.suggest_strategy.addItems(list(STRATEGIES))
        self.suggest_strategy.setCurrentText(SuggestConfig().strategy)
        self.suggest_strategy.setToolTip("uncertain: many pixels near the threshold; disagree: the turned slice "
                                         "scores otherwise; false-positive: detections where another feature's "
                                         "network fires or far from positive boxes; mixed: those in turn; random")
        self.suggest_n = QSpinBox()
        self.suggest_n.setRange(1, 50)
        self.suggest_n.setValue(5)
        form.addRow("strategy", self.suggest_strategy)
        form.addRow("tiles", self.suggest_n)
        buttons = QHBoxLayout()
        buttons.addWidget(button("Suggest", dock.suggest, "propose tiles whose label would most help the network"))
        buttons.addWidget(button("Next (J)", dock.next_suggestion, "go to the next tile to answer"))
        buttons.addWidget(button("Fine-tune", dock.fine_tune,
                                 "continue the network on the boxes now, in seconds (train --init)"))
        form.addRow(buttons)
        buttons = QHBoxLayout()
        buttons.addWidget(button("Positive (Y)", lambda: dock.answer("positive"), "it holds the feature: a positive "
                                                                                  "box (then paint it)"))
        buttons.addWidget(button("Negative (X)", lambda: dock.answer("negative"), "no feature in it: a negative box"))
        buttons.addWidget(button("Skip (K)", lambda: dock.answer("skip"), "leave it out"))
        form.addRow(buttons)
        self.suggest_label = QLabel("")
        self.suggest_label.setWordWrap(True)
        form.addRow(self.suggest_label)


class ParticlesPanel(QGroupBox):
    """Picking mode and options (live: a change re-picks), Pick, Export.
    Its controls are the dock's too (``dock.threshold`` ...)."""

    CONTROLS = ("calibrate", "diameter", "min_distance", "min_size", "pick_mode", "spacing", "threshold")

    def __init__(self, dock) -> None:
        super().__init__("Particles")
        form = QFormLayout(self)
        self.pick_mode = QComboBox()
        self.pick_mode.addItems(list(PICKING_MODES))
        self.pick_mode.setToolTip("; ".join(f"{m.name}: {m.help}" for m in PICKING_MODES.values()))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.05, 20)
        self.threshold.setSingleStep(0.1)
        self.threshold.setValue(1.0)
        self.diameter = QDoubleSpinBox()
        self.diameter.setRange(10, 5000)
        self.diameter.setValue(250)
        self.diameter.setSuffix(" A")
        self.min_size = QDoubleSpinBox()
        self.min_size.setRange(0, 1e9)
        self.min_size.setDecimals(0)
        self.min_size.setSingleStep(1e5)
        self.min_size.setSpecialValueText("from diameter")
        self.min_size.setSuffix(" A^3")
        self.min_distance = QDoubleSpinBox()
        self.min_distance.setRange(0, 5000)
        self.min_distance.setSpecialValueText("from diameter")
        self.min_distance.setSuffix(" A")
        self.spacing = QDoubleSpinBox()
        self.spacing.setRange(0, 5000)
        self.spacing.setSpecialValueText("mode's default")
        self.spacing.setSuffix(" A")
        self.spacing.setToolTip("filament and membrane: distance between points")
        for spin in (self.threshold, self.diameter, self.min_size, self.min_distance, self.spacing):
            spin.valueChanged.connect(lambda _v: dock._live_pick())
        self.pick_mode.currentTextChanged.connect(dock._pick_mode_changed)
        self.calibrate = QCheckBox("calibrate merge and picks to this tomogram")
        self.calibrate.setToolTip("merge and pick each map on its network's training scale, measured from the map's "
                                  "own scores: for a tomogram imaged otherwise than the training one "
                                  "(merge/pick --calibrate)")
        self.calibrate.toggled.connect(lambda _v: dock._live_pick())
        form.addRow("mode", self.pick_mode)
        form.addRow("threshold", self.threshold)
        form.addRow(self.calibrate)
        form.addRow("diameter", self.diameter)
        form.addRow("min size", self.min_size)
        form.addRow("min distance", self.min_distance)
        form.addRow("spacing", self.spacing)
        buttons = QHBoxLayout()
        buttons.addWidget(button("Pick", dock.pick))
        buttons.addWidget(button("Export...", dock._ask_export, "RELION STAR, CSV, Dynamo, IMOD or EMAN2 JSON"))
        form.addRow(buttons)
