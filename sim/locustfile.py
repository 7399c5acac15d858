"""Locust entry point: a GB/T 32960 vehicle fleet driven from one or many machines.

    locust -f sim/locustfile.py --host tcp://127.0.0.1:32960                  # web UI on :8089
    locust -f sim/locustfile.py --headless -u 1000 -r 50 --run-time 10m --host tcp://PLATFORM:32960
    locust -f sim/locustfile.py --master             # then, on every load machine:
    locust -f sim/locustfile.py --worker --master-host MASTER

One Locust user is one vehicle (``sim.fleet.locust_user.Gbt32960Vehicle``); its options (--period,
--edition, --vin-prefix, --seed, --vin-offset, --vins-per-worker, --heartbeat, --ack-timeout,
--realtime-ack, --backlog, --reissue-window, --scenario, TLS files) are listed by
``locust -f sim/locustfile.py --help``.
docs/fleet.md, "Distributed runs with Locust", explains VIN uniqueness, shapes and limits.
"""

from sim.fleet.locust_user import Gbt32960Vehicle

__all__ = ["Gbt32960Vehicle"]
