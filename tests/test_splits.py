"""Held-out splits: one source of truth (the manifest written by ``data split``) honoured by generate, train,
run, score --manifest and throughput; empty splits refused everywhere; identity-disjointness between the
data a checkpoint was trained on and the split it is evaluated on; labels outside the taxonomy kept and
skipped with counted reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.cli.app import main
from moee_bench.bench.core import media
from moee_bench.bench.core.emotions import parse_emotion
from moee_bench.bench.core.errors import ManifestError
from moee_bench.bench.core.manifest import ClipRecord, Manifest, load_manifest
from moee_bench.bench.core import splits

ACTORS = ("M003", "M009", "W011", "W015")


def _clip(path: Path, shade: int, n: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = np.full((n, 32, 32, 3), shade, np.uint8)
    frames[:, 8:24, 8:24] = 255 - shade                   # something to tell first frames apart
    return media.write_video(path, [frames], 25, audio=(0.05 * np.sin(np.arange(int(n / 25 * 16000)) / 9)).astype(np.float32))


@pytest.fixture(scope="module")
def mead(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MEAD tree: 4 actors x (neutral level 1, happy level 3, contempt level 2), front camera, m4a-less."""
    root = tmp_path_factory.mktemp("mead")
    for i, actor in enumerate(ACTORS):
        for j, (emo, lvl) in enumerate((("neutral", 1), ("happy", 3), ("contempt", 2))):
            _clip(root / actor / "video" / "front" / emo / f"level_{lvl}" / "001.mp4", 20 + 40 * i + 10 * j)
    return root


