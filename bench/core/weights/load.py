"""Load a resolved checkpoint without running code from it, or (TorchScript) only from a verified file."""

from __future__ import annotations

import hashlib
import io
from contextlib import ExitStack, contextmanager
from typing import Any, Iterator
from unittest import mock

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights.verify import ResolvedWeights
# imported inside the functions that use them (seconds to import, or optional): safetensors, torch


def load_state_dict(resolved: ResolvedWeights, *, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint as a state dict without unpickling code (``weights_only=True`` or safetensors)."""
    import torch

    p = resolved.path
    try:
        if resolved.spec.format == "safetensors" or p.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(p), device=map_location)
        obj = torch.load(str(p), map_location=map_location, weights_only=True)
    except Exception as e:
        raise WeightsError(f"weights {resolved.spec.name!r} at {p} cannot be loaded safely "
                           f"(weights_only / safetensors): {type(e).__name__}: {e}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"weights {resolved.spec.name!r} at {p} is not a state dict")
    return obj


#: the ``torch.nn.init`` functions layer constructors and torchvision's builders call
_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                   "xavier_normal_", "constant_", "zeros_", "ones_")


@contextmanager
def skip_init() -> Iterator[None]:
    """Build networks without initialising their parameters (left as allocated), for a network whose every
    parameter is then loaded from a file by a strict load: the random init of AlexNet's unused 4096-wide classifier
    or of Inception's 94 convolutions cost seconds per start and was overwritten. torch's ``nn.utils.skip_init``
    does this for one module only; torchvision's builders take no such switch."""
    import torch

    with ExitStack() as stack:
        for name in _INIT_FUNCTIONS:
            stack.enter_context(mock.patch.object(torch.nn.init, name, lambda tensor, *a, **k: tensor))
        yield


@contextmanager
def must_fit(what: str) -> Iterator[None]:
    """Around code that loads a state dict into a network: a file of another architecture (a shape
    mismatch, missing keys: ``RuntimeError``/``KeyError`` from ``load_state_dict``) becomes a
    :class:`WeightsError` naming ``what``, so that metric is "not computed" and the others still run."""
    try:
        yield
    except (RuntimeError, KeyError) as e:
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()] or [type(e).__name__]
        raise WeightsError(f"{what}: the weights do not fit the network (another architecture?): "
                           f"{type(e).__name__}: {' '.join(lines[:2])[:300]}") from None


def load_into(module, state_dict: dict[str, Any], *, what: str, allow_missing: tuple[str, ...] = ()) -> None:
    """``module.load_state_dict`` that names what did not fit: every key must match, except the
    ``allow_missing`` keys (tied or training-only tensors some exports leave out); a shape mismatch
    is a :class:`WeightsError` too."""
    with must_fit(what):
        missing, unexpected = module.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if k not in allow_missing]
    if missing or unexpected:
        raise WeightsError(f"{what} does not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")


def load_torchscript(resolved: ResolvedWeights, *, map_location: str = "cpu"):
    """``torch.jit.load`` of a verified file only: TorchScript runs code from the file.

    The file must be ``published``, ``locked`` or ``pinned`` (``--allow-unverified-weights`` does
    not reach this), and the bytes handed to torch are the bytes hashed here, so a file swapped
    after it was resolved is refused too. The one place in moee-bench that calls ``torch.jit.load``.
    """
    import torch

    name, p = resolved.spec.name, resolved.path
    if not resolved.verified:
        raise WeightsError(f"refusing to run TorchScript {p} (weights {name!r}, sha256 {resolved.sha256}): it executes "
                           f"code and the file is {resolved.trust}. It must match the registry's digest, the lock file, "
                           f"or an explicit --trust {name}=SHA256 pin.")
    data = p.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != resolved.sha256:
        raise WeightsError(f"refusing to run TorchScript {p} (weights {name!r}): it changed after it was verified "
                           f"(sha256 now {digest}, verified {resolved.sha256})")
    try:
        return torch.jit.load(io.BytesIO(data), map_location=map_location)
    except Exception as e:
        raise WeightsError(f"TorchScript {p} (weights {name!r}) cannot be loaded: {type(e).__name__}: {e}") from None
