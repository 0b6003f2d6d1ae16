"""Kaggle's service: the leaderboard (`make submit`, `make submissions`) and kernels (`make kernel`,
`make kernel-status`, `make kernel-output`), all through `competition.kaggle_client`."""
