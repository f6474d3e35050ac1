
import mrcfile
import numpy as np
import pandas as pd
import pytest
import torch

from tomoseg.errors import TomosegError
from tomoseg.io.boxes import read_boxes, write_boxes
from tomoseg.io.model_file import load_model, save_model
from tomoseg.io.mrc import check_finite, create_volume, read_volume, write_volume
from tomoseg.io.particles import read_particles, write_particles
from tomoseg.io.trainset_file import load_trainset, save_trainset
from tomoseg.nn.model import Model
from tomoseg.nn.network import SegNet, init_weights
from tomoseg.types import Box, Picks, TomogramInfo


def _write(path, data, voxel=10.0, origin=(0.0, 0.0, 0.0)):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data)
        m.voxel_size = voxel
        m.header.origin.x, m.header.origin.y, m.header.origin.z = origin
    return path


def test_volume_round_trip_keeps_voxel_size_origin_and_labels(tmp_path):
    data = np.random.default_rng(0).normal(size=(4, 6, 8)).astype(np.float32)
    write_volume(tmp_path / "a.mrc", data, 12.5, (1.0, 2.0, 3.0), ("tomoseg feature: ribosome",))
    vol = read_volume(tmp_path / "a.mrc")
    np.testing.assert_array_equal(vol.data, data)
    assert vol.voxel_size == pytest.approx(12.5)
    assert vol.origin == (1.0, 2.0, 3.0)
    assert vol.label_value("feature") == "ribosome"
    assert not list(tmp_path.glob(".*part"))


@pytest.mark.parametrize(
    "content,message",
    [(b"hello world" * 200, "not a readable MRC"), (b"abc", "not a readable MRC")],
)
def test_non_mrc_files_give_one_clear_error(tmp_path, content, message):
    (tmp_path / "bad.mrc").write_bytes(content)
    with pytest.raises(TomosegError, match=message) as err:
        read_volume(tmp_path / "bad.mrc")
    assert str(tmp_path / "bad.mrc") in str(err.value) and "\n" not in str(err.value)


def test_truncated_2d_missing_and_voxelless_files_are_refused(tmp_path):
    good = _write(tmp_path / "good.mrc", np.zeros((4, 8, 8), np.float32))
    raw = good.read_bytes()
    (tmp_path / "trunc.mrc").write_bytes(raw[:-50])
    with pytest.raises(TomosegError, match="truncated"):
        read_volume(tmp_path / "trunc.mrc")
    _write(tmp_path / "flat.mrc", np.zeros((8, 8), np.float32))
    with pytest.raises(TomosegError, match="3D tomogram is needed"):
        read_volume(tmp_path / "flat.mrc")
    with pytest.raises(TomosegError, match="no such file"):
        read_volume(tmp_path / "missing.mrc")
    _write(tmp_path / "novox.mrc", np.zeros((4, 8, 8), np.float32), voxel=0.0)
    with pytest.raises(TomosegError, match="no voxel size"):
        read_volume(tmp_path / "novox.mrc")
    assert read_volume(tmp_path / "novox.mrc", voxel_size=7.0).voxel_size == 7.0


def test_nan_is_found(tmp_path):
    data = np.zeros((20, 4, 4), np.float32)
    data[17, 1, 1] = np.nan
    with pytest.raises(TomosegError, match="NaN"):
        check_finite("x.mrc", data)


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with create_volume(tmp_path / "out.mrc", (2, 4, 4), np.float32, 10.0) as out:
            out[0] = 1
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_reads_a_real_file_without_map_id(shared_data):
    vol = read_volume(shared_data("real/tardis_mrc3D.mrc"))
    assert vol.data.shape == (78, 64, 32) and vol.voxel_size == pytest.approx(23.2, rel=1e-3)


def _write_tiff(path, data, pixel_nm=None, spacing_nm=None, unit="nm"):
    import tifffile

    meta = {"axes": "ZYX"}
    if unit is not None:
        meta["unit"] = unit
    if spacing_nm is not None:
        meta["spacing"] = spacing_nm
    resolution = None if pixel_nm is None else (1 / pixel_nm, 1 / pixel_nm)
    tifffile.imwrite(path, data, imagej=True, resolution=resolution, metadata=meta)
    return path


