"""copick projects (workflows/copick): batch --copick end to end on a local project built with copick's API."""

import json

import numpy as np
import pytest

copick = pytest.importorskip("copick")


@pytest.fixture
def project(tmp_path, small_pre, particle_model):
    """A filesystem copick project with two runs (TS_001, TS_002) holding a 'denoised' tomogram at 10 A,
    pickable objects 'particle' (label 3) and 'membrane' (label 1), and the particle model file."""
    from tomoseg.io.model_file import save_model
    from tomoseg.nn.model import Model
    from tomoseg.steps.preprocess import PreprocessConfig

    config = {"config_type": "filesystem", "name": "test", "description": "tomoseg test", "version": "0.5.0",
              "pickable_objects": [
                  {"name": "particle", "is_particle": True, "label": 3, "color": [0, 255, 0, 255], "radius": 110},
                  {"name": "membrane", "is_particle": False, "label": 1, "color": [255, 0, 0, 255]}],
              "overlay_root": f"local://{tmp_path}/overlay", "static_root": f"local://{tmp_path}/static",
              "overlay_fs_args": {"auto_mkdir": True}, "static_fs_args": {"auto_mkdir": True}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    root = copick.from_file(str(tmp_path / "config.json"))
    for name, data in (("TS_001", small_pre), ("TS_002", small_pre[:, ::-1].copy())):
        run = root.new_run(name)
        run.new_voxel_spacing(10.0).new_tomogram("denoised").from_numpy(data.astype(np.float32))
    save_model(tmp_path / "particle.model", Model(particle_model.net, particle_model.amplitude, "particle", 10.0,
                                                  PreprocessConfig().to_dict()))
    return tmp_path


def test_batch_reads_runs_and_writes_segmentations_and_picks_back(project, small_tomo, capsys):
    from tomoseg.cli.main import main

    d = project
    args = ["batch", "--copick", str(d / "config.json"), "--runs", "TS_001", "TS_002", "--tomo-type", "denoised",
            "--voxel-spacing", "10", "-m", str(d / "particle.model"), "--pick", "particle", "-o", str(d / "out"),
            "--diameter", "220", "--force", "-q"]
    assert main(args + ["--user-id", "tomoseg"]) == 0
    root = copick.from_file(str(d / "config.json"))
    run = root.get_run("TS_001")
    segs = run.get_segmentations(name="particle", user_id="tomoseg", session_id="0")
    assert len(segs) == 1 and segs[0].voxel_size == 10.0 and not segs[0].is_multilabel
    mask = segs[0].numpy()
    assert mask.shape == small_tomo.labels.shape and set(np.unique(mask)) <= {0, 1}
    truth = small_tomo.labels == 3
    assert (mask[truth] > 0).mean() > 0.5 and (mask[~truth] > 0).mean() < 0.05  # it is the particle map
    picks = run.get_picks(object_name="particle", user_id="tomoseg", session_id="0")
    assert len(picks) == 1
    xyz, transforms = picks[0].numpy()
    assert len(xyz) > 5 and transforms.shape == (len(xyz), 4, 4)
    centres = small_tomo.particles * 10.0  # planted centres, voxels x y z -> Angstrom
    near = np.linalg.norm(xyz[:, None] - centres[None], axis=-1).min(axis=1)
    assert np.median(near) <= 60  # positions in Angstrom, on the planted particles
    assert len(root.get_run("TS_002").get_picks(object_name="particle", user_id="tomoseg")) == 1

    # a second user: new entries beside the first's, which stay as they were
    before = segs[0].numpy().copy()
    assert main(args + ["--user-id", "anna", "-o", str(d / "out2")]) == 0
    root = copick.from_file(str(d / "config.json"))
    run = root.get_run("TS_001")
    assert {s.user_id for s in run.get_segmentations(name="particle")} == {"tomoseg", "anna"}
    np.testing.assert_array_equal(run.get_segmentations(name="particle", user_id="tomoseg")[0].numpy(), before)
    # the same user and session again: refused in one line unless --overwrite
    capsys.readouterr()
    assert main(args + ["--user-id", "anna", "-o", str(d / "out3")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tomoseg: warning")]
    assert len(err) == 1 and "exists already for this user and session" in err[0]
    assert not (d / "out3").exists()  # refused before any work
    # ... but the same batch run again (its own folder recorded writing them) replaces its own entries
    assert main(args + ["--user-id", "anna", "-o", str(d / "out2")]) == 0
    root = copick.from_file(str(d / "config.json"))
    assert len(root.get_run("TS_001").get_segmentations(name="particle", user_id="anna")) == 1


def test_missing_runs_spacings_types_and_objects_are_one_line(project, capsys):
    from tomoseg.cli.main import main

    d = project
    base = ["batch", "--copick", str(d / "config.json"), "-m", str(d / "particle.model"), "-o", str(d / "out")]
    for extra, said in ((["--runs", "TS_999"], "no run 'TS_999'"),
                        (["--voxel-spacing", "7"], "has no voxel spacing 7 A (it has: 10)"),
                        (["--tomo-type", "wbp"], "has no 'wbp' tomogram at 10 A (types: denoised)"),
                        (["--pick", "ribosome"], "no pickable object 'ribosome'"),
                        (["--user-id", "a_b"], "use letters, digits and '-'")):
        capsys.readouterr()
        assert main(base + extra) == 2, extra
        err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tomoseg: warning")]
        assert len(err) == 1 and said in err[0], err
    # a model of a feature the project has no pickable object for: copick would refuse its segmentation
    from tomoseg.io.model_file import load_model, save_model

    m = load_model(d / "particle.model")
    save_model(d / "vesicle.model", type(m)(m.net, m.amplitude, "vesicle", m.voxel_size, m.preprocessing))
    capsys.readouterr()
    assert main(base[:4] + [str(d / "vesicle.model"), "-o", str(d / "out")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tomoseg: warning")]
    assert len(err) == 1 and "no pickable object 'vesicle' for the segmentations of that feature" in err[0], err
    capsys.readouterr()
    assert main(["batch", "--copick", str(d / "nothere.json"), "-m", str(d / "particle.model"), "-o", str(d / "o")]) == 2
    assert "nothere.json: no such copick config file" in capsys.readouterr().err
    assert not (d / "out").exists()


def test_trainset_from_a_copick_segmentation_or_picks(project, small_tomo, capsys):
    """trainset --copick: the masks of the tiles are the segmentation's (or spheres at the picks)."""
    from tomoseg.cli.main import main
    from tomoseg.io.trainset_file import load_trainset

    d = project
    root = copick.from_file(str(d / "config.json"))
    run = root.get_run("TS_001")
    truth = (small_tomo.labels == 3).astype(np.uint8)
    run.new_segmentation(voxel_size=10.0, name="particle", session_id="1", user_id="anna").from_numpy(truth)
    centres = small_tomo.particles * 10.0
    run.new_picks(object_name="particle", session_id="1", user_id="anna").from_numpy(centres)
    base = ["trainset", "--copick", str(d / "config.json"), "--run", "TS_001", "--positives", "4", "--negatives", "3"]
    assert main(base + ["--segmentation", "particle", "-o", str(d / "s.set"), "-q"]) == 0
    ts = load_trainset(d / "s.set")
    assert ts.name == "particle" and ts.n_positive == 4 and ts.n_negative == 3 and ts.voxel_size == 10.0
    h = ts.tile_size // 2
    for (x, y, z), positive, mask in zip(ts.boxes, ts.positive, ts.masks):
        np.testing.assert_array_equal(mask > 0, truth[z, y - h:y + h, x - h:x + h] > 0)
        assert positive == bool(truth[z, y - h:y + h, x - h:x + h].any())  # negatives are free of the feature
    assert main(base + ["--picks", "particle", "--negatives", "0", "-o", str(d / "p.set"), "-q"]) == 0  # spheres fill it
    ts = load_trainset(d / "p.set")
    overlap = [(m > 0).sum() and ((m > 0) & (truth[z, y - h:y + h, x - h:x + h] > 0)).sum() / (m > 0).sum()
               for (x, y, z), p, m in zip(ts.boxes, ts.positive, ts.masks) if p]
    assert np.mean(overlap) > 0.6  # spheres of the object's radius at the planted centres cover the particles
    capsys.readouterr()
    assert main(base + ["--segmentation", "membrane", "-o", str(d / "m.set")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("tomoseg: warning")]
    assert len(err) == 1 and "has no segmentation 'membrane' at 10 A" in err[0]
    assert not (d / "m.set").exists()


def test_segmentations_are_written_slab_by_slab_as_copick_writes_them(project, monkeypatch):
    """write_segmentation streams a memory-mapped map into a copick segmentation: the same voxels and the same
    OME-Zarr metadata as copick's own from_numpy, whatever the slab size."""
    from tomoseg.workflows import copick as ours

    monkeypatch.setattr(ours, "SEGMENTATION_CHUNKS", (5, 16, 16))  # several slabs and chunks on a small map
    rng = np.random.default_rng(0)
    scores = rng.normal(1.0, 0.5, (23, 40, 36)).astype(np.float32)
    root = copick.from_file(str(project / "config.json"))
    run = root.get_run("TS_001")
    seg = run.new_segmentation(voxel_size=10.0, name="membrane", session_id="0", is_multilabel=False, user_id="t")
    ours.write_segmentation(seg, scores, 10.0, lambda block: block >= 1.0)
    theirs = run.new_segmentation(voxel_size=10.0, name="membrane", session_id="0", is_multilabel=False, user_id="c")
    theirs.from_numpy((scores >= 1.0).astype(np.uint8))
    root = copick.from_file(str(project / "config.json"))
    run = root.get_run("TS_001")
    mine, copicks = (run.get_segmentations(name="membrane", user_id=u)[0] for u in ("t", "c"))
    np.testing.assert_array_equal(mine.numpy(), copicks.numpy())
    assert mine.numpy().dtype == copicks.numpy().dtype == np.uint8
    import zarr

    ms_mine, ms_theirs = (zarr.open(s.zarr()).attrs["multiscales"][0] for s in (mine, copicks))
    assert ms_mine["datasets"] == ms_theirs["datasets"] and ms_mine["axes"] == ms_theirs["axes"]


def test_write_run_thresholds_on_the_calibrated_scale_and_maps_merged_labels_to_objects(project):
    """write_run: a feature's segmentation is its map / calibration scale >= threshold; the merged map's
    values become the pickable objects' labels."""
    from tomoseg.io.mrc import write_volume
    from tomoseg.workflows.copick import MERGED_NAME, write_run

    rng = np.random.default_rng(3)
    shape = (70, 30, 20)  # 70 slices: two slabs of 64
    membrane = rng.uniform(0, 4, shape).astype(np.float32)
    particle = rng.uniform(0, 2, shape).astype(np.float32)
    merged = rng.integers(0, 3, shape).astype(np.int8)
    for name, data in (("m.mrc", membrane), ("p.mrc", particle), ("labels.mrc", merged)):
        write_volume(project / name, data, 10.0)
    summary = {"score_maps": [str(project / "m.mrc"), str(project / "p.mrc")], "labels": str(project / "labels.mrc"),
               "calibration": {"membrane": 2.0}}
    written = write_run(project / "config.json", "TS_002", summary, ("membrane", "particle"), 1.0, "tomoseg", "7")
    assert written["segmentations"] == ["membrane", "particle", MERGED_NAME]
    run = copick.from_file(str(project / "config.json")).get_run("TS_002")
    seg = run.get_segmentations(name="membrane", user_id="tomoseg", session_id="7")[0].numpy()
    np.testing.assert_array_equal(seg, (membrane / np.float32(2.0) >= 1.0).astype(np.uint8))
    seg = run.get_segmentations(name="particle", user_id="tomoseg", session_id="7")[0].numpy()
    np.testing.assert_array_equal(seg, (particle >= 1.0).astype(np.uint8))
    multi = run.get_segmentations(name=MERGED_NAME, user_id="tomoseg", session_id="7")[0]
    assert multi.is_multilabel
    lut = np.array([0, 1, 3], dtype=np.uint8)  # merged 1 = membrane -> object label 1, 2 = particle -> 3
    np.testing.assert_array_equal(multi.numpy(), lut[merged])
