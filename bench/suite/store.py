"""The result store: SQLite (WAL) with per-clip rows, run metadata, aggregates and throughput,
plus a content-addressed feature cache on disk.

Layout of a store folder::

    results.sqlite          tables below
    features/ab/abcdef....npz   cached per-clip features (numpy .npz, loaded with allow_pickle=False)

Tables (long format, one row per value, so new metrics need no migration):

* ``runs(run_id, created, suite_hash, dataset, split, meta)``: ``meta`` is JSON with git commit,
  package versions, device, seeds, ``weights`` (name, path, full sha256, trust, metrics of every
  weight file), ``weights_by_metric`` and ``unverified_weights`` (the metrics computed with one).
* ``clip_values(run_id, method, clip_id, key, value)``: a per-clip number; NULL never stands for 0.
* ``clip_status(run_id, method, clip_id, metric, status, message)``: ok | no_face | too_short | ...
* ``clip_info(run_id, method, clip_id, identity, emotion, emotion_kind, intensity, n_frames, seconds, warnings,
  ref_source)``: ``ref_source`` = where the clip's reference portrait came from (bench.core.references).
* ``aggregates(run_id, method, key, value, extra)``: aggregate numbers (extra: JSON, e.g. N, reason).
* ``generations(method, clip_id, config_hash, path, sha256, seconds, n_frames, normalisation, status, message)``
* ``clip_features(run_id, method, clip_id, metric, feature_key)``: which cached feature files hold a clip's
  features for a metric, one row per part, ``metric`` written ``<metric>/<part>`` (``pred``, ``gt``, ``ref``,
  ``pair``; a bare ``<metric>`` row from older stores is one combined part). Bootstrap of FID/FVD
  recomputes from these. The files are content-addressed (:meth:`metrics.base.Metric.cache_key`): a GT
  video's features are one file, shared by every method and run scored against it.
* ``throughput(run_id, method, device, frames_per_s, seconds_per_clip, peak_mem_bytes, n_clips, extra)``

Every write is one transaction, so a killed process leaves either the whole row set of a clip or none.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from moee_bench.bench.core.paths import atomic_write

SCHEMA_VERSION = 1

_DDL = """
CREATE TABLE IF NOT EXISTS store_info(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, created REAL, suite_hash TEXT, dataset TEXT, split TEXT,
    meta TEXT);
CREATE TABLE IF NOT EXISTS clip_values(run_id TEXT, method TEXT, clip_id TEXT, key TEXT, value REAL,
    PRIMARY KEY(run_id, method, clip_id, key));
CREATE TABLE IF NOT EXISTS clip_status(run_id TEXT, method TEXT, clip_id TEXT, metric TEXT, status TEXT, message TEXT,
    PRIMARY KEY(run_id, method, clip_id, metric));
CREATE TABLE IF NOT EXISTS clip_info(run_id TEXT, method TEXT, clip_id TEXT, identity TEXT, emotion TEXT,
    emotion_kind TEXT, intensity INTEGER, n_frames INTEGER, seconds REAL, warnings TEXT, ref_source TEXT,
    PRIMARY KEY(run_id, method, clip_id));
CREATE TABLE IF NOT EXISTS aggregates(run_id TEXT, method TEXT, key TEXT, value REAL, extra TEXT,
    PRIMARY KEY(run_id, method, key));
CREATE TABLE IF NOT EXISTS generations(method TEXT, clip_id TEXT, config_hash TEXT, path TEXT, sha256 TEXT,
    seconds REAL, n_frames INTEGER, normalisation TEXT, status TEXT, message TEXT,
    PRIMARY KEY(method, clip_id, config_hash));
CREATE TABLE IF NOT EXISTS clip_features(run_id TEXT, method TEXT, clip_id TEXT, metric TEXT, feature_key TEXT,
    PRIMARY KEY(run_id, method, clip_id, metric));
CREATE TABLE IF NOT EXISTS throughput(run_id TEXT, method TEXT, device TEXT, frames_per_s REAL, seconds_per_clip REAL,
    peak_mem_bytes INTEGER, n_clips INTEGER, extra TEXT, PRIMARY KEY(run_id, method));