@pytest.fixture(scope="module")
def imported(mead: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("m") / "mead.json"
    assert main(["data", "import", "mead", str(mead), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def split_manifest(imported: Path) -> Path:
    out = imported.with_name("mead_split.json")
    assert main(["data", "split", str(imported), "--out", str(out), "--seed", "1"]) == 0
    return out


def test_workflow_import_split_generate_on_test(split_manifest: Path, tmp_path: Path, capsys):
    """The README path: data import mead -> data split -> generate --split test; the split is the manifest's."""
    m = load_manifest(split_manifest)
    info = m.meta["split"]
    assert info["seed"] == 1 and info["hash"] == splits.assignment_hash(m) and info["source"] == "seeded"
    by_split: dict[str, set[str]] = {}
    for c in m.clips:
        by_split.setdefault(c.split, set()).add(c.identity)
    assert set(by_split) == {"train", "val", "test"} and sum(len(v) for v in by_split.values()) == len(ACTORS)
    test_ids = sorted(c.clip_id for c in m.clips if c.split == "test")
    out = tmp_path / "gen"
    assert main(["generate", "--method", "static", "--manifest", str(split_manifest), "--split", "test", "--out", str(out),
                 "--size", "32x32"]) == 0
    assert sorted(p.stem for p in out.glob("*.mp4")) == test_ids          # contempt included: static has no vocabulary
    rec = json.loads((out / f"{test_ids[0]}.json").read_text())
    assert rec["split"] == {"name": "test", "hash": info["hash"], "manifest_hash": m.content_hash()}
    assert rec["method"]["training_data"] == "unknown"
    # the reference is the identity's neutral clip's first frame, never the target's own
    happy = next(c for c in m.clips if c.split == "test" and c.emotion.label == "happiness")
    assert happy.ref_source == f"neutral:{happy.identity}_neutral_level_1_001"
    assert f"split 'test' (hash {info['hash'][:12]})" in capsys.readouterr().out


def test_split_in_place_then_generate(imported: Path, tmp_path: Path):
    """Without --out, `data split` writes the split into the manifest it was given."""
    m = load_manifest(imported).save(tmp_path / "m.json")
    assert main(["data", "split", str(m), "--seed", "2"]) == 0
    assert load_manifest(m).meta["split"]["seed"] == 2
    assert main(["generate", "--method", "static", "--manifest", str(m), "--split", "test", "--out", str(tmp_path / "g"),
                 "--size", "32x32", "--limit", "1"]) == 0
    assert len(list((tmp_path / "g").glob("*.mp4"))) == 1


def test_train_refuses_a_manifest_without_the_split(imported: Path, tmp_path: Path, capsys):
    """No fallback to every clip: the unsplit manifest has no `train` split, and train says so before any work."""
    rc = main(["train", "--stage", "1", "--manifest", str(imported), "--split", "train", "--out", str(tmp_path / "t"),
               "--steps", "1"])
    err = capsys.readouterr().err
    assert rc == 2 and "split 'train'" in err and str(imported) in err and "data split" in err
    assert not list((tmp_path / "t").glob("ckpt-*"))


@pytest.mark.parametrize("argv", [
    ["generate", "--method", "static", "--split", "val", "--out", "{tmp}/g"],
    ["throughput", "--method", "static", "--split", "val", "--repeats", "1"],
    ["score", "--pred", "{tmp}", "--split", "val", "--metrics", "psnr", "--json", "{tmp}/s.json"],
])
def test_an_empty_split_is_an_error_naming_split_and_manifest(imported: Path, tmp_path: Path, capsys, argv):
    (tmp_path / "x.mp4").write_bytes(b"")
    args = [a.format(tmp=tmp_path) for a in argv] + ["--manifest", str(imported)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "split 'val'" in err and str(imported) in err


def test_run_refuses_an_empty_split(imported: Path, tmp_path: Path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\ndataset = "{imported}"\nsplit = "test"\nmetrics = ["psnr"]\n[[methods]]\nname = "static"\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "o"), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert "split 'test'" in err and str(imported) in err


def test_suite_split_files_are_refused(imported: Path, tmp_path: Path, capsys):
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\ndataset = "{imported}"\nsplit = "test"\nsplit_file = "x.json"\nmetrics = ["psnr"]\n'
                     '[[methods]]\nname = "static"\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "o")]) == 2
    assert "data split" in capsys.readouterr().err


def test_two_identities_cannot_fill_three_splits(tmp_path: Path, capsys):
    clips = [ClipRecord(f"c{i}", f"id{i % 2}", f"v{i}.mp4", parse_emotion("happy")) for i in range(6)]
    m = Manifest("d", tmp_path, clips)
    with pytest.raises(ManifestError, match=r"2 identities cannot fill 3 .*train=2, val=0, test=0"):
        splits.make_split(m)
    ok = splits.make_split(m, ratios={"train": 0.5, "test": 0.5})
    assert [len(v) for v in ok["identities"].values()] == [1, 1]
    p = m.save(tmp_path / "m.json")
    assert main(["data", "split", str(p), "--out", str(tmp_path / "s.json")]) == 2
    assert "cannot fill" in capsys.readouterr().err and not (tmp_path / "s.json").exists()


def test_score_with_a_split_scores_only_its_clips_and_records_the_hash(split_manifest: Path, tmp_path: Path):
    m = load_manifest(split_manifest)
    pred = tmp_path / "pred"
    for c in m.clips[:6]:
        _clip(pred / f"{c.clip_id}.mp4", 90)
    out = tmp_path / "s.json"
    assert main(["score", "--pred", str(pred), "--manifest", str(split_manifest), "--split", "test", "--metrics", "psnr",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    want = {c.clip_id for c in m.clips[:6] if c.split == "test"}
    assert {c["clip"] for c in res["clips"]} == want
    assert res["protocol"]["split"]["hash"] == splits.assignment_hash(m)
    assert any("not clips of split 'test'" in w for w in res["protocol"]["pairing_warnings"])


def test_throughput_uses_the_reference_policy_and_the_split(split_manifest: Path, monkeypatch):
    """The request's reference is the neutral clip's first frame (a real image), not the target's video."""
    import moee_bench.bench.perf.throughput as tp
    from moee_bench.baselines.builtin import Static

    seen = []

    class Recording(Static):
        def generate(self, request):
            seen.append((request.clip_id, media.read_image(request.ref_image), Path(request.ref_image).suffix))
            return super().generate(request)

    monkeypatch.setattr(tp, "build_method", lambda name, cfg=None: Recording(cfg))
    m = load_manifest(split_manifest)
    happy = next(c for c in m.clips if c.split == "test" and c.emotion.label == "happiness")
    r = tp.measure("static", m, [happy.clip_id], split="test", repeats=1)
    assert r["split"] == "test" and r["split_hash"] == splits.assignment_hash(m)
    donor = m.by_id()[happy.ref_source.split(":", 1)[1]]
    first = media.first_frame(m.media_path(donor))
    assert seen and all(s == ".png" and np.array_equal(img, first) for _, img, s in seen)
    with pytest.raises(Exception, match="not in split 'test'"):
        tp.measure("static", m, [next(c.clip_id for c in m.clips if c.split == "train")], split="test", repeats=1)


# ----------------------------------------------------------------------------- identity-disjointness
def _fake_checkpoint(root: Path, training: list[dict]) -> Path:
    """A moee-ref checkpoint folder as far as its provenance goes (trainer.json); no model is loaded."""
    d = root / "ckpt-0000001"
    d.mkdir(parents=True)
    (d / "trainer.json").write_text(json.dumps({"stage": 2, "step": 1, "training_data": training}))
    return root


def test_generate_refuses_a_checkpoint_on_its_training_identities(split_manifest: Path, tmp_path: Path, capsys):
    m = load_manifest(split_manifest)
    test_ident = sorted({c.identity for c in m.clips if c.split == "test"})
    ck = _fake_checkpoint(tmp_path / "run", [{"dataset": "mead", "name": "train", "identities": test_ident, "stage": 1}])
    args = ["generate", "--method", "moee-ref", "--checkpoint", str(ck), "--manifest", str(split_manifest), "--split",
            "test", "--out", str(tmp_path / "g"), "--dry-run"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "trained on 1 identities of mead" in err and test_ident[0] in err and "--allow-identity-overlap" in err
    assert main(args + ["--allow-identity-overlap"]) == 0           # on purpose: allowed
    out = capsys.readouterr().out
    # moee-ref's vocabulary lacks contempt: that clip is skipped with a counted reason
    assert "skipped 1 clips: emotion 'contempt' is outside the MoEE taxonomy" in out
    other = _fake_checkpoint(tmp_path / "run2", [{"dataset": "mead", "identities": ["X999"], "stage": 1}])
    assert main(args[:4] + [str(other)] + args[5:]) == 0


def test_run_refuses_a_checkpoint_on_its_training_identities_before_any_work(split_manifest: Path, tmp_path: Path, capsys):
    m = load_manifest(split_manifest)
    test_ident = sorted({c.identity for c in m.clips if c.split == "test"})
    ck = _fake_checkpoint(tmp_path / "run", [{"dataset": "mead", "identities": test_ident, "stage": 2}])
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\ndataset = "{split_manifest}"\nsplit = "test"\nmetrics = ["psnr"]\n'
                     f'[[methods]]\nname = "static"\n[[methods]]\nname = "moee-ref"\ncheckpoint = "{ck}"\n')
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "o"), "--no-report"]) == 2
    assert "moee-ref was trained on 1 identities of mead" in capsys.readouterr().err
    assert not (tmp_path / "o" / "videos").exists()                 # refused before static generated anything


def test_run_records_split_hash_training_data_and_skips(split_manifest: Path, tmp_path: Path, monkeypatch):
    """A suite run records the split's hash and each method's training data; a method whose vocabulary lacks a
    clip's label skips it (status `skipped`, counted in n_skipped), not a failure."""
    import moee_bench.baselines.registry as reg
    from moee_bench.baselines.base import Capabilities
    from moee_bench.baselines.builtin import Static
    from moee_bench.bench.suite.runner import run_suite
    from moee_bench.bench.suite.store import ResultStore
    from moee_bench.bench.suite.spec import load_suite

    class SevenLabels(Static):
        name = "seven-labels"
        capabilities = Capabilities(emotion_inputs=frozenset({"label"}),
                                    emotion_vocabulary=("happiness", "sadness", "anger", "disgust", "fear", "surprise",
                                                        "neutral"))

    monkeypatch.setitem(reg.METHODS, "seven-labels", f"{__name__}:SevenLabels")
    globals()["SevenLabels"] = SevenLabels
    suite = tmp_path / "s.toml"
    suite.write_text(f'name = "s"\ndataset = "{split_manifest}"\nsplit = "test"\nmetrics = ["psnr"]\nsize = [32, 32]\n'
                     '[[methods]]\nname = "seven-labels"\n')
    s = run_suite(load_suite(suite), tmp_path / "o", report=False, log=lambda *a, **k: None)
    assert not s.failures
    st = ResultStore(tmp_path / "o" / "store")
    (run,) = st.runs()
    m = load_manifest(split_manifest)
    assert run["meta"]["split"]["hash"] == splits.assignment_hash(m) and run["meta"]["split"]["name"] == "test"
    meth = run["meta"]["methods"]["seven-labels"]
    assert meth["training_data"] == "unknown" and "not possible" in meth["identity_check"]
    agg = st.aggregates(s.run_id).set_index("key")["value"]
    assert agg["n_skipped"] == 1 and agg["n_missing"] == 0
    status = st.status_table(s.run_id)
    con = status[status.clip_id.str.contains("contempt")]
    assert list(con.status) == ["skipped"] and "outside the MoEE taxonomy" in con.message.iloc[0]
    assert set(status[~status.clip_id.str.contains("contempt")].status) == {"ok"}
    st.close()


# ----------------------------------------------------------------------------- outside the taxonomy
def test_emotion_metric_skips_labels_outside_the_taxonomy_with_a_count(tmp_path: Path):
    from moee_bench.metrics.core.base import ClipInput
    from moee_bench.metrics.emotion.metric import Emotion
    from moee_bench.metrics.core.evaluate import evaluate
    from moee_bench.metrics.core.registry import MetricOptions

    v = _clip(tmp_path / "a.mp4", 128)
    clips = [ClipInput("con", v, emotion=parse_emotion("contempt", keep_outside=True)),
             ClipInput("sad", v, emotion=parse_emotion("sadness"))]
    res = evaluate(clips, [Emotion(MetricOptions())], progress=False)
    assert res.clips[0].status["emotion"] == "outside_taxonomy" and "contempt" in res.clips[0].messages["emotion"]
    assert res.clips[1].status["emotion"] == "no_face"
    assert res.metrics["emotion_skipped_outside_taxonomy"] == 1


def test_training_skips_outside_labels_and_records_what_it_trained_on(split_manifest: Path):
    from moee_bench.moee_ref.train import training_clips

    m = load_manifest(split_manifest)
    logs: list[str] = []
    ids, rec = training_clips(m, "train", None, 1, logs.append)
    train = [c for c in m.clips if c.split == "train"]
    assert ids == [c.clip_id for c in train if c.emotion.kind != "other"]
    assert rec["skipped_outside_taxonomy"] == {"contempt": len({c.identity for c in train})}
    assert rec["identities"] == sorted({c.identity for c in train}) and rec["hash"] == splits.assignment_hash(m)
    assert rec["manifest_hash"] == m.content_hash() and rec["name"] == "train" and "skipping" in logs[0]
