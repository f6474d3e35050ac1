"""Volumes between formats (workflows/convert, tomoseg convert) and the napari writer (gui/writer):
data, voxel size, origin and tomoseg labels travel; types are kept or narrowed without changing a value."""

import numpy as np
import pytest

from tomoseg.errors import TomosegError
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.workflows.convert import convert_file, save_volume

pytest.importorskip("zarr")


def test_convert_mrc_to_omezarr_and_back_keeps_everything(tmp_path, capsys):
    from tomoseg.cli.main import main

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(37, 90, 70)).astype(np.float32)  # 37 slices: slabs of 16 and a short last one
    write_volume(tmp_path / "s.mrc", scores, 12.5, origin=(10.0, -20.0, 30.0), labels=("tomoseg feature: membrane",))
    seen = []
    shape, voxel = convert_file(tmp_path / "s.mrc", tmp_path / "s.zarr", progress=lambda d, t, m="": seen.append(d))
    assert shape == scores.shape and voxel == 12.5 and seen[-1] == 37 and len(seen) == 3
    assert main(["convert", str(tmp_path / "s.zarr"), "-o", str(tmp_path / "back.mrc"), "-q"]) == 0
    back = read_volume(tmp_path / "back.mrc")
    np.testing.assert_array_equal(np.asarray(back.data), scores)
    assert (back.voxel_size, back.origin, back.label_value("feature")) == (12.5, (10.0, -20.0, 30.0), "membrane")
    # a label map stays a label map (MRC mode 0, its legend kept)
    labels = (scores > 1).astype(np.int8) * 2
    write_volume(tmp_path / "l.mrc", labels, 12.5, labels=("tomoseg label 1: membrane", "tomoseg label 2: ribosome"))
    convert_file(tmp_path / "l.mrc", tmp_path / "l.zarr")
    z = read_volume(tmp_path / "l.zarr")
    assert z.data.dtype == np.int8 and z.label_value("label 2") == "ribosome"
    np.testing.assert_array_equal(np.asarray(z.data[:]), labels)
    # refusals: one line, nothing written
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "s.mrc"), "-o", str(tmp_path / "s.zarr"), "-q"]) == 2  # exists
    assert "s.zarr: exists already" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "s.mrc"), "-o", str(tmp_path / "s.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "s.png: extension '.png'" in err[0] and not (tmp_path / "s.png").exists()
    assert main(["convert", str(tmp_path / "s.mrc"), "-o", str(tmp_path / "s.mrc"), "--overwrite"]) == 2
    assert "refusing to overwrite an input file" in capsys.readouterr().err


def test_save_volume_narrows_integer_types_without_changing_a_value(tmp_path):
    labels = np.zeros((5, 20, 20), dtype=np.int64)  # a napari labels layer
    labels[2, 5:9, 5:9] = 3
    save_volume(tmp_path / "a.mrc", labels, 10.0)
    a = read_volume(tmp_path / "a.mrc")
    assert a.data.dtype == np.int8 and np.array_equal(np.asarray(a.data), labels)
    save_volume(tmp_path / "a.zarr", labels, 10.0)
    assert read_volume(tmp_path / "a.zarr").data.dtype == np.uint8
    labels[0, 0, 0] = 300  # no longer bytes: int16
    save_volume(tmp_path / "b.mrc", labels, 10.0)
    b = read_volume(tmp_path / "b.mrc")
    assert b.data.dtype == np.int16 and np.array_equal(np.asarray(b.data), labels)
    high = np.full((2, 8, 8), 200, dtype=np.uint8)  # bytes above 127: MRC mode 0 is signed, so 16-bit
    save_volume(tmp_path / "h.mrc", high, 10.0)
    assert np.array_equal(np.asarray(read_volume(tmp_path / "h.mrc").data), high)
    negative = np.full((2, 8, 8), -5, dtype=np.int8)  # TIFF keeps bytes unsigned: 16-bit
    save_volume(tmp_path / "n.tif", negative, 10.0)
    assert np.array_equal(np.asarray(read_volume(tmp_path / "n.tif").data), negative)
    big = np.arange(-1000, -1000 + 2 * 8 * 8).reshape(2, 8, 8).astype(">i2")  # big-endian, as mrcfile may read
    save_volume(tmp_path / "big.zarr", big, 10.0)
    assert np.array_equal(np.asarray(read_volume(tmp_path / "big.zarr").data[:]), big)
    save_volume(tmp_path / "m.mrc", np.ones((3, 8, 8), dtype=bool), 10.0)  # a boolean mask: 0/1 bytes
    assert np.asarray(read_volume(tmp_path / "m.mrc").data).sum() == 3 * 64
    save_volume(tmp_path / "f.zarr", np.full((3, 8, 8), 0.25, dtype=np.float64), 10.0)
    assert read_volume(tmp_path / "f.zarr").data.dtype == np.float32
    labels[0, 0, 0] = 70000
    with pytest.raises(TomosegError, match="c.mrc: values 0..70000 do not fit 16 bits"):
        save_volume(tmp_path / "c.mrc", labels, 10.0)
    with pytest.raises(TomosegError, match="d.mrc: voxel size 0"):
        save_volume(tmp_path / "d.mrc", labels, 0)
    with pytest.raises(TomosegError, match="d.mrc: voxel size nan"):
        save_volume(tmp_path / "d.mrc", labels, float("nan"))
    with pytest.raises(TomosegError, match="d.mrc: header labels are at most 10"):
        save_volume(tmp_path / "d.mrc", high, 10.0, labels=("x" * 81,))
    assert not (tmp_path / "c.mrc").exists() and not (tmp_path / "d.mrc").exists()

    class Broken:  # a source that fails after its first slab: nothing is left, not even a temporary file
        shape, dtype, ndim = (40, 8, 8), np.dtype(np.float32), 3

        def __getitem__(self, index):
            if index.start >= 16:
                raise OSError("read error")
            return np.zeros((16, 8, 8), np.float32)

    before = set(tmp_path.iterdir())
    for name in ("e.mrc", "e.zarr"):
        with pytest.raises(OSError, match="read error"):
            save_volume(tmp_path / name, Broken(), 10.0)
    assert set(tmp_path.iterdir()) == before


def test_the_napari_writer_saves_a_layer_with_its_voxel_size_origin_and_labels(tmp_path):
    """The plugin's writer takes what the tomoseg reader put on a layer; no voxel size, no file."""
    from tomoseg.gui.reader import read_layers
    from tomoseg.gui.writer import write_volume_layer

    scores = np.random.default_rng(1).normal(size=(20, 40, 30)).astype(np.float32)
    write_volume(tmp_path / "s.mrc", scores, 8.0, origin=(1.0, 2.0, 3.0), labels=("tomoseg feature: actin",))
    data, meta, kind = read_layers(str(tmp_path / "s.mrc"))[0]
    assert kind == "image"
    meta = {**meta, "translate": (16.0, 0.0, 0.0)}  # a layer moved two slices down (z first, A)
    assert write_volume_layer(str(tmp_path / "s.zarr"), data, meta) == [str(tmp_path / "s.zarr")]
    z = read_volume(tmp_path / "s.zarr")
    np.testing.assert_array_equal(np.asarray(z.data[:]), scores)
    assert (z.voxel_size, z.origin, z.label_value("feature")) == (8.0, (1.0, 2.0, 19.0), "actin")
    # a labels layer (napari's int32) in MRC: bytes, values and legend kept
    labels = np.zeros((20, 40, 30), dtype=np.int32)
    labels[3:6, 10:20, 5:9] = 2
    meta_l = {"scale": (8.0,) * 3, "metadata": {"voxel_size": 8.0, "labels": ("tomoseg label 2: actin",)}}
    write_volume_layer(str(tmp_path / "l.mrc"), labels, meta_l)
    back = read_volume(tmp_path / "l.mrc")
    assert back.data.dtype == np.int8 and np.array_equal(np.asarray(back.data), labels)
    assert back.label_value("label 2") == "actin"
    # refused: no voxel size (the file had none; a plain layer at scale 1), anisotropic, rotated, its own file
    for bad, why in (({**meta, "metadata": {"voxel_size": None}}, " has no voxel size"),
                     ({"scale": (1.0, 1.0, 1.0)}, " has no voxel size"),
                     ({"scale": (10.0, 8.0, 8.0)}, "'s scale \\(10, 8, 8\\) is not one positive voxel size"),
                     ({"scale": (8.0,) * 3, "rotate": [[0, 1, 0], [1, 0, 0], [0, 0, 1]]}, " is rotated")):
        with pytest.raises(ValueError, match=f"n.zarr: the layer{why}"):
            write_volume_layer(str(tmp_path / "n.zarr"), data, bad)
    assert not (tmp_path / "n.zarr").exists()
    with pytest.raises(ValueError, match="refusing to overwrite an input file"):
        write_volume_layer(str(tmp_path / "s.mrc"), data, meta)
