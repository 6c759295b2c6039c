"""Fetch a registered file on first use, with pooch.

pooch streams the download to a temporary file in the destination folder, checks its sha256
(when one is published), and moves it into place only then; a failed, corrupted or truncated
download is deleted (its ``temporary_file`` context), and a mid-stream failure is retried from the
start (``retry_if_failed``; no partial resume). What is ours: the offline switch, failing at once
when the host cannot be reached or answers 4xx (pooch would retry those too), and the one-line
"put FILE at PATH (from URL)" error.
"""

from __future__ import annotations

import os
from pathlib import Path

from moee_bench.bench.core.errors import WeightsError
from moee_bench.bench.core.weights.specs import WeightSpec
# imported inside the functions that use them (seconds to import, or optional): pooch, requests

OFFLINE_ENV = "MOEE_BENCH_OFFLINE"
RETRIES = 2                    # after the first try, for a download that breaks off mid-stream
TIMEOUT = (10.0, 60.0)         # requests (connect, read) seconds


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else ``$MOEE_BENCH_OFFLINE`` (1/true/yes/on)."""
    if offline is not None:
        return bool(offline)
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def missing_message(spec: WeightSpec, dest: Path, why: str) -> str:
    """The one-line error for a file that is not here and was not fetched: what to put where."""
    return (f"put {spec.file} at {dest} (from {spec.url}): weights {spec.name!r} for "
            f"{', '.join(spec.used_by) or 'moee-bench'} are missing and were not fetched ({why})")


class _NoRetry(Exception):
    """A download failure that retrying cannot fix (unreachable host, HTTP 4xx)."""


class _Downloader:
    """pooch's HTTPDownloader, except that connection failures and 4xx answers end at once."""

    def __init__(self, progress: bool) -> None:
        import pooch

        self.inner = pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)

    def __call__(self, url: str, output_file: str, pooch_obj) -> None:
        import requests

        try:
            self.inner(url, output_file, pooch_obj)
        except requests.exceptions.ConnectionError as e:
            if os.path.getsize(output_file):      # broke off mid-stream: pooch retries from the start
                raise
            raise _NoRetry(f"cannot reach {url}: {type(e).__name__}") from None
        except requests.exceptions.HTTPError as e:
            code = e.response.status_code if e.response is not None else 0
            if 400 <= code < 500:
                raise _NoRetry(f"{url} answered HTTP {code}") from None
            raise


def fetch(spec: WeightSpec, dest_dir: Path, *, offline: bool | None = None, progress: bool = True) -> Path:
    """Download ``spec`` into ``dest_dir`` (hash-checked when a digest is published); the file path.

    Raises :class:`WeightsError` whose message starts with "put FILE at PATH (from URL)" when the
    file cannot be fetched here (offline, manual entry, no network), at once, without retries.
    """
    dest = dest_dir / spec.file
    if not spec.fetch:
        raise WeightsError(missing_message(spec, dest, "it cannot be downloaded as is: " + (spec.notes or "see the catalog")))
    if is_offline(offline):
        raise WeightsError(missing_message(spec, dest, f"offline: --offline or {OFFLINE_ENV}=1"))
    import pooch
    import requests

    known = f"sha256:{spec.sha256}" if spec.sha256 else None
    store = pooch.create(path=dest_dir, base_url="", registry={spec.file: known}, urls={spec.file: spec.url},
                         retry_if_failed=RETRIES)
    try:
        return Path(store.fetch(spec.file, downloader=_Downloader(progress), progressbar=progress))
    except _NoRetry as e:
        raise WeightsError(missing_message(spec, dest, f"no network? {e}")) from None
    except ValueError as e:            # pooch: the downloaded file's hash differs; it was deleted
        raise WeightsError(f"refused {spec.url} for weights {spec.name!r}: {e} Nothing was kept at {dest}.") from None
    except requests.exceptions.RequestException as e:
        raise WeightsError(f"download of {spec.url} for weights {spec.name!r} failed {1 + RETRIES} times "
                           f"({type(e).__name__}: {e}); nothing was kept. "
                           + missing_message(spec, dest, "download failed")) from None
