"""The registry's digests, per-file trust (published / locked / pinned / unverified), the TorchScript
gate, and the weights recorded per metric in what ``score`` writes."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights import (WeightsOptions, get_spec, load_torchscript, read_lock, registry, resolve,
                                           sha256_file)

ROOT = Path(__file__).resolve().parents[1]
# the 22 entries of issue #16 (14 had no hash, 7 a partial one); only 4 of them have no digest published anywhere
_ISSUE_16_ENTRIES = {"fid_inception", "lpips_alexnet", "lpips_vgg16", "i3d_styleganv", "i3d_tats", "arcface_ir_se50",
                     "fan_2d4", "s3fd_face_alignment", "syncnet_v2", "sfd_face", "retinaface_resnet50", "fer2013_tflite",
                     "hsemotion_enet_b0_8_best_vgaf", "hsemotion_enet_b0_8_best_afew", "hsemotion_enet_b2_8",
                     "emotion_fan_mead", "sd15_unet", "sd_vae_ft_mse", "wav2vec2_base_960h", "t5_base_encoder",
                     "t5_base_tokenizer", "emotion2vec_base"}


def test_every_entry_has_a_full_digest_and_its_source_or_says_none_is_published():
    reg = registry()
    assert len(reg) >= 22
    for name, s in reg.items():
        assert s.legacy_pattern is None, f"{name}: partial digest {s.legacy_pattern!r}"
        assert s.sha256_source, f"{name}: no sha256_source"
        if s.sha256 is None:                                   # trusted on first use: the entry says why
            assert "none published" in s.sha256_source, name
        else:
            assert re.fullmatch(r"[0-9a-f]{64}", s.sha256), name
    assert {"emotion_fan_mead", "hsemotion_enet_b0_8_best_afew", "hsemotion_enet_b0_8_best_vgaf",
            "hsemotion_enet_b2_8"} == {n for n, s in reg.items() if s.trusted_on_first_use and n in _ISSUE_16_ENTRIES}
    assert len(_ISSUE_16_ENTRIES - set(reg)) == 0
    # the digests agree with the hash prefixes their upstream file names carry
    for name in ("fid_inception", "lpips_alexnet", "lpips_vgg16", "fan_2d4", "s3fd_face_alignment"):
        prefix = re.search(r"-([0-9a-f]{8,10})\.pth", get_spec(name).file).group(1)
        assert get_spec(name).sha256.startswith(prefix), name
    assert get_spec("syncnet_v2").sha256.startswith("961e8696") and get_spec("syncnet_v2").sha256.endswith("5442")
    assert get_spec("sfd_face").sha256.startswith("d54a87c2") and get_spec("sfd_face").sha256.endswith("c491")


def test_weights_list_shows_a_full_digest_or_trust_on_first_use_for_every_entry(capsys):
    from moee_bench.bench.cli.app import main

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name, s in registry().items():
        line = next(ln for ln in out.splitlines() if ln.startswith(name + " "))
        assert (s.sha256 in line) if s.sha256 else ("trust on first use" in line), line
    assert "weights.lock" in out


def test_a_partial_legacy_digest_is_never_enough_on_its_own(tmp_path, monkeypatch):
    from moee_bench.bench.core.weights import specs

    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "old.toml").write_text('[old]\nfile = "old.bin"\nurl = "http://127.0.0.1:9/old.bin"\n'
                                               'sha256 = "abcd*"\n')
    monkeypatch.setattr(specs, "CATALOG_DIR", tmp_path / "cat")
    specs.registry.cache_clear()
    try:
        (tmp_path / "old.bin").write_bytes(b"payload")
        spec = get_spec("old")
        assert spec.trusted_on_first_use and spec.legacy_pattern == "abcd*"
        with pytest.raises(WeightsError, match="partial digest abcd"):
            resolve("old", tmp_path)
    finally:
        specs.registry.cache_clear()


@pytest.fixture
def random_tofu_file(tmp_path) -> tuple[Path, str]:
    """A hand-placed file for an entry without a published digest (random bytes in its place)."""
    p = tmp_path / get_spec("emotion_fan_mead").file
    p.write_bytes(os.urandom(4096))
    return p, hashlib.sha256(p.read_bytes()).hexdigest()


def test_hand_placed_file_without_digest_is_refused_until_locked_by_weights_fetch(random_tofu_file, tmp_path, capsys):
    from moee_bench.bench.cli.app import main

    path, digest = random_tofu_file
    with pytest.raises(WeightsError, match=rf"{digest}, has no published digest.*weights fetch emotion_fan_mead"):
        resolve("emotion_fan_mead", tmp_path)
    assert main(["weights", "fetch", "emotion_fan_mead", "--weights-dir", str(tmp_path)]) == 0
    assert f"found emotion_fan_mead -> {path} (sha256 {digest}, locked" in capsys.readouterr().out
    lock = read_lock(tmp_path)
    assert lock["emotion_fan_mead"]["sha256"] == digest and (tmp_path / "weights.lock").is_file()
    r = resolve("emotion_fan_mead", tmp_path)
    assert r.trust == "locked" and r.verified and str(tmp_path / "weights.lock") in r.basis
    path.write_bytes(os.urandom(4096))                         # the locked file is replaced
    with pytest.raises(WeightsError) as e:
        resolve("emotion_fan_mead", tmp_path)
    new = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest in str(e.value) and new in str(e.value) and str(path) in str(e.value)


def test_trust_pin_accepts_exactly_that_file(tmp_path):
    spec = get_spec("lpips_alexnet")
    p = tmp_path / spec.file
    p.write_bytes(os.urandom(1000))
    digest = sha256_file(p)
    assert resolve("lpips_alexnet", tmp_path, pins={"lpips_alexnet": digest}).trust == "pinned"
    other = "1" * 64
    with pytest.raises(WeightsError) as e:
        resolve("lpips_alexnet", tmp_path, pins={"lpips_alexnet": other})
    assert digest in str(e.value) and other in str(e.value) and str(p) in str(e.value)
    with pytest.raises(WeightsError) as e:                     # without the pin: the registry's digest applies
        resolve("lpips_alexnet", tmp_path)
    assert digest in str(e.value) and spec.sha256 in str(e.value) and str(p) in str(e.value)


def test_trust_argument_is_validated():
    from moee_bench.bench.core.weights import parse_trust

    assert parse_trust([f"fid_inception={'A' * 64}"]) == {"fid_inception": "a" * 64}
    with pytest.raises(WeightsError, match="full 64-hex"):
        parse_trust(["fid_inception=6726825d"])
    with pytest.raises(WeightsError, match="no weights named"):
        parse_trust([f"nope={'a' * 64}"])


def test_allow_unverified_is_per_file_and_recorded_per_metric(tmp_path):
    """One random file pinned, one only allowed: only the metric that used the second is unverified."""
    for n in ("lpips_alexnet", "fid_inception"):
        (tmp_path / get_spec(n).file).write_bytes(os.urandom(100))
    pinned = sha256_file(tmp_path / get_spec("fid_inception").file)
    opts = WeightsOptions(str(tmp_path), allow_unverified=True, trust={"fid_inception": pinned})
    with pytest.warns(UserWarning, match="unverified"):
        opts.for_metric("lpips").resolve("lpips_alexnet")
    opts.for_metric("fid").resolve("fid_inception")
    assert opts.unverified_metrics() == ["lpips"]
    by = opts.by_metric()
    assert by["fid"][0]["trust"] == "pinned" and by["lpips"][0]["trust"] == "unverified"
    prov = {p["name"]: p for p in opts.provenance()}
    assert prov["fid_inception"]["sha256"] == pinned and prov["fid_inception"]["metrics"] == ["fid"]
    assert prov["lpips_alexnet"]["file"] == str(tmp_path / get_spec("lpips_alexnet").file)


# ------------------------------------------------------------------------------------- TorchScript gate
@pytest.fixture
def jit_file(tmp_path) -> Path:
    import torch

    p = tmp_path / get_spec("i3d_styleganv").file
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 3)), str(p))
    return p


def test_torchscript_loads_only_from_a_verified_file(jit_file, tmp_path):
    import torch

    with pytest.warns(UserWarning):
        loose = resolve("i3d_styleganv", tmp_path, allow_unverified=True)
    with pytest.raises(WeightsError, match="refusing to run TorchScript .* unverified"):
        load_torchscript(loose)
    r = resolve("i3d_styleganv", tmp_path, pins={"i3d_styleganv": sha256_file(jit_file)})
    m = load_torchscript(r)
    assert m(torch.zeros(1, 2)).shape == (1, 3)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 4)), str(jit_file))     # swapped after it was verified
    with pytest.raises(WeightsError, match="changed after it was verified"):
        load_torchscript(r)


def test_torch_jit_load_is_called_only_by_the_weights_gate():
    """Every TorchScript load goes through load_torchscript (the repository's own code; tests aside)."""
    hits = []
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", ".")) or "/." in rel:
            continue
        if "jit.load(" in p.read_text(encoding="utf-8", errors="replace"):
            hits.append(rel)
    assert hits == ["bench/core/weights/load.py"]


def test_packaged_jit_entry_is_checked_against_the_wheel_digest(monkeypatch, tmp_path):
    """silero-vad's TorchScript ships in its wheel: a file there with other bytes is refused (not loaded)."""
    import importlib.util

    from moee_bench.bench.core.weights import specs

    pkg = tmp_path / "site" / "silero_vad" / "data"
    pkg.mkdir(parents=True)
    (pkg.parent / "__init__.py").write_text("")
    (pkg / "silero_vad.jit").write_bytes(b"not the wheel's file")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    monkeypatch.delitem(__import__("sys").modules, "silero_vad", raising=False)
    with pytest.raises(WeightsError, match=get_spec("silero_vad_jit").sha256):
        resolve("silero_vad_jit")
    assert specs.get_spec("silero_vad_jit").format == "torchscript"


# ------------------------------------------------------------------------------- provenance in results
def test_score_protocol_names_every_file_with_digest_and_trust_per_metric(tmp_path, write_clip):
    """`score` with a pinned file, an only-allowed one and a missing one: the JSON lists the first two per
    metric, and the third metric's reason starts with where to put its file."""
    import torch

    from moee_bench.bench.cli.app import main
    from moee_bench.bench.core.weights import get_spec

    wdir = tmp_path / "w"
    wdir.mkdir()
    import torchvision
    from syncnet_python import SyncNetModel

    torch.manual_seed(0)
    torch.save(SyncNetModel().state_dict(), wdir / get_spec("syncnet_v2").file)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), wdir / get_spec("lpips_alexnet").file)
    pin = sha256_file(wdir / get_spec("syncnet_v2").file)
    for i in range(2):
        write_clip(f"c{i}", folder=tmp_path / "gt", seed=i, n=8)
        write_clip(f"c{i}", folder=tmp_path / "pred", seed=10 + i, n=8)
    out = tmp_path / "s.json"
    with pytest.warns(UserWarning):
        assert main(["score", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"), "--metrics",
                     "psnr,lpips,sync,csim", "--json", str(out), "--weights-dir", str(wdir),
                     "--allow-unverified-weights", "--trust", f"syncnet_v2={pin}", "--param", "face_cropped=true"]) == 0
    proto = json.loads(out.read_text())["protocol"]
    w = {x["name"]: x for x in proto["weights"]}
    assert set(w) == {"lpips_alexnet", "syncnet_v2"}
    assert w["syncnet_v2"] == {"name": "syncnet_v2", "file": str(wdir / get_spec("syncnet_v2").file),
                               "sha256": pin, "trust": "pinned", "basis": "--trust pin", "verified": True,
                               "metrics": ["sync"]}
    assert w["lpips_alexnet"]["trust"] == "unverified" and w["lpips_alexnet"]["metrics"] == ["lpips"]
    assert re.fullmatch(r"[0-9a-f]{64}", w["lpips_alexnet"]["sha256"])
    assert proto["unverified_weights"] == ["lpips"]
    assert [x["name"] for x in proto["weights_by_metric"]["sync"]] == ["syncnet_v2"]
    reason = json.loads(out.read_text())["metrics"]["csim_reason"]   # offline test run: csim's file is not fetched
    assert reason.startswith(f"WeightsError: put {get_spec('arcface_ir_se50').file} at {wdir}/")
