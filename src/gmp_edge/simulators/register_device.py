"""Base class for simulated Modbus devices: two register banks, faults, a tick."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gmp_edge.simulators.modbus_pdu import READ_HOLDING, ExceptionCode
from gmp_edge.simulators.registers import Field, RegisterBank, Value
from gmp_edge.simulators.scenario import NOMINAL, TargetEffects


class RegisterDevice:
    """A Modbus device model: holding and input registers, updated on every tick.

    Subclasses describe their fields, implement :meth:`step` (the physics) and may hook
    reads (:meth:`before_read`) and validate writes (:meth:`validate_write`).
    """

    def __init__(self, holding: Iterable[Field], input_registers: Iterable[Field]) -> None:
        self.holding = RegisterBank(holding)
        self.input = RegisterBank(input_registers)
        self.effects: TargetEffects = NOMINAL
        self._was_frozen = False

    # --- Modbus side -------------------------------------------------------------------------

    def read(self, function: int, address: int, count: int) -> list[int] | int:
        """Registers for FC03 (holding) / FC04 (input), or exception 02 for unmapped ones."""
        bank = self.holding if function == READ_HOLDING else self.input
        if not bank.covers(address, count):
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        self.before_read(function)
        words = bank.read(address, count)
        if words is None:  # pragma: no cover - covers() said yes
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        self.after_read(function)
        return words

    def write(self, address: int, values: Sequence[int]) -> int | None:
        """Write holding registers: 02 if not writable, 03 if the device rejects the value."""
        changes = self.holding.prepare_write(address, values)
        if changes is None:
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        code = self.validate_write(changes)
        if code is not None:
            return code
        for name, value in changes.items():
            self.holding.set(name, value)
        self.after_write(changes)
        return None

    def before_read(self, function: int) -> None:
        """Hook: bring a bank up to date before it is read."""

    def after_read(self, function: int) -> None:
        """Hook: side effects of a read (e.g. clearing a NEW DATA bit)."""

    def validate_write(self, changes: Mapping[str, Value]) -> int | None:
        """Hook: an exception code to refuse the write, or None to accept it."""
        return None

    def after_write(self, changes: Mapping[str, Value]) -> None:
        """Hook: act on accepted writes (commands)."""

    # --- simulation side ---------------------------------------------------------------------

    def tick(self, now: float, effects: TargetEffects = NOMINAL) -> None:
        """Advance the model to wall time ``now`` (epoch seconds) under ``effects``."""
        self.effects = effects
        self.holding.garbage = effects.garbage_registers
        self.input.garbage = effects.garbage_registers
        if effects.frozen:
            self._was_frozen = True
            return  # a frozen device keeps serving its last values
        if self._was_frozen:
            self._was_frozen = False
            self.resume(now)
        self.step(now, effects)

    def step(self, now: float, effects: TargetEffects) -> None:
        """The physics: update values for wall time ``now``."""
        raise NotImplementedError

    def resume(self, now: float) -> None:
        """Hook: called when a frozen device comes back, before its next step."""