def test_reads_imagej_tiff_stacks_with_their_voxel_size(tmp_path):
    data = np.random.default_rng(1).integers(0, 255, size=(5, 12, 9), dtype=np.uint8)
    vol = read_volume(_write_tiff(tmp_path / "a.tif", data, pixel_nm=1.052, spacing_nm=1.052))
    assert np.array_equal(vol.data, data) and vol.voxel_size == pytest.approx(10.52, rel=1e-6)
    assert vol.origin == (0.0, 0.0, 0.0)
    vol = read_volume(_write_tiff(tmp_path / "b.TIFF", data, pixel_nm=0.0008, spacing_nm=0.0008, unit="micron"))
    assert vol.voxel_size == pytest.approx(8.0, rel=1e-6)
    assert read_volume(tmp_path / "a.tif", voxel_size=7.0).voxel_size == 7.0
    head = read_volume(tmp_path / "a.tif", header_only=True)  # metadata only: zeros taking no memory
    assert head.data.shape == data.shape and head.data.dtype == np.uint8 and head.data.strides == (0, 0, 0)
    assert head.voxel_size == pytest.approx(10.52, rel=1e-6) and not head.data.any()


def test_unusable_tiffs_are_one_clear_error(tmp_path):
    data = np.zeros((5, 12, 9), np.float32)
    with pytest.raises(TomosegError, match="no voxel size.*`voxel_size`"):
        read_volume(_write_tiff(tmp_path / "none.tif", data, unit=None))
    assert read_volume(tmp_path / "none.tif", voxel_size=10.0).data.shape == (5, 12, 9)
    with pytest.raises(TomosegError, match="anisotropic"):
        read_volume(_write_tiff(tmp_path / "aniso.tif", data, pixel_nm=1.0, spacing_nm=2.0))
    with pytest.raises(TomosegError, match="2D image"):
        read_volume(_write_tiff(tmp_path / "flat.tif", data[:1], pixel_nm=1.0, spacing_nm=1.0))
    import tifffile

    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((12, 9, 3), np.uint8), photometric="rgb")
    with pytest.raises(TomosegError, match="RGB"):
        read_volume(tmp_path / "rgb.tif")
    with tifffile.TiffWriter(tmp_path / "mixed.tif") as tw:
        tw.write(np.zeros((12, 9), np.uint8))
        tw.write(np.zeros((10, 9), np.uint8))
    with pytest.raises(TomosegError, match="2 image series"):
        read_volume(tmp_path / "mixed.tif")
    tifffile.imwrite(tmp_path / "tzyx.tif", np.zeros((2, 5, 12, 9), np.float32), imagej=True,
                     metadata={"axes": "TZYX"})
    with pytest.raises(TomosegError, match="4D image"):
        read_volume(tmp_path / "tzyx.tif", voxel_size=10.0)
    (tmp_path / "junk.tif").write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(TomosegError, match="junk.tif: not a readable TIFF"):
        read_volume(tmp_path / "junk.tif")
    with pytest.raises(TomosegError, match="no such file"):
        read_volume(tmp_path / "missing.tif")


