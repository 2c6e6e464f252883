"""A user's own training loop, for reprogrid to audit (examples/own_loop)."""
