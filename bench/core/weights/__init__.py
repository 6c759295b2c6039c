"""The weights registry: every checkpoint the suite can use, where it comes from, and how it is trusted.

- ``registry``: the catalog (``catalog/*.toml``): file, URL, full sha256 and where that digest was
  published, or none (trust on first use); the search folders (``--weights-dir``, the user cache
  ``$MOEE_BENCH_WEIGHTS`` or ``~/.cache/moee-bench/weights``, the torch hub cache).
- ``fetch``: a missing file is downloaded into the cache on first use with pooch (hash-checked,
  atomic); offline (``--offline``, ``MOEE_BENCH_OFFLINE=1``, no network) the error is one line:
  "put FILE at PATH (from URL)".
- ``trust``: ``weights.lock`` beside the files (digests trusted on first use) and ``--trust`` pins.
- ``resolve``: find/fetch + check; every file is ``published``, ``locked``, ``pinned`` or (only with
  ``--allow-unverified-weights``) ``unverified``; anything else is refused with both digests.
- ``load``: ``load_state_dict`` (weights_only / safetensors) and ``load_torchscript`` (verified files only).
- ``options``: :class:`WeightsOptions`, which records which metric used which file.
"""

from __future__ import annotations

from moee_bench.bench.core.weights.fetching import OFFLINE_ENV, is_offline, missing_message
from moee_bench.bench.core.weights.load import load_into, load_state_dict, load_torchscript, must_fit, skip_init
from moee_bench.bench.core.digest import sha256_file
from moee_bench.bench.core.weights.options import WeightsOptions
from moee_bench.bench.core.weights.specs import (CATALOG_DIR, ENV_VAR, WeightSpec, cache_dir, get_spec,
                                                    is_full_digest, locate, package_path, primary_dir, registry,
                                                    search_dirs)
from moee_bench.bench.core.weights.verify import TRUST_LEVELS, TRUSTED, ResolvedWeights, adopt, check, resolve
from moee_bench.bench.core.weights.trust import LOCK_NAME, lock_path, parse_trust, read_lock, write_lock

__all__ = [
    "CATALOG_DIR", "ENV_VAR", "LOCK_NAME", "OFFLINE_ENV", "TRUSTED", "TRUST_LEVELS", "ResolvedWeights", "WeightSpec",
    "WeightsOptions", "adopt", "cache_dir", "check", "get_spec", "is_full_digest",
    "is_offline", "load_into", "load_state_dict", "load_torchscript", "locate", "lock_path", "missing_message", "must_fit",
    "package_path", "parse_trust", "primary_dir", "read_lock", "registry", "resolve",
    "search_dirs", "sha256_file", "write_lock",
]
