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
  recomputes from these. The files are content-addressed (:meth:`moee_bench.metrics.core.base.Metric.cache_key`): a GT
  video's features are one file, shared by every method and run scored against it.
* ``feature_digests(key, sha256, nbytes, written)``: the sha256 of every feature cache file as written; a file
  whose bytes no longer match is not used (recomputed, and the clip says so).
* ``throughput(run_id, method, device, frames_per_s, seconds_per_clip, peak_mem_bytes, n_clips, extra)``

Every write is one transaction, so a killed process leaves either the whole row set of a clip or none.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from moee_bench.bench.core.errors import BenchError
from moee_bench.bench.core.paths import atomic_write
from moee_bench.metrics.core.base import DigestCheckedCache

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
CREATE TABLE IF NOT EXISTS feature_digests(key TEXT PRIMARY KEY, sha256 TEXT, nbytes INTEGER, written REAL);
CREATE TABLE IF NOT EXISTS throughput(run_id TEXT, method TEXT, device TEXT, frames_per_s REAL, seconds_per_clip REAL,
    peak_mem_bytes INTEGER, n_clips INTEGER, extra TEXT, PRIMARY KEY(run_id, method));
"""
def _open_readonly(db_path: Path) -> sqlite3.Connection:
    """``db_path`` opened read-only (``mode=ro``); on read-only media, where SQLite cannot create the WAL's shared
    memory file, as an immutable file (no other process can be writing to read-only media)."""
    uri = db_path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as e:
        if "unable to open" not in str(e) and "readonly" not in str(e):
            raise
    conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=60.0, isolation_level=None)
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


_DIGESTS_DDL = "CREATE TABLE IF NOT EXISTS feature_digests(key TEXT PRIMARY KEY, sha256 TEXT, nbytes INTEGER, written REAL)"


class StoreError(BenchError):
    """The result store cannot be used as asked: full disk, a corrupt file, a newer schema, a locked file."""


def store_error(db_path: Path | str, e: sqlite3.Error) -> StoreError | None:
    """The one-line :class:`StoreError` for an SQLite error the environment caused (full disk, corrupt or
    truncated file, read-only file, lock), naming the store; None for anything else (a bug, re-raised)."""
    msg = str(e)
    low = msg.lower()
    where = f"result store {db_path}" if str(db_path) else "the result store"
    if "disk is full" in low:
        return StoreError(f"{where}: the disk is full ({msg}); nothing finished is lost: free space and re-run the "
                          "same command to resume")
    if "not a database" in low or "malformed" in low:
        return StoreError(f"{where} is corrupt or truncated ({msg}); move it away (a run then starts a new store) or "
                          "restore a copy")
    if "readonly" in low or "read-only" in low or "unable to open" in low or "disk i/o error" in low:
        return StoreError(f"{where} cannot be opened or written ({msg})")
    if "locked" in low or "busy" in low:
        return StoreError(f"{where} stayed locked by another process for 60 s ({msg})")
    return None


@contextmanager
def _store_errors(db_path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as e:
        err = store_error(db_path, e)
        if err is None:
            raise
        raise err from None


class ResultStore:
    """Open (creating if needed) a store folder. ``readonly=True`` opens an existing store without writing to
    it (``file:...?mode=ro``; ``report``, ``export`` and ``compare`` read stores on read-only media this way)."""

    def __init__(self, folder: str | Path, *, readonly: bool = False) -> None:
        self.folder = Path(folder)
        self.db_path = self.folder / "results.sqlite"
        self.readonly = readonly
        self._live: str | None = None
        with _store_errors(self.db_path):
            if readonly:
                self.conn = _open_readonly(self.db_path)
                self._check_version(write=False)
                bad = self.conn.execute("PRAGMA quick_check(1)").fetchone()   # a truncated file fails here, not mid-report
                if bad and bad[0] != "ok":
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {bad[0]}")
            else:
                self.folder.mkdir(parents=True, exist_ok=True)
                self.conn = sqlite3.connect(str(self.db_path), timeout=60.0, isolation_level=None)
                self._check_version(write=True)
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=NORMAL")
                self.conn.executescript(_DDL)
                cols = {r[1] for r in self.conn.execute("PRAGMA table_info(clip_info)")}
                if "ref_source" not in cols:                # stores written before the reference policy was recorded
                    self.conn.execute("ALTER TABLE clip_info ADD COLUMN ref_source TEXT")
                self.conn.execute("INSERT OR IGNORE INTO store_info VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
        self.features = FeatureStore(self.folder / "features", index=self.db_path, readonly=readonly)

    def _check_version(self, *, write: bool) -> None:
        """Refuse to write into a store of a newer schema (its tables may mean something this version does not know)."""
        has = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='store_info'").fetchone()
        row = self.conn.execute("SELECT value FROM store_info WHERE key='schema_version'").fetchone() if has else None
        try:
            version = int(row[0]) if row else None
        except (TypeError, ValueError):
            version = None
            if write:
                raise StoreError(f"result store {self.db_path} has an unreadable schema_version {row[0]!r}; not writing into it")
        if write and version is not None and version > SCHEMA_VERSION:
            raise StoreError(f"result store {self.db_path} has schema version {version}, newer than the {SCHEMA_VERSION} this "
                             "moee-bench writes; not writing into it (upgrade moee-bench, or use another --out)")

    def close(self) -> None:
        self.features.close()
        self.conn.close()

    # live writers -------------------------------------------------------------------------
    def mark_live(self, run_id: str) -> None:
        """Record that this process is writing ``run_id`` (refreshed with every clip it writes, cleared by
        :meth:`clear_live`), so ``report`` can tell a run in progress from an interrupted one."""
        self._live = f"writer:{run_id}:{socket.gethostname()}:{os.getpid()}"
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO store_info VALUES(?, ?)", (self._live, str(time.time())))

    def clear_live(self) -> None:
        if self._live is not None:
            with self.transaction() as c:
                c.execute("DELETE FROM store_info WHERE key=?", (self._live,))
            self._live = None

    def live_runs(self) -> dict[str, str]:
        """Unfinished run ids that a live process is writing now -> who (host, pid, seconds since its last clip).
        On this host the process must exist; on another, it must have written a clip in the last 10 minutes."""
        out: dict[str, str] = {}
        host = socket.gethostname()
        for key, value in self.conn.execute("SELECT key, value FROM store_info WHERE key LIKE 'writer:%'"):
            parts = key.removeprefix("writer:").rsplit(":", 2)
            if len(parts) != 3:
                continue
            run_id, w_host, w_pid = parts
            try:
                age = time.time() - float(value)
                pid = int(w_pid)
            except ValueError:
                continue
            if w_host == host:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    continue
                except PermissionError:
                    pass
            elif age > 600:
                continue
            out[run_id] = f"process {pid} on {w_host}, last clip written {age:.0f} s ago"
        return out

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; an SQLite error the environment caused (full disk...) becomes a :class:`StoreError`."""
        with _store_errors(self.db_path):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                if self._live is not None:
                    self.conn.execute("UPDATE store_info SET value=? WHERE key=?", (str(time.time()), self._live))
            except BaseException:
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:             # SQLite may have rolled back already (full disk)
                    pass
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


