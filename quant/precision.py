"""The weight-precision table: the tracking AUC of each weight precision of the shipped default.

Issue #12's rule: the weight precision is the cheapest that loses at most :data:`MAX_AUC_LOSS`
against the float model on ``synthetic``. The measured table lives next to the checkpoint it was
measured for, ``model/checkpoints/<name>.precision.json`` (:func:`table_path`), written by::

    python -m spiketrack.quant.precision --out FILE --eval float=DIR/NAME --eval int8=DIR/NAME ...

from the outputs of ``spiketrack eval --json`` runs (``NAME.json``: the summary it prints,
``NAME.cmd``: the command line, ``NAME.time``: wall seconds first). Each row holds the AUC, the
command, the wall time and the weight bytes of its plan; the file holds the SHA-256 of the
checkpoint and of the integer network (:func:`network_sha256`) it was measured for.

``spiketrack compile --json`` reports :func:`precision_block`: the weight precision of the network
it compiles and, only when that network (and checkpoint) is the one the table was measured for,
the table; otherwise the block says why there are no figures.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

TABLE_FORMAT = "spiketrack-precision-table"
TABLE_VERSION = 1
#: Issue #12: the cheapest weight precision within this much tracking AUC of float on ``synthetic``.
MAX_AUC_LOSS = 0.02
#: The rows of a table, in order: the float parent, its post-training quantisations, the QAT default.
ROWS = ("float", "int8", "int4", "mixed", "qat-int8")
ROW_LABELS = {"float": "float parent (no quantisation)", "int8": "post-training int8 of the float parent",
              "int4": "post-training int4 of the float parent", "mixed": "post-training mixed of the float parent",
              "qat-int8": "QAT int8 (the checkpoint itself)"}
SUMMARY_KEYS = ("auc", "precision", "norm_precision", "ao", "sr50", "sr75", "fps", "sequences", "frames")


def table_path(checkpoint: str | Path) -> Path:
    """Where the precision table of ``checkpoint`` lives: ``<stem>.precision.json`` beside it."""
    p = Path(checkpoint)
    return p.with_name(f"{p.stem}.precision.json")


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def network_sha256(net) -> str:
    """SHA-256 of an integer network's content: layers (name, op, inputs, attributes) and each
    parameter's dtype, shape and bytes, plus inputs, outputs and meta (less the source checkpoint's
    path). Independent of how (or whether) it was saved, so a lowered checkpoint and its saved
    artifact give the same digest."""
    h = hashlib.sha256()
    meta = {k: v for k, v in net.meta.items() if k != "source_checkpoint"}  # a path, set by `quantize`
    head = {"inputs": net.inputs, "outputs": net.outputs, "meta": meta,
            "layers": [[l.name, l.op, l.inputs, l.attrs, sorted(l.params)] for l in net.layers]}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    for layer in net.layers:
        for name in sorted(layer.params):
            a = layer.params[name]
            h.update(f"{layer.name}/{name}:{a.dtype.str}:{list(a.shape)}".encode())
            h.update(a.tobytes(order="C"))
    return h.hexdigest()


def rule_pick(rows: list[dict], max_loss: float = MAX_AUC_LOSS) -> str | None:
    """The cheapest quantised row (fewest weight bytes; ties: higher AUC) whose AUC is at least the
    float row's minus ``max_loss``; None when none is."""
    ref = next(r["auc"] for r in rows if r["model"] == "float")
    ok = [r for r in rows if r["weight_bytes"] is not None and r["auc"] >= ref - max_loss - 1e-12]
    if not ok:
        return None
    return min(ok, key=lambda r: (r["weight_bytes"], -r["auc"]))["model"]


def load_table(path: str | Path) -> dict:
    """Read and check a precision table; ValueError naming the problem."""
    p = Path(path)
    try:
        t = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"precision table {p} cannot be read ({e})") from None
    if t.get("format") != TABLE_FORMAT or t.get("version") != TABLE_VERSION:
        raise ValueError(f"{p} is not a version-{TABLE_VERSION} {TABLE_FORMAT} file")
    models = [r.get("model") for r in t.get("rows", [])]
    if "float" not in models:
        raise ValueError(f"precision table {p} has no float row")
    return t


def precision_block(net, weight_bits, checkpoint: str | Path | None = None,
                    table: str | Path | None = None) -> dict:
    """The ``precision`` block of ``spiketrack compile``'s report.

    Parameters
    ----------
    net : the integer network being compiled.
    weight_bits : its weight precision as the compiler reports it (8, 4 or "mixed").
    checkpoint : the checkpoint it was lowered from (None for ``--artifact``); its SHA-256 must be the
        table's as well.
    table : the precision table (default: :func:`table_path` of ``checkpoint``, or of the shipped
        default for an artifact).

    Returns
    -------
    dict
        ``weight_bits``, ``table_file``, ``matches`` and, when it matches, the table's ``dataset``,
        ``sequences``, ``auc`` per row, ``rows``, ``rule`` and ``rule_pick``; otherwise ``auc`` None
        and ``note`` saying why.
    """
    if table is None:
        if checkpoint is None:
            from spiketrack.model.checkpoint import DEFAULT_CHECKPOINT

            table = table_path(DEFAULT_CHECKPOINT)
        else:
            table = table_path(checkpoint)
    table = Path(table)
    out = {"weight_bits": weight_bits, "table_file": str(table), "matches": False, "auc": None}
    if not table.is_file():
        out["note"] = f"no precision table at {table}: no AUC figures for this network"
        return out
    try:
        t = load_table(table)
    except ValueError as e:
        out["note"] = f"{e}: no AUC figures for this network"
        return out
    m = t["measured_for"]
    sha = network_sha256(net)
    why = []
    if sha != m["network_sha256"]:
        why.append(f"this integer network's SHA-256 is {sha}, the table's {m['network_sha256']}")
    if checkpoint is not None:
        csha = file_sha256(checkpoint)
        if csha != m["checkpoint_sha256"]:
            why.append(f"checkpoint {checkpoint} has SHA-256 {csha}, the table's {m['checkpoint_sha256']}")
    if why:
        out["note"] = (f"the AUC table in {table} was measured for {m['checkpoint']}, not for this network ("
                       + "; ".join(why) + "): no AUC figures for this network")
        return out
    rows = t["rows"]
    out.update({"matches": True, "measured_for": m, "dataset": t["dataset"], "sequences": t["sequences"],
                "auc": {r["model"]: r["auc"] for r in rows},
                "weight_bytes": {r["model"]: r["weight_bytes"] for r in rows},
                "rule": t["rule"], "max_auc_loss": t["max_auc_loss"], "rule_pick": rule_pick(rows, t["max_auc_loss"]),
                "network_row": t.get("network_row"), "rows": rows})
    pick, own = out["rule_pick"], out["network_row"]
    if pick != own and own in out["auc"]:
        def fig(m):
            nb = out["weight_bytes"].get(m)
            return f"AUC {out['auc'][m]:.3f}" + (f", {nb} weight bytes" if nb is not None else "")

        out["note"] = (f"the rule picks {pick} ({fig(pick)})" if pick else "no row meets the rule") + (
            f"; this network is the {own} row ({fig(own)})")
    return out


