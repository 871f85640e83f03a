"""Time-of-use energy prices, site base load and demand charges.

Prices and base load are given per hour of the day and repeat daily. Energy is priced when it
is drawn from the grid: the energy drawn in the minute ``[t - 1, t)`` is paid at the price of
the hour that minute lies in. A demand charge applies to the highest 15-minute average site
power (base load plus charging) in clock-aligned quarter hours within its daily window; its
monthly rate is pro-rated to the simulated days (one month = 365.25 / 12 days).
"""

from __future__ import annotations

import numpy as np

from agentev.config import SiteConfig, TariffConfig

DAYS_PER_MONTH = 365.25 / 12.0
DEMAND_INTERVAL_MIN = 15


class Tariff:
    """Prices and site load as functions of the simulation minute.

    Args:
        tariff: The tariff section of a scenario.
        site: The site section of a scenario.
    """

    def __init__(self, tariff: TariffConfig, site: SiteConfig) -> None:
        self.config = tariff
        self.hourly_price = tuple(tariff.energy_price_per_kwh)
        self.hourly_base_load_kw = tuple(site.base_load_kw)
        self.grid_limit_kw = site.grid_limit_kw

    @staticmethod
    def hour_of_step(step: int) -> int:
        """Hour of the day (0-23) of the minute ``[step - 1, step)``."""
        return ((step - 1) // 60) % 24

    def price(self, step: int) -> float:
        """Energy price applied to the minute ending at ``step`` (currency/kWh)."""
        return self.hourly_price[self.hour_of_step(step)]

    def base_load_kw(self, step: int) -> float:
        """Site base load during the minute ending at ``step`` (kW)."""
        return self.hourly_base_load_kw[self.hour_of_step(step)]

    def charging_headroom_kw(self, step: int) -> float:
        """Power left for charging under the grid limit in the minute ending at ``step`` (kW)."""
        if self.grid_limit_kw is None:
            return float("inf")
        return max(0.0, self.grid_limit_kw - self.base_load_kw(step))


def quarter_hour_means(site_power_kw: np.ndarray) -> np.ndarray:
    """Mean site power of each clock-aligned 15-minute block (kW); a last partial block counts."""
    n = len(site_power_kw)
    blocks = -(-n // DEMAND_INTERVAL_MIN)
    sums = np.add.reduceat(site_power_kw, np.arange(0, n, DEMAND_INTERVAL_MIN)) if n else []
    sizes = np.minimum(DEMAND_INTERVAL_MIN, n - np.arange(blocks) * DEMAND_INTERVAL_MIN)
    return np.asarray(sums, dtype=float) / sizes


def demand_charge(tariff: TariffConfig, site_power_kw: np.ndarray) -> tuple[float, float]:
    """Demand charge of a run and its overall 15-minute peak.

    Args:
        tariff: The tariff with its demand charges.
        site_power_kw: Mean site power of each simulated minute, from minute 0 (kW).

    Returns:
        ``(charge, peak_kw)``: the pro-rated demand charge (currency) and the highest
        15-minute average site power (kW).
    """
    means = quarter_hour_means(np.asarray(site_power_kw, dtype=float))
    if len(means) == 0:
        return 0.0, 0.0
    days = len(site_power_kw) / 1440.0
    block_hour = (np.arange(len(means)) * DEMAND_INTERVAL_MIN / 60.0) % 24.0
    total = 0.0
    for charge in tariff.demand_charges:
        in_window = (block_hour >= charge.start_h) & (block_hour < charge.end_h)
        if in_window.any():
            peak_kw = float(means[in_window].max())
            total += charge.rate_per_kw_month * peak_kw * days / DAYS_PER_MONTH
    return total, float(means.max())
