"""Evidence packages: built from a real store, trail and books; verified offline; every
tampering (content, manifest, signature, audit entry, missing/added file, forged key,
any single byte of the ZIP) is caught and named; identical inputs give identical bytes;
a large export streams."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from alarms import machine as am
from alarms.model import ConditionKind, Priority
from audit import chain
from audit.trail import AuditTrail
from collector.reading import Cause, Quality, Reading
from deviations import lifecycle as lc
from deviations.batch import Batch
from deviations.model import (
    Classification,
    Evidence,
    ExcursionKind,
    ProductionState,
    Source,
)
from edge.config import load_config
from evidence import keys
from evidence import verify as ev
from evidence.package import EvidenceError, build_package
from historian.store import Store
from identity.roles import Role
from limits.model import LimitSet
from monitoring.engine import Books
from signatures.manifest import Meaning
from signatures.register import SignatureRegister

EXAMPLE = Path(__file__).parents[2] / "examples" / "plant.toml"
S = 1_000_000
T0 = 1_790_000_000_000_000  # 2026-09-21 UTC
END = T0 + 120 * S
NOW = T0 + 3600 * S
TEMP = "acme-basel/solid-dose/compression/trh-comp-01/temperature"
RH = "acme-basel/solid-dose/compression/trh-comp-01/rh"
PRESS = "acme-basel/solid-dose/compression/press-01/state"
OUTSIDE = "acme-basel/solid-dose/granulation/trh-gran-01/temperature"


class Decisions:
    """A minimal signable batch-decision record (the release decision)."""

    record_type = "batch_decision"

    def content(self, record_id: str) -> object | None:
        return {"batch_id": record_id, "decision": "release"}

    def author(self, record_id: str) -> str:
        return "qa.ann"


class Env:
    def __init__(self, tmp: Path):
        self.cfg, _ = load_config(EXAMPLE)
        self.db = tmp / "s.db"
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
            self.tmp / name, store=self.store, trail=self.trail, books=self.books,
            signatures=self.register, cfg=self.cfg, config_path=EXAMPLE, batch_id=batch_id,
            review=kw.get("review", {"verdict": "ready", "reviewer": "qa.ann"}),
            key_path=self.key_path, now_us=now_us,
        )  # fmt: skip


def populate(env: Env) -> None:
    b = env.books
    env.trail.append("admin", "user.created", "user", "op.olga", "", None, {"role": "operator"})
    ls = b.limit_sets.propose(
        "eng.eve", LimitSet("LS-comp", 0, 0, "initial", "eng.eve"), "first limits"
    )
    b.limit_sets.approve("qa.ann", "LS-comp", ls.version, T0 - 10 * S)
    b.batches.start("op.olga", Batch("B-1", "Paracetamol 500", ("press-01",), ("compression",),
                                     T0))  # fmt: skip
    readings = []
    for i in range(-5, 130):  # some before the window, some after
        readings.append(Reading(TEMP, 21.0 + i / 100, Quality.GOOD, T0 + i * S))
        readings.append(Reading(RH, 40.5, Quality.GOOD, T0 + i * S + 1))
        readings.append(Reading(OUTSIDE, 20.0, Quality.GOOD, T0 + i * S))
    readings.append(Reading.bad(TEMP, T0 + 30 * S + 5, 'timeout, "no answer"', Cause.NETWORK))
    readings.append(Reading(PRESS, "EXECUTE", Quality.GOOD, T0 + 3 * S, T0 + 2 * S))
    env.store.commit(readings)
    env.store.record_gap(TEMP, T0 + 30 * S, T0 + 32 * S, Cause.NETWORK, "missed polls")
    env.store.record_gap(OUTSIDE, T0 + 30 * S, T0 + 32 * S, Cause.NETWORK, "missed polls")
    env.trail.append("admin", "user.created", "user", "qa.ann", "", None, {"role": "qa"})
    a1, t1 = am.activate(am.new_alarm("AL-1", TEMP, ConditionKind.ACTION_HIGH, Priority.HIGH),
                         T0 + 40 * S, value=24.5, limit=24.0)  # fmt: skip
    a2, t2 = am.acknowledge(a1, T0 + 50 * S, user="op.olga", comment="doors closed")
    b.alarms.save(a2, [t1, t2])
    dev, dt = lc.raise_deviation(
        deviation_id="DEV-2026-0001", title="Temperature above action limit",
        source=Source.EXCURSION,
        proposed_classification=Classification.MINOR, discovered_us=T0 + 60 * S, actor="system",
        affected_batch_ids=("B-1",),
        evidence=Evidence(tag=TEMP, room="compression", kind=ExcursionKind.ACTION,
                          production_state=ProductionState.IN_OPERATION, start_us=T0 + 40 * S,
                          duration_us=20 * S, end_us=T0 + 60 * S, peak=24.5),
    )  # fmt: skip
    b.deviations.create(dev, dt)
    b.batches.end("op.olga", "B-1", END)
    env.register.register(b.deviations)
    env.register.register(Decisions())
    seen = env.register.current_hash("deviation", dev.id)
    env.register.sign("deviation", dev.id, seen, "qa.ann", "Ann Quality", Role.QA_REVIEWER,
                      Meaning.REVIEW, "reviewed")  # fmt: skip
    env.register.sign("batch_decision", "B-1", env.register.current_hash("batch_decision", "B-1"),
                      "qp.quinn", "Quinn QP", Role.QA_APPROVER, Meaning.RESPONSIBILITY,
                      "released")  # fmt: skip
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


def rewrite(src: Path, dst: Path, replace: dict[str, bytes | None]) -> Path:
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
        "readings.csv", "gaps.csv", "alarm_transitions.json", "excursions/deviations.json",
        "limit_sets.json", "service_runs.json", "audit.json", "signatures.json", "review.json",
        "config/plant.toml", "config.sha256", "public_key.pem", "manifest.json", "manifest.sig",
    ]  # fmt: skip
    assert m["config/plant.toml"] == EXAMPLE.read_bytes()
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
    assert man["readings"]["per_tag"][PRESS] == 1
    assert OUTSIDE not in man["readings"]["per_tag"]
    assert info.readings == man["readings"]["rows"] == 242
    assert man["counts"] == {"gaps": 1, "alarm_transitions": 2, "deviations": 1,
                             "limit_set_versions": 1, "batch_decision_signatures": 1}  # fmt: skip
    assert man["audit"]["chain_check_at_export"]["intact"] is True
    assert man["audit"]["head_seq"] == env.trail.head()[0]
    assert {f["path"] for f in man["files"]} == set(m) - {"manifest.json", "manifest.sig"}

    rows = list(csv.DictReader(io.StringIO(m["readings.csv"].decode())))
    bad = [r for r in rows if r["quality"] == "bad"]
    assert len(bad) == 1 and bad[0]["message"] == 'timeout, "no answer"'
    assert bad[0]["cause"] == "network" and bad[0]["value"] == ""
    press = next(r for r in rows if r["tag"] == PRESS)
    assert press["text"] == "EXECUTE" and press["ts_source_us"] == str(T0 + 2 * S)
    assert press["ts_edge"] == "2026-09-21T14:13:23.000000Z"
    assert press["ts"] == press["ts_source"] == "2026-09-21T14:13:22.000000Z"
    first = next(r for r in rows if r["tag"] == TEMP)
    assert first["value"] == "21.0" and first["ts_us"] == str(T0)

    audit = json.loads(m["audit.json"])
    seqs = [e["seq"] for e in audit["entries"]]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))
    actions = {e["action"] for e in audit["entries"]}
    assert {"batch.started", "batch.ended", "deviation.raise", "alarm.acknowledge",
            "limit_set.approved", "signature.executed"} <= actions  # fmt: skip
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
    env.books.batches.start("op.olga", Batch("B-2", "P", (), ("compression",), T0 + 60 * S))
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
        assert ev.canonical(*c) == chain.canonical(*c)
        assert ev.entry_hash(chain.GENESIS, ev.canonical(*c)) == chain.entry_hash(
            chain.GENESIS, chain.canonical(*c)
        )


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
    assert_fails(r, "manifest.sig: the signature does not match",
                 f"audit.json: entry {victim['seq']}: content does not match its hash")  # fmt: skip
    assert not any("audit.json: SHA-256" in p for p in r.problems)
    # even re-signed with the box's own key, the chain gives it away
    key = keys.load_or_create(env.key_path)
    r = ev.verify_package(rewrite(info.path, env.tmp / "u.zip", {
        "audit.json": new_audit, "manifest.json": man, "manifest.sig": key.sign(man)}))  # fmt: skip
    assert r.problems == [
        f"audit.json: entry {victim['seq']}: content does not match its hash (the entry was "
        "altered)"
    ]
    # deleting an entry from the segment
    del audit["entries"][1]
    short = json.dumps(audit).encode()
    man = remanifest(m, {"audit.json": short})
    r = ev.verify_package(rewrite(info.path, env.tmp / "v.zip", {
        "audit.json": short, "manifest.json": man, "manifest.sig": key.sign(man)}))  # fmt: skip
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
    path = rewrite(info.path, env.tmp / "t.zip", {
        "public_key.pem": pem, "manifest.json": man_bytes, "manifest.sig": forged.sign(man_bytes)
    })  # fmt: skip
    # self-consistent: only the fingerprint tells
    assert ev.verify_package(path).ok
    r = ev.verify_package(path, real_fp)
    assert_fails(r, f"public_key.pem: key fingerprint {keys.fingerprint(forged)} is not the "
                    f"expected {real_fp}")  # fmt: skip
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
    r = ev.verify_package(rewrite(info.path, env.tmp / "t.zip", {
        "readings.csv": cut, "manifest.json": man, "manifest.sig": key.sign(man)}))  # fmt: skip
    assert_fails(r, "readings.csv: ", "manifest.json states")
    # config changed together with its listed hash, config.sha256 left alone
    cfg = m["config/plant.toml"] + b"\n# edited\n"
    man = remanifest(m, {"config/plant.toml": cfg})
    changed = {"config/plant.toml": cfg, "manifest.json": man, "manifest.sig": key.sign(man)}
    r = ev.verify_package(rewrite(info.path, env.tmp / "u.zip", changed))
    assert_fails(r, "config.sha256: does not match the SHA-256 of config/plant.toml")


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
    src = Path(__file__).parents[2] / "src"
    run = subprocess.run([sys.executable, "-m", "evidence", "verify", str(info.path)],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(src)},
                         check=False)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "VERIFIED" in run.stdout


# ------------------------------------------------------------------------------- scale


def test_large_export_streams(tmp_path):
    e = Env(tmp_path)
    try:
        e.books.batches.start("op", Batch("B-9", "P", (), ("compression",), T0))
        e.books.batches.end("op", "B-9", T0 + 100_000 * S)
        tags = [TEMP, RH]
        for start in range(0, 100_000, 25_000):
            e.store.commit([Reading(t, 20.0 + (i % 97) / 7, Quality.GOOD, T0 + i * S)
                            for i in range(start, start + 25_000) for t in tags])  # fmt: skip
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
