"""Evidence packages: built from a real store, trail and books; verified offline; every
tampering (content, manifest, signature, audit entry, missing/added file, forged key,
any single byte of the ZIP) is caught and named; identical inputs give identical bytes;
a large export streams."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import random
import sqlite3
import stat
import struct
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from unittest.mock import patch

import pydantic_core
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gmp_edge import timefmt
from gmp_edge.alarms import machine as am
from gmp_edge.alarms.model import ConditionKind, Priority
from gmp_edge.audit import chain
from gmp_edge.audit.trail import AuditTrail
from gmp_edge.collector.reading import Cause, Quality, Reading
from gmp_edge.deviations import lifecycle as lc
from gmp_edge.deviations.batch import Batch
from gmp_edge.deviations.model import (
    Classification,
    Evidence,
    ExcursionKind,
    ProductionState,
    Source,
)
from gmp_edge.evidence import readings_csv
from gmp_edge.evidence import verify as ev
from gmp_edge.evidence.package import EvidenceError, build_package
from gmp_edge.historian.store import Store
from gmp_edge.identity.roles import Role
from gmp_edge.integrity import covered, digest, keys
from gmp_edge.integrity.anchoring import anchor_now
from gmp_edge.integrity.anchors import anchors_path_for
from gmp_edge.limits.model import LimitSet
from gmp_edge.monitoring.engine import Books
from gmp_edge.services.integrity import verify_store
from gmp_edge.signatures.manifest import Meaning
from gmp_edge.signatures.register import SignatureRegister
from gmp_edge.timefmt import iso

from .conftest import COMPRESSION, PRESS, RH, STATE, TEMP, PlantBuilder, small_plant, tag_path

S = 1_000_000
T0 = 1_790_000_000_000_000  # 2026-09-21 UTC
END = T0 + 120 * S
NOW = T0 + 3600 * S
GRANULATION = "granulation"
OUTSIDE = tag_path(GRANULATION, "trh-02", "temperature")  # outside every batch here


def plant() -> PlantBuilder:
    """The small plant and a second room with a temperature of its own."""
    b = small_plant()
    b.room(GRANULATION).modbus("trh-02", GRANULATION, "trh_transmitter")
    assert b.tag("trh-02", "temperature", "temperature", "degC") == OUTSIDE
    return b


class Decisions:
    """A minimal signable batch-decision record (the release decision)."""

    record_type = "batch_decision"

    def content(self, record_id: str) -> object | None:
        return {"batch_id": record_id, "decision": "release"}

    def author(self, record_id: str) -> str:
        return "qa.ann"


class Env:
    def __init__(self, tmp: Path):
        self.cfg, _ = plant().load(tmp)
        self.config_path = tmp / "plant.toml"
        self.db = self.cfg.store.path
        self.store = Store(self.db)
        self.store.register_tags((t.path, t.unit, t.kind.value, t.device) for t in self.cfg.tags)
        self.trail = AuditTrail(self.db)
        self.books = Books.open(self.trail)
        self.register = SignatureRegister(self.trail)
        self.key_path = keys.key_path_for(self.db)
        self.tmp = tmp

    def close(self) -> None:
        self.register.close()
        self.books.close()
        self.trail.close()
        self.store.close()

    def build(self, name: str = "p.zip", now_us: int = NOW, batch_id: str = "B-1", **kw):
        return build_package(
            self.tmp / name,
            store=self.store,
            trail=self.trail,
            books=self.books,
            signatures=self.register,
            cfg=self.cfg,
            config_path=self.config_path,
            batch_id=batch_id,
            review=kw.get("review", {"verdict": "ready", "reviewer": "qa.ann"}),
            key_path=self.key_path,
            now_us=now_us,
            check_store=kw.get("check_store", verify_store),
        )


def populate(env: Env) -> None:
    b = env.books
    env.trail.append("admin", "user.created", "user", "op.olga", "", None, {"role": "operator"})
    ls = b.limit_sets.propose(
        "eng.eve", LimitSet("LS-comp", 0, 0, "initial", "eng.eve"), "first limits"
    )
    b.limit_sets.approve("qa.ann", "LS-comp", ls.version, T0 - 10 * S)
    b.batches.start("op.olga", Batch("B-1", "Paracetamol 500", (PRESS,), (COMPRESSION,), T0))
    readings = []
    for i in range(-5, 130):  # some before the window, some after
        readings.append(Reading(TEMP, 21.0 + i / 100, Quality.GOOD, T0 + i * S))
        readings.append(Reading(RH, 40.5, Quality.GOOD, T0 + i * S + 1))
        readings.append(Reading(OUTSIDE, 20.0, Quality.GOOD, T0 + i * S))
    readings.append(Reading.bad(TEMP, T0 + 30 * S + 5, 'timeout, "no answer"', Cause.NETWORK))
    readings.append(Reading(STATE, "EXECUTE", Quality.GOOD, T0 + 3 * S, T0 + 2 * S))
    env.store.commit(readings)
    env.store.record_gap(TEMP, T0 + 30 * S, T0 + 32 * S, Cause.NETWORK, "missed polls")
    env.store.record_gap(OUTSIDE, T0 + 30 * S, T0 + 32 * S, Cause.NETWORK, "missed polls")
    env.trail.append("admin", "user.created", "user", "qa.ann", "", None, {"role": "qa"})
    a1, t1 = am.activate(
        am.new_alarm("AL-1", TEMP, ConditionKind.ACTION_HIGH, Priority.HIGH),
        T0 + 40 * S,
        value=24.5,
        limit=24.0,
    )
    a2, t2 = am.acknowledge(a1, T0 + 50 * S, user="op.olga", comment="doors closed")
    b.alarms.save(a2, [t1, t2])
    dev, dt = lc.raise_deviation(
        deviation_id="DEV-2026-0001",
        title="Temperature above action limit",
        source=Source.EXCURSION,
        proposed_classification=Classification.MINOR,
        discovered_us=T0 + 60 * S,
        actor="system",
        affected_batch_ids=("B-1",),
        evidence=Evidence(
            tag=TEMP,
            room=COMPRESSION,
            kind=ExcursionKind.ACTION,
            production_state=ProductionState.IN_OPERATION,
            start_us=T0 + 40 * S,
            duration_us=20 * S,
            end_us=T0 + 60 * S,
            peak=24.5,
        ),
    )
    b.deviations.create(dev, dt)
    b.batches.end("op.olga", "B-1", END)
    env.register.register(b.deviations)
    env.register.register(Decisions())
    seen = env.register.current_hash("deviation", dev.id)
    assert seen is not None
    env.register.sign(
        "deviation",
        dev.id,
        seen,
        "qa.ann",
        "Ann Quality",
        Role.QA_REVIEWER,
        Meaning.REVIEW,
        "reviewed",
    )
    decision_hash = env.register.current_hash("batch_decision", "B-1")
    assert decision_hash is not None
    env.register.sign(
        "batch_decision",
        "B-1",
        decision_hash,
        "qp.quinn",
        "Quinn QP",
        Role.QA_APPROVER,
        Meaning.RESPONSIBILITY,
        "released",
    )
    env.trail.append("admin", "user.created", "user", "late", "", None, None)


@pytest.fixture
def env(tmp_path):
    e = Env(tmp_path)
    populate(e)
    yield e
    e.close()


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def rewrite(src: Path, dst: Path, replace: Mapping[str, bytes | None]) -> Path:
    """Copy the package, replacing (or with None deleting) members; new names are added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename in replace:
                data = replace[info.filename]
                if data is not None:
                    zout.writestr(info, data)
            else:
                zout.writestr(info, zin.read(info))
        for name, data in replace.items():
            if name not in zin.namelist() and data is not None:
                zout.writestr(name, data)
    return dst


