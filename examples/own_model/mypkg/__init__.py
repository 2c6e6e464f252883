"""A user's own model and data, unknown to reprogrid: named only in config.yaml."""
