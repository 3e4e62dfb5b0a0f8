"""Training, above the runtime: data pipelines (data.py), optimizers and schedules (optim.py), the
loop of a `train` block (loop.py), checkpoints (checkpoint.py) and the registry through which
parallel engines plug into the loop (engines.py). The checker reads its tables of names and
keywords from here."""
