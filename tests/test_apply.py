"""Applying models to tomograms: overlap-save geometry, streaming, resume, several models."""

import copy

import numpy as np
import pytest
import torch

from tomoseg.errors import Cancelled, TomosegError
from tomoseg.io.model_file import save_model
from tomoseg.io.mrc import read_volume, write_volume
from tomoseg.io.pages import read_slab, release_pages
from tomoseg.io.resumable import partial_paths
from tomoseg.nn.device import resolve_device
from tomoseg.nn.model import Model
from tomoseg.nn.network import SegNet, init_weights
from tomoseg.nn.overlap_save import PreparedNet, TilePlan, overlap_save_forward
from tomoseg.steps import segment
from tomoseg.steps.preprocess import PreprocessConfig
from tomoseg.workflows import apply_file, apply_files


def _random_net(seed: int) -> SegNet:
    net = init_weights(SegNet(), seed)
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed))
    return net.eval()


@pytest.mark.parametrize(("fft", "layer1"), [(29, 16), (48, 32), (64, 40), (100, 256)])
@pytest.mark.parametrize("size", [(2, 2), (30, 30), (64, 46), (130, 202)])
def test_overlap_save_equals_conv2d_for_any_tile_size(fft, layer1, size):
    """Tiles smaller, equal and larger than the slice; one-pixel outputs (tile 1 for fft 29)."""
    net = _random_net(5)
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(6)).clamp(-3, 3) / 3
    with torch.no_grad():
        ref = net(x)
        out = overlap_save_forward(PreparedNet(net, TilePlan(fft=fft, layer1_fft=layer1, tiles_per_batch=3)), x)
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


