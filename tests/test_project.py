"""The annotation project behind the napari plugin (no Qt needed)."""

import numpy as np
import pytest

from tomoseg.errors import Cancelled, OutputExists, TomosegError, VoxelSizeMissing
from tomoseg.gui.jobs import Job
from tomoseg.io.mrc import header_label, write_volume
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.types import Box
from tomoseg.workflows.project import Project


@pytest.fixture
def tomo_path(tmp_path, small_pre):
    path = tmp_path / "pre.mrc"
    write_volume(path, small_pre, 10.0, labels=(header_label("preprocess", PreprocessConfig().describe()),))
    return path


def test_project_round_trip_keeps_features_boxes_and_masks(tmp_path, tomo_path):
    p = Project.create(tmp_path / "proj", tomo_path)
    p.add_feature("membrane")
    p.add_feature("ribosome", "#ff0000")
    p.add_box("ribosome", 40, 50, 10, True)
    p.add_box("ribosome", 80, 70, 12, False)
    p.masks[10, 45:55, 35:45] = p.features["ribosome"].value
    p.save()
    q = Project.open(tmp_path / "proj")
    assert list(q.features) == ["membrane", "ribosome"]
    assert q.features["ribosome"].colour == "#ff0000" and q.features["ribosome"].value == 2
    assert q.features["ribosome"].boxes == p.features["ribosome"].boxes
    np.testing.assert_array_equal(q.masks, p.masks)
    assert q.volume.voxel_size == pytest.approx(10.0)


def test_boxes_undo_move_and_bounds(tmp_path, tomo_path):
    p = Project.create(tmp_path / "proj", tomo_path)
    p.add_feature("f")
    a = p.add_box("f", 40, 40, 3, True)
    b = p.add_box("f", 90, 90, 3, False)
    assert p.nearest_box("f", 60, 45, 3) == a and p.nearest_box("f", 40, 40, 4) is None
    moved = p.move_box("f", a, 50, 44)
    p.remove_box("f", b)
    with pytest.raises(TomosegError, match="sticks out"):
        p.add_box("f", 10, 40, 3, True)  # a 64-pixel tile centred at x=10 leaves the slice
    assert p.features["f"].boxes == [moved]
    assert "restored" in p.undo() and "moved" in p.undo() and "removed" in p.undo() and "removed" in p.undo()
    assert p.features["f"].boxes == [] and p.undo() is None


