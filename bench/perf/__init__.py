"""Speed benchmarks (``moee-bench bench NAME``): our code vs the reference chain, timed in the same run."""
