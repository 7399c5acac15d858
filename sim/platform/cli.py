"""``tbox platform``: the reference platform's verbs (serve, send, dump, check).

Module-level imports stay light (argparse only); the server and database load when a verb runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.platform.server import ServerConfig

DESCRIPTION = """Strict GB/T 32960 reference platform (both editions): serve terminals over TCP/TLS and record
every frame with its violations in SQLite; send downlink commands to a running server; dump the frames;
check conformance. See docs/platform.md."""

CONTROL_NAMES = {
    "upgrade": 0x01, "shutdown": 0x02, "reset": 0x03, "factory-reset": 0x04, "disconnect": 0x05,
    "warning": 0x06, "open-sampling": 0x07,
}
#: parameter ids whose value is text (domains); every other value is an integer
TEXT_PARAMETERS = (0x05, 0x0E)


def register(subparsers: Any) -> None:
    """Add the ``platform`` verb to the ``tbox`` sub-parsers."""
    p = subparsers.add_parser("platform", help="strict reference platform (serve, send, dump, check)",
                              description=DESCRIPTION)
    sub = p.add_subparsers(dest="platform_verb", required=True, metavar="ACTION")

    s = sub.add_parser("serve", help="run the platform server")
    s.add_argument("--listen", default="127.0.0.1:32960", metavar="HOST:PORT",
                   help="address to listen on (default 127.0.0.1:32960; port 0 = any free port)")
    s.add_argument("--db", required=True, metavar="FILE", help="SQLite database (created if missing)")
    s.add_argument("--tls-cert", metavar="FILE", help="server certificate (PEM): enables TLS")
    s.add_argument("--tls-key", metavar="FILE", help="server private key (PEM)")
    s.add_argument("--tls-client-ca", metavar="FILE", help="CA for client certificates: mutual TLS")
    s.add_argument("--edition-reply", choices=("same", "2016", "2025"), default="same",
                   help="edition of replies (default: the request's)")
    s.add_argument("--ack", choices=("time-only", "echo", "empty"), default="time-only",
                   help="acknowledgement data unit (default time-only: 2016 Body 6.3.2, 2025 text)")
    s.add_argument("--reply-realtime", action="store_true",
                   help="acknowledge correct realtime/reissue frames (Body style; Annex B is silent)")
    s.add_argument("--vins", metavar="FILE", help="VIN allow-list, one per line (default: any VIN)")
    s.add_argument("--keys", metavar="FILE", help="per-VIN decryption keys and signature public keys (JSON)")
    s.add_argument("--duplicate-vin", choices=("close-old", "refuse"), default="close-old",
                   help="a VIN logging in while online: drop the old session (Annex B) or answer 0x03")
    s.add_argument("--before-login", choices=("ignore", "close"), default="ignore",
                   help="frames before login: ignore (recorded) or close the link (EMQX)")
    s.add_argument("--heartbeat", type=float, default=30.0, metavar="S",
                   help="expected heartbeat period (param 0x09, default 30 s); idle drop after 3x")
    s.add_argument("--report-period", type=float, default=30.0, metavar="S",
                   help="configured realtime period (param 0x02, default 30 s)")
    s.add_argument("--max-latency", type=float, default=30.0, metavar="S",
                   help="realtime collection-to-receipt limit (default 30 s)")
    s.add_argument("--window-timeout", type=float, default=600.0, metavar="S",
                   help="decide an incomplete alarm / post-HV-off window this long after its end while the "
                        "VIN is logged in (default 600 s; a logout decides at once)")
    s.add_argument("--require-info-types", action="store_true",
                   help="flag reports missing vehicle, location, alarm, voltage, temperature or motor data")
    s.add_argument("--no-json", action="store_true",
                   help="do not store decoded JSON of plain frames (dump decodes them from the raw bytes)")
    s.add_argument("--no-fast-lane", action="store_true",
                   help="decode and check every report through the full path (the fast lane reads clean "
                        "plain reports as raw integers; same results, docs/platform.md)")
    s.add_argument("--fsync", action="store_true",
                   help="checkpoint the database with fsync once a second (safe on power loss; the "
                        "write-ahead log grows under continuous load, and each fsync stalls commits); "
                        "default: right after each commit, without fsync (see docs/platform.md)")
    s.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds (default: run until ^C)")
    s.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                   help="event loop: uvloop when installed (auto, the default), or force one")
    s.set_defaults(run=run_serve)

    d = sub.add_parser("send", help="queue a downlink command for the running server and wait for the reply")
    d.add_argument("--db", required=True, metavar="FILE", help="the running server's database")
    d.add_argument("--vin", required=True, help="target vehicle (must be logged in)")
    d.add_argument("--wait", type=float, default=30.0, metavar="S", help="how long to wait for the outcome")
    kinds = d.add_subparsers(dest="kind", required=True, metavar="COMMAND")
    q = kinds.add_parser("query", help="parameter query 0x80: ids, e.g. 0x01,0x02")
    q.add_argument("ids", help="comma-separated parameter ids")
    st = kinds.add_parser("set", help="parameter set 0x81: ID=VALUE items, e.g. 0x02=10")
    st.add_argument("items", nargs="+", help="ID=VALUE (domains 0x05/0x0E take text)")
    c = kinds.add_parser("control", help="terminal control 0x82")
    c.add_argument("command", help=f"{', '.join(CONTROL_NAMES)} or a numeric id")
    c.add_argument("--params", default="", metavar="HEX", help="raw parameter bytes (hex)")
    d.set_defaults(run=run_send)

    u = sub.add_parser("dump", help="print every stored frame as one JSON object per line")
    u.add_argument("--db", required=True, metavar="FILE")
    u.add_argument("--vin", help="only this VIN")
    u.set_defaults(run=run_dump)

    k = sub.add_parser("check", help="conformance summary; exit status 1 when there are violations")
    k.add_argument("--db", required=True, metavar="FILE")
    k.add_argument("--vin", help="only this VIN")
    k.add_argument("--json", action="store_true", help="print the summary as JSON")
    k.set_defaults(run=run_check)


def _listen(text: str) -> tuple[str, int]:
    from agent.errors import ConfigError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"--listen wants HOST:PORT, got {text!r}", key="listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_serve(args: argparse.Namespace) -> int:
    """Run the server (until ``--seconds`` or ^C)."""
    import asyncio

    from sim.eventloop import loop_factory
    from sim.platform.server import run_server

    config = serve_config(args)

    def ready(server: Any) -> None:
        print(f"listening on {config.host}:{server.port}", file=sys.stderr, flush=True)

    _tune_gc()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(run_server(config, args.seconds, ready))
    return 0


def serve_config(args: argparse.Namespace) -> ServerConfig:
    """The server configuration ``serve``'s options give."""
    import dataclasses

    from agent.protocol.codec import ResponseForm
    from agent.protocol.session import BeforeLogin
    from sim.platform.checks import Limits
    from sim.platform.server import ServerConfig, load_keys, load_vins

    host, port = _listen(args.listen)
    ack = {"time-only": ResponseForm.TIME_ONLY, "echo": ResponseForm.ECHO, "empty": ResponseForm.EMPTY}
    limits = dataclasses.replace(Limits(), report_period=args.report_period, max_latency=args.max_latency,
                                 heartbeat_interval=args.heartbeat, window_timeout=args.window_timeout,
                                 require_info_types=args.require_info_types)
    return ServerConfig(
        host=host, port=port, db_path=args.db, edition_reply=args.edition_reply, ack=ack[args.ack],
        reply_realtime=args.reply_realtime, store_json=not args.no_json, fsync=args.fsync,
        fast_lane=not args.no_fast_lane,
        vins=load_vins(args.vins) if args.vins else None,
        keys=load_keys(args.keys) if args.keys else {}, duplicate_vin=args.duplicate_vin,
        before_login=BeforeLogin(args.before_login), heartbeat_interval=args.heartbeat, limits=limits,
        tls_cert=args.tls_cert, tls_key=args.tls_key, tls_client_ca=args.tls_client_ca,
    )


