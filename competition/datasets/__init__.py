"""Datasets: what each one is (spec.py), one module per source (its labels, indexer and fetcher),
the registry naming them all, obtaining and verifying a copy (`make data`), and the saved folds."""
