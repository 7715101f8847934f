"""Options of the data profile (``conf/profile/default.yaml``, key ``profile``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.analytics.stats import SRM_ALPHA
from tasks.core.errors import ConfigError


@dataclass
class ProfileConfig:
    """Options of the data profile (``conf/profile/default.yaml``)."""

    max_rows: int = 200_000
    seed: int = 2026
    as_of: str | None = None
    top_values: int = 10
    histogram_bins: int = 30
    max_plot_columns: int = 24
    max_heatmap_columns: int = 40
    vif_limit: float = 10.0
    high_correlation: float = 0.9
    leak_auc_high: float = 0.95
    leak_auc_low: float = 0.05
    near_constant_share: float = 0.99
    arm_columns: list[str] = field(default_factory=lambda: ["segment"])
    table_keys: dict[str, list[str]] = field(default_factory=dict)
    expected_arm_shares: dict[Any, float] | None = None
    alpha: float = 0.05
    srm_alpha: float = SRM_ALPHA  # set from evaluate.srm_alpha by flows.profile: one level for all checks

    def __post_init__(self) -> None:
        if self.max_rows < 1:
            raise ConfigError(f"config 'profile', key 'max_rows': must be >= 1, got {self.max_rows}")
        if not 0.5 < self.leak_auc_high <= 1.0 or not 0.0 <= self.leak_auc_low < 0.5:
            raise ConfigError(
                "config 'profile', keys 'leak_auc_high'/'leak_auc_low': need 0.5 < high <= 1 and "
                f"0 <= low < 0.5, got {self.leak_auc_high}/{self.leak_auc_low}"
            )
        if not 0.0 < self.near_constant_share <= 1.0:
            raise ConfigError(
                f"config 'profile', key 'near_constant_share': must be in (0, 1], got {self.near_constant_share}"
            )
        if self.vif_limit <= 1.0:
            raise ConfigError(f"config 'profile', key 'vif_limit': must be > 1, got {self.vif_limit}")
        if not 0.0 < self.srm_alpha < 1.0:
            raise ConfigError(f"config 'profile', key 'srm_alpha': must be in (0, 1), got {self.srm_alpha}")
