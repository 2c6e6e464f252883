"""The workflow's steps, one module each, thin: a step turns its job's arguments into a
call of the library (reprogrid.jobs.registry lists them; docs/architecture.md)."""
