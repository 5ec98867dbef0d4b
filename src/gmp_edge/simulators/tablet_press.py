"""Rotary tablet press process model (no protocol; the OPC UA server publishes it).

Cause and effect follow the press: fill depth sets the tablet weight, weight sets the main
compression force (a 1 % heavier tablet needs ~3 % more force to reach the same thickness),
force sets hardness. Output = turret speed x stations x 60 (single-sided). Outside EXECUTE the
turret stands still and the forces read zero; weight and hardness keep their last values.
"""

from __future__ import annotations

import random

from gmp_edge.simulators.physics import Wander
from gmp_edge.simulators.scenario import NOMINAL, TargetEffects
from gmp_edge.simulators.spec import PRESS_STATES, PressParams

# Variable names as they appear in the OPC UA node ids (TabletPress.<name>), with units.
DOUBLE_VARIABLES: dict[str, str] = {
    "MainCompressionForce": "kN",
    "PreCompressionForce": "kN",
    "TurretSpeed": "rpm",
    "EjectionForce": "N",
    "FillDepth": "mm",
    "Output": "tablets/h",
    "TabletWeight": "mg",
    "Hardness": "N",
}
STRING_VARIABLES = ("State", "BatchId")

FORCE_PER_WEIGHT = 3.0  # relative force change per relative weight change


class TabletPress:
    """Simulated tablet press values; call :meth:`tick` to advance them."""

    def __init__(self, params: PressParams, rng: random.Random, now: float) -> None:
        self.params = params
        self._rng = rng
        self._now = now
        self.state = params.state
        self.batch_id = params.batch_id
        self._fill = Wander(rng, sigma=0.04, tau_s=300.0)  # mm, slow fill-depth wander
        self._speed = Wander(rng, sigma=0.2, tau_s=120.0)  # rpm
        self._ejection = Wander(rng, sigma=10.0, tau_s=600.0)  # N
        self.values: dict[str, float] = {
            "MainCompressionForce": 0.0,
            "PreCompressionForce": 0.0,
            "TurretSpeed": 0.0,
            "EjectionForce": 0.0,
            "FillDepth": params.fill_depth_mm,
            "Output": 0.0,
            "TabletWeight": params.tablet_weight_mg,
            "Hardness": params.hardness_n,
        }
        self.tick(now, NOMINAL)

    def set_batch(self, batch_id: str, state: str) -> None:
        """Change the batch id and the machine state (IDLE, EXECUTE, HELD, STOPPED)."""
        if state not in PRESS_STATES:
            raise ValueError(f"state must be one of {', '.join(PRESS_STATES)}, got {state!r}")
        self.batch_id = batch_id
        self.state = state

    def tick(self, now: float, effects: TargetEffects = NOMINAL) -> None:
        """Advance to wall time ``now``; a frozen press keeps its last values."""
        if effects.frozen:
            self._now = now
            return
        dt = max(0.0, now - self._now)
        self._now = now
        p, gauss, v = self.params, self._rng.gauss, self.values
        fill = p.fill_depth_mm + self._fill.step(dt)
        v["FillDepth"] = fill
        if self.state != "EXECUTE":
            for name in ("MainCompressionForce", "PreCompressionForce", "TurretSpeed"):
                v[name] = 0.0
            v["EjectionForce"] = 0.0
            v["Output"] = 0.0
            return
        speed = p.turret_speed_rpm + self._speed.step(dt) + gauss(0.0, 0.05)
        weight = p.tablet_weight_mg * fill / p.fill_depth_mm + gauss(0.0, 0.8)
        relative = (weight - p.tablet_weight_mg) / p.tablet_weight_mg
        force = p.main_force_kn * (1.0 + FORCE_PER_WEIGHT * relative)
        force += effects.force_drift_kn + gauss(0.0, 0.08)
        v["TurretSpeed"] = speed
        v["TabletWeight"] = weight
        v["MainCompressionForce"] = max(0.0, force)
        v["PreCompressionForce"] = max(0.0, p.pre_force_kn + gauss(0.0, 0.04))
        ejection = p.ejection_force_n + self._ejection.step(dt) + gauss(0.0, 4.0)
        v["EjectionForce"] = max(0.0, ejection)
        v["Hardness"] = max(0.0, p.hardness_n * force / p.main_force_kn + gauss(0.0, 1.5))
        v["Output"] = speed * p.stations * 60.0
