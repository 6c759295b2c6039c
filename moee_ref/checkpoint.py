"""MoEE checkpoints: safetensors only, no pickle.

A checkpoint is a folder ``ckpt-<step>/``:

- ``model.safetensors``: the whole model state (safetensors ``save_model`` handles shared tensors);
- ``optimizer.safetensors``: the optimizer's tensors (``state.<param index>.<name>``) and the torch
  RNG state; its JSON-able parts (param groups, scalar state) go in the file's metadata;
- ``trainer.json``: step, stage, seed, config, the numpy RNG state, the loss log tail and the sha256 of
  ``model.safetensors``, checked on load so a tampered or truncated file is refused.

Folders are written under a temporary name and renamed, so a killed run never leaves a half
checkpoint that looks complete. ``model.pt`` (a plain state dict) is accepted on load through
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.weights import sha256_file
from moee_bench.moee_ref.config import MoEEConfig, from_dict
# imported inside the functions that use them (seconds to import, or optional): safetensors

PREFIX = "ckpt-"


class CheckpointError(BenchError):
    """A MoEE checkpoint is missing, incomplete or does not match its recorded hash."""


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{k}"] = v
    meta = {"param_groups": json.dumps(sd["param_groups"]), "scalars": json.dumps(scalars)}
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if not key.startswith("state."):
            continue
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = v
    for key, v in json.loads(meta.get("scalars", "{}")).items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": json.loads(meta["param_groups"])}


def save_checkpoint(out_dir: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    trainer_state: dict[str, Any], extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``out_dir/ckpt-<step>`` atomically and return it."""
    out_dir = Path(out_dir)
    final = out_dir / f"{PREFIX}{step:07d}"
    tmp = out_dir / f".tmp-{PREFIX}{step:07d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    if optimizer is not None:
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        for k, v in (extra_tensors or {}).items():
            tensors[f"extra.{k}"] = v.detach().cpu().contiguous()
        save_file(tensors, str(tmp / "optimizer.safetensors"), metadata=meta)
    state = dict(trainer_state, step=step, model_sha256=sha256_file(tmp / "model.safetensors"))
    (tmp / "trainer.json").write_text(json.dumps(state, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step in ``out_dir``, or None."""
    d = Path(out_dir)
    if not d.is_dir():
        return None
    done = sorted(p for p in d.glob(f"{PREFIX}*") if (p / "trainer.json").is_file())
    return done[-1] if done else None


def read_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    p = Path(ckpt) / "trainer.json"
    if not p.is_file():
        raise CheckpointError(f"{ckpt} is not a MoEE checkpoint folder (no trainer.json); train one with "
                              "`moee-bench train --config tiny --stage 1 --out DIR`")
    return json.loads(p.read_text())


def checkpoint_config(ckpt: str | Path) -> MoEEConfig:
    """The config a checkpoint was trained with (weights come from the checkpoint, so ``pretrained`` is off)."""
    d = read_trainer_state(ckpt)["config"]
    d = dict(d, pretrained=False)
    return from_dict(d, source=str(ckpt))


def load_model_weights(model: torch.nn.Module, ckpt: str | Path, *, skip: Callable[[str], bool] | None = None) -> None:
    """Load ``model.safetensors`` (hash-checked against trainer.json) or ``model.pt`` (weights_only).

    Every key must match, except those ``skip`` names (left as initialised; used for the never-trained
    MoE layers of a stage-0/1 checkpoint when a variant changes their layout).
    """
    ckpt = Path(ckpt)
    st = ckpt / "model.safetensors"
    if st.is_file():
        want = read_trainer_state(ckpt).get("model_sha256")
        got = sha256_file(st)
        if want and got != want:
            raise CheckpointError(f"{st} has sha256 {got} but its trainer.json records {want}: the checkpoint was "
                                  "modified or truncated; refusing to load it")
        if skip is not None:
            sd = {k: v for k, v in load_file(str(st)).items() if not skip(k)}
            missing, unexpected = model.load_state_dict(sd, strict=False)
            missing = [k for k in missing if not skip(k)]
        else:
            missing, unexpected = load_model(model, str(st), strict=False)
        if missing or unexpected:
            raise CheckpointError(f"{st} does not fit the model: missing {sorted(missing)[:5]}, "
                                  f"unexpected {sorted(unexpected)[:5]}")
        return
    pt = ckpt / "model.pt"
    if pt.is_file():
        sd = torch.load(str(pt), map_location="cpu", weights_only=True)
        model.load_state_dict(sd)
        return
    raise CheckpointError(f"no model.safetensors or model.pt in {ckpt}")


def load_optimizer(optimizer: torch.optim.Optimizer, ckpt: str | Path) -> dict[str, torch.Tensor]:
    """Restore optimizer state and the torch RNG from ``optimizer.safetensors``; returns the extra tensors."""
    from safetensors import safe_open

    p = Path(ckpt) / "optimizer.safetensors"
    if not p.is_file():
        raise CheckpointError(f"{ckpt} has no optimizer.safetensors; cannot resume training from it")
    with safe_open(str(p), framework="pt") as fh:
        meta = fh.metadata()
    tensors = load_file(str(p))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return {k.removeprefix("extra."): v for k, v in tensors.items() if k.startswith("extra.")}
