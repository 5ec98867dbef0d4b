"""Turns the typed configuration into drivers and a polling plan (no I/O)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gmp_edge.collector.codec import DataType, Order, ValueSpec, register_count
from gmp_edge.collector.driver import Driver
from gmp_edge.collector.modbus import ModbusDeviceSpec, ModbusDriver, RecordPoint
from gmp_edge.collector.plan import Function, RegisterPoint, plan_requests
from gmp_edge.config import ModbusDevice, OpcuaDevice, PlantConfig, Tag, secret_from_env

if TYPE_CHECKING:
    from gmp_edge.collector.opcua import OpcuaDeviceSpec


def register_point(tag: Tag, device: ModbusDevice) -> RegisterPoint:
    """The collector's view of a Modbus tag (PDU address, decode spec)."""
    m = tag.modbus
    assert m is not None
    wide = register_count(m.data_type, m.length) > 1 and m.data_type is not DataType.STRING
    return RegisterPoint(
        tag=tag.path,
        function=Function.HOLDING if m.function == "holding" else Function.INPUT,
        address=m.address - device.address_base,
        count=register_count(m.data_type, m.length),
        value=ValueSpec(
            data_type=m.data_type,
            word_order=(m.word_order or Order.BIG) if wide else Order.BIG,
            byte_order=m.byte_order,
            scale=m.scale,
            offset=m.offset,
            valid_min=tag.valid_min,
            valid_max=tag.valid_max,
            invalid_raw=frozenset(m.invalid_raw),
        ),
    )


def modbus_spec(d: ModbusDevice) -> ModbusDeviceSpec:
    """Connection parameters of a Modbus device."""
    return ModbusDeviceSpec(
        device_id=d.id,
        host=d.host,
        port=d.port,
        unit_id=d.unit_id,
        timeout_s=d.timeout_s,
        poll_interval_s=d.poll_interval_s,
        max_registers=d.max_registers_per_request,
        max_gap=d.max_register_gap,
        reconnect_min_s=d.reconnect_min_s,
        reconnect_max_s=d.reconnect_max_s,
        # without analog record tags the floats are never decoded (check-config requires
        # the order where they are); big is then only a placeholder
        float_word_order=d.float_word_order or Order.BIG,
        record_missed_cycles=d.record_missed_cycles,
    )


def opcua_spec(d: OpcuaDevice) -> OpcuaDeviceSpec:
    """Connection parameters of an OPC UA server; the password comes from the environment."""
    from gmp_edge.collector.opcua import (
        OpcuaDeviceSpec,  # asyncua loads only when a press is configured
    )

    password = (
        secret_from_env(d.password_env, what=f"devices({d.id}).password_env")
        if d.password_env
        else None
    )
    return OpcuaDeviceSpec(
        device_id=d.id,
        endpoint=d.endpoint,
        security_mode=d.security_mode,
        security_policy=d.security_policy,
        certificate=str(d.certificate) if d.certificate else None,
        private_key=str(d.private_key) if d.private_key else None,
        username=d.username,
        password=password,
        mode=d.mode,
        sampling_interval_ms=d.sampling_interval_ms,
        publishing_interval_ms=d.publishing_interval_ms,
        queue_size=d.queue_size,
        poll_interval_s=d.poll_interval_s,
        timeout_s=d.timeout_s,
        reconnect_min_s=d.reconnect_min_s,
        reconnect_max_s=d.reconnect_max_s,
    )


def build_driver(cfg: PlantConfig, device_id: str, last_record_s: int | None = None) -> Driver:
    """The driver of one device. ``last_record_s`` is the newest stored record time of a
    record-mode device, so a restart backfills from the device's memory."""
    d = cfg.device(device_id)
    tags = [t for t in cfg.tags if t.device == d.id]
    if isinstance(d, ModbusDevice):
        points = [register_point(t, d) for t in tags if t.modbus is not None]
        records = [
            RecordPoint(t.path, t.record.channel, t.record.analog, t.valid_min, t.valid_max)
            for t in tags
            if t.record is not None
        ]
        return ModbusDriver(modbus_spec(d), points, records, last_record_s)
    from gmp_edge.collector.opcua import OpcuaDriver, OpcuaPoint  # asyncua loads only when needed

    ua = [OpcuaPoint(t.path, t.opcua.node_id) for t in tags if t.opcua is not None]
    return OpcuaDriver(opcua_spec(d), ua)


def build_drivers(cfg: PlantConfig, last_record_s: dict[str, int | None]) -> list[Driver]:
    """One driver per configured device."""
    return [build_driver(cfg, d.id, last_record_s.get(d.id)) for d in cfg.devices]


def polling_plan(cfg: PlantConfig) -> list[str]:
    """A human-readable polling plan: per device, the requests and the tags they serve."""
    lines: list[str] = []
    total_requests = 0
    for d in cfg.devices:
        tags = [t for t in cfg.tags if t.device == d.id]
        if isinstance(d, ModbusDevice):
            lines.append(
                f"{d.id}: Modbus TCP {d.host}:{d.port} unit {d.unit_id}, every "
                f"{d.poll_interval_s:g} s, timeout {d.timeout_s:g} s, {len(tags)} tag(s)"
            )
            reqs = plan_requests(
                [register_point(t, d) for t in tags if t.modbus is not None],
                d.max_registers_per_request,
                d.max_register_gap,
            )
            for r in reqs:
                names = ", ".join(p.tag.rsplit("/", 1)[-1] for p in r.points)
                lines.append(
                    f"  FC{int(r.function):02d} address {r.address} count {r.count}: {names}"
                )
            total_requests += len(reqs)
            recs = [t for t in tags if t.record is not None]
            if recs:
                names = ", ".join(t.path.rsplit("/", 1)[-1] for t in recs)
                lines.append(
                    "  records (Lighthouse map): FC03 22+12 settings, then per new record "
                    f"FC06 24 + FC04 0+76: {names}"
                )
                total_requests += 3
        else:
            lines.append(
                f"{d.id}: OPC UA {d.endpoint} ({d.mode}, sampling {d.sampling_interval_ms:g} ms, "
                f"publishing {d.publishing_interval_ms:g} ms, queue {d.queue_size}), "
                f"{len(tags)} node(s)"
            )
            for t in tags:
                assert t.opcua is not None
                lines.append(f"  {t.opcua.node_id} -> {t.path}")
    lines.append(
        f"total: {len(cfg.devices)} device(s), {len(cfg.tags)} tag(s), "
        f"{total_requests} Modbus request(s) per poll round"
    )
    return lines