def remanifest(m: dict[str, bytes], changed: dict[str, bytes]) -> bytes:
    """manifest.json with the listed files' size and hash recomputed for ``changed``."""
    man = json.loads(m["manifest.json"])
    for f in man["files"]:
        data = changed.get(f["path"])
        if data is not None:
            f["size"], f["sha256"] = len(data), hashlib.sha256(data).hexdigest()
    return (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def assert_fails(report: ev.VerifyReport, *needles: str) -> None:
    assert not report.ok
    text = "\n".join(report.problems)
    for n in needles:
        assert n in text, (n, report.problems)


# ------------------------------------------------------------------------------ building


def test_package_builds_and_verifies(env):
    info = env.build()
    fp = keys.fingerprint(keys.load_or_create(env.key_path))
    assert info.key_fingerprint == fp
    assert stat.S_IMODE(os.stat(env.key_path).st_mode) == 0o600
    m = members(info.path)
    assert list(m) == [
        "readings.csv",
        "seal_chain.jsonl",
        "gaps.csv",
        "alarm_transitions.json",
        "excursions/deviations.json",
        "limit_sets.json",
        "service_runs.json",
        "audit.json",
        "signatures.json",
        "review.json",
        "config/plant.toml",
        "config.sha256",
        "public_key.pem",
        "manifest.json",
        "manifest.sig",
    ]
    assert m["config/plant.toml"] == env.config_path.read_bytes()
    assert m["public_key.pem"] == keys.public_pem(keys.load_or_create(env.key_path))

    report = ev.verify_package(info.path, fp)
    assert report.ok, report.problems
    assert report.batch_id == "B-1" and report.fingerprint == fp
    assert any("hash chain" in c for c in report.checked)

    man = json.loads(m["manifest.json"])
    assert man["created_at"] == "2026-09-21T15:13:20.000000Z"
    assert man["window"]["start"] == "2026-09-21T14:13:20.000000Z"
    assert man["window"]["batch_in_progress"] is False
    # window [T0, T0+120 s): 120 each for TEMP and RH, one Bad TEMP, one press state
    assert man["readings"]["per_tag"][TEMP] == 121
    assert man["readings"]["per_tag"][RH] == 120
    assert man["readings"]["per_tag"][STATE] == 1
    assert OUTSIDE not in man["readings"]["per_tag"]
    assert info.readings == man["readings"]["rows"] == 242
    assert man["counts"] == {
        "gaps": 1,
        "alarm_transitions": 2,
        "deviations": 1,
        "limit_set_versions": 1,
        "batch_decision_signatures": 1,
    }
    assert man["audit"]["chain_check_at_export"]["intact"] is True
    assert man["audit"]["head_seq"] == env.trail.head()[0]
    assert {f["path"] for f in man["files"]} == set(m) - {"manifest.json", "manifest.sig"}

    rows = list(csv.DictReader(io.StringIO(m["readings.csv"].decode())))
    bad = [r for r in rows if r["quality"] == "bad"]
    assert len(bad) == 1 and bad[0]["message"] == 'timeout, "no answer"'
    assert bad[0]["cause"] == "network" and bad[0]["value"] == ""
    press = next(r for r in rows if r["tag"] == STATE)
    assert press["text"] == "EXECUTE" and press["ts_source_us"] == str(T0 + 2 * S)
    assert press["ts_edge"] == "2026-09-21T14:13:23.000000Z"
    assert press["ts"] == press["ts_source"] == "2026-09-21T14:13:22.000000Z"
    first = next(r for r in rows if r["tag"] == TEMP)
    assert first["value"] == "21.0" and first["ts_us"] == str(T0)

    audit = json.loads(m["audit.json"])
    seqs = [e["seq"] for e in audit["entries"]]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    actions = {e["action"] for e in audit["entries"]}
    assert {
        "batch.started",
        "batch.ended",
        "deviation.raise",
        "alarm.acknowledge",
        "limit_set.approved",
        "signature.executed",
    } <= actions
    assert "user.created" in actions  # in between: the whole segment is there
    assert not any(e["record_id"] == "late" for e in audit["entries"])  # after the segment

    devs = json.loads(m["excursions/deviations.json"])
    (sig,) = devs[0]["signatures"]["signatures"]
    assert sig["signer"] == "qa.ann" and sig["valid"] is True
    decision = json.loads(m["signatures.json"])
    assert [s["printed_name"] for s in decision["signatures"]] == ["Quinn QP"]
    (ls,) = json.loads(m["limit_sets.json"])
    assert ls["record_id"] == "LS-comp@v1" and ls["in_force_from_us"] == T0 - 10 * S


def test_output_is_deterministic(env):
    a = env.build("a.zip").path.read_bytes()
    b = env.build("b.zip").path.read_bytes()
    assert a == b
    c = env.build("c.zip", now_us=NOW + 1).path.read_bytes()
    assert c != a
    ma, mc = members(env.tmp / "a.zip"), members(env.tmp / "c.zip")
    assert {k: v for k, v in ma.items() if not k.startswith("manifest")} == {
        k: v for k, v in mc.items() if not k.startswith("manifest")
    }


def test_in_progress_batch_and_unknown_batch(env):
    env.books.batches.start("op.olga", Batch("B-2", "P", (), (COMPRESSION,), T0 + 60 * S))
    info = env.build(batch_id="B-2", now_us=T0 + 90 * S, review=None)
    man = json.loads(members(info.path)["manifest.json"])
    assert man["window"]["batch_in_progress"] is True
    assert man["window"]["end_us"] == T0 + 90 * S
    assert man["readings"]["per_tag"][TEMP] == 30 and "review.json" not in members(info.path)
    assert ev.verify_package(info.path).ok
    with pytest.raises(EvidenceError, match="no batch"):
        env.build("x.zip", batch_id="B-404")
    assert not (env.tmp / "x.zip").exists() and not (env.tmp / "x.zip.partial").exists()


def test_key_is_created_once_and_reused(tmp_path):
    p = tmp_path / "k" / "s.db.evidence-key.pem"
    k1 = keys.load_or_create(p)
    k2 = keys.load_or_create(p)
    assert keys.fingerprint(k1) == keys.fingerprint(k2) == keys.fingerprint(k1.public_key())
    assert len(keys.fingerprint(k1)) == 64
    p.write_text("not a key")
    with pytest.raises(keys.SigningKeyError):
        keys.load_or_create(p)


def test_verifier_canonical_form_is_audit_chain_s():
    cases = [
        (1, T0, "a", "x.y", "batch", "B-1", "", None, {"k": [1, 2.5, "é"]}),
        (7, 0, "système", "a", "t", "i", 'why, "quoted"', {"b": 1, "a": None}, [True, 1e-9]),
    ]
    for c in cases:
        entry = dict(zip(ev.AUDIT_HASHED, c, strict=True))
        assert ev.canonical(entry) == chain.canonical(*c)
        assert ev.entry_hash(chain.GENESIS, ev.canonical(entry)) == chain.entry_hash(
            chain.GENESIS, chain.canonical(*c)
        )


@pytest.mark.parametrize("us", [0, 1, T0, T0 + 59_999_999, -1, 253_402_300_799_999_999])
def test_verifier_writes_times_as_the_package_does(us):
    assert ev.iso(us) == timefmt.iso(us)


_NO_GMP_EDGE = """
import runpy, sys
class NoGmpEdge:
    def find_spec(self, name, path=None, target=None):
        if name == "gmp_edge" or name.startswith("gmp_edge."):
            raise ImportError(f"{name} is not on the inspector's laptop")
sys.meta_path.insert(0, NoGmpEdge())
for name in [m for m in sys.modules if m == "gmp_edge" or m.startswith("gmp_edge.")]:
    del sys.modules[name]
sys.argv = ["verify.py", "verify", sys.argv[1], "--fingerprint", sys.argv[2]]
runpy.run_path(VERIFY, run_name="__main__")
"""


def test_verifier_runs_alone_copied_to_a_laptop(env, tmp_path):
    # the module docstring promises it: verify.py copied alone, without gmp-edge installed
    info = env.build()
    fp = keys.fingerprint(keys.load_or_create(env.key_path))
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    copy = laptop / "verify.py"
    copy.write_bytes(Path(ev.__file__).read_bytes())
    script = _NO_GMP_EDGE.replace("VERIFY", repr(str(copy)))
    run = subprocess.run(
        [sys.executable, "-I", "-c", script, str(info.path), fp],
        cwd=laptop,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "VERIFIED" in run.stdout and "NOT VERIFIED" not in run.stdout


# ----------------------------------------------------------------------------- tampering


def test_one_byte_in_readings_content(env):
    info = env.build()
    m = members(info.path)
    data = bytearray(m["readings.csv"])
    i = data.index(b"21.0")
    data[i] = ord("3")  # 21.0 -> 31.0
    r = ev.verify_package(rewrite(info.path, env.tmp / "t.zip", {"readings.csv": bytes(data)}))
    assert_fails(r, "readings.csv: SHA-256 differs")


def test_one_byte_in_manifest_and_in_signature(env):
    info = env.build()
    m = members(info.path)
    man = m["manifest.json"].replace(b'"rows": 242', b'"rows": 241')
    assert man != m["manifest.json"]
    r = ev.verify_package(rewrite(info.path, env.tmp / "t.zip", {"manifest.json": man}))
    assert_fails(r, "manifest.sig: the signature does not match manifest.json")
    sig = bytearray(m["manifest.sig"])
    sig[10] ^= 1
    r = ev.verify_package(rewrite(info.path, env.tmp / "u.zip", {"manifest.sig": bytes(sig)}))
    assert_fails(r, "manifest.sig: the signature does not match")


def test_audit_entry_changed_with_manifest_recomputed(env):
    info = env.build()
    m = members(info.path)
    audit = json.loads(m["audit.json"])
    victim = next(e for e in audit["entries"] if e["action"] == "alarm.acknowledge")
    victim["reason"] = "nothing to see"
    new_audit = json.dumps(audit).encode()
    man = remanifest(m, {"audit.json": new_audit})
    # hashes in the manifest fit, but the signature does not
    r = ev.verify_package(
        rewrite(info.path, env.tmp / "t.zip", {"audit.json": new_audit, "manifest.json": man})
    )
    assert_fails(
        r,
        "manifest.sig: the signature does not match",
        f"audit.json: entry {victim['seq']}: content does not match its hash",
    )
    assert not any("audit.json: SHA-256" in p for p in r.problems)
    # even re-signed with the box's own key, the chain gives it away
    key = keys.load_or_create(env.key_path)
    r = ev.verify_package(
        rewrite(
            info.path,
            env.tmp / "u.zip",
            {"audit.json": new_audit, "manifest.json": man, "manifest.sig": key.sign(man)},
        )
    )
    assert r.problems == [
        f"audit.json: entry {victim['seq']}: content does not match its hash (the entry was "
        "altered)"
    ]
    # deleting an entry from the segment
    del audit["entries"][1]
    short = json.dumps(audit).encode()
    man = remanifest(m, {"audit.json": short})
    r = ev.verify_package(
        rewrite(
            info.path,
            env.tmp / "v.zip",
            {"audit.json": short, "manifest.json": man, "manifest.sig": key.sign(man)},
        )
    )
    assert_fails(r, "audit.json: entry", "missing")


def test_deleted_and_added_files(env):
    info = env.build()
    r = ev.verify_package(rewrite(info.path, env.tmp / "t.zip", {"gaps.csv": None}))
    assert_fails(r, "gaps.csv: listed in manifest.json but missing from the package")
    r = ev.verify_package(rewrite(info.path, env.tmp / "u.zip", {"notes.txt": b"trust me"}))
    assert_fails(r, "notes.txt: in the package but not listed in manifest.json")
    r = ev.verify_package(rewrite(info.path, env.tmp / "v.zip", {"manifest.sig": None}))
    assert_fails(r, "manifest.sig: missing from the package")


def test_forged_key_and_signature(env):
    info = env.build()
    real_fp = info.key_fingerprint
    m = members(info.path)
    forged = Ed25519PrivateKey.generate()
    man = json.loads(m["manifest.json"])
    man["edge_box"]["key_fingerprint"] = keys.fingerprint(forged)
    pem = keys.public_pem(forged)
    for f in man["files"]:
        if f["path"] == "public_key.pem":
            f["size"], f["sha256"] = len(pem), hashlib.sha256(pem).hexdigest()
    man_bytes = json.dumps(man, sort_keys=True, indent=1).encode()
    path = rewrite(
        info.path,
        env.tmp / "t.zip",
        {"public_key.pem": pem, "manifest.json": man_bytes, "manifest.sig": forged.sign(man_bytes)},
    )
    # self-consistent: only the fingerprint tells
    assert ev.verify_package(path).ok
    r = ev.verify_package(path, real_fp)
    assert_fails(
        r,
        f"public_key.pem: key fingerprint {keys.fingerprint(forged)} is not the expected {real_fp}",
    )
    assert ev.verify_package(info.path, real_fp.upper()).ok


def test_any_single_byte_changed_in_the_zip_is_caught_or_changes_no_content(env):
    info = env.build()
    raw = info.path.read_bytes()
    original = members(info.path)
    step = max(1, len(raw) // 400)
    positions = [*range(0, len(raw), step), len(raw) - 1]
    caught = 0
    for pos in positions:
        data = bytearray(raw)
        data[pos] ^= 0x20
        p = env.tmp / "flip.zip"
        p.write_bytes(bytes(data))
        report = ev.verify_package(p)
        if report.ok:
            # only ZIP bookkeeping (e.g. a local header's timestamp) changed: same content
            assert members(p) == original, pos
        else:
            caught += 1
            assert report.problems
    assert caught > len(positions) * 0.9


def test_readings_count_and_config_checks(env):
    info = env.build()
    m = members(info.path)
    key = keys.load_or_create(env.key_path)
    # a row removed, manifest hashes recomputed and re-signed: the per-tag count disagrees
    lines = m["readings.csv"].split(b"\n")
    cut = b"\n".join(lines[:5] + lines[6:])
    man = remanifest(m, {"readings.csv": cut})
    r = ev.verify_package(
        rewrite(
            info.path,
            env.tmp / "t.zip",
            {"readings.csv": cut, "manifest.json": man, "manifest.sig": key.sign(man)},
        )
    )
    assert_fails(r, "readings.csv: ", "manifest.json states")
    # config changed together with its listed hash, config.sha256 left alone
    cfg = m["config/plant.toml"] + b"\n# edited\n"
    man = remanifest(m, {"config/plant.toml": cfg})
    changed = {"config/plant.toml": cfg, "manifest.json": man, "manifest.sig": key.sign(man)}
    r = ev.verify_package(rewrite(info.path, env.tmp / "u.zip", changed))
    assert_fails(r, "config.sha256: does not match the SHA-256 of config/plant.toml")


@pytest.mark.parametrize(
    ("column", "forged", "problem"),
    [
        (4, "2001-01-01T00:00:00.000000Z", "ISO time differs from its µs value"),  # ts_edge
        (6, "2001-01-01T00:00:00.000000Z", "ISO time differs from its µs value"),  # ts_source
        (2, "2001-01-01T00:00:00.000000Z", "ISO time differs from its µs value"),  # ts
        (7, "excellent", "unknown quality 'excellent'"),
    ],
)
def test_row_checks_in_a_resigned_package(env, column, forged, problem):
    """A row altered and the package re-signed with the box's key: the row checks name it."""
    info = env.build()
    m = members(info.path)
    key = keys.load_or_create(env.key_path)
    rows = list(csv.reader(io.StringIO(m["readings.csv"].decode())))
    rows[3][column] = forged
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    data = out.getvalue().encode()
    man = remanifest(m, {"readings.csv": data})
    r = ev.verify_package(
        rewrite(
            info.path,
            env.tmp / "row.zip",
            {"readings.csv": data, "manifest.json": man, "manifest.sig": key.sign(man)},
        )
    )
    assert_fails(r, "readings.csv: line 4: " + problem)


def test_not_a_zip(tmp_path):
    p = tmp_path / "x.zip"
    p.write_bytes(b"hello")
    assert_fails(ev.verify_package(p), "not a readable ZIP file")


def test_command_line(env, capsys):
    info = env.build()
    assert ev.main(["verify", str(info.path), "--fingerprint", info.key_fingerprint]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    assert ev.main(["verify", str(info.path), "--fingerprint", "00" * 32]) == 1
    assert "PROBLEM: public_key.pem" in capsys.readouterr().out
    assert ev.main(["verify", str(info.path)]) == 0  # without a fingerprint, as in a shell
    assert "VERIFIED" in capsys.readouterr().out
    # `python -m gmp_edge.evidence` in a process of its own: tests/system/test_evidence_cli.py


# ------------------------------------------------------------------------------- scale


def test_large_export_streams(tmp_path):
    e = Env(tmp_path)
    try:
        e.books.batches.start("op", Batch("B-9", "P", (), (COMPRESSION,), T0))
        e.books.batches.end("op", "B-9", T0 + 100_000 * S)
        tags = [TEMP, RH]
        for start in range(0, 100_000, 25_000):
            e.store.commit(
                [
                    Reading(t, 20.0 + (i % 97) / 7, Quality.GOOD, T0 + i * S)
                    for i in range(start, start + 25_000)
                    for t in tags
                ]
            )
        tracemalloc.start()
        info = e.build(batch_id="B-9", review=None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert info.readings == 200_000
        with zipfile.ZipFile(info.path) as zf:
            csv_size = zf.getinfo("readings.csv").file_size
        assert csv_size > 20_000_000
        assert peak < 16_000_000, peak  # rows are streamed, not held
        assert ev.verify_package(info.path).ok
    finally:
        e.close()


# --------------------------------------------------------------- readings.csv, exactly

# values the store keeps as float64 that the CSV must give back bit for bit; -0.0 is
# stored by SQLite as 0 (REAL affinity keeps integral reals as integers), so it reads
# back as 0.0 and the CSV says so
EDGE_VALUES = [
    1e-300,
    -0.0,
    0.0,
    0.1,
    123456789.123456789,
    5,
    21.0,
    -21.5,
    0.30000000000000004,
    1 / 3,
    -2 / 3,
    1e-4,
    9.999999999999999e-05,
    1.5e-05,
    1e15,
    9999999999999998.0,
    1e16,
    1e22,
    2.0**53,
    2.0**53 + 2,
    5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    2.0**-35,
    math.nextafter(2.0**-35, 0),
    2.0**56,
    math.nextafter(2.0**56, 0),
    -(2.0**56),
    128.0,
    math.nextafter(128.0, 0),
    -128.0,
    math.nextafter(-128.0, 0),
    1.0,
    -1.0,
    math.nextafter(1.0, 0),
    1e-12,
    7.25e-09,
    3.5e17,
    12.5,
    float("inf"),
    float("-inf"),
]
TEXTS = ["EXECUTE", 'say "hi", twice', "line\nbreak", "cr\rlf\r\n", "", "ümlaut, ok"]


def tricky_readings(n: int = 3000, seed: int = 7) -> list[Reading]:
    """In-scope and out-of-scope tags, every kind of row, interleaved, some late."""
    rng = random.Random(seed)
    out: list[Reading] = []
    for i in range(n):
        ts = T0 + i * S // 10
        kind = i % 17
        tag = (TEMP, RH, STATE, OUTSIDE)[i % 4]
        if kind == 0:
            out.append(Reading(TEMP, EDGE_VALUES[(i // 17) % len(EDGE_VALUES)], Quality.GOOD, ts))
        elif kind == 1:
            out.append(Reading(STATE, TEXTS[(i // 17) % len(TEXTS)], Quality.GOOD, ts))
        elif kind == 2:
            out.append(
                Reading.bad(tag, ts, TEXTS[(i // 17) % len(TEXTS)] + ", no answer", Cause.NETWORK)
            )
        elif kind == 3:  # OPC UA: the device's own time, received 1.5 ms later
            out.append(Reading(tag, rng.uniform(-5, 5), Quality.GOOD, ts + 1500, ts))
        elif kind == 4:
            out.append(Reading(tag, rng.uniform(0, 3000), Quality.UNCERTAIN, ts, message="drift"))
        elif kind == 5:  # a late reading of an earlier second
            out.append(Reading(tag, rng.random(), Quality.GOOD, ts - 60 * S))
        elif kind == 6:
            bits = rng.getrandbits(64)
            v = struct.unpack("<d", struct.pack("<Q", bits))[0]
            out.append(Reading(tag, None if math.isnan(v) else v, Quality.GOOD, ts))
        else:
            out.append(Reading(tag, rng.gauss(21, 3) * 10 ** rng.randint(-6, 9), Quality.GOOD, ts))
    return out


def csv_rows(data: bytes) -> list[list[str]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert rows[0] == list(readings_csv.READINGS_COLUMNS)
    return rows[1:]


def sink(out: io.BytesIO) -> Callable[[bytes], None]:
    """``out.write`` as write_readings takes a writer: returning nothing (not the count)."""

    def write(chunk: bytes) -> None:
        out.write(chunk)

    return write


def export(db: Path, tag_ids: dict[int, str], start: int, end: int, **kw) -> bytes:
    conns = readings_csv.snapshot(db, kw.pop("workers", 2))
    try:
        out = io.BytesIO()
        readings_csv.write_readings(conns, tag_ids, start, end, sink(out), **kw)
        return out.getvalue()
    finally:
        for c in conns:
            c.close()


def scope_ids(db: Path, paths: list[str]) -> dict[int, str]:
    with sqlite3.connect(db) as conn:
        return {tid: p for tid, p in conn.execute("select id, path from tags") if p in paths}


def test_readings_csv_gives_every_stored_value_back_bit_for_bit(env):
    env.store.commit(tricky_readings())
    info = env.build(now_us=NOW)
    assert ev.verify_package(info.path).ok
    rows = csv_rows(members(info.path)["readings.csv"])
    with sqlite3.connect(env.db) as conn:
        ids = {p: tid for tid, p in conn.execute("select id, path from tags")}
        scope = [ids[TEMP], ids[RH], ids[STATE]]
        stored = conn.execute(
            "select tag_id, ts_us, ts_edge_us, ts_source_us, value, quality, text, message,"
            f" cause from readings where tag_id in ({','.join('?' * len(scope))})"
            " and ts_us >= ? and ts_us < ? order by rowid",
            (*scope, T0, END),
        ).fetchall()
    paths = {tid: p for p, tid in ids.items()}
    assert len(rows) == len(stored) > 1000
    kinds = set()
    for row, (tid, ts, edge, src, value, q, text, message, cause) in zip(rows, stored, strict=True):
        assert row[0] == paths[tid]
        assert row[1:8] == [
            str(ts),
            iso(ts),
            str(edge),
            iso(edge),
            "" if src is None else str(src),
            "" if src is None else iso(src),
            readings_csv.QUALITY_NAMES[q],
        ]
        if value is None:
            assert row[8] == ""
        else:
            assert struct.pack("<d", float(row[8])) == struct.pack("<d", value), (row, value)
            assert row[8] == repr(value)  # the shortest round trip, as always
            kinds.add(type(value).__name__)
        assert row[9:] == [text or "", message or "", cause or ""]
    values = {r[8] for r in rows}
    assert {repr(float(v)) for v in EDGE_VALUES} - {"-0.0"} <= values  # -0.0: stored as 0.0
    assert any("\n" in r[10] for r in rows) and any('"' in r[9] for r in rows)
    assert kinds == {"float"}


def test_fast_export_is_byte_for_byte_the_row_by_row_formatter(env):
    env.store.commit(tricky_readings(5000))
    ids = scope_ids(env.db, [TEMP, RH, STATE])
    start, end = T0 - 30 * S, T0 + 400 * S
    reference = export(env.db, ids, start, end, fast=False)
    assert len(csv_rows(reference)) > 3000
    for kw in (
        {},
        {"sql_filter": True},
        {"sql_filter": False},
        {"chunk_rows": 7},
        {"chunk_rows": 100, "workers": 1},
        {"chunk_rows": 333, "workers": 3},
        {"chunk_rows": 64, "sql_filter": True},
    ):
        assert export(env.db, ids, start, end, **kw) == reference, kw
    # without pydantic_core's float formatting (repr for every value): the same bytes
    with patch.object(readings_csv, "_JSON_FLOATS", False):
        assert export(env.db, ids, start, end, chunk_rows=500) == reference


def test_fast_export_of_times_and_ids_outside_its_fixed_widths(tmp_path):
    """Times before 2001 or after 2286, tag ids that overflow the row codes, foreign rows:
    the row-by-row formatter takes them, with the same bytes."""
    store = Store(tmp_path / "s.db")
    store.register_tags([("a/b/r1/e/t1", "u", "k", "d"), ("a/b/r1/e/t2", "u", "k", "d")])
    old = 946_684_800 * S  # 2000-01-01
    late = 10**16 + 12_345  # 2286-11-20
    store.commit(
        [Reading("a/b/r1/e/t1", 1.5, Quality.GOOD, old + i * S) for i in range(50)]
        + [Reading("a/b/r1/e/t2", 2.5, Quality.GOOD, late + i * S) for i in range(50)]
        + [Reading("a/b/r1/e/t1", 3.5, Quality.GOOD, late + 7, old + 3)]
    )
    store.close()
    db = tmp_path / "s.db"
    ids = scope_ids(db, ["a/b/r1/e/t1", "a/b/r1/e/t2"])
    for start, end in ((old, old + 3600 * S), (late, late + 3600 * S), (0, 2**62)):
        reference = export(db, ids, start, end, fast=False)
        for kw in ({}, {"sql_filter": True}, {"chunk_rows": 16}):
            assert export(db, ids, start, end, **kw) == reference
    # a foreign writer: a text in the value column, a tag id so large the codes overflow
    with sqlite3.connect(db) as conn:
        conn.execute("insert into tags(id, path) values(?, 'a/b/r1/e/huge')", (2**58,))
        conn.executemany(
            "insert into readings(tag_id, ts_us, ts_edge_us, value, quality) values(?,?,?,?,0)",
            [
                (
                    2**58,
                    T0 + i,
                    T0 + i,
                    1.25,
                )
                for i in range(20)
            ]
            + [(ids_t1, T0 + 99, T0 + 99, "abc") for ids_t1 in [min(ids)]],
        )
    big = scope_ids(db, ["a/b/r1/e/t1", "a/b/r1/e/huge"])
    reference = export(db, big, T0, T0 + S, fast=False)
    assert b"'abc'" in reference and reference.count(b"\n") == 22
    for kw in ({}, {"sql_filter": True}, {"chunk_rows": 5}):
        assert export(db, big, T0, T0 + S, **kw) == reference


def test_unknown_quality_stops_the_export(env):
    env.store.commit([Reading(TEMP, 1.0, Quality.GOOD, T0 + i * S) for i in range(10)])
    ids = scope_ids(env.db, [TEMP])
    for q in (3, 4, 7, -1):
        with sqlite3.connect(env.db) as conn:
            conn.execute("update readings set quality = ? where ts_us = ?", (q, T0 + 5 * S))
        for fast in (True, False):
            with pytest.raises(readings_csv.ExportError, match="unknown quality"):
                export(env.db, ids, T0, END, fast=fast)


def test_json_float_formatting_is_repr_where_the_export_uses_it():
    rng = random.Random(3)
    values = [0.0, 1e-4, 9999999999999998.0]
    values += [
        rng.uniform(2.0**e, 2.0 ** (e + 1)) * rng.choice((1, -1))
        for e in range(-14, 54)
        for _ in range(2000)
    ]
    values += [
        rng.randint(0, 10 ** rng.randint(1, 16)) / 10 ** rng.randint(0, 12) for _ in range(50_000)
    ]
    values += [
        struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0] for _ in range(50_000)
    ]
    lo, hi = readings_csv._JSON_MIN, readings_csv._JSON_MAX
    values = [v for v in values if v == 0 or lo <= abs(v) < hi]
    assert readings_csv._JSON_FLOATS
    got = pydantic_core.to_json(values)[1:-1].split(b",")
    assert got == [repr(v).encode() for v in values]


def test_snapshot_readers_see_one_state_while_the_collector_commits(env):
    conns = readings_csv.snapshot(env.db, 3)
    try:
        assert len(conns) == 3
        before = conns[0].execute("select count(*) from readings").fetchone()[0]
        env.store.commit([Reading(TEMP, 2.0, Quality.GOOD, T0 + i * S + 1) for i in range(100)])
        counts = [c.execute("select count(*) from readings").fetchone()[0] for c in conns]
        assert counts == [before] * 3
        out = io.BytesIO()
        per_tag = readings_csv.write_readings(
            conns, scope_ids(env.db, [TEMP]), T0, END, sink(out), chunk_rows=10
        )
        assert per_tag == {TEMP: 121} and out.getvalue().count(b"\n") == 122  # as populated
    finally:
        for c in conns:
            c.close()
    # without write access for the lock: one reader
    real = sqlite3.connect

    def no_rw(database, *a, **kw):
        if "mode=rw" in str(database):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real(database, *a, **kw)

    with patch.object(readings_csv.sqlite3, "connect", no_rw):
        conns = readings_csv.snapshot(env.db, 2)
    assert len(conns) == 1
    conns[0].close()


def test_pipeline_stops_every_thread_on_the_first_failure():
    before = set(threading.enumerate())

    def left_running() -> list[threading.Thread]:
        """Threads started since ``before`` that are still alive (the pipeline's own)."""
        return [t for t in threading.enumerate() if t not in before]

    def worker(a: int, b: int) -> tuple[list[bytes], int]:
        if a == 5:
            raise ValueError("boom")
        return [b"%d" % a], 1

    with pytest.raises(ValueError, match="boom"):
        readings_csv._pipeline([(i, i) for i in range(40)], [worker, worker], lambda d: None)
    assert left_running() == []
    written: list[bytes] = []

    def write(data: bytes) -> None:
        if len(written) == 3:
            raise OSError("disk full")
        written.append(data)

    ok = lambda a, b: ([b"%d," % a], 1)  # noqa: E731
    with pytest.raises(OSError, match="disk full"):
        readings_csv._pipeline([(i, i) for i in range(40)], [ok, ok, ok], write)
    assert left_running() == [] and written == [b"0,", b"1,", b"2,"]
    out: list[bytes] = []
    assert readings_csv._pipeline([(i, i) for i in range(25)], [ok] * 3, out.append) == 25
    assert out == [b"%d," % i for i in range(25)]  # in job order


# --------------------------------------------------------------------------- chain heads


def seal_head(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select coalesce(max(seq), 0) from seal_blocks").fetchone()[0])


def commit_span(env: Env, first_s: int, last_s: int, tags=(TEMP, RH)) -> int:
    """One commit: a reading of each tag every second of [first_s, last_s]; its seal block."""
    env.store.commit(
        [
            Reading(tag, 20.0 + k / 8 + i / 100, Quality.GOOD, T0 + i * S)
            for i in range(first_s, last_s + 1)
            for k, tag in enumerate(tags)
        ]
    )
    return seal_head(env.db)


class Chained:
    """Batch B-1 (the compression room, [T0, END)) with its readings in seven commits: one
    straddling the window's start, four wholly inside it, one that also holds a reading of
    another room, one after the window; a signed anchor after the fifth."""

    def __init__(self, env: Env):
        self.env = env
        env.books.batches.start("op.olga", Batch("B-1", "P", (PRESS,), (COMPRESSION,), T0))
        self.edge = commit_span(env, -5, 4)  # 5 s before the window
        self.inside = [
            commit_span(env, 5, 34),
            commit_span(env, 35, 64),
            commit_span(env, 65, 94),
        ]
        self.mixed = commit_span(env, 95, 104, (TEMP, OUTSIDE, RH))  # another room too
        self.anchor = anchor_now(env.db, "periodic", at_us=T0 + 105 * S)
        self.inside.append(commit_span(env, 105, 119))
        self.after = commit_span(env, 120, 130)  # after the window: proves nothing here
        env.books.batches.end("op.olga", "B-1", END)

    def rows_of(self, m: dict[str, bytes], seq: int) -> tuple[int, int]:
        """The data rows [a, b) of readings.csv that block ``seq`` sealed."""
        first = 0
        for line in m["seal_chain.jsonl"].decode().splitlines():
            b = json.loads(line)
            if b[10] is not None:
                if b[0] == seq:
                    return first, first + b[10]
                first += b[10]
        raise AssertionError(f"block {seq} sealed no row of readings.csv")


@pytest.fixture
def chained(tmp_path):
    env = Env(tmp_path)
    yield Chained(env)
    env.close()


def test_the_chain_ends_at_the_first_anchor_that_signs_the_whole_batch(chained):
    """A batch released a month later must not carry a month of seal blocks: once an anchor
    signs every block of the batch, the package's chain stops there."""
    env = chained.env
    late = anchor_now(env.db, "periodic", at_us=T0 + 131 * S)  # signs every batch block
    for i in range(5):  # the box goes on sealing after it
        commit_span(env, 200 + 10 * i, 205 + 10 * i)
    store_head = seal_head(env.db)
    info = env.build()
    man = json.loads(members(info.path)["manifest.json"])
    seal = man["seal"]
    assert late.seal_seq is not None and late.seal_seq < store_head
    assert seal["head"]["seq"] == seal["segment"]["last_seq"] == late.seal_seq
    assert seal["anchored_seq"] == late.seal_seq and seal["unanchored_blocks"] == 0
    assert seal["readings"]["covering_blocks_unanchored"] == 0
    blocks = members(info.path)["seal_chain.jsonl"].decode().splitlines()
    assert json.loads(blocks[-1])[0] == late.seal_seq
    report = ev.verify_package(info.path, info.key_fingerprint)
    assert report.ok, report.problems
    assert not any("not anchored" in u for u in report.unproven)


def change_value(csv_bytes: bytes, row: int, value: bytes) -> bytes:
    """readings.csv with data row ``row``'s value replaced (the other bytes untouched)."""
    lines = csv_bytes.split(b"\n")
    fields = lines[row + 1].split(b",")
    fields[8] = value
    lines[row + 1] = b",".join(fields)
    return b"\n".join(lines)


def resigned(env: Env, src: Path, name: str, changed: dict[str, bytes]) -> Path:
    """The package with members replaced, listed hashes fixed and re-signed with the box key."""
    m = members(src)
    man = remanifest(m, changed)
    key = keys.load_or_create(env.key_path)
    return rewrite(
        src, env.tmp / name, {**changed, "manifest.json": man, "manifest.sig": key.sign(man)}
    )


def test_the_package_carries_the_chain_heads_and_proves_the_readings_block_by_block(chained):
    env = chained.env
    info = env.build()
    m = members(info.path)
    man = json.loads(m["manifest.json"])
    seal = man["seal"]
    head = seal_head(env.db)
    with sqlite3.connect(env.db) as conn:
        head_hash = bytes(
            conn.execute("select hash from seal_blocks where seq=?", (head,)).fetchone()[0]
        ).hex()
    assert seal["head"] == {"seq": head, "sha256": head_hash} and info.seal_head == (
        head,
        head_hash,
    )
    # the anchor travels verbatim: the very line of the box's anchors file
    anchors_file = anchors_path_for(env.db)
    assert seal["anchor"]["line"] == anchors_file.read_text().splitlines()[0]
    assert seal["anchored_seq"] == chained.anchor.seal_seq == chained.mixed
    assert seal["unanchored_blocks"] == head - chained.mixed > 0
    assert seal["segment"]["first_seq"] == chained.edge
    assert seal["readings"] == {
        # the block that also sealed another room's readings is proven all the same: the
        # package carries that room's group digest, the verifier recomputes the batch's own
        "covering_blocks": 6,
        "fully_proven_blocks": 5,
        "straddling_blocks": 1,
        "rows_fully_proven": 2 * (30 + 30 + 30 + 15) + 2 * 10,
        "rows_proven_by_chain_only": 2 * 5,
        "rows_in_no_block": 0,
        "first_covering_seq": chained.edge,
        "last_covering_seq": chained.inside[-1],
        "covering_blocks_unanchored": 1,
    }
    assert man["readings"]["rows"] == seal["readings"]["rows_fully_proven"] + 10
    proofs = {b[0]: b[11] for b in map(json.loads, m["seal_chain.jsonl"].decode().splitlines())}
    assert [proofs[s] for s in chained.inside] == ["full"] * 4
    assert proofs[chained.edge] == "chain" and proofs[chained.mixed] == "full"
    assert proofs[chained.after] is None
    assert any("straddle the batch" in p for p in seal["proof"])
    assert man["store_check_at_export"]["verified"] is True and info.store_verified is True

    report = ev.verify_package(info.path, info.key_fingerprint)
    assert report.ok, report.problems
    text = report.text()
    assert "230 rows fully proven" in text and "each of the 5 blocks" in text
    assert (
        f"valid Ed25519 signature by the key that signed this package ({info.key_fingerprint})"
        in text
    )
    assert f"the anchor signs seal block {chained.mixed}, which is in this chain" in text
    assert f"up to the package's head: block {head}, sha256 {head_hash}" in text
    assert "not proven: 10 rows of readings.csv are proven by the chain alone" in text
    assert f"seal blocks {chained.edge})" in text
    assert f"not proven: seal blocks {chained.mixed + 1}..{head}" in text
    assert "store check at export ('gmp-edge verify'): verified" in text


def test_a_changed_reading_names_its_block_even_resigned_with_the_box_key(chained):
    env = chained.env
    info = env.build()
    m = members(info.path)
    victim = chained.inside[2]
    a, _ = chained.rows_of(m, victim)
    data = change_value(m["readings.csv"], a + 7, b"25.5")
    assert data != m["readings.csv"]
    r = ev.verify_package(resigned(env, info.path, "t.zip", {"readings.csv": data}))
    (problem,) = r.problems
    assert f"the readings of seal block {victim} (" in problem
    assert "a reading was changed after it was acquired" in problem
    # the same value respelt ("25.5" for 25.50): the digest holds the box's spelling only
    b, _ = chained.rows_of(m, chained.inside[0])
    row = m["readings.csv"].split(b"\n")[b + 1].split(b",")
    respelt = change_value(m["readings.csv"], b, row[8] + b"0")
    r = ev.verify_package(resigned(env, info.path, "u.zip", {"readings.csv": respelt}))
    assert_fails(r, f"the readings of seal block {chained.inside[0]} (")


def test_a_removed_row_of_a_proven_block_is_named(chained):
    env = chained.env
    info = env.build()
    m = members(info.path)
    victim = chained.inside[1]
    a, _ = chained.rows_of(m, victim)
    lines = m["readings.csv"].split(b"\n")
    del lines[a + 3]
    r = ev.verify_package(resigned(env, info.path, "t.zip", {"readings.csv": b"\n".join(lines)}))
    assert_fails(r, f"the readings of seal block {victim} (", "manifest.json states")


def test_the_chain_itself_is_checked_block_by_block(chained):
    env = chained.env
    info = env.build()
    m = members(info.path)
    blocks = [json.loads(x) for x in m["seal_chain.jsonl"].decode().splitlines()]

    def jsonl(bs: list[list[object]]) -> bytes:
        return "".join(json.dumps(b, separators=(",", ":")) + "\n" for b in bs).encode()

    # a block's content changed: its hash no longer follows
    changed = [list(b) for b in blocks]
    changed[2][5] += 1
    r = ev.verify_package(resigned(env, info.path, "a.zip", {"seal_chain.jsonl": jsonl(changed)}))
    assert_fails(r, f"seal block {blocks[2][0]} (", "its hash does not follow")
    # a block removed
    r = ev.verify_package(
        resigned(env, info.path, "b.zip", {"seal_chain.jsonl": jsonl(blocks[:3] + blocks[4:])})
    )
    assert_fails(r, f"holds block {blocks[4][0]} where block {blocks[3][0]} belongs")
    # a block's digest forged and the whole chain recomputed after it, the head in the
    # manifest too: the anchor, signed earlier, does not sign that chain
    victim = chained.inside[0]
    forged = [list(b) for b in blocks]
    prev = json.loads(m["manifest.json"])["seal"]["segment"]["prev_sha256"]
    for b in forged:
        if b[0] == victim:
            b[6] = "ab" * 32
        b[9] = ev.seal_block_hash(prev, b[:9])
        prev = b[9]
    data = jsonl(forged)
    man = json.loads(remanifest(m, {"seal_chain.jsonl": data}))
    man["seal"]["head"]["sha256"] = prev
    man_bytes = (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    key = keys.load_or_create(env.key_path)
    path = rewrite(
        info.path,
        env.tmp / "c.zip",
        {"seal_chain.jsonl": data, "manifest.json": man_bytes, "manifest.sig": key.sign(man_bytes)},
    )
    r = ev.verify_package(path)
    assert_fails(r, f"signs seal block {chained.mixed} with sha256", "the chain was rewritten")
    # a proof claimed that the block cannot give: its rows recomputed do not make its digest
    claimed = [list(b) for b in blocks]
    for b in claimed:
        if b[0] == chained.edge:
            b[11] = "full"
    r = ev.verify_package(resigned(env, info.path, "d.zip", {"seal_chain.jsonl": jsonl(claimed)}))
    assert_fails(r, f"the readings of seal block {chained.edge} (")
    # rowids moved outside the block's range
    moved = [list(b) for b in blocks]
    for b in moved:
        if b[0] == chained.mixed:
            b[12] = [[b[4] + 1, b[10]]]
    r = ev.verify_package(resigned(env, info.path, "e.zip", {"seal_chain.jsonl": jsonl(moved)}))
    assert_fails(r, f"seal block {chained.mixed}: the rowids it gives its rows")


def test_an_edited_anchor_line_fails_its_signature(chained):
    env = chained.env
    info = env.build()
    m = members(info.path)
    man = json.loads(m["manifest.json"])
    line = json.loads(man["seal"]["anchor"]["line"])
    line["kind"] = "stop"
    man["seal"]["anchor"]["line"] = json.dumps(line, sort_keys=True, separators=(",", ":"))
    man_bytes = (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    key = keys.load_or_create(env.key_path)
    path = rewrite(
        info.path,
        env.tmp / "t.zip",
        {"manifest.json": man_bytes, "manifest.sig": key.sign(man_bytes)},
    )
    assert_fails(ev.verify_package(path), "the stop anchor of", "the anchor was edited")


def test_without_an_anchor_or_a_store_check_the_package_says_so(tmp_path):
    env = Env(tmp_path)
    try:
        env.books.batches.start("op.olga", Batch("B-1", "P", (PRESS,), (COMPRESSION,), T0))
        commit_span(env, 0, 59)
        info = env.build(check_store=None)
        man = json.loads(members(info.path)["manifest.json"])
        assert man["seal"]["anchor"] is None and "no anchors yet" in man["seal"]["no_anchor"]
        assert man["seal"]["unanchored_blocks"] == seal_head(env.db)
        assert man["store_check_at_export"] is None and info.store_verified is None
        r = ev.verify_package(info.path)
        assert r.ok, r.problems
        assert any("no signed anchor covers the chain" in u for u in r.unproven)
        assert any("the store was not checked at export" in u for u in r.unproven)
        assert any("120 rows fully proven" in c for c in r.checked), r.checked
    finally:
        env.close()


def test_the_store_check_at_export_covers_the_batch_s_blocks(chained):
    """The check at export recomputes the readings of every block that sealed readings.csv,
    the straddling ones too: a reading of another room changed in one of those is found,
    though it is in no package; a block after the batch is the periodic check's concern."""
    env = chained.env
    with sqlite3.connect(env.db) as conn:
        # in the block after the window: outside this export's check, which says so
        conn.execute("update readings set value = 99.0 where ts_us = ?", (T0 + 125 * S,))
    info = env.build()
    assert info.store_verified is True
    r = ev.verify_package(info.path)
    assert r.ok, r.problems
    scope = f"the readings of seal blocks {chained.edge}..{chained.inside[-1]}"
    assert any(scope in c for c in r.checked), r.checked
    with sqlite3.connect(env.db) as conn:
        # another room's reading in the straddling block: not in readings.csv
        conn.execute(
            "update readings set value = 99.0 where ts_us = ? and tag_id = (select id from"
            " tags where path = ?)",
            (T0 + 100 * S, OUTSIDE),
        )
    info = env.build("q.zip")
    assert info.store_verified is False
    assert_fails(
        ev.verify_package(info.path),
        "store check at export ('gmp-edge verify'): the store did NOT verify",
        f"sealed in block {chained.mixed}",
    )
    # changed inside a proven block, readings.csv carries the change: the block names it too
    with sqlite3.connect(env.db) as conn:
        conn.execute("update readings set value = 99.0 where ts_us = ?", (T0 + 40 * S,))
    r = ev.verify_package(env.build("r.zip").path)
    assert_fails(r, f"the readings of seal block {chained.inside[1]} (")


def test_readings_of_every_kind_recompute_to_their_seal(tmp_path):
    """Every kind of stored row (the edge values, texts with quotes and line breaks, empty
    texts, NULLs, source times, late rows) in blocks the batch holds wholly: each block's
    digest recomputed from readings.csv is the seal's."""
    env = Env(tmp_path)
    try:
        env.books.batches.start(
            "op.olga", Batch("B-T", "P", (PRESS,), (COMPRESSION, GRANULATION), T0 - 100 * S)
        )
        env.books.batches.end("op.olga", "B-T", T0 + 1000 * S)
        rows = tricky_readings(4000)
        blocks = []
        for k in range(0, len(rows), 700):
            env.store.commit(rows[k : k + 700])
            blocks.append(seal_head(env.db))
        info = env.build(batch_id="B-T", review=None)
        seal = json.loads(members(info.path)["manifest.json"])["seal"]
        assert seal["readings"]["fully_proven_blocks"] == len(blocks) == 6
        assert seal["readings"]["straddling_blocks"] == 0
        assert seal["readings"]["rows_fully_proven"] == info.readings == len(rows)
        r = ev.verify_package(info.path)
        assert r.ok, r.problems
        assert any(f"{len(rows)} rows fully proven" in c for c in r.checked)
        assert not any("chain alone" in u for u in r.unproven)
    finally:
        env.close()


def test_blocks_whose_readings_retention_deleted_cover_nothing(tmp_path):
    """Retention deletes the old blocks but the newest (so reading ids never restart):
    the deleted block is dead, and neither old block covers a row of the batch."""
    env = Env(tmp_path)
    try:
        old = [commit_span(env, -3000, -2901), commit_span(env, -2900, -2801)]
        assert env.store.apply_retention(T0 - 1000 * S) == 200
        env.books.batches.start("op.olga", Batch("B-1", "P", (PRESS,), (COMPRESSION,), T0))
        inside = [commit_span(env, 0, 29), commit_span(env, 30, 59)]
        env.books.batches.end("op.olga", "B-1", T0 + 60 * S)
        with sqlite3.connect(env.db) as conn:
            assert conn.execute("select min(rowid) from readings").fetchone()[0] == 201
        info = env.build()
        m = members(info.path)
        covering = [
            b[0] for b in map(json.loads, m["seal_chain.jsonl"].decode().splitlines()) if b[10]
        ]
        assert covering == inside and not set(old) & set(covering)
        r = ev.verify_package(info.path)
        assert r.ok, r.problems
    finally:
        env.close()


def test_a_format_1_package_still_verifies_and_says_what_it_cannot_prove(env):
    info = env.build()
    m = members(info.path)
    man = json.loads(m["manifest.json"])
    man["format_version"] = 1
    del man["seal"], man["store_check_at_export"]
    man["files"] = [f for f in man["files"] if f["path"] != "seal_chain.jsonl"]
    man_bytes = (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    key = keys.load_or_create(env.key_path)
    path = rewrite(
        info.path,
        env.tmp / "v1.zip",
        {"seal_chain.jsonl": None, "manifest.json": man_bytes, "manifest.sig": key.sign(man_bytes)},
    )
    r = ev.verify_package(path)
    assert r.ok, r.problems
    assert any("format 1 package" in u for u in r.unproven)
    # a format 2 package without its chain heads is not one
    man["format_version"] = 2
    man_bytes = (json.dumps(man, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()
    path = rewrite(
        info.path,
        env.tmp / "v2.zip",
        {"seal_chain.jsonl": None, "manifest.json": man_bytes, "manifest.sig": key.sign(man_bytes)},
    )
    assert_fails(ev.verify_package(path), "the chain heads (seal) are missing")


def test_verifier_copies_of_the_seal_encoding_are_the_ledger_s(tmp_path):
    assert ev.SEALED_READING_COLUMNS == covered.READINGS_COLUMNS
    assert list(ev.QUALITY_CODES) == list(readings_csv.QUALITY_NAMES)
    assert list(ev.QUALITY_CODES.values()) == [int(q) for q in Quality]
    env = Env(tmp_path)
    try:
        env.store.commit(tricky_readings(300))
        populate(env)
        with sqlite3.connect(env.db) as conn:
            blocks = conn.execute(
                "select seq, ts_us, kind, readings_lo, readings_hi, readings_n, readings_sha256,"
                " changes, changes_sha256, hash from seal_blocks order by seq"
            ).fetchall()
    finally:
        env.close()
    prev = digest.GENESIS
    kinds = set()
    for seq, ts, kind, lo, hi, n, rsha, changes, csha, h in blocks:
        content = [
            seq,
            ts,
            kind,
            lo,
            hi,
            n,
            None if rsha is None else rsha.hex(),
            changes,
            csha.hex(),
        ]
        assert ev.seal_block_hash(prev.hex(), content) == bytes(h).hex()
        assert bytes(h) == digest.block_hash(prev, seq, ts, kind, lo, hi, n, rsha, changes, csha)
        prev = bytes(h)
        kinds.add(kind)
    assert {"commit", "adopt:readings"} <= kinds


def test_the_verifier_reads_readings_csv_as_csv_does_and_tells_empty_from_null(env):
    env.store.commit(tricky_readings(3000))
    data = members(env.build().path)["readings.csv"]
    text = data.decode()
    ours = list(ev.csv_records(io.StringIO(text, newline="")))
    theirs = list(csv.reader(io.StringIO(text, newline="")))
    assert [f for f, _ in ours] == theirs
    assert any(q is not None for _, q in ours)
    # an empty text is quoted, NULL is not: the digest of a row tells them apart
    ((fields, quoted),) = ev.csv_records(['t,1,x,1,x,,,good,,"",,\n'])
    assert fields is not None
    assert fields[9:] == ["", "", ""] and quoted is not None and quoted[9:] == [True, False, False]
    row = ev.sealed_reading(7, fields, quoted, {"t": 3})
    assert row == (7, 3, 1, 1, None, None, "", 0, None, None)
    plain = ["t", "1", "x", "1", "x", "", "", "bad", "21.5", "", "", ""]
    assert ev._sealed_repr(7, plain, None, {"t": 3}) == repr(
        (7, 3, 1, 1, None, 21.5, None, 2, None, None)
    )
    with pytest.raises(ValueError, match="ends inside a quoted field"):
        list(ev.csv_records(['t,"open\n', "still open\n"]))
    assert list(ev.csv_records(['a,"b"c\n'])) == [(None, None)]
