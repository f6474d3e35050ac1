"""OME-Zarr volumes (io/omezarr): round trips, multiscale levels, damaged stores, streaming apply with resume."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tomoseg.errors import Cancelled, TomosegError
from tomoseg.io.mrc import read_volume, write_volume

zarr = pytest.importorskip("zarr")


def test_mrc_and_omezarr_round_trip_data_voxel_size_origin_and_labels(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(40, 150, 130)).astype(np.float32)
    write_volume(tmp_path / "a.zarr", data, 12.5, origin=(1.0, 2.0, 3.0), labels=("tomoseg feature: membrane",))
    v = read_volume(tmp_path / "a.zarr")
    assert v.data.shape == data.shape and v.voxel_size == 12.5 and v.origin == (1.0, 2.0, 3.0)
    assert v.label_value("feature") == "membrane"
    np.testing.assert_array_equal(v.data[5:9], data[5:9])  # read slab by slab
    write_volume(tmp_path / "a.mrc", np.asarray(v.data[:]), v.voxel_size, v.origin, v.labels)
    m = read_volume(tmp_path / "a.mrc")
    np.testing.assert_array_equal(np.asarray(m.data), data)
    assert (m.voxel_size, m.origin, m.labels) == (12.5, (1.0, 2.0, 3.0), v.labels)
    # NGFF 0.4 metadata that other tools read: axes in angstrom, scale and translation z, y, x, a pyramid
    attrs = json.loads((tmp_path / "a.zarr" / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    first = ms["datasets"][0]["coordinateTransformations"]
    assert first == [{"type": "scale", "scale": [12.5] * 3}, {"type": "translation", "translation": [3.0, 2.0, 1.0]}]
    assert len(ms["datasets"]) == 2  # 150 -> 75 voxels; the next would be below 64
    # a label map keeps its integers at every level (every second voxel, not means)
    labels = (data > 1).astype(np.int8)
    write_volume(tmp_path / "l.zarr", labels, 12.5)
    level1 = zarr.open_array(str(tmp_path / "l.zarr" / "1"), mode="r")
    assert level1.dtype == np.int8 and np.array_equal(level1[:], labels[::2, ::2, ::2])


def test_a_multiscale_store_is_read_at_the_level_whose_voxel_size_matches(tmp_path):
    data = np.random.default_rng(1).normal(size=(64, 160, 160)).astype(np.float32)
    write_volume(tmp_path / "p.zarr", data, 10.0, origin=(0.0, 0.0, 0.0))
    with pytest.warns(UserWarning, match="level 1 \\(20 A per voxel\\)"):
        v = read_volume(tmp_path / "p.zarr", near_voxel_size=20.0)
    assert v.voxel_size == 20.0 and v.data.shape == (32, 80, 80)
    np.testing.assert_allclose(v.data[0, 0, 0], data[:2, :2, :2].mean(), rtol=1e-5)
    assert v.origin == (5.0, 5.0, 5.0)  # a 2 x 2 x 2 mean sits at its voxels' centre
    assert read_volume(tmp_path / "p.zarr", near_voxel_size=13.0).voxel_size == 10.0  # no match: level 0


def test_damaged_or_foreign_stores_get_one_clear_line(tmp_path):
    data = np.random.default_rng(2).normal(size=(20, 70, 70)).astype(np.float32)
    write_volume(tmp_path / "ok.zarr", data, 10.0)
    no_attrs = tmp_path / "noattrs.zarr"
    shutil.copytree(tmp_path / "ok.zarr", no_attrs)
    (no_attrs / ".zattrs").unlink()
    with pytest.raises(TomosegError, match="noattrs.zarr: not an OME-Zarr image \\(no .zattrs or zarr.json\\)"):
        read_volume(no_attrs)
    missing = tmp_path / "missing.zarr"
    shutil.copytree(tmp_path / "ok.zarr", missing)
    (missing / "0" / "1" / "0" / "0").unlink()  # one chunk of level 0 lost
    with pytest.raises(TomosegError, match="missing.zarr: 1 of 2 chunks of level 0 are missing"):
        read_volume(missing)
    cut = tmp_path / "cut.zarr"
    shutil.copytree(tmp_path / "ok.zarr", cut)
    (cut / "0" / "1" / "0" / "0").write_bytes((tmp_path / "ok.zarr" / "0" / "1" / "0" / "0").read_bytes()[:30])
    v = read_volume(cut)  # chunks are decoded when read: apply meets it slab by slab
    np.testing.assert_array_equal(v.data[:16], data[:16])
    with pytest.raises(TomosegError, match="cut.zarr: a chunk of level 0 cannot be read .*a truncated copy"):
        v.data[16:]
    cplx = tmp_path / "complex.zarr"
    shutil.copytree(tmp_path / "ok.zarr", cplx)
    shutil.rmtree(cplx / "0")
    zarr.open_group(str(cplx), mode="a").create_dataset("0", shape=(4, 8, 8), dtype=np.complex64)
    with pytest.raises(TomosegError, match="complex.zarr: data type complex64 is not a volume's"):
        read_volume(cplx)
    with pytest.raises(TomosegError, match="nowhere.zarr: no such file or folder"):
        read_volume(tmp_path / "nowhere.zarr")


def test_the_command_line_refuses_a_damaged_store_in_one_line(tmp_path, capsys):
    from tomoseg.cli.main import main

    bad = tmp_path / "bad.zarr"
    bad.mkdir()
    assert main(["preprocess", str(bad), "-o", str(tmp_path / "pre.zarr")]) == 2
    err = capsys.readouterr().err
    assert "bad.zarr: not an OME-Zarr image" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "pre.zarr").exists() and not list(tmp_path.glob(".pre.zarr*"))


def test_apply_streams_omezarr_to_omezarr_and_resumes(tmp_path, small_pre, particle_model):
    """apply pre.zarr -> scores.zarr equals the MRC path's map; an interrupted run resumes to the same map."""
    from tomoseg.io.model_file import save_model
    from tomoseg.io.mrc import header_label
    from tomoseg.io.resumable import partial_paths
    from tomoseg.nn.model import Model
    from tomoseg.steps.preprocess import PreprocessConfig
    from tomoseg.workflows import apply_file

    pre = PreprocessConfig()
    labels = (header_label("preprocess", pre.describe()),)
    write_volume(tmp_path / "pre.zarr", small_pre, 10.0, origin=(1.0, 2.0, 3.0), labels=labels)
    write_volume(tmp_path / "pre.mrc", small_pre, 10.0, origin=(1.0, 2.0, 3.0), labels=labels)
    save_model(tmp_path / "p.model", Model(particle_model.net, particle_model.amplitude, "particle", 10.0,
                                           pre.to_dict()))
    apply_file(tmp_path / "p.model", tmp_path / "pre.mrc", tmp_path / "s.mrc", slices_per_batch=8)
    apply_file(tmp_path / "p.model", tmp_path / "pre.zarr", tmp_path / "s.zarr", slices_per_batch=8)
    mrc, omz = read_volume(tmp_path / "s.mrc"), read_volume(tmp_path / "s.zarr")
    np.testing.assert_array_equal(np.asarray(omz.data[:]), np.asarray(mrc.data))
    assert omz.origin == (1.0, 2.0, 3.0) and omz.label_value("feature") == "particle"

    def cancel_after_two_slabs(done, total, message=""):
        if done >= 16:
            raise Cancelled()

    with pytest.raises(Cancelled):
        apply_file(tmp_path / "p.model", tmp_path / "pre.zarr", tmp_path / "r.zarr", slices_per_batch=8,
                   progress=cancel_after_two_slabs)
    partial, journal = partial_paths(tmp_path / "r.zarr")
    assert not (tmp_path / "r.zarr").exists() and partial.is_dir() and journal.exists()
    apply_file(tmp_path / "p.model", tmp_path / "pre.zarr", tmp_path / "r.zarr", slices_per_batch=8, resume=True)
    np.testing.assert_array_equal(np.asarray(read_volume(tmp_path / "r.zarr").data[:]), np.asarray(mrc.data))
    assert not partial.exists() and not journal.exists()
    # --overwrite replaces an OME-Zarr output folder whole
    apply_file(tmp_path / "p.model", tmp_path / "pre.zarr", tmp_path / "r.zarr", slices_per_batch=8, overwrite=True)
    assert read_volume(tmp_path / "r.zarr").data.shape == small_pre.shape