def test_preprocess_a_tiff_from_the_command_line(tmp_path):
    import subprocess
    import sys

    data = np.random.default_rng(2).normal(size=(6, 32, 32)).astype(np.float32)
    src = _write_tiff(tmp_path / "raw.tif", data, pixel_nm=2.0, spacing_nm=2.0)
    r = subprocess.run([sys.executable, "-m", "tomoseg", "preprocess", str(src), "-o", str(tmp_path / "pre.mrc"),
                        "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = read_volume(tmp_path / "pre.mrc")
    assert out.data.shape == (6, 32, 32) and out.voxel_size == pytest.approx(20.0)


def test_reads_a_real_cylindra_tiff(shared_data):
    vol = read_volume(shared_data("real/cylindra_13pf_MT.tif"))
    assert vol.data.shape == (36, 206, 94) and vol.voxel_size == pytest.approx(10.52, rel=1e-4)


def test_boxes_csv(tmp_path):
    p = tmp_path / "b.csv"
    p.write_text("x,y,z,kind\n10,20,3,positive\n11.0,21,4,negative\n")
    assert read_boxes(p) == [Box(10, 20, 3, True), Box(11, 21, 4, False)]
    write_boxes(tmp_path / "c.csv", read_boxes(p))
    assert read_boxes(tmp_path / "c.csv") == read_boxes(p)
    p.write_text("x,y,z,kind\n")
    with pytest.raises(TomosegError, match="empty"):
        read_boxes(p)
    p.write_text("x,y,kind\n1,2,positive\n")
    with pytest.raises(TomosegError, match="missing column"):
        read_boxes(p)
    p.write_text("x,y,z,kind\n1,2,3,maybe\n")
    with pytest.raises(TomosegError, match="line 2"):
        read_boxes(p)


def test_model_round_trip_without_pickle(tmp_path):
    net = init_weights(SegNet(), 3)
    model = Model(net, 0.42, "ribosome", 10.0, {"lowpass": 20.0}, {"losses": [1.0, 0.5]},
                  {"tiles": np.ones((2, 64, 64), np.float32)}, colour="#ff0000")
    save_model(tmp_path / "m.model", model)
    back = load_model(tmp_path / "m.model")
    for a, b in zip(net.parameters(), back.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (back.amplitude, back.name, back.voxel_size, back.colour) == (0.42, "ribosome", 10.0, "#ff0000")
    assert back.training["losses"] == [1.0, 0.5] and back.examples["tiles"].shape == (2, 64, 64)
    # a pickle (what torch.save writes) is refused, not executed
    torch.save(net.state_dict(), tmp_path / "evil.pt")
    with pytest.raises(TomosegError, match="not a tomoseg model"):
        load_model(tmp_path / "evil.pt")


def test_trainset_round_trip_and_kind_check(tmp_path, particle_trainset):
    save_trainset(tmp_path / "s.set", particle_trainset)
    back = load_trainset(tmp_path / "s.set")
    np.testing.assert_array_equal(back.tiles, particle_trainset.tiles)
    np.testing.assert_array_equal(back.masks, particle_trainset.masks)
    np.testing.assert_array_equal(back.boxes, particle_trainset.boxes)
    assert back.name == "particle" and back.n_positive == particle_trainset.n_positive
    with pytest.raises(TomosegError, match="expected a model"):
        load_model(tmp_path / "s.set")


def test_picks_csv_and_star(tmp_path):
    picks = Picks(np.array([[1.0, 2, 3], [4, 5, 6]]), np.array([9.0, 8]), np.array([2.0, 1.5]), np.array([30, 20]))
    info = TomogramInfo("t1", 10.0, (8, 8, 8), (100.0, 0.0, 0.0))
    write_particles(tmp_path / "p.csv", picks, info)
    table = pd.read_csv(tmp_path / "p.csv")
    assert table[["x", "y", "z"]].to_numpy().tolist() == picks.xyz.tolist()
    assert table["x_angst"].tolist() == [110.0, 140.0]
    write_particles(tmp_path / "p.star", picks, info, "relion3")
    back, meta = read_particles(tmp_path / "p.star")
    assert back.xyz.tolist() == picks.xyz.tolist() and meta["tomo_name"] == "t1"


def test_outputs_get_the_permissions_of_any_new_file(tmp_path, monkeypatch):
    import os

    from tomoseg.io import atomic

    with atomic.atomic_output(tmp_path / "a.txt") as tmp:
        tmp.write_text("x")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    previous = os.umask(0o027)  # a lab that shares results with its group, set after tomoseg was imported
    try:
        assert atomic._umask() == 0o027
        with atomic.atomic_output(tmp_path / "b.txt") as tmp:
            tmp.write_text("y")
        with atomic.atomic_directory(tmp_path / "folder") as tmp:
            (tmp / "c.txt").write_text("z")
        assert os.umask(0o027) == 0o027  # reading it left it as it was
    finally:
        os.umask(previous)
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "folder").stat().st_mode & 0o777 == 0o750  # not mkdtemp's 0700



def test_a_memory_mapped_volume_closes_its_file(tmp_path):
    import os

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to count open files")
    write_volume(tmp_path / "v.mrc", np.arange(64, dtype=np.float32).reshape(4, 4, 4), 10.0)
    opened = len(os.listdir("/proc/self/fd"))
    with read_volume(tmp_path / "v.mrc") as vol:
        assert float(vol.data[1, 2, 3]) == 27.0
        during = len(os.listdir("/proc/self/fd"))
    assert during > opened and len(os.listdir("/proc/self/fd")) == during - 1  # the file is closed
    assert float(vol.data[1, 2, 3]) == 27.0  # the data stay readable while referenced (their own map)
    vol.close()  # twice is harmless