"""


class ResultStore:
    """Open (creating if needed) a store folder."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "results.sqlite"
        self.conn = sqlite3.connect(str(self.db_path), timeout=60.0, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_DDL)
        cols = {r[1] for r in self.conn.execute("PRAGMA table_info(clip_info)")}
        if "ref_source" not in cols:                # stores written before the reference policy was recorded
            self.conn.execute("ALTER TABLE clip_info ADD COLUMN ref_source TEXT")
        self.conn.execute("INSERT OR IGNORE INTO store_info VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.features = FeatureStore(self.folder / "features")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # runs ---------------------------------------------------------------------------------
    def put_run(self, run_id: str, *, suite_hash: str = "", dataset: str = "", split: str = "",
                meta: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO runs VALUES(?,?,?,?,?,?) ON CONFLICT(run_id) DO UPDATE SET meta=excluded.meta, "
                      "suite_hash=excluded.suite_hash, dataset=excluded.dataset, split=excluded.split",
                      (run_id, time.time(), suite_hash, dataset, split, json.dumps(dict(meta or {}), default=str)))

    def runs(self) -> list[dict[str, Any]]:
        rows = self.conn.execute("SELECT run_id, created, suite_hash, dataset, split, meta FROM runs ORDER BY created").fetchall()
        return [{"run_id": r[0], "created": r[1], "suite_hash": r[2], "dataset": r[3], "split": r[4],
                 "meta": json.loads(r[5] or "{}")} for r in rows]

    # per-clip results ---------------------------------------------------------------------
    def put_clip(self, run_id: str, method: str, clip_id: str, *, values: Mapping[str, Any],
                 status: Mapping[str, str], messages: Mapping[str, str] | None = None,
                 info: Mapping[str, Any] | None = None) -> None:
        """Write every value and status of one (method, clip) atomically, replacing earlier rows."""
        messages = messages or {}
        info = dict(info or {})
        with self.transaction() as c:
            c.execute("DELETE FROM clip_values WHERE run_id=? AND method=? AND clip_id=?", (run_id, method, clip_id))
            c.execute("DELETE FROM clip_status WHERE run_id=? AND method=? AND clip_id=?", (run_id, method, clip_id))
            for k, v in values.items():
                if isinstance(v, (int, float, np.floating, np.integer)) or v is None:
                    fv = None if v is None else float(v)
                    c.execute("INSERT INTO clip_values VALUES(?,?,?,?,?)", (run_id, method, clip_id, k, fv))
            for m, s in status.items():
                c.execute("INSERT INTO clip_status VALUES(?,?,?,?,?,?)", (run_id, method, clip_id, m, s, messages.get(m, "")))
            c.execute("INSERT OR REPLACE INTO clip_info(run_id, method, clip_id, identity, emotion, emotion_kind, "
                      "intensity, n_frames, seconds, warnings, ref_source) VALUES(?,?,?,?,?,?,?,?,?,?,?)",
                      (run_id, method, clip_id, info.get("identity"), info.get("emotion"), info.get("emotion_kind"),
                       info.get("intensity"), info.get("n_frames"), info.get("seconds"),
                       json.dumps(info.get("warnings") or []), info.get("ref_source")))

    def put_feature_keys(self, run_id: str, method: str, clip_id: str, keys: Mapping[str, Mapping[str, str]]) -> None:
        """Record the feature cache keys of one clip: metric -> part -> key (replacing the clip's earlier rows)."""
        with self.transaction() as c:
            c.execute("DELETE FROM clip_features WHERE run_id=? AND method=? AND clip_id=?", (run_id, method, clip_id))
            for metric, parts in keys.items():
                for part, key in parts.items():
                    c.execute("INSERT INTO clip_features VALUES(?,?,?,?,?)", (run_id, method, clip_id, f"{metric}/{part}", key))

    def feature_keys(self, run_id: str, method: str, metric: str) -> dict[str, dict[str, str]]:
        """clip id -> part -> feature cache key of ``metric`` in a run (a pre-part row is the part ``pair``)."""
        rows = self.conn.execute("SELECT clip_id, metric, feature_key FROM clip_features WHERE run_id=? AND method=? "
                                 "AND (metric=? OR metric LIKE ?) ORDER BY clip_id", (run_id, method, metric, f"{metric}/%"))
        out: dict[str, dict[str, str]] = {}
        for clip_id, name, key in rows:
            out.setdefault(clip_id, {})[name.partition("/")[2] or "pair"] = key
        return out

    def clip_feature_parts(self, run_id: str, method: str, metric: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
        """clip id -> part -> cached features of ``metric`` in a run, for the clips whose every part is in the cache."""
        out = {}
        for clip_id, parts in self.feature_keys(run_id, method, metric).items():
            feats = {p: self.features.get(k) for p, k in parts.items()}
            if all(f is not None for f in feats.values()):
                out[clip_id] = feats
        return out

    def unfinished_runs(self) -> dict[str, int]:
        """Run ids with per-clip rows but no ``runs`` row (killed or interrupted before they finished) ->
        number of (method, clip) rows they have."""
        rows = self.conn.execute("SELECT run_id, COUNT(*) FROM clip_info WHERE run_id NOT IN (SELECT run_id FROM runs) "
                                 "GROUP BY run_id")
        return {r[0]: int(r[1]) for r in rows}

    def done_clips(self, run_id: str, method: str) -> set[str]:
        rows = self.conn.execute("SELECT clip_id FROM clip_info WHERE run_id=? AND method=?", (run_id, method))
        return {r[0] for r in rows}

    def clip_table(self, run_id: str | None = None):
        """Per-clip values as a pandas DataFrame (one row per run, method, clip; one column per key)."""
        import pandas as pd

        q = "SELECT run_id, method, clip_id, key, value FROM clip_values"
        args: tuple = ()
        if run_id:
            q += " WHERE run_id=?"
            args = (run_id,)
        df = pd.read_sql_query(q, self.conn, params=args)
        info = pd.read_sql_query("SELECT * FROM clip_info" + (" WHERE run_id=?" if run_id else ""), self.conn, params=args)
        if df.empty:
            return info
        wide = df.pivot_table(index=["run_id", "method", "clip_id"], columns="key", values="value", aggfunc="first",
                              dropna=False).reset_index()
        wide.columns.name = None
        return info.merge(wide, on=["run_id", "method", "clip_id"], how="left")

    def status_table(self, run_id: str | None = None):
        import pandas as pd

        q = "SELECT * FROM clip_status" + (" WHERE run_id=?" if run_id else "")
        return pd.read_sql_query(q, self.conn, params=(run_id,) if run_id else ())

    # aggregates / throughput --------------------------------------------------------------
    def put_aggregates(self, run_id: str, method: str, values: Mapping[str, Any],
                       extra: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as c:
            for k, v in values.items():
                if isinstance(v, (int, float, np.floating, np.integer)) or v is None:
                    c.execute("INSERT OR REPLACE INTO aggregates VALUES(?,?,?,?,?)",
                              (run_id, method, k, None if v is None else float(v), json.dumps((extra or {}).get(k, {}), default=str)))

    def aggregates(self, run_id: str | None = None):
        import pandas as pd

        q = "SELECT * FROM aggregates" + (" WHERE run_id=?" if run_id else "")
        return pd.read_sql_query(q, self.conn, params=(run_id,) if run_id else ())

    def put_throughput(self, run_id: str, method: str, *, device: str, frames_per_s: float | None,
                       seconds_per_clip: float | None, peak_mem_bytes: int | None, n_clips: int,
                       extra: Mapping[str, Any] | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO throughput VALUES(?,?,?,?,?,?,?,?)",
                      (run_id, method, device, frames_per_s, seconds_per_clip, peak_mem_bytes, n_clips,
                       json.dumps(dict(extra or {}), default=str)))

    def throughput(self, run_id: str | None = None):
        import pandas as pd

        q = "SELECT * FROM throughput" + (" WHERE run_id=?" if run_id else "")
        return pd.read_sql_query(q, self.conn, params=(run_id,) if run_id else ())

    # generated videos ---------------------------------------------------------------------
    def put_generation(self, method: str, clip_id: str, config_hash: str, *, path: str, sha256: str, seconds: float,
                       n_frames: int, normalisation: Mapping[str, Any], status: str = "ok", message: str = "") -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO generations VALUES(?,?,?,?,?,?,?,?,?,?)",
                      (method, clip_id, config_hash, path, sha256, seconds, n_frames,
                       json.dumps(dict(normalisation), default=str), status, message))

    def generation(self, method: str, clip_id: str, config_hash: str) -> dict[str, Any] | None:
        r = self.conn.execute("SELECT path, sha256, seconds, n_frames, normalisation, status, message FROM generations "
                              "WHERE method=? AND clip_id=? AND config_hash=?", (method, clip_id, config_hash)).fetchone()
        if r is None:
            return None
        return {"path": r[0], "sha256": r[1], "seconds": r[2], "n_frames": r[3], "normalisation": json.loads(r[4] or "{}"),
                "status": r[5], "message": r[6]}


    def generated_video(self, method: str, clip_id: str) -> str | None:
        """Path of a successfully generated video of ``method`` for ``clip_id`` (any config), or None."""
        r = self.conn.execute("SELECT path FROM generations WHERE method=? AND clip_id=? AND status='ok'",
                              (method, clip_id)).fetchone()
        return r[0] if r else None


class FeatureStore:
    """Content-addressed per-clip features (implements :class:`metrics.base.FeatureCache`)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"feature cache keys are hex digests, got {key!r}")
        return self.folder / key[:2] / f"{key}.npz"

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        p = self._path(key)
        if not p.exists():
            self.misses += 1
            return None
        try:
            with np.load(p, allow_pickle=False) as z:
                out = {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):     # damaged: a miss, recomputed
            self.misses += 1
            return None
        self.hits += 1
        try:
            os.utime(p)                  # last use, for `moee-bench cache prune`
        except OSError:
            pass
        return out

    def put(self, key: str, feats: Mapping[str, np.ndarray]) -> None:
        buf = io.BytesIO()
        np.savez(buf, **{k: np.asarray(v) for k, v in feats.items()})
        with atomic_write(self._path(key)) as tmp:
            tmp.write_bytes(buf.getvalue())

    # size and pruning (the persistent cache of `score`: `moee-bench cache info|prune`) --------------------------
    def entries(self) -> list[tuple[Path, int, float]]:
        """Every cached feature file: (path, bytes, last use as a POSIX time; a hit refreshes it)."""
        if not self.folder.is_dir():
            return []
        out = []
        for p in self.folder.glob("??/*.npz"):
            try:
                st = p.stat()
            except FileNotFoundError:          # pruned by another process meanwhile
                continue
            out.append((p, st.st_size, st.st_mtime))
        return out

    def size(self) -> tuple[int, int]:
        """(number of cached feature files, their total bytes)."""
        e = self.entries()
        return len(e), sum(b for _, b, _ in e)

    def prune(self, *, max_bytes: int | None = None, older_than_s: float | None = None) -> tuple[int, int]:
        """Delete the entries unused for more than ``older_than_s`` seconds, then the least recently used ones
        until at most ``max_bytes`` remain (both None: everything). Returns (files removed, bytes freed)."""
        entries = sorted(self.entries(), key=lambda e: e[2])           # oldest use first
        now = time.time()
        total = sum(b for _, b, _ in entries)
        removed = freed = 0
        for p, b, used in entries:
            everything = max_bytes is None and older_than_s is None
            stale = older_than_s is not None and now - used > older_than_s
            over = max_bytes is not None and total > max_bytes
            if not (everything or stale or over):
                continue
            p.unlink(missing_ok=True)
            total -= b
            removed, freed = removed + 1, freed + b
        return removed, freed


def default_feature_cache_dir() -> Path:
    """The persistent feature cache of ``score``: ``$XDG_CACHE_HOME/moee-bench/features``, default
    ``~/.cache/moee-bench/features``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "moee-bench" / "features"


class GTFeatureCache:
    """A feature cache that keeps the features read from a GT video alone (Inception, I3D, landmarks... of the
    test set) in a persistent :class:`FeatureStore` and everything else (predictions, pairs) in a scratch one
    for this command only: a test set is embedded once, and scoring checkpoint after checkpoint against it
    embeds only the predictions. Lookups try the persistent store first."""

    def __init__(self, persistent: FeatureStore, scratch: FeatureStore) -> None:
        self.persistent, self.scratch = persistent, scratch

    @property
    def hits(self) -> int:
        return self.persistent.hits + self.scratch.hits

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        hit = self.persistent.get(key)
        return hit if hit is not None else self.scratch.get(key)

    def put(self, key: str, feats: Mapping[str, np.ndarray]) -> None:
        self.scratch.put(key, feats)

    def put_reading(self, key: str, feats: Mapping[str, np.ndarray], reads: set[str]) -> None:
        """Put ``feats``, extracted from the inputs ``reads``: in the persistent store when that is the GT video alone."""
        (self.persistent if set(reads) == {"gt"} else self.scratch).put(key, feats)
