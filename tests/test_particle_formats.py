"""Particle-list formats: round trips, the conventions of each program, failures."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import starfile
from scipy.spatial.transform import Rotation

from tomoseg.errors import TomosegError
from tomoseg.io import dynamo
from tomoseg.io.particle_formats import FORMATS
from tomoseg.io.particles import read_particles, write_particles
from tomoseg.io.star import read_star
from tomoseg.ops.rotations import angular_distance
from tomoseg.types import Picks, TomogramInfo

INFO = TomogramInfo("TS_07", 13.7, (45, 101, 87), origin=(120.5, -33.0, 7.25))
FILES = {"csv": "p.csv", "relion5": "p.star", "relion3": "p3.star", "dynamo": "p.tbl", "imod": "p.mod",
         "eman2": "TS_07_info.json"}
KEEP_ANGLES = {"csv", "relion5", "relion3", "dynamo"}
KEEP_SCORES = {"csv", "relion5", "relion3", "dynamo", "eman2"}


def random_picks(n: int = 25, seed: int = 0) -> Picks:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 1, (n, 3)) * (np.array(INFO.shape[::-1]) - 1)
    angles = Rotation.random(n, random_state=seed).as_euler("ZYZ", degrees=True)
    return Picks(xyz, rng.uniform(1, 50, n), rng.uniform(0.5, 2, n), rng.integers(20, 400, n), angles)


@pytest.mark.parametrize("n", [25, 0])
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(tmp_path, fmt, n):
    picks = random_picks(n)
    path = tmp_path / FILES[fmt]
    write_particles(path, picks, INFO, format="relion3" if fmt == "relion3" else None)
    back, meta = read_particles(path)  # format from the extension (and the STAR columns)
    assert meta["format"] == fmt
    assert len(back) == n
    np.testing.assert_allclose(back.xyz, picks.xyz, atol=1e-3, rtol=0)
    if fmt in KEEP_ANGLES and n:
        assert angular_distance(picks.angles, back.angles).max() < 1e-3
    if fmt in KEEP_SCORES:
        np.testing.assert_allclose(back.score, picks.score, rtol=1e-6)
    if fmt != "csv" and (n or fmt != "dynamo"):  # an empty table has no apix column to read
        assert meta["voxel_size"] == pytest.approx(INFO.voxel_size, rel=1e-6)
    again, _ = read_particles(path, format=fmt, info=INFO)  # the tomogram given explicitly
    np.testing.assert_allclose(again.xyz, picks.xyz, atol=1e-3, rtol=0)


def test_unknown_extension_and_format(tmp_path):
    with pytest.raises(TomosegError, match="p.txt"):
        write_particles(tmp_path / "p.txt", random_picks(), INFO)
    with pytest.raises(TomosegError, match="unknown particle `format`"):
        write_particles(tmp_path / "p.csv", random_picks(), INFO, format="warp")
    assert list(tmp_path.iterdir()) == []


def dynamo_matrix(tdrot: float, tilt: float, narot: float) -> np.ndarray:
    """Dynamo's dynamo_euler2matrix, written out (as copied in scipion-em-dynamo convert.py)."""
    t, i, n = np.radians([tdrot, tilt, narot])
    ct, st, ci, si, cn, sn = np.cos(t), np.sin(t), np.cos(i), np.sin(i), np.cos(n), np.sin(n)
    return np.array([[ct * cn - st * ci * sn, -cn * st - ct * ci * sn, sn * si],
                     [ct * sn + cn * st * ci, ct * cn * ci - st * sn, -cn * si],
                     [st * si, ct * si, ci]])


