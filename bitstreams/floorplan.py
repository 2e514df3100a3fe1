"""Block-RAM floorplans for nextpnr-ecp5: each large memory's DP16KD blocks on adjacent sites.

Why: left to the placer, the blocks of one memory end up spread over the whole LFE5U-85F, and the
registers that drive all of them (a memory's address, write enable and write data) become single
routes across the device (``st``'s 60 blocks, ``lv``'s 42; docs/boards.md, builds ``b2a``-``b5e``).
A floorplan pins the blocks of the memories it names with nextpnr's generic ``BEL`` attribute and
leaves every other cell to the placer.

The block-RAM sites of the LFE5U-85F (nextpnr 0.11.1, measured by placing 208 DP16KD instances and
reading back ``NEXTPNR_BEL``; ``tests/test_floorplan.py`` repeats it in the slow suite): four rows
``Y`` = 22, 46, 70, 82, each with 13 groups of four sites ``X = start + 2·k`` named ``EBRk``
(:data:`ECP5_85K_EBR_GROUPS`).

How a memory's blocks are ordered: Yosys names the blocks it maps a memory to
``<memory>.<dup>.<slice>`` (``core.accel.mem_st.bank2.0.14``): a *group* (one bank, one read-port
copy ``dup``) holds the whole row width in ``slice`` blocks of 9 bits. The write data bit ``j`` and
the read multiplexer of bit ``j`` touch slice ``j // 9`` of every group, and the address touches
every block, so a floorplan puts the groups of one slice next to each other and the slices in
order: blocks sorted by (slice, group) fill the memory's sites column by column, each column taking
one site in each of the memory's rows. The address then spans the memory's rectangle, and a data
bit a few sites.

The plan is applied between Yosys and nextpnr: :func:`build_bitstream` points amaranth-boards'
``NEXTPNR_ECP5`` at a wrapper (this module's ``main``) that adds the ``BEL`` attributes to the
netlist JSON (written atomically) and then runs nextpnr with the same arguments.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from spiketrack.atomic import write_text_atomic

__all__ = ["ECP5_85K_EBR_ROWS", "ECP5_85K_EBR_GROUPS", "ebr_sites", "memory_blocks", "plan_sites",
           "apply_floorplan", "FloorplanError", "ULX3S_FLOORPLAN", "FLOORPLANS", "PLAN_FILE"]

#: Rows (Y) of block-RAM sites on the LFE5U-85F.
ECP5_85K_EBR_ROWS = (22, 46, 70, 82)
#: First X of each group of four block-RAM sites in a row (sites at X, X+2, X+4, X+6).
ECP5_85K_EBR_GROUPS = (4, 13, 22, 31, 40, 49, 58, 69, 78, 87, 96, 105, 114)

#: The file, in the build folder, that names the floorplan the wrapper applies.
PLAN_FILE = "floorplan.json"

#: The ``st-lv`` floorplan (``spiketrack build --floorplan st-lv``): the two memories whose
#: address registers were the critical routes, each in a band of two block-RAM rows with about the
#: device's block-RAM occupancy (79 %): ``st``'s 60 blocks over 76 sites of rows 70 and 82, ``lv``'s
#: 42 over 54 sites of rows 22 and 46, from the left. The other memories are placed by nextpnr.
#: (Both in rows 70 and 82 at 98 % occupancy, build ``fp1``, router2 did not converge; docs/boards.md.)
ULX3S_FLOORPLAN = {"mem_st": {"rows": [70, 82], "first_column": 0, "columns": 38},
                   "mem_lv": {"rows": [22, 46], "first_column": 0, "columns": 27}}

#: Built-in plans by name (``spiketrack build --floorplan NAME``).
FLOORPLANS = {"st-lv": ULX3S_FLOORPLAN}

_BLOCK = re.compile(r"(?:^|\.)(?P<mem>mem_\w+)\.bank(?P<bank>\d+)\.(?P<dup>\d+)\.(?P<slice>\d+)$")


class FloorplanError(ValueError):
    """A floorplan that cannot be applied: names the memory, the row or the site."""


def ebr_sites(row: int) -> list[str]:
    """The 52 block-RAM BEL names of one row of the LFE5U-85F, left to right."""
    if row not in ECP5_85K_EBR_ROWS:
        raise FloorplanError(f"Y={row} is not a block-RAM row of the LFE5U-85F (rows {ECP5_85K_EBR_ROWS})")
    return [f"X{x0 + 2 * k}/Y{row}/EBR{k}" for x0 in ECP5_85K_EBR_GROUPS for k in range(4)]


def memory_blocks(cells: Mapping[str, Mapping], memory: str) -> list[tuple[tuple[int, int, int], str]]:
    """The DP16KD cells of ``memory`` (``"mem_st"``) in a netlist's ``cells``, as
    ``((slice, bank, dup), name)``, sorted."""
    out = []
    for name, cell in cells.items():
        if cell.get("type") != "DP16KD":
            continue
        m = _BLOCK.search(name)
        if m and m["mem"] == memory:
            out.append(((int(m["slice"]), int(m["bank"]), int(m["dup"])), name))
    return sorted(out)


def plan_sites(cells: Mapping[str, Mapping], plan: Mapping[str, Mapping]) -> dict[str, str]:
    """Cell name -> BEL name for every block of the memories ``plan`` names.

    ``plan[memory] = {"rows": [y, ...], "first_column": c[, "columns": n]}``: the memory's blocks,
    sorted by (slice, bank, copy), go to the sites of columns ``c`` .. ``c + n - 1`` of those rows
    (a column is the ``c``-th site of each row), taken column after column and one site per row,
    spread evenly over them when there are more sites than blocks; ``n`` defaults to the fewest
    columns that hold the blocks.
    """
    bels: dict[str, str] = {}
    taken: dict[str, str] = {}
    for memory, spec in plan.items():
        rows = [ebr_sites(int(r)) for r in spec["rows"]]
        first = int(spec["first_column"])
        blocks = memory_blocks(cells, memory)
        if not blocks:
            raise FloorplanError(f"floorplan names {memory}, but the netlist has no DP16KD block of it")
        columns = int(spec.get("columns", -(-len(blocks) // len(rows))))
        if first < 0 or first + columns > len(rows[0]) or columns * len(rows) < len(blocks):
            raise FloorplanError(f"{memory}: {len(blocks)} blocks in {columns} columns of rows {spec['rows']} "
                                 f"from column {first}: a row has {len(rows[0])} sites")
        sites = [rows[r][first + c] for c in range(columns) for r in range(len(rows))]
        for i, (_, name) in enumerate(blocks):
            bel = sites[i * len(sites) // len(blocks)]
            if bel in taken:
                raise FloorplanError(f"site {bel} is given to both {taken[bel]} and {name}")
            taken[bel] = name
            bels[name] = bel
    return bels


def apply_floorplan(netlist_json: str | Path, plan: Mapping[str, Mapping]) -> dict[str, str]:
    """Add a ``BEL`` attribute to each planned block of a Yosys JSON netlist (rewritten atomically);
    returns the assignment."""
    path = Path(netlist_json)
    try:
        netlist = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FloorplanError(f"cannot read the netlist {path}: {e}") from e
    tops = [m for m in netlist.get("modules", {}).values() if m.get("attributes", {}).get("top")]
    if len(tops) != 1:
        raise FloorplanError(f"{path}: expected one top module, found {len(tops)}")
    cells = tops[0].get("cells", {})
    bels = plan_sites(cells, plan)
    for name, bel in bels.items():
        cells[name].setdefault("attributes", {})["BEL"] = bel
    write_text_atomic(path, json.dumps(netlist))
    return bels


def main(argv: list[str] | None = None) -> None:
    """nextpnr wrapper: ``python -m spiketrack.bitstreams.floorplan NEXTPNR [ARGS...]`` applies
    :data:`PLAN_FILE` (in the working folder) to the ``--json`` netlist, writes the assignment to
    ``floorplan_bels.json`` and runs ``NEXTPNR ARGS``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        raise SystemExit("usage: python -m spiketrack.bitstreams.floorplan NEXTPNR [ARGS...]")
    tool, args = argv[0], argv[1:]
    if "--json" not in args or args.index("--json") + 1 >= len(args):
        raise SystemExit("floorplan: nextpnr's arguments name no --json netlist")
    netlist = args[args.index("--json") + 1]
    try:
        plan = json.loads(Path(PLAN_FILE).read_text())
        bels = apply_floorplan(netlist, plan)
    except (OSError, ValueError) as e:
        raise SystemExit(f"floorplan: {e}") from e
    Path("floorplan_bels.json").write_text(json.dumps(bels, indent=1, sort_keys=True))
    print(f"floorplan: {len(bels)} block RAMs placed ({', '.join(plan)})", file=sys.stderr)
    os.execvp(tool, [tool, *args])


if __name__ == "__main__":
    main()
