"""Methods under evaluation: one adapter per method behind :class:`baselines.base.Method`."""
