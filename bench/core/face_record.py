"""The persistent per-frame face record: MTCNN's raw detections and dlib's 68 landmarks by frame content, kept
across runs beside the persistent feature cache (our own code: neither library caches).

The process memos of :mod:`moee_bench.bench.core.faces` share one face pass between the metrics of one command
(AKD, FLMD, dynamics, emotion, CSIM); this record extends them across commands: a later ``score`` with another
metric on the same videos, or the predictions re-scored, reads the faces instead of detecting them again.

One SQLite file; a row per (kind, key). The key is the memo's key (a digest of the frame's bytes and shape and of
the detector's settings) combined with what else changes the value: the library and its version, the weights'
digest (dlib's predictor file; MTCNN's weights ship inside facenet-pytorch, named by its version) and the detection
path. The value is raw float64 bytes (no pickle) with its shape, and the row keeps the sha256 of key and value: a
row whose content fails it is not used, said in a warning (``score`` records it), recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

_DDL = ("CREATE TABLE IF NOT EXISTS faces (kind TEXT NOT NULL, key BLOB NOT NULL, shape TEXT NOT NULL, "
        "value BLOB NOT NULL, sha256 TEXT NOT NULL, used REAL NOT NULL, PRIMARY KEY (kind, key))")
FILENAME = "faces.sqlite"


def _digest(kind: str, key: bytes, shape: str, value: bytes) -> str:
    h = hashlib.sha256()
    for part in (kind.encode(), key, shape.encode(), value):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


class FaceRecord:
    """Float64 arrays by (kind, key) in ``folder/faces.sqlite``, digest-checked on every read."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / FILENAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_DDL)
        self._lock = threading.Lock()
        self.hits = self.misses = 0
        self.rejected: dict[str, str] = {}      # "kind/key hex" -> why the row was not used

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def get_many(self, kind: str, keys: Iterable[bytes]) -> dict[bytes, np.ndarray]:
        """The stored arrays of those ``keys`` that have a row whose digest holds (read-only copies)."""
        keys = list(dict.fromkeys(keys))
        out: dict[bytes, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                rows = self._conn.execute(
                    f"SELECT key, shape, value, sha256 FROM faces WHERE kind=? AND key IN ({','.join('?' * len(part))})",
                    [kind, *part]).fetchall()
                for key, shape, value, sha in rows:
                    key = bytes(key)
                    if _digest(kind, key, shape, bytes(value)) != sha:
                        why = "its content does not match its recorded sha256"
                        self.rejected[f"{kind}/{key.hex()}"] = why
                        warnings.warn(f"face record {self.path}: a {kind} entry not used ({why}); recomputed",
                                      stacklevel=2)
                        continue
                    dims = tuple(int(d) for d in shape.split("x")) if shape else ()
                    try:
                        arr = np.frombuffer(bytes(value), np.float64).reshape(dims)
                    except ValueError:
                        self.rejected[f"{kind}/{key.hex()}"] = "its value does not have its recorded shape"
                        continue
                    out[key] = arr
            self.hits += len(out)
            self.misses += len(keys) - len(out)
        return out

    def put_many(self, kind: str, items: Mapping[bytes, np.ndarray]) -> None:
        """Store (or replace) ``items``: key -> float64 array."""
        now = time.time()
        rows = []
        for key, arr in items.items():
            a = np.ascontiguousarray(arr, np.float64)
            shape, value = "x".join(str(d) for d in a.shape), a.tobytes()
            rows.append((kind, key, shape, value, _digest(kind, key, shape, value), now))
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO faces VALUES(?,?,?,?,?,?)", rows)
            self._conn.execute("COMMIT")

    def size(self) -> tuple[int, int]:
        """(rows, bytes of the SQLite file and its write-ahead log)."""
        with self._lock:
            n = self._conn.execute("SELECT COUNT(*) FROM faces").fetchone()[0]
        files = [self.path, self.path.with_name(FILENAME + "-wal")]
        return int(n), sum(p.stat().st_size for p in files if p.exists())

    def prune(self, older_than_s: float | None = None) -> int:
        """Delete the rows written more than ``older_than_s`` seconds ago (None: every row); the number deleted."""
        with self._lock:
            if older_than_s is None:
                cur = self._conn.execute("DELETE FROM faces")
            else:
                cur = self._conn.execute("DELETE FROM faces WHERE used < ?", (time.time() - older_than_s,))
            n = cur.rowcount
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")
        return int(n)
