"""Suggested tiles (steps/suggest, tomoseg suggest) and fine-tuning (train --init)."""

import numpy as np
import pytest

from tomoseg.errors import InvalidValue
from tomoseg.steps.suggest import SuggestConfig, suggest_tiles
from tomoseg.types import Box


def _spread_ok(found, boxes=(), tile=64):
    """No two suggestions closer than a tile (3D); none overlapping a box's tile within tile/8 slices."""
    pts = np.array([[s.x, s.y, s.z] for s in found], float)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(-1)) + np.eye(len(pts)) * 1e9
    apart = d.min() >= tile
    return apart and not any(abs(s.x - b.x) < tile and abs(s.y - b.y) < tile and abs(s.z - b.z) < tile / 8
                             for s in found for b in boxes)


def test_each_strategy_finds_the_tiles_it_is_made_for():
    rng = np.random.default_rng(0)
    scores = np.zeros((6, 160, 160), np.float32)
    scores[2, 20:60, 20:60] = 1.0 + rng.uniform(-0.1, 0.1, (40, 40))  # near the threshold: uncertain
    scores[4, 100:140, 100:140] = 3.0                                  # confident
    other = np.zeros_like(scores)
    other[4, 100:140, 100:140] = 2.0                                  # ... where another feature fires too
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="uncertain"))
    assert (found[0].z, abs(found[0].x - 40) <= 16, abs(found[0].y - 40) <= 16) == (2, True, True)
    assert found[0].reason.startswith("uncertain")
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="false-positive"), others=other[None])
    assert found[0].z == 4 and abs(found[0].x - 120) <= 16 and "another feature" in found[0].reason
    # without other features: confident detections far from the positive boxes come first
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="false-positive"),
                          boxes=[Box(120, 120, 4, True)])
    assert [s.z for s in found] == [2]  # the strong detection sits on a positive box; the weak one is far from it
    variants = np.stack([scores, scores])
    variants[1, 0, 60:120, 20:80] = 2.0  # two networks disagree on slice 0
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="disagree"), variants=variants)
    assert found[0].z == 0 and abs(found[0].y - 90) <= 16 and found[0].reason.startswith("disagree")
    spread = np.zeros_like(scores)
    spread[5, 20:60, 100:140] = 0.8  # tomoseg consensus --spread: the annotators differ here
    found = suggest_tiles(scores, config=SuggestConfig(n=1, strategy="disagree"), spread=spread)
    assert (found[0].z, abs(found[0].y - 40) <= 16, abs(found[0].x - 120) <= 16) == (5, True, True)


def test_suggestions_spread_avoid_boxes_and_are_seeded():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0.5, 1.5, (20, 200, 200)).astype(np.float32)
    boxes = [Box(100, 100, 10, True), Box(50, 60, 3, False)]
    for strategy in ("uncertain", "mixed", "random", "false-positive"):
        config = SuggestConfig(n=12, strategy=strategy, seed=3)
        found = suggest_tiles(scores, np.arange(0, 200, 10), boxes, config, variants=np.stack([scores, scores * 1.1]))
        assert len(found) == 12 and _spread_ok(found, boxes), strategy
        assert all(32 <= s.x <= 168 and 32 <= s.y <= 168 and s.z % 10 == 0 for s in found)  # tiles inside slices
        assert found == suggest_tiles(scores, np.arange(0, 200, 10), boxes, config,
                                      variants=np.stack([scores, scores * 1.1]))
    assert suggest_tiles(scores, config=SuggestConfig(n=5, strategy="random", seed=1)) != \
        suggest_tiles(scores, config=SuggestConfig(n=5, strategy="random", seed=2))
    mixed = suggest_tiles(scores, config=SuggestConfig(n=6, strategy="mixed"), variants=np.stack([scores, scores * 1.1]))
    assert {s.reason.split(":")[0] for s in mixed} == {"uncertain", "false positive?", "disagree"}


def test_bad_suggest_input_names_the_field():
    with pytest.raises(InvalidValue, match="`strategy`"):
        SuggestConfig(strategy="best")
    with pytest.raises(InvalidValue, match="`variants`"):
        suggest_tiles(np.zeros((2, 80, 80)), config=SuggestConfig(strategy="disagree"))
    with pytest.raises(InvalidValue, match="smaller than a 64-pixel tile"):
        suggest_tiles(np.zeros((2, 40, 80)))


