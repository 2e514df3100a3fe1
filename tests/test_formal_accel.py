"""Formal proofs of the accelerator that ships (formal/accel.py, accel_units.py, link.py; docs/formal.md).

The proofs and their mutants are registered in ``formal/proofs.py`` (so ``make formal`` and
``python -m spiketrack.formal`` run them, and ``tests/test_formal_proofs.py`` checks PASS / FAIL).
Here: each mutant fails on the very property it breaks (not on another one; the two bugs the
proofs found are mutants that re-introduce them), and the harness helpers name what they cannot
find. The solver runs carry the ``formal`` marker except where the proof is fast (``Proof.fast``, and
``Proof.fast_mutants`` for its mutants).
"""

import pytest

from spiketrack.formal import accel, accel_top
from spiketrack.formal.harness import fsm_in, signal_named
from spiketrack.formal.mutants import load
from spiketrack.formal.proofs import PROOFS, run_mutant
from spiketrack.formal.sby import run_sby
from spiketrack.hw.accel import protocol

# mutant -> the property its counterexample must violate
EXPECTED = {
    ("conv_contract", "done_early"): "out.write_only_while_busy",
    ("vec_contract", "done_early"): "out.write_only_while_busy",
    ("mb_contract", "done_early"): "out.write_only_while_busy",
    ("accel_rsp_stream", "reply_overwrites"): "o_rsp.payload_stable",
    ("accel_rsp_stream", "valid_falls_early"): "o_rsp.valid_held",
    ("accel_rsp_transfers", "ack_repeats"): "rsp.reply_to_a_command",
    ("accel_rsp_transfers", "ack_drops_status"): "rsp.previous_reply_complete",
    ("accel_rsp_transfers", "refused_empty_write_skips"): "rsp.previous_reply_complete",
    ("accel_counters", "rsp_stall_counted_twice"): "ctr.rsp_stall",
    ("accel_counters", "last_descriptor_uncounted"): "ctr.descriptors",
    ("accel_counters", "lv_reads_one_port"): "ctr.lv_reads",
    ("accel_commands", "ready_in_range"): "cmd.header_as_header",
    ("accel_commands", "payload_consumed_without_take"): "cmd.payload_word_index",
    ("accel_commands", "refused_empty_write_skips"): "cmd.header_as_header",
    ("accel_template_write", "guard_ignored"): "tm.no_template_write_in_search",
    ("accel_template_write", "guard_while_running"): "run.guard_stable",
    ("accel_template_write", "block_template_runs"): "tm.no_template_write_in_search",
    ("link_stream", "cmd_reads_ahead"): "o_cmd.payload_stable",
    ("link_stream", "byte_valid_falls_early"): "o_byte.valid_held",
    ("uart_stream", "overwrites_stalled_byte"): "o_byte.payload_stable",
    ("link_crc_step", "wrong_polynomial"): "crc.step_matches_host",
    ("link_rejects", "crc_check_skipped"): "o_cmd.never_bad_crc",
    ("link_rejects", "kind_check_skipped"): "o_cmd.never_unknown_command",
    ("link_rejects", "write_without_address"): "o_cmd.never_bad_length",
    # (c) and (e) of the units (formal/accel_units.py)
    ("conv_saturation", "requant_sat_uncounted"): "counters.saturated_exact",
    ("conv_counters", "no_group_spacing"): "counters.busy_model",
    ("vec_add_saturation", "add_sat_uncounted"): "counters.saturated_exact",
    ("vec_add_saturation", "add_wraps"): "out.exact_value",
    ("vec_saturation", "pool_sat_uncounted"): "counters.saturated_exact",
    ("vec_counters", "neuron_word_3_cycles"): "counters.busy_model",
    ("mb_accumulate", "product_4_bits"): "out.exact_sum",
    ("mb_counters", "busy_misses_take"): "counters.busy_model",
}


def test_every_accel_mutant_has_an_expected_property():
    names = {"conv_contract", "vec_contract", "mb_contract", "accel_rsp_stream", "accel_rsp_transfers",
             "accel_template_write", "accel_counters", "accel_commands",
             "link_stream", "uart_stream", "link_crc_step", "link_rejects", "conv_saturation", "conv_counters",
             "vec_add_saturation", "vec_saturation", "vec_counters", "mb_accumulate", "mb_counters"}
    registered = {(n, mu.name) for n in names for mu in PROOFS[n].mutants}
    assert registered == set(EXPECTED)


def _mutant_params():
    return [pytest.param(PROOFS[p], mu, id=f"{p}-{mu}",
                         marks=() if PROOFS[p].fast and PROOFS[p].fast_mutants else pytest.mark.formal)
            for p, mu in EXPECTED]


# proofs whose harness adds lemmas: their mutants run on the contract alone here, so the
# counterexample breaks the contract itself, not only a lemma about the unit's internals
CONTRACT_ONLY = {"mb_contract": accel.mb_contract}


@pytest.mark.parametrize("proof, mutant_name", _mutant_params())
def test_mutant_fails_on_its_property(proof, mutant_name):
    mutant = next(mu for mu in proof.mutants if mu.name == mutant_name)
    if proof.name in CONTRACT_ONLY:
        res = run_sby(f"{proof.name}__{mutant.name}__contract", CONTRACT_ONLY[proof.name](load(proof.unit, mutant)),
                      mode="bmc", depth=proof.mutant_depth, cut=proof.cut)
    else:
        res = run_mutant(proof, mutant)
    assert res.status == "FAIL", res.describe()
    assert EXPECTED[proof.name, mutant_name] in [p for p, _ in res.failed], res.describe()
    assert res.traces and all(t.exists() for t in res.traces), res.describe()


def test_probes_name_what_is_missing():
    from amaranth import Module
    body = Module()   # no signals, no FSM
    body._MustUse__silence = True
    with pytest.raises(KeyError, match="'guard'"):
        signal_named(body, "guard")
    with pytest.raises(KeyError, match="no FSM 'rx'"):
        fsm_in(body, "rx", "SOF")


def test_every_top_counter_is_proved_or_named_as_not():
    """A counter added to ``protocol.COUNTERS`` must be added to ``accel_counters`` or named as not proved."""
    assert sorted(accel_top.COUNTED + accel_top.NOT_COUNTED) == sorted(protocol.COUNTERS)
    assert not set(accel_top.COUNTED) & set(accel_top.NOT_COUNTED)
