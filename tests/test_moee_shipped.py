"""The trained tiny MoEE that ships in the package (``checkpoint = "builtin:tiny"``, moee_ref/shipped.py): its files
are the registry's (full sha256, packaged), it was trained on the sample's training identities only, the default
suite runs it and three ablations on the held-out split, and a short re-run of its recipe moves the loss the way
its training record says."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from moee_bench.bench.core.weights import get_spec, resolve
from moee_bench.bench.suite.runner import training_check
from moee_bench.bench.suite.spec import BUILTIN_SUITE, load_suite
from moee_bench.bench.suite.sample import SPLITS
from moee_bench.baselines.registry import build_method
from moee_bench.moee_ref.shipped import BASE, RECORD, SHIPPED_VARIANTS, WEIGHTS_DIR, read_record, registry_name


def test_shipped_files_are_registered_with_their_full_digest_and_fit_the_budget():
    rec = read_record()
    assert tuple(rec["variants"]) == SHIPPED_VARIANTS
    names = [BASE] + [registry_name(v) for v in SHIPPED_VARIANTS]
    total = 0
    for name in names:
        spec = get_spec(name)
        assert spec.packaged and len(spec.sha256) == 64
        r = resolve(name)
        assert r.trust == "published" and r.path.parent.resolve() == WEIGHTS_DIR.resolve()
        total += r.path.stat().st_size
    digests = {rec["stage1"]["file"]: rec["stage1"]["sha256"], **{v["file"]: v["sha256"] for v in rec["variants"].values()}}
    assert {get_spec(n).file.rsplit("/", 1)[1]: get_spec(n).sha256 for n in names} == digests
    assert total <= 40 * 2**20, total
    assert sorted(p.name for p in WEIGHTS_DIR.glob("*.safetensors")) == sorted(digests)


def test_training_record_names_the_sample_training_identities_only():
    rec = read_record()
    train_ids = sorted(i for i, s in SPLITS.items() if s == "train")
    test_ids = {i for i, s in SPLITS.items() if s == "test"}
    for v in rec["variants"].values():
        assert [t["stage"] for t in v["training_data"]] == [0, 1, 2]
        for t in v["training_data"]:
            assert t["name"] == "train" and t["identities"] == train_ids and not test_ids & set(t["identities"])
        assert v["seed"] == 0 and v["step"] == rec["recipe"]["steps"]["2"]
        assert v["loss_log"] and all(np.isfinite(e["total"]) for e in v["loss_log"])
    assert rec["recipe"]["commands"] and all(c.startswith("moee-bench train --config tiny") for c in rec["recipe"]["commands"])


def test_default_suite_runs_moee_and_ablations_on_held_out_identities(sample_manifest: Path):
    """The suite a newcomer runs first: moee-ref and >= 2 ablations with the shipped weights, the trivial methods,
    on a split none of whose identities the weights were trained on (the runner's own check)."""
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.bench.core.splits import select_split, split_record

    suite = load_suite(BUILTIN_SUITE)
    names = [m.name for m in suite.methods]
    assert names[0] == "moee-ref" and {"ground-truth", "static"} <= set(names)
    ablations = [n for n in names if n.startswith("moee-ref:")]
    assert len(ablations) >= 2
    man = load_manifest(sample_manifest)
    clips = select_split(man, suite.split)
    assert len({c.identity for c in clips}) >= 2
    split = split_record(man, suite.split, clips)
    for spec in suite.methods:
        if spec.name.startswith("moee-ref"):
            assert spec.config["checkpoint"] == "builtin:tiny"
            check = training_check(build_method(spec.name, spec.config), split, allow=False)
            assert check["identity_check"]["overlap"] == [], spec.name


def test_shipped_variants_load_and_differ(sample_manifest: Path):
    """Each variant is stage 1 plus its own stage-2 tensors: they load strictly, generate finite frames, and the
    variants' outputs differ (their experts/gates were trained apart)."""
    from moee_bench.bench.core import media
    from moee_bench.bench.core.manifest import load_manifest
    from moee_bench.moee_ref.pipeline import EmotionCondition

    m = load_manifest(sample_manifest)
    clip = next(c for c in m.clips if c.split == "test" and c.emotion.label == "happiness")
    ref, wave = media.read_image(m.media_path(clip, "ref_image")), media.read_audio(m.media_path(clip, "audio"))
    outs = {}
    for v in SHIPPED_VARIANTS[:2]:
        method = build_method("moee-ref" if v == "full" else f"moee-ref:{v}", {"checkpoint": "builtin:tiny"})
        pipe = method.pipeline()
        assert pipe.cfg.variant == v and method.weights_provenance["files"][0]["trust"] == "published"
        outs[v] = pipe(ref, wave, EmotionCondition("label", weights=tuple(clip.emotion.weights)), num_frames=4, steps=2)
        assert outs[v].shape == (4, 64, 64, 3) and np.isfinite(outs[v]).all()
    assert not np.array_equal(outs["full"], outs["no-moe"])


def test_unknown_builtin_or_unshipped_variant_is_refused():
    from moee_bench.bench.core.errors import BenchError

    with pytest.raises(BenchError, match="builtin:tiny"):
        build_method("moee-ref", {"checkpoint": "builtin:huge"}).training_data()
    with pytest.raises(BenchError, match="ships variants"):
        build_method("moee-ref:palette", {"checkpoint": "builtin:tiny"}).training_data()


@pytest.mark.slow
def test_recipe_rerun_moves_the_loss_where_the_record_says(sample_manifest: Path, tmp_path: Path):
    """Stage 0 of the recipe, same command and seed, up to its first logged step: the logged loss is the record's
    (same data, same seed; CPU float arithmetic may differ in the last digits across machines) and below the
    fixed-batch loss the record starts from."""
    from moee_bench.bench.cli.app import main

    rec = read_record()
    want = rec["recipe"]["stage0_log"][0]
    assert main(["train", "--config", "tiny", "--stage", "0", "--manifest", str(sample_manifest), "--steps",
                 str(want["step"]), "--seed", str(rec["recipe"]["seed"]), "--out", str(tmp_path / "s0")]) == 0
    got = [json.loads(line) for line in (tmp_path / "s0" / "train_log.jsonl").read_text().splitlines()]
    assert got[0]["step"] == want["step"]
    assert got[0]["total"] == pytest.approx(want["total"], rel=0.02)
    assert got[0]["total"] < rec["recipe"]["fixed_batch_loss"]["0"][0]
