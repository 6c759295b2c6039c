"""One module per ``moee-bench`` subcommand; each defines ``register(subparsers)``."""
