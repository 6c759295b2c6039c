"""The benchmark's top layer (store, runner, suites, sample data, importers, CLI) and, in
:mod:`moee_bench.bench.core`, the ground floor. The layer map is in :mod:`moee_bench`."""
