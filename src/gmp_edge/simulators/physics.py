"""Small physical models shared by the device simulators: noise, room climate, counting.

Everything takes an explicit ``random.Random`` so a seed reproduces a run.
"""

from __future__ import annotations

import math
import random


class Wander:
    """Mean-reverting random walk (Ornstein-Uhlenbeck): slow drift around zero.

    ``sigma`` is the long-run standard deviation; ``tau_s`` how fast it forgets.
    """

    def __init__(self, rng: random.Random, sigma: float, tau_s: float) -> None:
        self._rng = rng
        self.sigma = sigma
        self.tau_s = tau_s
        self.value = 0.0

    def step(self, dt: float) -> float:
        """Advance by ``dt`` seconds and return the new value."""
        if dt <= 0 or self.sigma == 0:
            return self.value
        decay = math.exp(-dt / self.tau_s)
        self.value = self.value * decay + self.sigma * math.sqrt(1 - decay * decay) * (
            self._rng.gauss(0.0, 1.0)
        )
        return self.value


def saturation_vapour_pressure_hpa(temperature_c: float) -> float:
    """Magnus formula over water (Sonntag 1990 constants), hPa."""
    return 6.112 * math.exp(17.62 * temperature_c / (243.12 + temperature_c))


def dew_point_c(temperature_c: float, rh_pct: float) -> float:
    """Dew point from temperature and relative humidity (Magnus inverse), degC."""
    rh = max(rh_pct, 0.01) / 100.0
    gamma = math.log(rh) + 17.62 * temperature_c / (243.12 + temperature_c)
    return 243.12 * gamma / (17.62 - gamma)


def absolute_humidity_g_m3(temperature_c: float, rh_pct: float) -> float:
    """Water vapour density, g/m3 (ideal gas: 216.7 * e[hPa] / T[K])."""
    vapour_hpa = saturation_vapour_pressure_hpa(temperature_c) * rh_pct / 100.0
    return 216.7 * vapour_hpa / (273.15 + temperature_c)


class RoomClimate:
    """Temperature and humidity of the air a probe sits in.

    Temperature wanders around its set point; the moisture content (vapour pressure) wanders
    independently. RH follows from both, so heating the room (an excursion) lowers RH, as in
    a real room where no moisture is added.
    """

    def __init__(self, rng: random.Random, temperature_c: float, rh_pct: float) -> None:
        self._rng = rng
        self.setpoint_c = temperature_c
        self._vapour_hpa = saturation_vapour_pressure_hpa(temperature_c) * rh_pct / 100.0
        self._t_wander = Wander(rng, sigma=0.15, tau_s=300.0)
        self._rh_wander = Wander(rng, sigma=0.01, tau_s=600.0)  # relative, on vapour pressure
        self.temperature_c = temperature_c
        self.rh_pct = rh_pct

    def step(self, dt: float, offset_c: float = 0.0) -> None:
        """Advance ``dt`` seconds with ``offset_c`` added to the temperature (excursion)."""
        noise = self._rng.gauss(0.0, 0.02)  # sensor noise, degC
        self.temperature_c = self.setpoint_c + self._t_wander.step(dt) + offset_c + noise
        vapour = self._vapour_hpa * (1.0 + self._rh_wander.step(dt))
        rh = 100.0 * vapour / saturation_vapour_pressure_hpa(self.temperature_c)
        self.rh_pct = min(100.0, max(0.0, rh + self._rng.gauss(0.0, 0.05)))


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson variate: exact (Knuth) for small means, normal approximation above 50."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    k, product = 0, rng.random()
    while product > limit:
        k += 1
        product *= rng.random()
    return k
