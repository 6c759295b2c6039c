"""Importers on fake trees in each dataset's layout, validation, identity-disjoint splits, the sample dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core import media
from moee_bench.bench.cli.app import main
from moee_bench.bench.core.errors import PathEscapeError
from moee_bench.bench.suite.importers import IMPORTERS
from moee_bench.bench.core.manifest import load_manifest
from moee_bench.bench.core.splits import apply_split, make_split, select_split


def _tiny(path: Path, n: int = 6) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return media.write_video(path, [np.full((n, 16, 16, 3), 90, np.uint8)], 25, audio=np.zeros(int(n / 25 * 16000), np.float32))


def test_mead_importer(tmp_path: Path):
    for actor in ("M003", "W009"):
        for emo, lvl in (("happy", 1), ("disgusted", 3), ("contempt", 2), ("neutral", 1)):
            _tiny(tmp_path / actor / "video" / "front" / emo / f"level_{lvl}" / "001.mp4")
            a = tmp_path / actor / "audio" / emo / f"level_{lvl}" / "001.m4a"
            a.parent.mkdir(parents=True, exist_ok=True)
            a.write_bytes(b"m4a" if actor == "M003" else b"")       # W009's files are empty: their video track is used
    m = IMPORTERS["mead"](tmp_path)
    assert len(m.clips) == 8
    by = m.by_id()
    c = by["M003_disgusted_level_3_001"]
    assert c.emotion.label == "disgust" and c.intensity == 3 and c.identity == "M003"
    assert c.audio == "M003/audio/disgusted/level_3/001.m4a"
    con = by["W009_contempt_level_2_001"]           # kept, labelled, flagged outside the taxonomy
    assert (con.emotion.kind, con.emotion.label, con.emotion.in_taxonomy, con.intensity) == ("other", "contempt", False, 2)
    assert m.meta["outside_taxonomy"]["contempt"]["count"] == 2
    assert con.audio is None and "4 empty .m4a files ignored" in m.meta["empty_audio_files"]
    # the reference portrait: the first frame of the identity's neutral clip, recorded at import
    assert (c.ref_image, c.ref_source) == ("M003/video/front/neutral/level_1/001.mp4", "neutral:M003_neutral_level_1_001")
    assert by["M003_neutral_level_1_001"].ref_image is None       # no other neutral clip: decided (and warned) at use
    assert m.meta["references"] == {"neutral": 6, "none": 2}


def test_filename_coded_importers(tmp_path: Path):
    _tiny(tmp_path / "rav" / "Actor_01" / "01-01-03-02-01-01-01.mp4")     # happy, strong
    _tiny(tmp_path / "rav" / "Actor_01" / "01-01-02-01-01-01-01.mp4")     # calm -> excluded
    _tiny(tmp_path / "rav" / "Actor_01" / "03-01-03-02-01-01-01.mp4")     # audio-only modality: skipped
    m = IMPORTERS["ravdess"](tmp_path / "rav")
    assert [c.emotion.label for c in m.clips] == ["calm", "happiness"] and m.clips[1].intensity == 2
    assert m.clips[0].emotion.kind == "other" and m.meta["outside_taxonomy"]["calm"]["count"] == 1
    _tiny(tmp_path / "cre" / "1001_DFA_ANG_XX.mp4")
    _tiny(tmp_path / "cre" / "1002_IEO_SAD_HI.mp4")
    m = IMPORTERS["crema-d"](tmp_path / "cre")
    assert {(c.identity, c.emotion.label, c.intensity) for c in m.clips} == {("1001", "anger", None), ("1002", "sadness", 3)}
    _tiny(tmp_path / "dh" / "007_happy_012.mp4")
    _tiny(tmp_path / "dh" / "008_sad_001.mp4")
    m = IMPORTERS["dh-faceemovid-150"](tmp_path / "dh")
    assert {(c.identity, c.emotion.label) for c in m.clips} == {("007", "happiness"), ("008", "sadness")}
    _tiny(tmp_path / "hd" / "WRA_Obama_000.mp4")
    _tiny(tmp_path / "hd" / "RD_Radio1_001.mp4")
    m = IMPORTERS["hdtf"](tmp_path / "hd")
    assert {c.identity for c in m.clips} == {"WRA_Obama", "RD_Radio1"} and all(c.emotion.kind == "neutral" for c in m.clips)


def test_folder_importer_rejects_escaping_paths(tmp_path: Path):
    _tiny(tmp_path / "v" / "a.mp4")
    ok = tmp_path / "ok.csv"
    ok.write_text("path,emotion,identity\nv/a.mp4,sad+surprised,p1\n")
    m = IMPORTERS["folder"](tmp_path, ok)
    assert m.clips[0].emotion.kind == "compound"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,emotion\n../outside.mp4,happy\n")
    with pytest.raises(PathEscapeError, match="clip outside: .*escapes the dataset root"):
        IMPORTERS["folder"](tmp_path, bad)


def test_import_and_validate_cli(tmp_path: Path, capsys):
    root = tmp_path / "ds"
    _tiny(root / "v" / "good.mp4")
    (root / "v" / "broken.mp4").write_bytes(b"\x00" * 500)
    (root / "list.csv").write_text("path,emotion\nv/good.mp4,happy\nv/broken.mp4,fear\n")
    out = tmp_path / "m.json"
    assert main(["data", "import", "folder", str(root), "--csv", str(root / "list.csv"), "--out", str(out)]) == 0
    assert main(["data", "validate", str(out), "--out", str(tmp_path / "clean.json")]) == 0
    text = capsys.readouterr().out
    assert "clip broken: " in text and "corrupt" in text and "1 clips ok, 1 with problems" in text
    assert [c.clip_id for c in load_manifest(tmp_path / "clean.json").clips] == ["good"]
    assert main(["data", "validate", str(out), "--strict"]) == 3             # exitcodes.FAILED_CLIPS


def test_split_is_deterministic_and_identity_disjoint(tmp_path: Path):
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest

    clips = [ClipRecord(f"c{i}", f"id{i % 10}", f"v{i}.mp4", parse_emotion("happy")) for i in range(60)]
    m = Manifest("d", tmp_path, clips)
    a, b = make_split(m, seed=3), make_split(m, seed=3)
    assert a == b and make_split(m, seed=4)["identities"] != a["identities"]
    owner = {}
    for s, ids in a["identities"].items():
        for i in ids:
            assert i not in owner, f"identity {i} in {owner.get(i)} and {s}"
            owner[i] = s
    assert set(owner) == {f"id{k}" for k in range(10)}
    for s, cids in a["clips"].items():
        assert all(owner[m.by_id()[c].identity] == s for c in cids)
    applied = apply_split(m, a)
    assert {c.clip_id for c in select_split(applied, "test")} == set(a["clips"]["test"])
    assert applied.meta["split"]["seed"] == 3 and len(applied.meta["split"]["hash"]) == 64
    off = make_split(m, official={c.clip_id: ("test" if c.identity == "id0" else "train") for c in clips})
    assert off["source"] == "official" and off["identities"]["test"] == ["id0"]


def test_sample_dataset(sample_manifest: Path):
    m = load_manifest(sample_manifest)
    assert len(m.clips) == 27 and len({c.identity for c in m.clips}) == 3
    kinds = {c.emotion.kind for c in m.clips}
    assert kinds == {"basic", "neutral", "compound"}
    splits = {c.split: set() for c in m.clips}
    for c in m.clips:
        splits[c.split].add(c.identity)
    assert splits == {"test": {"astronaut", "lfw12"}, "train": {"hopper"}}     # 2 held-out identities
    size = sum(p.stat().st_size for p in sample_manifest.parent.rglob("*") if p.is_file())
    assert size < 30e6
    clip = m.by_id()["astronaut_neutral"]
    frames = media.read_frames(m.media_path(clip))
    assert frames.shape[1:] == (256, 256, 3) and 50 <= len(frames) <= 100
    audio = media.read_audio(m.media_path(clip, "audio"))
    # mouth region brightness tracks the speech envelope: the puppet darkens the open mouth (on the neutral
    # clip, where nothing else moves the mouth; surprise holds the jaw dropped and speech only modulates it)
    from moee_bench.bench.suite.sample.speech import envelope

    env = envelope(audio, 25.0, len(frames))
    mouth = frames[:, 150:200, 100:160].astype(float).mean(axis=(1, 2, 3))
    r = np.corrcoef(env, -mouth)[0, 1]
    assert r > 0.5, f"mouth motion does not follow speech (r={r:.2f})"
    # emotions differ: the surprise clip's last frame differs from the neutral clip's, its mouth open and darker
    surprise = media.read_frames(m.media_path(m.by_id()["astronaut_surprise"]))
    assert np.abs(surprise[-1].astype(int) - frames[-1].astype(int)).mean() > 2
    assert surprise[10:, 150:200, 100:160].mean() < mouth[10:].mean() - 5


def test_a_reference_that_names_a_video_is_its_first_frame(tmp_path: Path):
    from moee_bench.bench.core.emotions import parse_emotion
    from moee_bench.bench.core.manifest import ClipRecord, Manifest
    from moee_bench.bench.core.references import assign_references, choose_reference

    _tiny(tmp_path / "a_neutral.mp4")
    _tiny(tmp_path / "a_happy.mp4")
    clips = [ClipRecord("a_neutral", "a", "a_neutral.mp4", parse_emotion("neutral")),
             ClipRecord("a_happy", "a", "a_happy.mp4", parse_emotion("happy")),
             ClipRecord("b_sad", "b", "a_happy.mp4", parse_emotion("sad"), ref_image="a_neutral.mp4")]
    m = assign_references(Manifest("d", tmp_path, clips))
    by = m.by_id()
    assert (by["a_happy"].ref_image, by["a_happy"].ref_source) == ("a_neutral.mp4", "neutral:a_neutral")
    assert by["b_sad"].ref_source is None                        # set by the user: never replaced
    choice = choose_reference(m, by["a_happy"])
    assert choice.source == "manifest:neutral:a_neutral" and choice.image is None and choice.frame == 0
    assert choice.video == tmp_path / "a_neutral.mp4" and not choice.leaks_target
    assert np.array_equal(media.read_image(choice.video), media.first_frame(tmp_path / "a_neutral.mp4"))