class FeatureStore(DigestCheckedCache):
    """Content-addressed per-clip features (a :class:`moee_bench.metrics.core.base.FeatureCache`): one ``.npz`` file per
    key, its sha256 recorded in the SQLite table ``feature_digests`` of ``index`` (the store's
    ``results.sqlite``; ``<folder>/index.sqlite`` for a cache outside a store), never beside the file, and
    checked on every read (:class:`DigestCheckedCache`): an edited, truncated or unindexed file is not used."""

    def __init__(self, folder: str | Path, *, index: str | Path | None = None, readonly: bool = False) -> None:
        super().__init__()
        self.folder = Path(folder)
        self.index_path = Path(index) if index is not None else self.folder / "index.sqlite"
        self.readonly = readonly
        self._conn: sqlite3.Connection | None = None

    def _index(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.readonly:
                self._conn = _open_readonly(self.index_path)
            else:
                self.index_path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(self.index_path), timeout=60.0, isolation_level=None)
                self._conn.execute("PRAGMA journal_mode=WAL")      # as the store: concurrent ranks, one sync per batch
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(_DIGESTS_DDL)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _path(self, key: str) -> Path:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"feature cache keys are hex digests, got {key!r}")
        return self.folder / key[:2] / f"{key}.npz"

    def _read(self, key: str) -> bytes | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        try:
            os.utime(self._path(key))              # last use, for `moee-bench cache prune`
        except OSError:
            pass
        return data

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            with atomic_write(path) as tmp:
                tmp.write_bytes(data)
        except OSError as e:                       # name the folder (a full TMPDIR for `score`'s cache, a full disk)
            raise OSError(e.errno, f"{e.strerror or e} writing the feature cache in {self.folder}", str(path)) from None

    def _digest(self, key: str) -> str | None:
        try:
            r = self._index().execute("SELECT sha256 FROM feature_digests WHERE key=?", (key,)).fetchone()
        except sqlite3.OperationalError as e:       # a read-only index of a store older than the digests
            if "no such table" in str(e):
                return None
            raise
        return r[0] if r else None

    def _record(self, key: str, sha256: str, nbytes: int) -> None:
        self._index().execute("INSERT OR REPLACE INTO feature_digests VALUES(?,?,?,?)", (key, sha256, nbytes, time.time()))

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

    @property
    def rejected(self) -> dict[str, str]:
        """Entries of either store not used because their content failed its recorded digest (key -> reason)."""
        return {**self.scratch.rejected, **self.persistent.rejected}

    def get(self, key: str) -> dict[str, np.ndarray] | None:
        hit = self.persistent.get(key)
        return hit if hit is not None else self.scratch.get(key)

    def put(self, key: str, feats: Mapping[str, np.ndarray]) -> None:
        self.scratch.put(key, feats)

    def put_reading(self, key: str, feats: Mapping[str, np.ndarray], reads: set[str]) -> None:
        """Put ``feats``, extracted from the inputs ``reads``: in the persistent store when that is the GT video alone."""
        (self.persistent if set(reads) == {"gt"} else self.scratch).put(key, feats)
