"""Running the workflow's jobs: the step registry and runner, the warm server that forks
them, run locks, the invocation's claim on its directory, job logs."""