@pytest.fixture
def loop_files(tmp_path, small_tomo, small_pre):
    """A preprocessed tomogram, its labels, a first box list and a network trained on it."""
    from tomoseg.cli.main import main
    from tomoseg.io.boxes import write_boxes
    from tomoseg.io.mrc import header_label, write_volume
    from tomoseg.steps.preprocess import PreprocessConfig
    from tomoseg.steps.trainset import choose_boxes

    d = tmp_path
    pre, labels = np.tile(small_pre, (1, 2, 2)), np.tile(small_tomo.labels, (1, 2, 2))  # 32 x 256 x 256
    write_volume(d / "pre.mrc", pre, 10.0, labels=(header_label("preprocess", PreprocessConfig().describe()),))
    write_volume(d / "labels.mrc", labels.astype(np.int8), 10.0)
    # the first boxes on slices 0-11: room for suggestions on the others
    write_boxes(d / "boxes.csv", choose_boxes(labels[:12], 3, n_positive=3, n_negative=3, seed=0))
    assert main(["trainset", str(d / "pre.mrc"), "--boxes", str(d / "boxes.csv"), "--labels", str(d / "labels.mrc"),
                 "--value", "3", "--name", "particle", "-o", str(d / "p.set")]) == 0
    assert main(["train", str(d / "p.set"), "-o", str(d / "p.model"), "--recipe", "fast", "--epochs", "2", "-q"]) == 0
    return d


def test_the_annotation_loop_on_the_command_line(loop_files, small_tomo, capsys):
    """suggest -> the user answers -> train --init: a fine-tuned network that records where it started."""
    import csv

    from tomoseg.cli.main import main
    from tomoseg.errors import TomosegError
    from tomoseg.io.boxes import read_boxes, write_boxes
    from tomoseg.io.model_file import load_model

    d = loop_files
    args = ["suggest", str(d / "p.model"), str(d / "pre.mrc"), "-o", str(d / "next.csv"), "--n", "3",
            "--boxes", str(d / "boxes.csv")]
    assert main(args) == 0
    rows = list(csv.DictReader(open(d / "next.csv")))
    assert len(rows) == 3 and {r["kind"] for r in rows} == {"?"} and all(r["reason"] for r in rows)
    boxes = read_boxes(d / "boxes.csv")
    found = [(int(r["x"]), int(r["y"]), int(r["z"])) for r in rows]
    for x, y, z in found:  # no tile overlapping an earlier box's
        assert not any(abs(x - b.x) < 64 and abs(y - b.y) < 64 and abs(z - b.z) < 8 for b in boxes)
    with pytest.raises(TomosegError, match="no row says positive or negative yet"):
        read_boxes(d / "next.csv")
    assert main(args + ["--overwrite"]) == 0
    assert [dict(r) for r in csv.DictReader(open(d / "next.csv"))] == rows  # seeded: the same suggestions

    # the user's answers (here from the labels): a tile holding the feature is positive
    from tomoseg.types import Box
    labels = np.tile(small_tomo.labels, (1, 2, 2))
    answered = [Box(x, y, z, bool((labels[z, y - 32:y + 32, x - 32:x + 32] == 3).any())) for x, y, z in found]
    write_boxes(d / "boxes2.csv", boxes + answered)
    assert main(["trainset", str(d / "pre.mrc"), "--boxes", str(d / "boxes2.csv"), "--labels", str(d / "labels.mrc"),
                 "--value", "3", "--name", "particle", "-o", str(d / "p2.set")]) == 0
    capsys.readouterr()
    assert main(["train", str(d / "p2.set"), "-o", str(d / "p2.model"), "--init", str(d / "p.model"), "--epochs", "1"]) == 0
    first, tuned = load_model(d / "p.model"), load_model(d / "p2.model")
    assert tuned.training["config"]["recipe"] == "fine-tune" and tuned.training["init"]["rounds"] == 1
    assert tuned.training["init"]["path"] == str(d / "p.model")
    moved = [float((a - b).abs().max()) for a, b in zip(first.net.parameters(), tuned.net.parameters())]
    assert 0 < max(moved) < 0.5 * max(float(p.abs().max()) for p in first.net.parameters())  # moved, not reset
    assert main(["train", str(d / "p2.set"), "-o", str(d / "p3.model"), "--init", str(d / "p2.model"), "--epochs", "1",
                 "-q"]) == 0
    assert load_model(d / "p3.model").training["init"]["rounds"] == 2

    # refusals: one line each, nothing written
    capsys.readouterr()
    assert main(["train", str(d / "p2.set"), "-o", str(d / "x.model"), "--recipe", "fine-tune"]) == 2
    assert "--recipe fine-tune continues an existing network: give it as --init" in capsys.readouterr().err
    write_boxes(d / "b3.csv", answered + boxes)
    assert main(["trainset", str(d / "pre.mrc"), "--boxes", str(d / "b3.csv"), "--labels", str(d / "labels.mrc"),
                 "--value", "3", "--name", "ribosome", "-o", str(d / "r.set")]) == 0
    capsys.readouterr()
    assert main(["train", str(d / "r.set"), "-o", str(d / "y.model"), "--init", str(d / "p.model")]) == 2
    err = capsys.readouterr().err
    assert "p.model cannot be fine-tuned on" in err and "feature 'particle'" in err and len(err.strip().splitlines()) == 1
    assert not (d / "y.model").exists()
    # several networks: of the feature (disagree), of other features (false-positive)
    assert main(["train", str(d / "r.set"), "-o", str(d / "r.model"), "--recipe", "fast", "--epochs", "1", "-q"]) == 0
    assert main(["suggest", str(d / "p.model"), str(d / "pre.mrc"), "-o", str(d / "n2.csv"), "--strategy",
                 "disagree", "--models", str(d / "p2.model"), "--n", "2", "-q"]) == 0
    assert all(r["reason"].startswith("disagree") for r in csv.DictReader(open(d / "n2.csv")))
    assert main(["suggest", str(d / "p.model"), str(d / "pre.mrc"), "-o", str(d / "n3.csv"), "--models",
                 str(d / "r.model")]) == 2
    assert "r.model: a network of 'ribosome', not of 'particle'" in capsys.readouterr().err
    assert not (d / "n3.csv").exists()