def test_trainset_needs_painted_positive_boxes(tmp_path, tomo_path, small_tomo):
    p = Project.create(tmp_path / "proj", tomo_path)
    p.add_feature("particle")
    with pytest.raises(TomosegError, match="no positive box"):
        p.trainset("particle")
    z, y, x = np.argwhere(small_tomo.labels == 3)[len(np.argwhere(small_tomo.labels == 3)) // 2]
    x, y = int(np.clip(x, 32, 96)), int(np.clip(y, 32, 96))
    p.add_box("particle", x, y, int(z), True)
    p.add_box("particle", 64, 64, 0, False)
    with pytest.raises(TomosegError, match="holds no painted"):
        p.trainset("particle")
    p.masks[z][small_tomo.labels[z] == 3] = p.features["particle"].value
    ts = p.trainset("particle")
    assert ts.n_positive == 1 and ts.n_negative == 1 and ts.masks[0].sum() > 0
    assert ts.preprocessing == PreprocessConfig().to_dict() and ts.voxel_size == pytest.approx(10.0)


def test_bad_project_input_is_one_clear_error(tmp_path, tomo_path):
    with pytest.raises(TomosegError, match="not a tomoseg project"):
        Project.open(tmp_path)
    p = Project.create(tmp_path / "proj", tomo_path)
    with pytest.raises(TomosegError, match="already holds a project"):
        Project.create(tmp_path / "proj", tomo_path)
    with pytest.raises(TomosegError, match="feature name"):
        p.add_feature("../evil")
    p.add_feature("a")
    with pytest.raises(TomosegError, match="exists already"):
        p.add_feature("a")


def test_job_reports_progress_result_and_cancel():
    def work(progress):
        for i in range(1000):
            progress(i + 1, 1000, "step")
            import time
            time.sleep(0.001)
        return "done"

    job = Job("count", work).start()
    state = job.wait()
    assert state.finished and state.result == "done" and state.done == 1000
    job = Job("count", work).start()
    job.cancel()
    state = job.wait()
    assert state.finished and isinstance(state.error, Cancelled) and state.done < 1000


def test_a_cli_training_set_becomes_boxes_and_masks(tmp_path, tomo_path, particle_trainset):
    p = Project.create(tmp_path / "proj", tomo_path)
    feature = p.import_trainset(particle_trainset)
    assert feature.name == particle_trainset.name
    assert feature.n_positive == particle_trainset.n_positive
    assert feature.n_negative == particle_trainset.n_negative
    again = p.trainset(feature.name)  # the painted masks give back the same tiles and masks
    np.testing.assert_array_equal(again.masks, particle_trainset.masks)
    np.testing.assert_array_equal(again.tiles, particle_trainset.tiles)


def test_a_tomogram_without_voxel_size_takes_the_given_one(tmp_path, small_pre, tomo_path):
    import mrcfile

    raw = tmp_path / "novox.mrc"
    write_volume(raw, small_pre, 1.0)
    with mrcfile.open(raw, mode="r+") as m:
        m.voxel_size = 0.0
    with pytest.raises(VoxelSizeMissing, match="novox.mrc: the header has no voxel size"):
        Project.create(tmp_path / "proj", raw)
    assert not (tmp_path / "proj").exists()
    p = Project.create(tmp_path / "proj", raw, voxel_size=8.0)
    assert p.volume.voxel_size == 8.0 and p.voxel_size_given == 8.0
    p.add_feature("membrane")
    p.save()
    q = Project.open(tmp_path / "proj")  # the given size is remembered, not asked again
    assert q.volume.voxel_size == 8.0 and q.voxel_size_given == 8.0
    q.use_tomogram(tomo_path)  # a file with its own voxel size: that one counts
    assert q.volume.voxel_size == pytest.approx(10.0) and q.voxel_size_given is None


def test_the_command_line_builds_and_trains_a_project_without_a_display(tmp_path, tomo_path, small_tomo, capsys):
    """tomoseg project: create, import boxes and masks, show, export the set, train (no Qt)."""
    from tomoseg.cli.main import main
    from tomoseg.io.boxes import write_boxes
    from tomoseg.io.model_file import load_model
    from tomoseg.io.trainset_file import load_trainset
    from tomoseg.steps.trainset import choose_boxes

    boxes = choose_boxes(small_tomo.labels, 3, n_positive=4, n_negative=8, seed=1)
    write_boxes(tmp_path / "boxes.csv", boxes)
    write_volume(tmp_path / "labels.mrc", small_tomo.labels.astype(np.int16), 10.0)
    proj = str(tmp_path / "proj")
    assert main(["project", "create", proj, str(tomo_path), "--feature", "membrane"]) == 0
    assert main(["project", "import-boxes", proj, "particle", str(tmp_path / "boxes.csv")]) == 0
    assert main(["project", "import-boxes", proj, "particle", str(tmp_path / "boxes.csv")]) == 0  # no duplicates
    assert main(["project", "import-masks", proj, "particle", str(tmp_path / "labels.mrc"), "--value", "3"]) == 0
    capsys.readouterr()
    assert main(["project", "show", proj]) == 0
    shown = capsys.readouterr().out
    painted = int((small_tomo.labels == 3).sum())
    assert "particle" in shown and "4 positive, 8 negative boxes" in shown and f"{painted} painted voxels" in shown
    assert main(["project", "trainset", proj, "particle", "-o", str(tmp_path / "p.set")]) == 0
    trainset = load_trainset(tmp_path / "p.set")
    assert trainset.n_positive == 4 and len(trainset.tiles) == 12 and trainset.name == "particle"
    # the masks in the set are the labels under each positive box
    h = trainset.tile_size // 2
    for (x, y, z), positive, mask in zip(trainset.boxes, trainset.positive, trainset.masks):
        if positive:
            np.testing.assert_array_equal(mask > 0, small_tomo.labels[z, y - h:y + h, x - h:x + h] == 3)
    assert main(["project", "train", proj, "particle", "--recipe", "fast", "--epochs", "1", "-q"]) == 0
    model = load_model(tmp_path / "proj" / "models" / "particle.model")
    assert model.name == "particle" and model.voxel_size == pytest.approx(10.0)
    # bad input: one line naming the problem, the project unchanged
    before = (tmp_path / "proj" / "project.json").read_text()
    write_boxes(tmp_path / "out.csv", [Box(2, boxes[0].y, boxes[0].z, True)])
    capsys.readouterr()
    assert main(["project", "import-boxes", proj, "particle", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "sticks out of the tomogram" in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "proj" / "project.json").read_text() == before
    assert main(["project", "train", proj, "particle", "--lr", "-1"]) == 2
    assert "--lr must be > 0" in capsys.readouterr().err
    assert main(["project", "show", str(tmp_path / "nowhere")]) == 2
    assert "not a tomoseg project" in capsys.readouterr().err


def test_the_dock_s_file_steps_import_merge_and_export(tmp_path, tomo_path, particle_model, small_pre):
    """What the dock calls: a model file becomes a feature; score maps merge by argmax above the
    threshold into merged.mrc; picks are written with the tomogram's voxel size and origin."""
    from tomoseg.io.mrc import read_volume
    from tomoseg.io.model_file import save_model
    from tomoseg.io.particles import read_particles
    from tomoseg.steps.pick import PickConfig, pick_particles
    from tomoseg.workflows.project import export_picks, import_model_file, merge_features, read_scores, save_maps

    from tomoseg.nn.model import Model

    save_model(tmp_path / "m.model", Model(particle_model.net, particle_model.amplitude, "particle", 10.0))
    p = Project.create(tmp_path / "proj", tomo_path)
    assert import_model_file(p, tmp_path / "m.model") == "particle"
    assert (tmp_path / "proj" / "models" / "particle.model").read_bytes() == (tmp_path / "m.model").read_bytes()
    assert "particle" in Project.open(tmp_path / "proj").features  # saved
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(TomosegError, match="junk.model"):
        import_model_file(p, tmp_path / "junk.model")

    with pytest.raises(TomosegError, match="no feature has a score map"):
        merge_features(p)
    p.add_feature("membrane")
    shape = small_pre.shape
    a = np.zeros(shape, np.float32)
    b = np.zeros(shape, np.float32)
    a[:, :20] = 2.0   # particle strong at the top
    b[:, :40] = 1.5   # membrane weaker there, alone below it
    b[:, 100:] = 0.5  # below threshold: background
    for name, scores in (("particle", a), ("membrane", b)):
        p.path("scores", name).parent.mkdir(exist_ok=True)
        write_volume(p.path("scores", name), scores, 10.0)
    labels, names = merge_features(p, threshold=1.0)
    assert names == ["particle", "membrane"]
    assert (labels[:, :20] == 1).all() and (labels[:, 20:40] == 2).all() and (labels[:, 40:] == 0).all()
    np.testing.assert_array_equal(read_volume(p.path("merged")).data, labels)
    np.testing.assert_array_equal(read_scores(p, "membrane"), b)
    # calibrated: each map divided by its scale first (here membrane x 2 -> wins everywhere it is set)
    labels, _ = merge_features(p, 1.0, calibrate=True, scale_of=lambda path: 0.5 if "membrane" in path.name else 1.0)
    assert (labels[:, :40] == 2).all() and (labels[:, 100:] == 2).all()
    # Save maps: OME-Zarr copies with the labels; refused before writing anything where one exists
    out = tmp_path / "saved"
    out.mkdir()
    (out / "merged.zarr").mkdir()
    with pytest.raises(OutputExists, match="merged.zarr: exists already"):
        save_maps(p, out)
    assert sorted(f.name for f in out.iterdir()) == ["merged.zarr"]
    assert [f.name for f in save_maps(p, out, overwrite=True)] == ["particle.zarr", "membrane.zarr", "merged.zarr"]
    np.testing.assert_array_equal(np.asarray(read_volume(out / "membrane.zarr").data[:]), b)
    assert read_volume(out / "merged.zarr").label_value("label 2") == "membrane"

    blob = np.zeros(shape, np.float32)
    blob[10:14, 60:64, 60:64] = 2.0
    picks = pick_particles(blob, 10.0, PickConfig(threshold=1.0, diameter=40.0))
    with pytest.raises(TomosegError, match="Pick first"):
        export_picks(p, None, tmp_path / "picks.star")
    assert export_picks(p, picks, tmp_path / "picks.star") == len(picks) == 1
    back, _ = read_particles(tmp_path / "picks.star", info=None)
    np.testing.assert_allclose(back.xyz, picks.xyz, atol=1e-3)