# -- NGFF 0.5 (zarr v3), read with ngff-zarr; the stores are made with ngff-zarr too --------------------
def test_an_ngff05_store_reads_with_its_voxel_size_origin_and_levels(tmp_path, write_ngff05):
    data = np.random.default_rng(5).normal(size=(40, 64, 80)).astype(np.float32)
    store = write_ngff05(tmp_path / "t.zarr", data, 12.0, translation_zyx=(30.0, -20.0, 10.0), levels=2)
    v = read_volume(store)
    assert v.voxel_size == 12.0 and v.origin == (10.0, -20.0, 30.0) and v.data.shape == (40, 64, 80)
    assert v.data.size == data.size and v.data.nbytes == data.nbytes  # napari's contrast-from-data asks
    np.testing.assert_array_equal(v.data[3:7, 10:20], data[3:7, 10:20])  # slab by slab, never whole
    np.testing.assert_array_equal(np.asarray(v.data), data)
    with pytest.warns(UserWarning, match="level 1 \\(24 A per voxel\\)"):
        low = read_volume(store, near_voxel_size=24.0)
    assert low.voxel_size == 24.0 and low.data.shape == (20, 32, 40)
    np.testing.assert_allclose(low.data[0, 0, 0], data[:2, :2, :2].mean(), rtol=1e-5)  # bin-shrink level
    assert read_volume(store, voxel_size=6.0).voxel_size == 6.0


