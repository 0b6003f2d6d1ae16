"""Modeling (`make train`, `make transfer`, `make report`): models, training batches, fold training,
predictions with TTA, the run folder, transfer from a base run, and a run's report."""
