"""The benchmark's ground floor (:mod:`moee_bench.bench.core`) and roof (:mod:`~moee_bench.bench.suite`,
:mod:`~moee_bench.bench.cli`, :mod:`~moee_bench.bench.perf`). The layer map is in :mod:`moee_bench`."""