def test_preprocess_reads_an_ngff05_store_as_it_reads_the_same_mrc(tmp_path, write_ngff05):
    from tomoseg.cli.main import main

    data = np.random.default_rng(6).normal(size=(24, 48, 56)).astype(np.float32)
    write_ngff05(tmp_path / "t.zarr", data, 10.0, translation_zyx=(5.0, 6.0, 7.0))
    write_volume(tmp_path / "t.mrc", data, 10.0, origin=(7.0, 6.0, 5.0))
    assert main(["preprocess", str(tmp_path / "t.zarr"), "-o", str(tmp_path / "a.zarr")]) == 0
    assert main(["preprocess", str(tmp_path / "t.mrc"), "-o", str(tmp_path / "b.mrc")]) == 0
    a, b = read_volume(tmp_path / "a.zarr"), read_volume(tmp_path / "b.mrc")
    np.testing.assert_array_equal(np.asarray(a.data[:]), np.asarray(b.data))
    assert a.voxel_size == b.voxel_size == 10.0 and a.origin == b.origin == (7.0, 6.0, 5.0)
    assert (tmp_path / "a.zarr" / ".zattrs").exists()  # written as NGFF 0.4, what the Data Portal serves


def test_damaged_ngff05_stores_get_one_clear_line(tmp_path, monkeypatch, write_ngff05):
    data = np.random.default_rng(7).normal(size=(32, 32, 32)).astype(np.float32)
    ok = write_ngff05(tmp_path / "ok.zarr", data, 10.0)
    array_meta = ok / "scale0" / "image" / "zarr.json"

    def damaged(name, damage):
        store = tmp_path / f"{name}.zarr"
        shutil.copytree(ok, store)
        damage(store)
        return store

    bad_json = damaged("badjson", lambda s: (s / "zarr.json").write_text("{bad"))
    with pytest.raises(TomosegError, match="badjson.zarr: not a readable NGFF 0.5 image"):
        read_volume(bad_json)
    no_ome = damaged("noome", lambda s: (s / "zarr.json").write_text(json.dumps(
        {"zarr_format": 3, "node_type": "group", "attributes": {}})))
    with pytest.raises(TomosegError, match="noome.zarr: not a readable NGFF 0.5 image"):
        read_volume(no_ome)
    no_array = damaged("noarray", lambda s: (s / array_meta.relative_to(ok)).unlink())
    with pytest.raises(TomosegError, match="noarray.zarr: not a readable NGFF 0.5 image"):
        read_volume(no_array)
    chunk = Path("scale0/image/c/0/0/0")  # the first of 2 x 2 x 2 chunks of 16^3
    assert (ok / chunk).is_file()
    missing = damaged("missing", lambda s: (s / chunk).unlink())
    with pytest.warns(UserWarning, match="missing.zarr: 1 of 8 chunks of level 0 are not stored"):
        v = read_volume(missing)
    assert np.count_nonzero(np.asarray(v.data) == 0) == 16**3  # read as the fill value, said in the warning
    cut = damaged("cut", lambda s: (s / chunk).write_bytes((ok / chunk).read_bytes()[:20]))
    v = read_volume(cut)  # opens: chunks are decoded when read
    np.testing.assert_array_equal(v.data[16:], data[16:])
    with pytest.raises(TomosegError, match="cut.zarr: a chunk of level 0 cannot be read"):
        v.data[:16, :16, :16]
    with pytest.raises(NotImplementedError):  # a wrong index is the caller's error, not the store's
        v.data[[0, 1], [0, 1]]
    monkeypatch.setitem(__import__("sys").modules, "ngff_zarr", None)  # a tomoseg without the extra
    with pytest.raises(TomosegError, match="ok.zarr: an NGFF 0.5 \\(zarr v3\\) store; reading it needs ngff-zarr"):
        read_volume(ok)


