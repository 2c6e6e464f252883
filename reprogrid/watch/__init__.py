"""Watching a training script from inside, without a line of it changed (`training.command`).

reprogrid puts `site/` on the command's PYTHONPATH; its `sitecustomize` runs in every
Python process the command starts (the script, its DataLoader workers, any Python
subprocess) before the first line of its code, and hands over to `hook.install`. The
main process seeds the global generators and applies the library configuration first;
every process records the seeding calls and the first draw from a global generator
after each; the main process also fingerprints the optimizers' parameters after
training steps and writes what it saw when it exits.
"""

ENVIRONMENT = "REPROGRID_WATCH"  # the watch spec's path: seeds, library knobs, where to record
MAIN_PID = "REPROGRID_WATCH_MAIN_PID"  # set by the main process: any other process is a child
