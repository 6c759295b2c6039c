"""Where the time goes: named lines timed by wrapping the functions a pipeline calls (benchmarks only).

``with Lines() as lines: lines.wrap(module, "name", "line"); run()`` times every call of ``module.name``
(a function, a method on a class, or a generator function: each ``next`` is timed) under ``line``.
Time is exclusive: a wrapped call made inside another wrapped call (the resize inside the Inception
forward) counts for its own line only. Calls from other threads are timed on their own stacks, so
lines that overlap in time may add up to more than the wall time. Everything is unwrapped on exit.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections import defaultdict
from typing import Any, Callable


_ABSENT = object()


class Lines:
    """Exclusive wall time per named line, filled by wrapped functions (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._restore: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> "Lines":
        return self

    def __exit__(self, *exc: Any) -> None:
        for obj, name, orig in reversed(self._restore):
            if orig is _ABSENT:
                delattr(obj, name)
            else:
                setattr(obj, name, orig)
        self._restore.clear()

    def _stack(self) -> list[float]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def _timed(self, line: str, call: Callable[[], Any]) -> Any:
        stack = self._stack()
        stack.append(0.0)                       # time spent in nested wrapped calls
        t = self.clock()
        try:
            return call()
        finally:
            dt = self.clock() - t
            inner = stack.pop()
            self.seconds[line] += dt - inner
            if stack:
                stack[-1] += dt

    def wrap(self, obj: Any, name: str, line: str) -> None:
        """Time every call of ``obj.name`` under ``line`` until the context exits."""
        orig = inspect.getattr_static(obj, name) if inspect.isclass(obj) else getattr(obj, name)
        fn = orig.__func__ if isinstance(orig, (staticmethod, classmethod)) else orig
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def wrapper(*a: Any, **k: Any) -> Any:
                gen = fn(*a, **k)
                try:
                    while True:
                        try:
                            item = self._timed(line, lambda: next(gen))
                        except StopIteration:
                            return
                        yield item
                finally:
                    gen.close()
        else:
            @functools.wraps(fn)
            def wrapper(*a: Any, **k: Any) -> Any:
                return self._timed(line, lambda: fn(*a, **k))
        new = staticmethod(wrapper) if isinstance(orig, staticmethod) else \
            classmethod(wrapper) if isinstance(orig, classmethod) else wrapper
        own = name in vars(obj)                 # else an inherited attribute: deleted again on exit
        setattr(obj, name, new)
        self._restore.append((obj, name, orig if own else _ABSENT))

    def add(self, line: str, seconds: float) -> None:
        """Record time measured outside the wrappers (a subprocess, a load)."""
        self.seconds[line] += seconds

    def timed(self, line: str, fn: Callable[[], Any]) -> Any:
        """Call ``fn`` and record its time under ``line`` (exclusive of wrapped calls inside it)."""
        return self._timed(line, fn)