def test_a_store_with_a_channel_axis_of_one_reads_as_zyx(tmp_path, write_ngff05):
    """Other tools write (c, z, y, x) images: a channel axis of length 1 is dropped, in NGFF 0.4 and 0.5."""
    from ome_zarr.io import parse_url
    from ome_zarr.writer import write_image

    data = np.random.default_rng(8).normal(size=(1, 12, 20, 24)).astype(np.float32)
    axes = [{"name": "c", "type": "channel"}] + [{"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"]
    root = zarr.group(store=parse_url(str(tmp_path / "c4.zarr"), mode="w").store)
    write_image(data, root, axes=axes, scaler=None,
                coordinate_transformations=[[{"type": "scale", "scale": [1.0, 1.2, 1.2, 1.2]}]])
    v = read_volume(tmp_path / "c4.zarr")
    assert v.data.shape == (12, 20, 24) and v.voxel_size == pytest.approx(12.0)  # 1.2 nm
    np.testing.assert_array_equal(v.data[2:5], data[0, 2:5])
    nz = pytest.importorskip("ngff_zarr")
    image = nz.to_ngff_image(data, dims=["c", "z", "y", "x"], scale={"c": 1.0, **dict.fromkeys("zyx", 8.0)},
                             axes_units=dict.fromkeys("zyx", "angstrom"))
    nz.to_ngff_zarr(str(tmp_path / "c5.zarr"), nz.to_multiscales(image, scale_factors=[]), version="0.5")
    v5 = read_volume(tmp_path / "c5.zarr")
    assert v5.data.shape == (12, 20, 24) and v5.voxel_size == 8.0
    np.testing.assert_array_equal(np.asarray(v5.data), data[0])


def test_multiscale_wide_transformations_compose_with_each_level(tmp_path, write_ngff05):
    """NGFF lets ``multiscales[0].coordinateTransformations`` scale and shift every level (after the level's own)."""
    data = np.random.default_rng(9).normal(size=(16, 24, 32)).astype(np.float32)
    whole = [{"type": "scale", "scale": [2.0, 2.0, 2.0]}, {"type": "translation", "translation": [100.0, 200.0, 300.0]}]
    store = write_ngff05(tmp_path / "w5.zarr", data, 5.0, translation_zyx=(1.0, 2.0, 3.0))
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["coordinateTransformations"] = whole
    (store / "zarr.json").write_text(json.dumps(meta))
    v = read_volume(store)
    assert v.voxel_size == 10.0 and v.origin == (306.0, 204.0, 102.0)  # x, y, z: 2 * level's + whole's
    write_volume(tmp_path / "w4.zarr", data, 5.0, origin=(3.0, 2.0, 1.0))
    attrs = json.loads((tmp_path / "w4.zarr" / ".zattrs").read_text())
    attrs["multiscales"][0]["coordinateTransformations"] = whole
    (tmp_path / "w4.zarr" / ".zattrs").write_text(json.dumps(attrs))
    v4 = read_volume(tmp_path / "w4.zarr")
    assert v4.voxel_size == 10.0 and v4.origin == (306.0, 204.0, 102.0)


def test_a_missing_shard_of_a_sharded_ngff05_store_is_counted(tmp_path):
    nz = pytest.importorskip("ngff_zarr")
    data = np.random.default_rng(10).normal(size=(32, 32, 32)).astype(np.float32)
    image = nz.to_ngff_image(data, dims=list("zyx"), scale=dict.fromkeys("zyx", 10.0),
                             axes_units=dict.fromkeys("zyx", "angstrom"))
    store = tmp_path / "sharded.zarr"
    nz.to_ngff_zarr(str(store), nz.to_multiscales(image, scale_factors=[], chunks=8), version="0.5",
                    chunks_per_shard=2)  # shards of 16^3 holding 2 x 2 x 2 chunks of 8^3
    np.testing.assert_array_equal(np.asarray(read_volume(store).data), data)
    (store / "scale0" / "image" / "c" / "1" / "1" / "1").unlink()
    with pytest.warns(UserWarning, match="1 of 8 chunks of level 0 are not stored"):
        read_volume(store)


def test_an_ngff05_bioformats2raw_container_is_read_at_its_first_image(tmp_path, write_ngff05):
    data = np.random.default_rng(11).normal(size=(16, 16, 16)).astype(np.float32)
    container = tmp_path / "b2r.zarr"
    container.mkdir()
    write_ngff05(container / "0", data, 7.0)
    (container / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {
        "ome": {"version": "0.5", "bioformats2raw.layout": 3}}}))
    with pytest.warns(UserWarning, match="b2r.zarr: a bioformats2raw container; reading its first image"):
        v = read_volume(container)
    assert v.voxel_size == 7.0
    np.testing.assert_array_equal(np.asarray(v.data), data)