def test_dynamo_angles_known_case():
    # RELION: the particle is the reference turned by A = Euler_angles2matrix(rot, tilt, psi)
    # = rotation(angles).inv(); its z axis is A @ z. rot=0, tilt=90, psi=180 puts it along +x.
    relion = np.array([[0.0, 90.0, 180.0]])
    a = Rotation.from_euler("ZYZ", relion, degrees=True).inv().as_matrix()[0]
    np.testing.assert_allclose(a @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    tdrot, tilt, narot = dynamo.relion_to_dynamo(relion)[0]
    m = dynamo_matrix(tdrot, tilt, narot)
    np.testing.assert_allclose(m, a.T, atol=1e-12)  # same (passive) matrix as RELION's ZYZ one
    np.testing.assert_allclose(m.T @ [0, 0, 1], [1, 0, 0], atol=1e-12)  # Dynamo's z axis: along x too
    np.testing.assert_allclose(dynamo_matrix(90, 90, 90), m, atol=1e-12)  # tdrot=psi-90, narot=rot+90
    # the textbook relation holds for any orientation
    rel = Rotation.random(20, random_state=2).as_euler("ZYZ", degrees=True)
    for (rot, tl, psi), dyn in zip(rel, dynamo.relion_to_dynamo(rel)):
        np.testing.assert_allclose(dynamo_matrix(*dyn), dynamo_matrix(psi - 90, tl, rot + 90), atol=1e-9)
    back = dynamo.dynamo_to_relion(dynamo.relion_to_dynamo(rel))
    assert angular_distance(rel, back).max() < 1e-6


def test_dynamo_positions_are_one_based_and_foreign_rows_parse(tmp_path):
    picks = Picks(np.array([[0.0, 0.0, 0.0], [10.0, 20.0, 30.0]]), np.array([0.5, 0.25]), np.zeros(2),
                  np.zeros(2, dtype=int))
    write_particles(tmp_path / "a.tbl", picks, INFO)
    table = np.loadtxt(tmp_path / "a.tbl")
    np.testing.assert_allclose(table[:, 23:26], picks.xyz + 1)
    assert table[0, 35] == pytest.approx(13.7) and table[1, 9] == 0.25
    # a row as Dynamo writes it: 41 columns, shifts, a complex daxis
    row = ("2 1 1 -1.5 0.5 2 -44.6 4.5 -14.6 0.05 0 0 0 0 0 0 0 0 0 1 0 0 0 101 51 31 "
           "0 0+1.2074e-06i 0 0 0 0 0 1 0 0 0 0 0 0 0")
    (tmp_path / "b.tbl").write_text(row + "\n")
    back, meta = read_particles(tmp_path / "b.tbl")
    np.testing.assert_allclose(back.xyz, [[101 - 1.5 - 1, 51 + 0.5 - 1, 31 + 2 - 1]])
    assert meta["voxel_size"] is None


def test_relion5_centre_known_case(tmp_path):
    nz, ny, nx = INFO.shape  # odd sizes: the centre is between voxels
    centre = np.array([nx / 2, ny / 2, nz / 2])
    picks = Picks(np.array([centre, [0.0, 0.0, 0.0]]), np.ones(2), np.ones(2), np.ones(2, dtype=int))
    write_particles(tmp_path / "c.star", picks, INFO)
    blocks = starfile.read(tmp_path / "c.star", always_dict=True)
    assert list(blocks) == ["particles", "global"]  # particles first: RELION's importer reads the first block
    cols = [f"rlnCenteredCoordinate{a}Angst" for a in "XYZ"]
    np.testing.assert_allclose(blocks["particles"][cols].to_numpy(),
                               [[0, 0, 0], [-nx / 2 * 13.7, -ny / 2 * 13.7, -nz / 2 * 13.7]], atol=1e-5)
    assert blocks["particles"]["rlnTomoName"].tolist() == ["TS_07", "TS_07"]
    # the same particles as RELION writes them (no data_global): the tomogram must be given
    starfile.write({"particles": blocks["particles"]}, tmp_path / "r.star", overwrite=True)
    with pytest.raises(TomosegError, match="tomogram size"):
        read_particles(tmp_path / "r.star")
    back, meta = read_particles(tmp_path / "r.star", info=INFO)
    np.testing.assert_allclose(back.xyz, picks.xyz, atol=1e-5)
    assert meta["tomo_name"] == "TS_07" and meta["shape"] == INFO.shape


def test_relion3_is_zero_based_with_optics_first(tmp_path):
    picks = Picks(np.array([[0.0, 1.0, 2.0]]), np.ones(1), np.ones(1), np.ones(1, dtype=int))
    write_particles(tmp_path / "a.star", picks, INFO, format="relion3")
    blocks = starfile.read(tmp_path / "a.star", always_dict=True)
    assert list(blocks) == ["optics", "particles"]
    assert blocks["optics"]["rlnImagePixelSize"].iloc[0] == pytest.approx(13.7)
    p = blocks["particles"]
    assert p[["rlnCoordinateX", "rlnCoordinateY", "rlnCoordinateZ"]].to_numpy().tolist() == [[0, 1, 2]]
    assert p[["rlnOriginXAngst", "rlnOriginYAngst", "rlnOriginZAngst"]].to_numpy().tolist() == [[0, 0, 0]]
    # rescaled to another tomogram of the same data (e.g. a 4x binned one)
    binned = TomogramInfo("TS_07", 4 * 13.7, (12, 26, 22))
    back, _ = read_particles(tmp_path / "a.star", info=binned)
    np.testing.assert_allclose(back.xyz, picks.xyz / 4)


def test_relion_subtomogram_angles_and_origins_compose_as_relion(tmp_path):
    rng = np.random.default_rng(3)
    part = Rotation.random(5, random_state=4).as_euler("ZYZ", degrees=True)
    sub = Rotation.random(5, random_state=5).as_euler("ZYZ", degrees=True)
    origin = rng.normal(0, 20, (5, 3))
    coords = rng.uniform(10, 40, (5, 3))
    table = pd.DataFrame({"rlnTomoName": ["t"] * 5})
    for i, a in enumerate("XYZ"):
        table[f"rlnCoordinate{a}"] = coords[:, i]
        table[f"rlnOrigin{a}Angst"] = origin[:, i]
    for i, a in enumerate(("Rot", "Tilt", "Psi")):
        table[f"rlnAngle{a}"] = part[:, i]
        table[f"rlnTomoSubtomogram{a}"] = sub[:, i]
    optics = pd.DataFrame({"rlnOpticsGroup": [1], "rlnTomoTiltSeriesPixelSize": [2.0]})
    starfile.write({"optics": optics, "particles": table}, tmp_path / "s.star", overwrite=True)
    back, _ = read_star(tmp_path / "s.star")
    # RELION (ParticleSet::getMatrix3x3): A = A_subtomo @ A_particle, A = rotation(angles).inv()
    a = lambda x: Rotation.from_euler("ZYZ", x, degrees=True).inv().as_matrix()  # noqa: E731
    np.testing.assert_allclose(a(back.angles), a(sub) @ a(part), atol=1e-6)  # STAR keeps 6 decimals
    # ParticleSet::getPosition: position -= A_subtomo @ origin / pixel size
    np.testing.assert_allclose(back.xyz, coords - np.einsum("nij,nj->ni", a(sub), origin) / 2.0, atol=1e-5)


def test_multi_tomogram_star_needs_a_choice(tmp_path):
    table = pd.DataFrame({"rlnTomoName": ["a", "b"], "rlnCoordinateX": [1.0, 2.0],
                          "rlnCoordinateY": [0.0, 0.0], "rlnCoordinateZ": [0.0, 0.0]})
    starfile.write(table, tmp_path / "m.star", overwrite=True)
    with pytest.raises(TomosegError, match="2 tomograms"):
        read_particles(tmp_path / "m.star")
    back, meta = read_particles(tmp_path / "m.star", tomo_name="b")
    assert back.xyz[:, 0].tolist() == [2.0] and meta["tomo_name"] == "b"


def test_eman2_centred_boxes_and_existing_keys_kept(tmp_path):
    path = tmp_path / "TS_07_info.json"
    path.write_text('{"tlt_params": [[0, 0, 0, 0, 0]], "apix_unbin": 3.425}')
    picks = Picks(np.array([[43.0, 50.0, 22.0]]), np.array([7.5]), np.ones(1), np.array([500]))
    write_particles(path, picks, INFO)
    js = json.loads(path.read_text())
    assert js["tlt_params"] == [[0, 0, 0, 0, 0]] and js["apix_unbin"] == 3.425
    # voxel (n // 2) is the centre; unbinned pixels are 13.7 / 3.425 = 4 times smaller
    assert js["boxes_3d"] == [[0.0, 0.0, 0.0, "tomoseg", 7.5, 0]]
    assert js["class_list"]["0"]["name"] == "tomoseg" and js["class_list"]["0"]["boxsize"] % 2 == 0
    back, _ = read_particles(path)
    np.testing.assert_allclose(back.xyz, picks.xyz)


def test_imod_model_read_by_imodmodel(tmp_path):
    imodmodel = pytest.importorskip("imodmodel")
    picks = random_picks(12)
    write_particles(tmp_path / "p.mod", picks, INFO)
    df = imodmodel.read(tmp_path / "p.mod")
    # IMOD: the centre of voxel (i, j, k) is the model point (i + 0.5, j + 0.5, k)
    np.testing.assert_allclose(df[["x", "y", "z"]].to_numpy(), picks.xyz + [0.5, 0.5, 0.0], atol=1e-4)
    model = imodmodel.ImodModel.from_file(tmp_path / "p.mod")
    assert model.header.pixelsize == pytest.approx(1.37) and model.header.units == -9
    assert (model.header.xmax, model.header.ymax, model.header.zmax) == (87, 101, 45)
    assert model.objects[0].header.flags.scattered


def test_writes_are_atomic(tmp_path, monkeypatch):
    (tmp_path / "keep.csv").write_text("old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    for fmt in FORMATS:
        path = tmp_path / ("keep.csv" if fmt == "csv" else FILES[fmt])
        with pytest.raises(OSError, match="disk full"):
            write_particles(path, random_picks(), INFO, format=fmt)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]  # no partial or temporary files
    assert (tmp_path / "keep.csv").read_text() == "old"


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("bad.csv", "a,b\n1,2\n", "lacks column"),
        ("bad.star", "data_particles\nloop_\n_rlnFoo #1\n1\n", "no particle table"),
        ("bad.tbl", "1 2 3\n", "columns"),
        ("bad2.tbl", "x " * 30 + "\n", "not a Dynamo table row"),
        ("bad.mod", "not a model", "not an IMOD"),
        ("bad.json", "{nope", "not a JSON"),
        ("list.json", "[1, 2]", "not an EMAN2 info file"),
        ("bad.star", "\x00\x01garbage", "bad.star"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(TomosegError, match=match) as info:
        read_particles(path)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(TomosegError, match="no such file"):
        read_particles(tmp_path / "none.star")
    write_particles(tmp_path / "p.mod", random_picks(), INFO)
    data = (tmp_path / "p.mod").read_bytes()
    (tmp_path / "t.mod").write_bytes(data[: len(data) // 2])
    with pytest.raises(TomosegError, match="t.mod: corrupt IMOD model"):
        read_particles(tmp_path / "t.mod")
