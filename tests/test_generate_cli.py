"""``moee-bench generate``: a split's videos with one method, resumable, failures recorded, paths contained."""

from __future__ import annotations

import json
from pathlib import Path

from moee_bench.bench.core import media
from moee_bench.bench.cli.app import main


def test_generate_static_resumes_and_overrides_emotion(sample_manifest: Path, tmp_path: Path, capsys):
    out = tmp_path / "gen"
    args = ["generate", "--method", "static", "--manifest", str(sample_manifest), "--split", "test", "--out", str(out),
            "--limit", "2", "--size", "64x64", "--emotion", "sadness"]
    assert main(args) == 0
    vids = sorted(out.glob("*.mp4"))
    assert len(vids) == 2
    rec = json.loads(vids[0].with_suffix(".json").read_text())
    assert rec["emotion"]["label"] == "sadness" and rec["method"]["name"] == "static"
    info = media.probe(vids[0])
    assert (info.fps, info.height, info.has_audio) == (25.0, 64, True)
    stamp = vids[0].stat().st_mtime_ns
    vids[1].with_suffix(".json").unlink()             # as if killed between the video and its record
    assert main(args) == 0
    assert "1 generated, 1 already done" in capsys.readouterr().out
    assert vids[0].stat().st_mtime_ns == stamp


def test_generate_records_failures(sample_manifest: Path, tmp_path: Path, capsys):
    out = tmp_path / "pre"
    rc = main(["generate", "--method", "precomputed", "--config", f"folder={tmp_path / 'empty'}", "--manifest",
               str(sample_manifest), "--out", str(out), "--limit", "2"])
    assert rc == 3                                              # exitcodes.FAILED_CLIPS
    fails = json.loads((out / "generate_failures.json").read_text())
    assert len(fails) == 2 and all("missing" in f for f in fails)
    assert "0 generated" in capsys.readouterr().out


def test_generate_records_a_clip_whose_media_is_broken(sample_manifest: Path, tmp_path: Path):
    """A clip without a reference image whose video is missing fails alone; the others are generated."""
    from moee_bench.bench.core.manifest import load_manifest, replace_clip

    m = load_manifest(sample_manifest)
    clips = [c for c in m.clips if c.split == "test"][:2]
    broken = replace_clip(clips[0], ref_image=None, video="videos/does_not_exist.mp4")
    bad = m.with_clips([broken, clips[1]]).save(tmp_path / "m.json")
    out = tmp_path / "gen"
    assert main(["generate", "--method", "static", "--manifest", str(bad), "--out", str(out)]) == 3
    fails = json.loads((out / "generate_failures.json").read_text())
    assert len(fails) == 1 and fails[0].startswith(broken.clip_id)
    assert (out / f"{clips[1].clip_id}.mp4").is_file()


def test_generate_reuses_by_the_rule_of_run(sample_manifest: Path, tmp_path: Path, capsys):
    """One reuse rule (issue #25): another seed or a changed video is generated again; before, any video with a
    sidecar was kept, whatever it had been generated with."""
    out = tmp_path / "gen"
    args = ["generate", "--method", "static", "--manifest", str(sample_manifest), "--split", "test", "--out", str(out),
            "--limit", "2", "--size", "64x64"]
    assert main(args) == 0
    assert main(args) == 0
    assert "0 generated, 2 already done" in capsys.readouterr().out
    assert main([*args, "--seed", "1"]) == 0                  # another seed: not the same videos
    assert "2 generated, 0 already done" in capsys.readouterr().out
    vids = sorted(out.glob("*.mp4"))
    vids[0].write_bytes(vids[0].read_bytes()[:-10])           # a video changed after its record was written
    assert main([*args, "--seed", "1"]) == 0
    assert "1 generated, 1 already done" in capsys.readouterr().out
