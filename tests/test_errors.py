"""Errors name config fields in the library and flags on the command line (tomoseg.errors)."""

from __future__ import annotations

import pytest

from tomoseg.cli.main import main
from tomoseg.errors import InvalidValue, TomosegError, about
from tomoseg.steps.recipes import TrainConfig, recipe


def test_a_config_names_its_field_and_is_a_tomoseg_error_and_a_value_error():
    with pytest.raises(InvalidValue) as info:
        TrainConfig(learning_rate=-1)
    assert isinstance(info.value, TomosegError) and isinstance(info.value, ValueError)
    assert info.value.fields() == ["learning_rate"]
    assert "--" not in str(info.value)
    assert info.value.in_words(lambda f: f"[{f}]") == "[learning_rate] must be > 0, got -1"
    with pytest.raises(InvalidValue, match="unknown `recipe`"):
        recipe("nonsense")


def test_about_names_the_file_and_keeps_other_errors():
    with pytest.raises(InvalidValue, match=r"^boxes.csv: the box list is empty$"):
        with about("boxes.csv"):
            raise ValueError("the box list is empty")
    with pytest.raises(TomosegError, match=r"^other.mrc: broken$") as info:
        with about("boxes.csv"):
            raise TomosegError("other.mrc: broken")
    assert not isinstance(info.value, InvalidValue)


@pytest.mark.parametrize("argv, flag", [
    (["train", "x.set", "-o", "x.model", "--lr", "-1"], "--lr must be > 0"),
    (["train", "x.set", "-o", "x.model", "--copies", "0"], "--copies must be >= 1"),
    (["train", "x.set", "-o", "x.model", "--imaging-jitter", "-1"], "--imaging-jitter must be >= 0"),
    (["preprocess", "in.mrc", "-o", "out.mrc", "--bin", "0"], "--bin must be >= 1"),
])
def test_the_command_line_says_its_flags(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "`" not in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_voxel_size_asks_for_the_flag(tmp_path, capsys):
    import numpy as np

    from tomoseg.io.mrc import write_volume

    write_volume(tmp_path / "novox.mrc", np.zeros((4, 8, 8), np.float32), 0.0)
    assert main(["preprocess", str(tmp_path / "novox.mrc"), "-o", str(tmp_path / "out.mrc")]) == 2
    err = capsys.readouterr().err
    assert "give it with --voxel-size" in err and not (tmp_path / "out.mrc").exists(), err