@pytest.mark.parametrize("context", [1, 2])
@pytest.mark.parametrize(("fft", "layer1", "size"), [(29, 16, (30, 30)), (64, 40, (64, 46)), (100, 256, (130, 202))])
def test_overlap_save_equals_conv2d_with_slab_context(context, fft, layer1, size):
    from tomoseg.nn.network import NetworkConfig

    net = init_weights(SegNet(NetworkConfig(context=context)), 5)
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(4))
    x = torch.randn(2, 2 * context + 1, *size, generator=torch.Generator().manual_seed(6)).clamp(-3, 3) / 3
    with torch.no_grad():
        ref = net(x)
        prep = PreparedNet(net, TilePlan(fft=fft, layer1_fft=layer1, tiles_per_batch=3))
        out = overlap_save_forward(prep, x)
        with pytest.raises(ValueError, match=f"{2 * context + 1} input slice"):
            overlap_save_forward(prep, x[:, :1])
    assert out.shape == ref.shape
    assert float((out - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


@pytest.mark.parametrize("band_bytes", [1, 45056])
def test_overlap_save_bands_odd_channels_small_kernels(band_bytes):
    """Bands of one tile row (tiny band memory) or of two (5 tile rows: a partial last band), an odd
    channel count (padded to pairs), 5 x 5 kernels."""
    from tomoseg.nn.network import NetworkConfig

    net = init_weights(SegNet(NetworkConfig(channels=7, kernel=5)), 3)
    with torch.no_grad():
        for conv in (net.conv1, net.conv3, net.conv4):
            conv.bias.normal_(0, 0.05, generator=torch.Generator().manual_seed(4))
    x = torch.randn(2, 1, 120, 72, generator=torch.Generator().manual_seed(7)).clamp(-3, 3) / 3
    # 4 pairs x 44 band columns x 8 bytes: 8 halo rows + 2 x 12 tile rows = 45056 bytes
    plan = TilePlan(fft=20, layer1_fft=12, kernel=5, tiles_per_batch=2, band_bytes=band_bytes)
    with torch.no_grad():
        ref = net(x)
        out = overlap_save_forward(PreparedNet(net, plan), x)
    assert float((out - ref).abs().max()) <= 1e-4 * float(ref.abs().max())


def test_tile_plan_geometry():
    plan = TilePlan(fft=128)
    assert plan.tile == 100
    # layer 1: fast FFT sizes only, the least padding, every tile's output even
    for length in (2, 30, 206, 1024, 1056, 4096):
        count, piece, size = plan.layer1_split(length)
        assert count * piece >= length and piece % 2 == 0 and piece + 14 <= size <= 256
        assert size // (size & -size) in (1, 3, 9)
    assert plan.layer1_split(1024)[0] == 9  # 9 x 114 pixels in 128-point FFTs (or 8 x 128 in 144)
    assert plan.layer1_largest == 256 and TilePlan(layer1_fft=16).layer1_largest == 16
    with pytest.raises(ValueError):
        TilePlan(fft=28)
    with pytest.raises(ValueError):
        TilePlan(layer1_fft=15)
    with pytest.raises(ValueError, match="float32"):
        overlap_save_forward(PreparedNet(_random_net(0), plan), torch.zeros(1, 1, 8, 8, dtype=torch.float64))


def test_engine_reuses_spectra_until_weights_change():
    from tomoseg.nn.engines import OverlapSaveEngine

    engine, net = OverlapSaveEngine(fft_size=48), _random_net(1)
    x = torch.randn(1, 1, 40, 40) / 3
    first = engine(net, x)
    prepared = engine.prepare(net, x.device)
    assert engine.prepare(net, x.device) is prepared
    with torch.no_grad():
        net.conv4.bias += 1.0
    assert engine.prepare(net, x.device) is not prepared
    assert torch.allclose(engine(net, x), first + 1.0, atol=1e-5)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown `device`"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_release_pages_keeps_written_data(tmp_path):
    data = np.arange(3 * 64 * 64, dtype=np.float32).reshape(3, 64, 64)
    write_volume(tmp_path / "v.mrc", data, 10.0)
    vol = read_volume(tmp_path / "v.mrc")
    np.testing.assert_array_equal(read_slab(vol.data, 1, 3), data[1:3])
    release_pages(vol.data)
    np.testing.assert_array_equal(np.asarray(vol.data), data)


@pytest.fixture(scope="module")
def apply_dir(tmp_path_factory, small_pre, particle_model):
    d = tmp_path_factory.mktemp("apply")
    pre = PreprocessConfig()
    write_volume(d / "pre.mrc", small_pre, 10.0, origin=(1.0, 2.0, 3.0),
                 labels=(f"tomoseg preprocess: {pre.describe()}",))
    for name, net in [("particle", particle_model.net), ("other", _random_net(2))]:
        model = Model(net=copy.deepcopy(net), amplitude=particle_model.amplitude if name == "particle" else 0.5,
                      name=name, voxel_size=10.0, preprocessing=pre.to_dict())
        save_model(d / f"{name}.model", model)
    return d


def test_several_models_give_the_same_maps_as_one_at_a_time(apply_dir, tmp_path):
    d = apply_dir
    apply_file(d / "particle.model", d / "pre.mrc", tmp_path / "one.mrc", slices_per_batch=5)
    outs = apply_files([d / "particle.model", d / "other.model"], d / "pre.mrc", tmp_path / "maps",
                       slices_per_batch=5)
    assert [p.name for p in outs] == ["pre_particle.mrc", "pre_other.mrc"]
    one, multi = read_volume(tmp_path / "one.mrc"), read_volume(outs[0])
    np.testing.assert_array_equal(np.asarray(one.data), np.asarray(multi.data))
    assert multi.origin == (1.0, 2.0, 3.0) and multi.label_value("feature") == "particle"
    assert read_volume(outs[1]).label_value("feature") == "other"


def test_interrupted_apply_resumes_to_an_identical_file(apply_dir, tmp_path, monkeypatch):
    d = apply_dir
    models = [d / "particle.model", d / "other.model"]
    apply_files(models, d / "pre.mrc", tmp_path / "full", slices_per_batch=4)

    def cancel_after_three_slabs(done, total, message=""):
        if done >= 12:
            raise Cancelled()

    with pytest.raises(Cancelled):
        apply_files(models, d / "pre.mrc", tmp_path / "part", slices_per_batch=4, progress=cancel_after_three_slabs)
    out = tmp_path / "part" / "pre_particle.mrc"
    assert not out.exists()
    data_path, journal = partial_paths(out)
    assert data_path.exists() and journal.exists()

    scored = []
    original = segment.score_prepared
    monkeypatch.setattr(segment, "score_prepared", lambda *a: scored.append(1) or original(*a))
    apply_files(models, d / "pre.mrc", tmp_path / "part", slices_per_batch=4, resume=True)
    assert len(scored) == 2 * (8 - 3)  # 32 slices = 8 slabs, 3 were done; two models
    for name in ("pre_particle.mrc", "pre_other.mrc"):
        full = (tmp_path / "full" / name).read_bytes()
        assert (tmp_path / "part" / name).read_bytes() == full
    assert not data_path.exists() and not journal.exists()


def test_resume_refuses_a_partial_result_from_other_settings(apply_dir, tmp_path):
    d = apply_dir

    def cancel(done, total, message=""):
        if done >= 8:
            raise Cancelled()

    with pytest.raises(Cancelled):
        apply_file(d / "particle.model", d / "pre.mrc", tmp_path / "s.mrc", slices_per_batch=4, progress=cancel)
    with pytest.raises(TomosegError, match="other inputs or settings"):
        apply_file(d / "particle.model", d / "pre.mrc", tmp_path / "s.mrc", slices_per_batch=8, resume=True)
    apply_file(d / "particle.model", d / "pre.mrc", tmp_path / "s.mrc", slices_per_batch=8)  # starts over
    assert (tmp_path / "s.mrc").exists() and not partial_paths(tmp_path / "s.mrc")[0].exists()


def test_failed_apply_leaves_nothing(apply_dir, tmp_path, small_pre):
    bad = small_pre.copy()
    bad[20, 5, 5] = np.nan
    write_volume(tmp_path / "bad.mrc", bad, 10.0, labels=(f"tomoseg preprocess: {PreprocessConfig().describe()}",))
    with pytest.raises(TomosegError, match="slices 20-23"):
        apply_file(apply_dir / "particle.model", tmp_path / "bad.mrc", tmp_path / "s.mrc", slices_per_batch=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mrc"]


def test_bad_device_and_threads_are_one_line_errors(apply_dir, tmp_path):
    with pytest.raises(TomosegError, match="`device`"):  # the field: the CLI says --device (test_errors.py)
        apply_file(apply_dir / "particle.model", apply_dir / "pre.mrc", tmp_path / "s.mrc", device="tpu")
    with pytest.raises(TomosegError, match="`threads`"):
        apply_file(apply_dir / "particle.model", apply_dir / "pre.mrc", tmp_path / "s.mrc", threads=0)


def test_cli_applies_several_models_into_a_folder(apply_dir, tmp_path, capsys):
    from tomoseg.cli.main import main

    d = apply_dir
    code = main(["apply", str(d / "particle.model"), str(d / "other.model"), str(d / "pre.mrc"),
                 "-o", str(tmp_path / "maps"), "--threads", "1", "--device", "cpu", "--quiet"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["pre_other.mrc", "pre_particle.mrc"]
    assert main(["apply", str(d / "pre.mrc"), "-o", str(tmp_path / "x.mrc"), "--quiet"]) == 2
    assert "MODEL [MODEL ...] TOMOGRAM" in capsys.readouterr().err


def test_an_unreadable_preprocessing_record_is_one_line_naming_the_file(apply_dir, tmp_path, capsys):
    from tomoseg.cli.main import main

    labels = (f"tomoseg preprocess: {PreprocessConfig().describe()}", "tomoseg resample: ten")
    write_volume(tmp_path / "odd.mrc", np.zeros((4, 32, 32), np.float32), 10.0, labels=labels)
    code = main(["apply", str(apply_dir / "particle.model"), str(tmp_path / "odd.mrc"), "-o", str(tmp_path / "s.mrc")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"tomoseg: error: {tmp_path / 'odd.mrc'}: unreadable tomoseg preprocessing")
    assert len(err.splitlines()) == 1 and not (tmp_path / "s.mrc").exists()


def test_apply_tta_records_it_and_refuses_bad_values(apply_dir, tmp_path):
    apply_file(apply_dir / "particle.model", apply_dir / "pre.mrc", tmp_path / "t.mrc", tta=4, slices_per_batch=8)
    vol = read_volume(tmp_path / "t.mrc")
    assert vol.label_value("tta") == "4"
    plain = tmp_path / "p.mrc"
    apply_file(apply_dir / "particle.model", apply_dir / "pre.mrc", plain, slices_per_batch=8)
    assert read_volume(plain).label_value("tta") is None
    assert not np.array_equal(np.asarray(vol.data), np.asarray(read_volume(plain).data))
    for bad in (0, 9):
        with pytest.raises(TomosegError, match="`tta` must be 1 to 8"):
            apply_file(apply_dir / "particle.model", apply_dir / "pre.mrc", tmp_path / "b.mrc", tta=bad)
    assert not (tmp_path / "b.mrc").exists()
