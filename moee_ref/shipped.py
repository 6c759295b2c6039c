"""The trained tiny MoEE that ships inside the package: ``checkpoint = "builtin:tiny"`` in a suite.

The built-in suite runs ``moee-ref`` and its ablations with these weights, so that its first run shows the
mission (the MoEE reference generating the held-out split, ranked beside its ablations and trivial methods)
without a training step. They are the output of ``moee-bench train`` run by :data:`RECIPE` on the sample's
training identities (see ``weights/tiny.json``: commands, seed, steps, losses, training identities).

Files, all under ``moee_ref/weights/`` and registered with their full sha256 in the weights registry
(``bench/core/weights/catalog/moee.toml``, ``packaged = true``), model weights only (no optimizer):

* ``tiny-stage1.safetensors``: the stage-1 checkpoint's whole model (VAE of stage 0, ReferenceNet, U-Net,
  audio and temporal layers; its MoE layers never trained);
* ``tiny-<variant>.safetensors``: what stage 2 of that variant changed, i.e. every tensor of the stage-2
  checkpoint that differs from (or is absent from) stage 1: the MoE experts/gates and Emotion-to-Latents.
  Stage 2 freezes the rest, so stage 1 plus this file is the stage-2 checkpoint, bit for bit; storing the
  shared part once keeps the four variants under 40 MB.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from moee_bench.bench.core.errors import BenchError, WeightsError
from moee_bench.bench.core.weights import resolve
from moee_bench.moee_ref.checkpoint import read_trainer_state
from moee_bench.moee_ref.config import from_dict

WEIGHTS_DIR = Path(__file__).with_name("weights")
RECORD = WEIGHTS_DIR / "tiny.json"
PREFIX = "builtin:"
BASE = "moee_tiny_stage1"
SHIPPED_VARIANTS = ("full", "no-moe", "no-global-gate", "no-masked-noisy")


def registry_name(variant: str) -> str:
    """The weights-registry entry of a shipped variant's stage-2 tensors."""
    return "moee_tiny_" + variant.replace("-", "_")


def is_builtin(checkpoint: str | Path | None) -> bool:
    """True when a method's ``checkpoint`` names the shipped weights (``builtin:tiny``)."""
    return str(checkpoint or "").startswith(PREFIX)


def read_record() -> dict[str, Any]:
    """The training record of the shipped weights (``weights/tiny.json``)."""
    if not RECORD.is_file():
        raise WeightsError(f"the built-in tiny MoEE is not installed ({RECORD} is missing); reinstall moee-bench")
    return json.loads(RECORD.read_text())


def variant_record(checkpoint: str, variant: str) -> dict[str, Any]:
    """The record of one shipped variant; refuses an unknown name or a variant that was not shipped."""
    if checkpoint != PREFIX + "tiny":
        raise BenchError(f"moee-ref: unknown built-in checkpoint {checkpoint!r}; the package ships 'builtin:tiny'")
    rec = read_record()
    if variant not in rec["variants"]:
        raise BenchError(f"moee-ref: the built-in tiny MoEE ships variants {', '.join(rec['variants'])}, not {variant!r}; "
                         f"train it with `moee-bench train --config tiny --stage 2 --variant {variant}`")
    return rec["variants"][variant]


def load_builtin(checkpoint: str, variant: str, device: str = "cpu"):
    """(model, provenance) of a shipped variant: stage 1 plus the variant's stage-2 tensors, each file checked
    against its registry digest before it is read."""
    from moee_bench.moee_ref.model import MoEEModel

    rec = variant_record(checkpoint, variant)
    base, delta_r = resolve(BASE), resolve(registry_name(variant))
    for r in (base, delta_r):
        if not r.verified:
            raise WeightsError(f"{r.path}: sha256 {r.sha256} does not match the registry; reinstall moee-bench")
    model = MoEEModel(from_dict(dict(rec["config"], pretrained=False), source=str(RECORD)))
    want = model.state_dict()
    base_sd = load_file(str(base.path))
    delta = load_file(str(delta_r.path))
    # stage-1 tensors this variant lacks, or holds in another layout, can only be its never-trained MoE layers
    other = sorted(k for k, v in base_sd.items() if k not in delta and (k not in want or want[k].shape != v.shape))
    stray = [k for k in other if ".moe." not in k] + sorted(set(delta) - set(want))
    sd = {k: v for k, v in base_sd.items() if k not in other}
    sd.update(delta)
    # save_model stores a tensor shared by several names once: a name left out is fine if it aliases one loaded
    loaded_ptrs = {want[k].data_ptr() for k in sd if k in want}
    left = sorted(k for k in set(want) - set(sd) if want[k].data_ptr() not in loaded_ptrs)
    if stray or left:
        raise WeightsError(f"built-in tiny MoEE {variant!r} does not fit the model: missing {left[:5]}, "
                           f"unexpected {stray[:5]}")
    model.load_state_dict(sd, strict=False)
    prov = {"checkpoint": checkpoint, "variant": variant, "files": [base.provenance(), delta_r.provenance()]}
    return model.eval().to(device), prov


def export(stage1: str | Path, variants: dict[str, str | Path], out_dir: str | Path = WEIGHTS_DIR,
           recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the shipped files from training checkpoints: ``stage1`` (a ckpt folder) and one stage-2 ckpt
    folder per variant; returns the record written to ``out_dir/tiny.json`` (sizes and sha256 included)."""
    from moee_bench.bench.core.weights import sha256_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = load_file(str(Path(stage1) / "model.safetensors"))
    save_file(base, str(out / "tiny-stage1.safetensors"))
    s1 = read_trainer_state(stage1)
    rec: dict[str, Any] = {"recipe": recipe or {}, "stage1": {
        "file": "tiny-stage1.safetensors", "sha256": sha256_file(out / "tiny-stage1.safetensors"),
        "bytes": (out / "tiny-stage1.safetensors").stat().st_size, "step": s1["step"], "seed": s1["seed"],
        "training_data": s1["training_data"], "loss_log": _loss_log(Path(stage1).parent)}, "variants": {}}
    for variant, ckpt in variants.items():
        st = read_trainer_state(ckpt)
        if st["config"]["variant"] != variant or int(st["stage"]) != 2:
            raise BenchError(f"{ckpt} is stage {st['stage']} of variant {st['config']['variant']!r}, not stage 2 of {variant!r}")
        full = load_file(str(Path(ckpt) / "model.safetensors"))
        delta = {k: v for k, v in full.items() if k not in base or base[k].shape != v.shape or not torch.equal(base[k], v)}
        name = f"tiny-{variant}.safetensors"
        save_file(delta, str(out / name))
        rec["variants"][variant] = {
            "file": name, "sha256": sha256_file(out / name), "bytes": (out / name).stat().st_size,
            "tensors": len(delta), "parameters": int(sum(v.numel() for v in delta.values())), "step": st["step"],
            "seed": st["seed"], "config": st["config"], "training_data": st["training_data"],
            "loss_log": _loss_log(Path(ckpt).parent)}
    (out / "tiny.json").write_text(json.dumps(rec, indent=1) + "\n")
    return rec


def _loss_log(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / "train_log.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()] if p.is_file() else []
