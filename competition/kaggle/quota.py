"""The account's weekly GPU quota, shown before kernels are pushed (`make kernel`).

Kaggle grants GPU hours per week (about 30) and counts every hour a GPU session is held, whether it
trains or not; the kit's features and blend kernels hold none. The quota comes from the client's
`quota_view`, where Kaggle answers it; where it does not, the push goes on without it.
"""

from __future__ import annotations

from competition.kaggle.waiting import Clock, patiently


def gpu_quota(clock: Clock | None = None) -> dict | None:
    """This week's quota (`remaining_hours`, `total_hours`, `refresh`), or None when Kaggle gives none."""
    from competition import kaggle_client

    return patiently(kaggle_client.gpu_quota, what="asking for the GPU quota", clock=clock or Clock())


def quota_line(quota: dict) -> str:
    """`GPU quota: 25.5 of 30.0 h left this week (renews ...)`."""
    renews = f" (renews {quota['refresh']})" if quota["refresh"] else ""
    return f"GPU quota: {quota['remaining_hours']:.1f} of {quota['total_hours']:.1f} h left this week{renews}"