def _eval_row(model: str, stem: Path) -> dict:
    summary = json.loads(stem.with_name(stem.name + ".json").read_text())
    command = stem.with_name(stem.name + ".cmd").read_text().strip()
    wall = float(stem.with_name(stem.name + ".time").read_text().split()[0])
    row = {"model": model, "label": ROW_LABELS[model]}
    row.update({k: summary[k] for k in SUMMARY_KEYS})
    row.update({"command": command, "wall_s": round(wall, 1)})
    return row


def build_table(evals: dict[str, Path], checkpoint: str | Path, float_checkpoint: str | Path) -> dict:
    """The table for ``checkpoint`` (a QAT checkpoint) and its float parent from eval outputs
    ``evals`` (row name -> output stem, see the module doc); weight bytes computed here."""
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model, weight_bytes

    unknown = sorted(set(evals) - set(ROWS))
    if unknown or "float" not in evals:
        raise ValueError(f"rows must be among {', '.join(ROWS)} and include float; got {', '.join(sorted(evals))}")
    fmodel, _ = model_from_checkpoint(float_checkpoint)
    qmodel, ck = model_from_checkpoint(checkpoint)
    if getattr(qmodel, "quant_format", None) is None:
        raise ValueError(f"{checkpoint} is not a QAT checkpoint")
    qmodel = quantize_model(qmodel.eval())
    bytes_of = {"float": None, "qat-int8": weight_bytes(qmodel)}
    for plan in ("int8", "int4", "mixed"):
        bytes_of[plan] = weight_bytes(quantize_model(fmodel.eval(), QuantFormat(weight_bits=plan.removeprefix("int"))))
    rows = []
    for model in ROWS:
        if model in evals:
            row = _eval_row(model, Path(evals[model]))
            wb = bytes_of[model]
            row["weight_bytes"] = None if wb is None else wb["bytes"]
            row["weight_bytes_by_bits"] = None if wb is None else wb["by_bits"]
            rows.append(row)
    datasets = {r["command"].split("--dataset ", 1)[1].split()[0] for r in rows if "--dataset " in r["command"]}
    seqs = {r["sequences"] for r in rows}
    if len(datasets) != 1 or len(seqs) != 1:
        raise ValueError(f"the rows differ in dataset ({datasets}) or sequence count ({seqs})")
    return {
        "format": TABLE_FORMAT, "version": TABLE_VERSION,
        "dataset": datasets.pop(), "sequences": seqs.pop(),
        "measured_for": {"checkpoint": Path(checkpoint).name, "checkpoint_sha256": file_sha256(checkpoint),
                         "network_sha256": network_sha256(lower(qmodel)),
                         "float_parent": Path(float_checkpoint).name,
                         "float_parent_sha256": file_sha256(float_checkpoint)},
        "network_row": "qat-int8",
        "rule": f"the cheapest weight precision within {MAX_AUC_LOSS} AUC of the float model",
        "max_auc_loss": MAX_AUC_LOSS,
        "rows": rows,
    }


def main(argv=None) -> int:
    import argparse

    from spiketrack.atomic import write_text_atomic
    from spiketrack.model.checkpoint import DEFAULT_CHECKPOINT, FLOAT_CHECKPOINT

    p = argparse.ArgumentParser(prog="python -m spiketrack.quant.precision", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT), help="the QAT checkpoint (default: the shipped one)")
    p.add_argument("--float-checkpoint", default=str(FLOAT_CHECKPOINT), help="its float parent")
    p.add_argument("--eval", action="append", default=[], metavar="ROW=STEM",
                   help=f"row ({', '.join(ROWS)}) and the stem of its STEM.json / STEM.cmd / STEM.time")
    p.add_argument("--out", default=None, help="table file (default: beside the checkpoint)")
    args = p.parse_args(argv)
    evals = dict(e.split("=", 1) for e in args.eval)
    t = build_table(evals, args.checkpoint, args.float_checkpoint)
    out = args.out or table_path(args.checkpoint)
    write_text_atomic(out, json.dumps(t, indent=1) + "\n")
    print(f"{out}: " + ", ".join(f"{r['model']} {r['auc']:.3f}" for r in t["rows"])
          + f"; rule pick: {rule_pick(t['rows'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