def _tune_gc() -> None:
    """Keep the cyclic GC from stalling the event loop (this process only serves): everything loaded so
    far is frozen out of collections, and young collections run every 10,000 allocations with full ones
    rare. With 2,000 connections the default thresholds gave 84 ms full-collection pauses (ack p99
    460 ms); these gave 22 ms worst pauses (p99 41 ms). Garbage is still collected."""
    import gc

    gc.freeze()
    gc.set_threshold(10_000, 50, 1000)


def _int(text: str) -> int:
    from agent.errors import ConfigError

    try:
        return int(text, 0)
    except ValueError:
        raise ConfigError(f"not a number: {text!r}") from None


def parse_command(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The (kind, args) a ``send`` queues."""
    from agent.errors import ConfigError

    if args.kind == "query":
        return "query", {"ids": [_int(x) for x in args.ids.split(",") if x.strip()]}
    if args.kind == "set":
        items: list[tuple[int, Any]] = []
        for item in args.items:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"set item {item!r} is not ID=VALUE")
            pid = _int(key)
            items.append((pid, value if pid in TEXT_PARAMETERS else _int(value)))
        return "set", {"items": items}
    name = args.command.lower()
    cid = CONTROL_NAMES[name] if name in CONTROL_NAMES else _int(name)
    try:
        bytes.fromhex(args.params)
    except ValueError:
        raise ConfigError(f"--params is not hex: {args.params!r}") from None
    return "control", {"id": cid, "params": args.params}


def run_send(args: argparse.Namespace) -> int:
    """Queue the command, wait for the server to report its outcome, print it as JSON."""
    import json
    import time

    from sim.platform.db import FINAL_STATUSES, PlatformDB

    kind, cmd_args = parse_command(args)
    db = PlatformDB(args.db)
    try:
        cmd_id = db.queue_command(args.vin, kind, cmd_args)
        deadline = time.monotonic() + args.wait
        row = db.command(cmd_id)
        while row is not None and row.status not in FINAL_STATUSES and time.monotonic() < deadline:
            time.sleep(0.1)
            row = db.command(cmd_id)
    finally:
        db.close()
    if row is None:
        return 1
    print(json.dumps({"id": row.id, "vin": row.vin, "kind": row.kind, "status": row.status,
                      "result": row.result}, ensure_ascii=False))
    ok = row.status == "replied" and isinstance(row.result, dict) and row.result.get("flag") == 1
    return 0 if ok else 1


def run_dump(args: argparse.Namespace) -> int:
    """One JSON object per stored frame."""
    import json

    from sim.platform.db import PlatformDB

    db = PlatformDB(args.db)
    try:
        by_frame = db.violations_by_frame()
        for row in db.frames(args.vin):
            obj = {
                "id": row.id, "vin": row.vin, "edition": row.edition, "command": row.command,
                "response": row.response, "time": row.collected, "received_at": row.received_at,
                "raw": row.raw, "reply": row.reply, "body": _body(row),
                "violations": [{"kind": k, "reason": r} for k, r in by_frame.get(row.id, [])],
            }
            print(json.dumps(obj, ensure_ascii=False))
    finally:
        db.close()
    return 0


def _body(row: Any) -> Any:
    """The decoded data unit of a stored frame: its stored JSON, else decoded now from the raw bytes."""
    from agent.protocol import codec, wire
    from agent.protocol.errors import ProtocolError
    from agent.protocol.jsonform import frame_to_json

    if row.decoded is not None:
        return row.decoded.get("data")
    if not row.decodable:
        return None
    try:
        frame = codec.decode_raw(wire.parse_frame(bytes.fromhex(row.raw)))
        return frame_to_json(frame).get("data")
    except (ProtocolError, ValueError):
        return None


def conformance_summary(db_path: str, vin: str | None = None) -> dict[str, Any]:
    """Per VIN: frames by command, realtime/reissue counts, coverage, violations by kind.

    Violations are the stored ones (the server's decided alarm and post-HV-off windows included) plus,
    for windows the server has not decided yet (still running, stopped, or a crash), the ones computed
    here over all stored data: alarm windows of fault points without a decided ``windows`` row, and open
    HV-off windows that ended before the VIN's last data with no report in them. A window is counted once.
    """
    from collections import Counter
    from datetime import datetime

    from agent.protocol.model import Edition
    from sim.platform.checks import Limits, alarm_windows
    from sim.platform.db import PlatformDB

    db = PlatformDB(db_path)
    try:
        vins: dict[str, dict[str, Any]] = {}
        samples: dict[str, list[tuple[datetime, int | None]]] = {}
        editions: dict[str, int] = {}

        def entry(name: str) -> dict[str, Any]:
            return vins.setdefault(name, {"frames": Counter(), "realtime": 0, "reissue": 0,
                                          "violations": Counter()})

        for row in db.frames(vin):
            v = entry(row.vin)
            v["frames"][f"0x{row.command:02X}"] += 1
            if row.command in (2, 3) and row.response == 0xFE and row.collected and row.decodable:
                v["realtime" if row.command == 2 else "reissue"] += 1
                t = datetime.fromisoformat(row.collected)
                samples.setdefault(row.vin, []).append((t, row.alarm_level))
                editions[row.vin] = row.edition
        for _frame_id, fvin, kind, _reason in db.violations(vin):
            entry(fvin)["violations"][kind] += 1
        gaps: list[dict[str, Any]] = []
        hv_off: list[dict[str, Any]] = []
        decided: dict[str, set[str]] = {}
        for w in db.windows(vin):
            if w.kind == "alarm" and w.status != "open":
                decided.setdefault(w.vin, set()).add(w.at)
                if w.status == "gap":
                    gaps.append({"vin": w.vin, "fault": w.at, "reason": w.reason, "decided": True})
            elif w.kind == "hv_off":
                item = {"vin": w.vin, "off": w.at, "start": w.start_at, "end": w.end_at, "status": w.status,
                        "reason": w.reason, "decided": w.status != "open"}
                if w.status == "open":
                    data = samples.get(w.vin, [])
                    start, end = datetime.fromisoformat(w.start_at), datetime.fromisoformat(w.end_at)
                    if any(start <= t <= end for t, _ in data):
                        item["status"] = "complete"
                    elif data and max(t for t, _ in data) > end:
                        item["status"] = "gap"
                        item["reason"] = f"HV off at {w.at}: no report collected in 59:30–60:00 after it"
                        entry(w.vin)["violations"]["hv_off_window"] += 1
                hv_off.append(item)
        for fvin, data in samples.items():
            edition = Edition.E2025 if editions.get(fvin) == 2025 else Edition.E2016
            for window in alarm_windows(data, edition, Limits()):
                violation = window.violation()
                if violation is None or window.fault.isoformat() in decided.get(fvin, set()):
                    continue
                vins[fvin]["violations"][violation.kind] += 1
                gaps.append({"vin": fvin, "fault": window.fault.isoformat(), "reason": violation.reason,
                             "decided": False})
            seconds = {t for t, _ in data}
            span = int((max(seconds) - min(seconds)).total_seconds()) + 1
            vins[fvin]["coverage"] = {"seconds_with_data": len(seconds), "span_seconds": span,
                                      "ratio": round(len(seconds) / span, 4)}
        total = sum(sum(v["violations"].values()) for v in vins.values())
        return {
            "vins": {k: {**v, "frames": dict(v["frames"]), "violations": dict(v["violations"])}
                     for k, v in sorted(vins.items())},
            "alarm_window_gaps": gaps,
            "hv_off_windows": hv_off,
            "violations": total,
        }
    finally:
        db.close()


def run_check(args: argparse.Namespace) -> int:
    """Print the conformance summary; 1 when any violation was found."""
    import json

    summary = conformance_summary(args.db, args.vin)
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        for vin, v in summary["vins"].items():
            print(f"{vin}:")
            frames = ", ".join(f"{k}={n}" for k, n in sorted(v["frames"].items()))
            print(f"  frames: {frames or 'none'}")
            print(f"  realtime: {v['realtime']}  reissue: {v['reissue']}")
            cov = v.get("coverage")
            if cov:
                print(f"  coverage: {cov['seconds_with_data']}/{cov['span_seconds']} s ({cov['ratio']:.2%})")
            viol = ", ".join(f"{k}={n}" for k, n in sorted(v["violations"].items()))
            print(f"  violations: {viol or 'none'}")
        for gap in summary["alarm_window_gaps"]:
            state = "" if gap["decided"] else " (not decided by the server: computed now)"
            print(f"alarm window gap {gap['vin']}{state}: {gap['reason']}")
        for w in summary["hv_off_windows"]:
            if w["status"] in ("gap", "open"):
                what = w["reason"] or f"{w['start']} … {w['end']}"
                print(f"post-HV-off window {w['vin']} ({w['status']}): {what}")
        print(f"total violations: {summary['violations']}")
    return 1 if summary["violations"] else 0