def test_a_round_of_the_loop_on_a_project_from_the_command_line(loop_files, small_tomo, capsys):
    """project suggest -> answers in the CSV -> project import-boxes -> project train --fine-tune."""
    import csv

    from tomoseg.cli.main import main
    from tomoseg.io.model_file import load_model
    from tomoseg.workflows.project import Project

    d = loop_files
    proj = str(d / "proj")
    assert main(["project", "create", proj, str(d / "pre.mrc"), "-q"]) == 0
    assert main(["project", "import-boxes", proj, "particle", str(d / "boxes.csv"), "-q"]) == 0
    assert main(["project", "import-masks", proj, "particle", str(d / "labels.mrc"), "--value", "3", "-q"]) == 0
    assert main(["project", "train", proj, "particle", "--fine-tune", "-q"]) == 2  # nothing to fine-tune yet
    assert "no trained network to fine-tune yet" in capsys.readouterr().err
    assert main(["project", "train", proj, "particle", "--recipe", "fast", "--epochs", "1", "-q"]) == 0
    assert main(["project", "suggest", proj, "particle", "--n", "2", "-o", str(d / "next.csv"), "-q"]) == 0
    rows = list(csv.DictReader(open(d / "next.csv")))
    assert len(rows) == 2 and Project.open(proj).features["particle"].rounds == 1
    labels = np.tile(small_tomo.labels, (1, 2, 2))
    for r in rows:  # the user's answers
        x, y, z = int(r["x"]), int(r["y"]), int(r["z"])
        r["kind"] = "positive" if (labels[z, y - 32:y + 32, x - 32:x + 32] == 3).any() else "negative"
    with open(d / "next.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["project", "import-boxes", proj, "particle", str(d / "next.csv"), "-q"]) == 0
    feature = Project.open(proj).features["particle"]
    assert [t.answer for t in feature.suggested] == [r["kind"] for r in rows] and not feature.pending()
    assert main(["project", "train", proj, "particle", "--fine-tune", "--epochs", "1", "-q"]) == 0
    model = load_model(d / "proj" / "models" / "particle.model")
    assert model.training["init"]["rounds"] == 1 and (d / "proj" / "models" / "history" / "particle.1.model").exists()
    capsys.readouterr()
    assert main(["project", "show", proj]) == 0
    assert "1 rounds of suggestions, 0 tiles to answer" in capsys.readouterr().out
