"""``python -m spiketrack.formal [NAME ...]``: run proofs and their mutants, print the docs table.

Runs each named proof (all by default) on its unit and on each of its mutants, one solver run at
a time, and prints the Markdown table of docs/formal.md (property, unit, geometry, method,
solver, seconds, mutants caught). Exits non-zero if a proof does not pass or a mutant is not
caught.
"""

from __future__ import annotations

import argparse
import sys

from spiketrack.formal.proofs import PROOFS, run_mutant, run_proof


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m spiketrack.formal", description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help=f"proofs to run (default all: {', '.join(PROOFS)})")
    ap.add_argument("--no-mutants", action="store_true", help="skip the mutation checks")
    args = ap.parse_args(argv)
    unknown = [n for n in args.names if n not in PROOFS]
    if unknown:
        ap.error(f"unknown proofs {unknown}; known: {list(PROOFS)}")
    ok = True
    rows = ["| proof | property | unit | geometry | method | solver | s | mutants: FAIL (s) |",
            "|---|---|---|---|---|---|---|---|"]
    for name in args.names or PROOFS:
        p = PROOFS[name]
        res = run_proof(p)
        print(res.describe(), file=sys.stderr, flush=True)
        ok &= res.passed
        caught = []
        for mu in () if args.no_mutants else p.mutants:
            mres = run_mutant(p, mu)
            print(mres.describe(), file=sys.stderr, flush=True)
            ok &= mres.status == "FAIL"
            caught.append(f"`{mu.name}` {mres.status} ({mres.seconds:.0f})")
        method = f"induction k={p.depth}" if p.mode == "prove" else f"BMC depth {p.depth}"
        verdict = "" if res.passed else f" **{res.status}**"
        rows.append(f"| `{p.name}`{verdict} | {p.prop} | `{p.unit.rsplit('.', 1)[1]}` | {p.geometry} | {method} "
                    f"| {p.solver} | {res.seconds:.0f} | {', '.join(caught)} |")
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
