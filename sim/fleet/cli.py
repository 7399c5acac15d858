"""``tbox fleet``: a virtual fleet of light vehicles against a GB/T 32960 platform (docs/fleet.md).

Module-level imports stay light (argparse only); the fleet loads when the verb runs. With
``--processes P`` the parent starts P workers (``tbox fleet … --shard i/P --worker``), reads their JSON
lines (progress, then the final result), prints the combined live progress and the merged summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

DESCRIPTION = """Run N virtual vehicles, each with its own VIN, ICCID, login serial and light physics, through
the real terminal session (login, heartbeat, realtime, reissue after a link loss, downlink answers) against
a platform; live progress on stderr, a JSON summary on stdout. See docs/fleet.md."""


def register(subparsers: Any) -> None:
    """Add the ``fleet`` verb to the ``tbox`` sub-parsers."""
    from sim.fleet.lite import SCENARIOS

    p = subparsers.add_parser("fleet", help="virtual fleet against a platform (load and misbehaviour)",
                              description=DESCRIPTION)
    p.add_argument("--vehicles", type=int, required=True, metavar="N", help="vehicles in the whole fleet")
    p.add_argument("--target", default="127.0.0.1:32960", metavar="HOST:PORT",
                   help="platform address (default 127.0.0.1:32960)")
    p.add_argument("--seconds", type=float, required=True, metavar="S", help="how long vehicles report")
    p.add_argument("--period", type=float, default=10.0, metavar="S", help="realtime period (default 10 s)")
    p.add_argument("--edition", type=int, choices=(2016, 2025), default=2016, help="protocol edition")
    p.add_argument("--scenario", choices=SCENARIOS, help="misbehaviour to play (docs/fleet.md)")
    p.add_argument("--shard", default="0/1", metavar="I/K", help="run only shard I of K of the VIN space")
    p.add_argument("--processes", type=int, default=1, metavar="P",
                   help="worker processes on this host, each a sub-shard (default 1)")
    p.add_argument("--seed", type=int, default=1, metavar="K", help="seed of the physics (default 1)")
    p.add_argument("--ramp", type=float, metavar="S",
                   help="spread the connects over S seconds (default min(10, N/1000); login-storm: 0)")
    p.add_argument("--drain", type=float, default=15.0, metavar="S",
                   help="after --seconds, wait up to S for backlogs and acks to settle (default 15)")
    p.add_argument("--window", type=int, default=16, help="uploads in flight per vehicle while reissuing")
    p.add_argument("--backlog", type=int, default=3600, metavar="N",
                   help="reports kept per vehicle while offline; older ones are dropped (default 3600)")
    p.add_argument("--heartbeat", type=float, default=30.0, metavar="S", help="heartbeat period (default 30)")
    p.add_argument("--reply-timeout", type=float, default=30.0, metavar="S",
                   help="platform response timeout, param 0x0B (default 30)")
    p.add_argument("--login-timeout", type=float, default=60.0, metavar="S",
                   help="login reply timeout, param 0x0A (default 60)")
    p.add_argument("--vin-prefix", default="LTBXFLT0", metavar="TEXT", help="VIN prefix (default LTBXFLT0)")
    p.add_argument("--cells", type=int, default=96, help="cells per pack (default 96)")
    p.add_argument("--probes", type=int, default=32, help="temperature probes per pack (default 32)")
    p.add_argument("--progress", type=float, default=1.0, metavar="S",
                   help="seconds between progress lines on stderr (0: none)")
    p.add_argument("--full", action="store_true",
                   help="full fidelity: the CAN simulator + agent pipeline per vehicle (about 100 per core)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--tls-ca", metavar="FILE", help="CA to verify the platform with (default: system CAs)")
    p.add_argument("--tls-cert", metavar="FILE", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--tls-key", metavar="FILE", help="client key (PEM)")
    p.add_argument("--tls-server-name", metavar="NAME", help="server name to verify (default: the host)")
    p.add_argument("--out", metavar="FILE", help="write the JSON summary here instead of stdout")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def _parse_shard(text: str) -> tuple[int, int]:
    from agent.errors import ConfigError

    try:
        i, k = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"{text!r}: want I/K, e.g. 0/4", key="--shard") from None
    if not (k >= 1 and 0 <= i < k):
        raise ConfigError(f"{text!r}: want 0 <= I < K", key="--shard")
    return i, k


def _target(text: str) -> tuple[str, int]:
    from agent.errors import ConfigError

    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{text!r}: want HOST:PORT", key="--target")
    return host.strip("[]") or "127.0.0.1", int(port)


def _config(args: argparse.Namespace, shard: tuple[int, int]) -> Any:
    import ssl

    from agent.errors import ConfigError
    from agent.protocol.model import Edition
    from sim.fleet.runner import FleetConfig

    host, port = _target(args.target)
    ctx = None
    if args.tls:
        try:
            ctx = ssl.create_default_context(cafile=args.tls_ca)
            if args.tls_cert:
                ctx.load_cert_chain(args.tls_cert, args.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load TLS material: {exc}", key="--tls") from exc
    return FleetConfig(
        host=host, port=port, vehicles=args.vehicles, shard=shard, seconds=args.seconds, period=args.period,
        edition=Edition(args.edition), scenario=args.scenario, seed=args.seed, ramp=args.ramp,
        drain=args.drain, window=args.window, backlog_limit=args.backlog, heartbeat=args.heartbeat,
        reply_timeout=args.reply_timeout, login_timeout=args.login_timeout, vin_prefix=args.vin_prefix,
        cells=args.cells, probes=args.probes, progress=args.progress, ssl=ctx, full=args.full,
        server_hostname=args.tls_server_name or host,
    )


def _progress_line(p: dict[str, Any]) -> str:
    return (f"fleet t={p['t']:.0f}s vehicles={p['vehicles']} connected={p['connected']} online={p['online']} "
            f"frames/s={p['frames_per_s']:.0f} acks/s={p['acks_per_s']:.0f} acks={p['acks']} "
            f"errors={p['errors']} backlog={p['backlog']}")


def _emit(summary: dict[str, Any], out: str | None) -> None:
    text = json.dumps(summary, indent=2)
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    else:
        print(text)


def _ok(summary: dict[str, Any]) -> bool:
    r = summary["reports"]
    lost = int(r["dropped"]) + int(r["backlog"]) + int(r["in_flight"]) + abs(int(r["unaccounted"]))
    return int(summary["never_logged_in"]) == 0 and lost == 0


def run(args: argparse.Namespace) -> int:
    """Run the fleet (or one worker of it); exit 0 when every vehicle logged in and nothing was lost."""
    from agent.errors import ConfigError
    from sim.fleet.runner import merge_results, run_fleet, summary

    shard = _parse_shard(args.shard)
    if args.processes < 1:
        raise ConfigError(f"{args.processes}: want at least 1", key="--processes")
    config = _config(args, shard)
    config.validate()
    if args.worker:
        def report(p: dict[str, Any]) -> None:
            print(json.dumps({"progress": p}), flush=True)
        result = run_fleet(config, report)
        print(json.dumps({"result": result}), flush=True)
        return 0
    if args.processes == 1:
        def show(p: dict[str, Any]) -> None:
            print(_progress_line(p), file=sys.stderr, flush=True)
        result = run_fleet(config, show if args.progress > 0 else None)
    else:
        result = merge_results(_run_workers(args, shard))
    out = summary(config, result, processes=args.processes)
    _emit(out, args.out)
    return 0 if _ok(out) else 1


def _run_workers(args: argparse.Namespace, shard: tuple[int, int]) -> list[dict[str, Any]]:
    """Start the workers, print their combined progress, return their results."""
    import subprocess

    from agent.errors import TboxError

    p = args.processes
    i, k = shard
    base = [sys.executable, "-m", "agent.cli", "fleet", *_worker_argv(args)]
    procs = []
    for j in range(p):
        cmd = [*base, "--shard", f"{i * p + j}/{k * p}", "--worker"]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    latest: list[dict[str, Any] | None] = [None] * p
    results: list[dict[str, Any] | None] = [None] * p
    lock = threading.Lock()

    def read(j: int) -> None:
        stream = procs[j].stdout
        assert stream is not None
        for line in stream:
            try:
                msg = json.loads(line)
            except json.JSONDecodeError:
                continue
            with lock:
                if "progress" in msg:
                    latest[j] = msg["progress"]
                elif "result" in msg:
                    results[j] = msg["result"]

    readers = [threading.Thread(target=read, args=(j,), daemon=True) for j in range(p)]
    for t in readers:
        t.start()
    while any(pr.poll() is None for pr in procs):
        time.sleep(args.progress if args.progress > 0 else 0.5)
        with lock:
            parts = [x for x in latest if x is not None]
        if args.progress > 0 and parts:
            merged = {key: sum(x[key] for x in parts) for key in parts[0] if key != "t"}
            merged["t"] = max(x["t"] for x in parts)
            print(_progress_line(merged), file=sys.stderr, flush=True)
    for t in readers:
        t.join(5.0)
    failed = [j for j, pr in enumerate(procs) if pr.returncode != 0 or results[j] is None]
    if failed:
        raise TboxError(f"fleet workers {failed} failed (exit {[procs[j].returncode for j in failed]})")
    return [r for r in results if r is not None]


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The options of this run for a worker (without --processes, --shard, --out)."""
    out: list[str] = []
    for name, value in sorted(vars(args).items()):
        if name in _NOT_FOR_WORKERS or value is None or value is False or callable(value):
            continue
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


_NOT_FOR_WORKERS = frozenset({"processes", "shard", "out", "worker", "verb", "verbose", "run"})
