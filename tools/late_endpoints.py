"""Count the endpoints whose arrival time exceeds a clock period in a nextpnr report.

``spiketrack build`` runs nextpnr with ``--report report.json --detailed-timing-report``; the
detailed part lists, for every net, each sink's arrival time (the delay of the worst path from a
register or block RAM to that sink, in ns). This script counts the register and block-RAM inputs
(``DI``, ``M``, ``CE``, ``LSR`` and the EBR ports) whose arrival exceeds ``--period``, groups them
by module, and lists the nets that reach the most of them (the high-fanout control nets to
duplicate or register first).

    python tools/late_endpoints.py build/ulx3s-85f/report.json --period 10
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

ENDPOINT = re.compile(r"(DI|M|CE|LSR)$|(AD|DI|CE|WE|CS|RST|OCE)[A-Z]?\d*$")


def late_endpoints(report: dict, period: float) -> tuple[list, Counter, dict]:
    """(late endpoints as (arrival, cell, port, net), late sinks per net, worst arrival per net)."""
    if "detailed_net_timings" not in report:
        raise SystemExit("report has no detailed_net_timings: run nextpnr with --detailed-timing-report")
    late, per_net, worst = [], Counter(), {}
    for n in report["detailed_net_timings"]:
        for e in n["endpoints"]:
            d = max(e["delay"]) if isinstance(e["delay"], list) else float(e["delay"])
            worst[n["net"]] = max(worst.get(n["net"], 0.0), d)
            if ENDPOINT.match(e["port"]) and d > period:
                late.append((d, e["cell"], e["port"], n["net"]))
                per_net[n["net"]] += 1
    return late, per_net, worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="nextpnr report.json written with --detailed-timing-report")
    ap.add_argument("--period", type=float, default=10.0, help="clock period in ns (default 10: 100 MHz)")
    ap.add_argument("--top", type=int, default=20, help="nets to list")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    with open(a.report) as fh:
        rep = json.load(fh)
    late, per_net, worst = late_endpoints(rep, a.period)
    by_module = Counter(".".join(c.split(".")[:3]) for _, c, _, _ in late)
    nets = [{"net": k, "late_sinks": v, "worst_ns": round(worst[k], 2)} for k, v in per_net.most_common(a.top)]
    out = {"period_ns": a.period, "late_endpoints": len(late), "by_module": dict(by_module.most_common(a.top)),
           "by_port": dict(Counter(p for _, _, p, _ in late)), "nets": nets}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{len(late)} endpoints arrive later than {a.period} ns")
        for k, v in by_module.most_common(a.top):
            print(f"  {v:6d}  {k}")
        print("nets reaching the most of them (late sinks, worst arrival):")
        for n in nets:
            print(f"  {n['late_sinks']:6d}  {n['worst_ns']:6.2f} ns  {n['net']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
