// cocotb's Verilator main (cocotb/share/lib/verilator/verilator.cpp, cocotb 2.1) with a clock
// driven from C++: `run_cocotb(..., cpp_clock=True)` builds the simulator with this file instead
// of cocotb's. With the environment variable SPIKETRACK_CPP_CLOCK set to a period in the design's
// time precision (1 ps under run_cocotb's timescale: "10000" for 10 ns), the top-level port `clk`
// starts high at time 0 and toggles every half period here, between the callbacks of a time step
// exactly where cocotb's own clock would toggle it (cbAfterDelay, cocotb.clock.Clock, impl="gpi"),
// so a testbench sees the same edges; the simulator advances to the next clock edge or cocotb
// deadline, whichever comes first. Without the variable this is cocotb's main unchanged.
// The clock costs no VPI call, no callback allocation and no GPI work per edge: while the
// testbench waits on a Timer, each edge is a write of `clk` and one evaluation of the model.
//
// With SPIKETRACK_STREAM_PUMP defined (`run_cocotb(..., cpp_stream_pump=True)`; the accelerator
// top's ports), the command and response streams can be moved here too: the testbench pushes
// command words into a queue and takes the response words collected (the functions below,
// exported for Python's ctypes), and each clock cycle is one transfer rule applied in C++.
// See the pump's comment below.
//
// Copyright cocotb contributors
// Licensed under the Revised BSD License, see LICENSE for details.
// SPDX-License-Identifier: BSD-3-Clause

#include <libgen.h>  // basename
#include <stdio.h>   // stderr, fprintf

#include <memory>  // std::unique_ptr
#include <string>  // std::string
#include <cstdlib>  // std::getenv, std::strtoull
#include <cstdint>
#include <deque>
#include <vector>

#include "Vtop.h"
#include "verilated.h"
#include "verilated_vpi.h"

#ifndef VM_TRACE_FST
// emulate new verilator behavior for legacy versions
#define VM_TRACE_FST 0
#endif

#if VM_TRACE
#if VM_TRACE_FST
#include <verilated_fst_c.h>
using verilated_trace_t = VerilatedFstC;
#elif VM_TRACE_SAIF
#include <verilated_saif_c.h>
using verilated_trace_t = VerilatedSaifC;
#else
// VM_TRACE_VCD
#include <verilated_vcd_c.h>
using verilated_trace_t = VerilatedVcdC;
#endif
static verilated_trace_t *tfp;
#endif

static vluint64_t main_time = 0;  // Current simulation time
#if VM_COVERAGE
static bool coverage_per_instance = false;
#endif

double sc_time_stamp() {  // Called by $time in Verilog
    return main_time;     // converts to double, to match
                          // what SystemC does
}

extern "C" {
void vlog_startup_routines_bootstrap(void);
}

static inline bool settle_value_callbacks() {
    bool cbs_called, again;

    // Call Value Change callbacks
    // These can modify signal values so we loop
    // until there are no more changes
    cbs_called = again = VerilatedVpi::callValueCbs();
    while (again) {
        again = VerilatedVpi::callValueCbs();
    }

    return cbs_called;
}

void wrap_up() {
    VerilatedVpi::callCbs(cbEndOfSimulation);

#if VM_TRACE
    if (tfp) {
        // We don't delete the trace object to avoid deadlock in verilator sims.
        tfp->close();
    }
#endif

    // VM_COVERAGE is a define which is set if Verilator is
    // instructed to collect coverage (when compiling the simulation)
#if VM_COVERAGE
    if (coverage_per_instance) {
        Verilated::threadContextp()->coveragep()->forcePerInstance(true);
    }
    VerilatedCov::write();  // Uses +verilator+coverage+file+<filename>,
                            // defaults to coverage.dat
#endif
}


#ifdef SPIKETRACK_STREAM_PUMP
// The stream pump: the accelerator's command stream (i_cmd__valid/payload/ready), response stream
// (o_rsp__valid/payload/ready) and `busy`, moved by C++ while it is on. The rules are those of
// the cocotb testbench's own loop (sim/accel_cocotb_tb.py) with no gaps and no backpressure:
// inputs change just after a falling edge (valid = a word is queued, payload = the oldest word,
// response ready = 1), and just before a rising edge the settled values decide the transfers of
// that edge (command word taken when valid & ready; response word kept when valid & ready). At
// each falling edge `busy` is sampled and its falls counted, so the testbench misses no program's
// end between its wake-ups (which come at falling edges, when the count and the port agree).
// While the pump is on the testbench writes none of these ports. (Verilator spells a port's "__"
// as "___05F" in the model's C++.)
static Vtop *pump_top = nullptr;
static bool pump_on = false;
static std::deque<uint32_t> pump_cmd;
static std::vector<uint32_t> pump_rsp;
static uint64_t pump_busy_falls = 0;
static bool pump_busy = false;

static inline void pump_sample() {
    Vtop *t = pump_top;
    if (t->i_cmd___05Fvalid && t->i_cmd___05Fready && !pump_cmd.empty()) pump_cmd.pop_front();
    if (t->o_rsp___05Fvalid && t->o_rsp___05Fready) pump_rsp.push_back((uint32_t)t->o_rsp___05Fpayload);
}

static inline void pump_drive() {
    Vtop *t = pump_top;
    bool b = t->busy;   // as the last rising edge left it: what the testbench reads from now on
    if (pump_busy && !b) pump_busy_falls++;
    pump_busy = b;
    t->i_cmd___05Fvalid = !pump_cmd.empty();
    if (!pump_cmd.empty()) t->i_cmd___05Fpayload = pump_cmd.front();
    t->o_rsp___05Fready = 1;
}

extern "C" {
// turn the pump on (1) or off (0); on: `busy` as last seen is the current value
__attribute__((visibility("default"))) void spiketrack_pump_enable(int on) {
    pump_on = on != 0;
    if (pump_on && pump_top) pump_busy = pump_top->busy;
}
// queue n command words
__attribute__((visibility("default"))) void spiketrack_pump_push(const uint32_t *words, int n) {
    for (int i = 0; i < n; i++) pump_cmd.push_back(words[i]);
}
// command words queued and not yet taken
__attribute__((visibility("default"))) int spiketrack_pump_pending() { return (int)pump_cmd.size(); }
// response words collected (not yet taken)
__attribute__((visibility("default"))) int spiketrack_pump_available() { return (int)pump_rsp.size(); }
// move up to max collected response words into out; returns how many
__attribute__((visibility("default"))) int spiketrack_pump_take(uint32_t *out, int max) {
    int n = (int)pump_rsp.size() < max ? (int)pump_rsp.size() : max;
    for (int i = 0; i < n; i++) out[i] = pump_rsp[i];
    pump_rsp.erase(pump_rsp.begin(), pump_rsp.begin() + n);
    return n;
}
// falls of `busy` seen since the simulation started (while the pump was on)
__attribute__((visibility("default"))) uint64_t spiketrack_pump_busy_falls() { return pump_busy_falls; }
// `busy` as sampled at the last falling edge
__attribute__((visibility("default"))) int spiketrack_pump_busy() { return pump_busy ? 1 : 0; }
// A backdoor read of a memory (a buffer peek; the design's memories made public, read-only):
// rows first..first+n-1 of the unpacked array `path` (its VPI name, "accel.mem_lv.bank0"), each
// as `words` 32-bit words, least significant first, into out. Called by the testbench while the
// simulation stands still. Returns 0; -1: no such array; -2: a row outside it.
__attribute__((visibility("default"))) int spiketrack_peek_rows(const char *path, int first, int n, int words,
                                                                 uint32_t *out) {
    vpiHandle arr = vpi_handle_by_name((PLI_BYTE8 *)path, nullptr);
    if (!arr) return -1;
    for (int i = 0; i < n; i++) {
        vpiHandle e = vpi_handle_by_index(arr, first + i);
        if (!e) {
            vpi_release_handle(arr);
            return -2;
        }
        s_vpi_value v;
        v.format = vpiVectorVal;
        vpi_get_value(e, &v);
        for (int w = 0; w < words; w++) out[(size_t)i * words + w] = (uint32_t)v.value.vector[w].aval;
        vpi_release_handle(e);
    }
    vpi_release_handle(arr);
    return 0;
}
}
#endif

int main(int argc, char **argv) {
#if VM_TRACE_FST
    const char *traceFile = "dump.fst";
#elif VM_TRACE_SAIF
    const char *traceFile = "dump.saif";
#else
    const char *traceFile = "dump.vcd";
#endif
    bool traceOn = false;
    bool traceFlush = false;
    bool coveragePerInstance = false;

    for (int i = 1; i < argc; i++) {
        std::string arg = std::string(argv[i]);
        if (arg == "--coverage-per-instance") {
#if VM_COVERAGE
            coveragePerInstance = true;
#else
            fprintf(stderr,
                    "Error: --coverage-per-instance requires the design to be "
                    "built with coverage support\n");
            return -1;
#endif
        } else if (arg == "--trace") {
#if VM_TRACE
            traceOn = true;
#else
            fprintf(stderr,
                    "Error: --trace requires the design to be built with trace "
                    "support\n");
            return -1;
#endif
        } else if (arg == "--trace-flush") {
            traceFlush = true;
        } else if (arg == "--trace-file") {
            if (++i < argc) {
                traceFile = argv[i];
            } else {
                fprintf(stderr, "Error: --trace-file requires a parameter\n");
                return -1;
            }
        } else if (arg == "--help") {
            fprintf(
                stderr,
                "usage: %s [--coverage-per-instance] [--trace] [--trace-flush] "
                "[--trace-file TRACEFILE]\n"
                "\n"
                "cocotb + Verilator sim\n"
                "\n"
                "options:\n"
                "  --coverage-per-instance  Force per-instance coverage "
                "(requires coverage build)\n"
                "  --trace                  Enable tracing (VCD, SAIF or FST)\n"
                "  --trace-flush            Flush trace at each time step "
                "(slow)\n"
                "  --trace-file             Specify the trace file name (%s by "
                "default)\n",
                basename(argv[0]), traceFile);
            return 0;
        }
    }

    Verilated::commandArgs(argc, argv);
#if VM_COVERAGE
    coverage_per_instance = coveragePerInstance;
#endif
#ifdef VERILATOR_SIM_DEBUG
    Verilated::debug(99);
#endif
    std::unique_ptr<Vtop> top(new Vtop(""));
#ifdef SPIKETRACK_STREAM_PUMP
    pump_top = top.get();
#endif
    Verilated::fatalOnVpiError(false);  // otherwise it will fail on systemtf

#ifdef VERILATOR_SIM_DEBUG
    Verilated::internalsDump();
#endif

#if VM_TRACE
    Verilated::traceEverOn(true);
    if (traceOn) {
        tfp = new verilated_trace_t;
        top->trace(tfp, 99);
        tfp->open(traceFile);
    }
#endif

    // SPIKETRACK: the C++ clock (see the header)
    vluint64_t clk_half = 0, clk_next = ~0ULL;
    if (const char *period = std::getenv("SPIKETRACK_CPP_CLOCK")) {
        clk_half = std::strtoull(period, nullptr, 10) / 2;
        if (clk_half == 0) {
            fprintf(stderr, "SPIKETRACK_CPP_CLOCK must be a period of at least 2 time steps\n");
            return -1;
        }
        top->clk = 1;
        clk_next = clk_half;
    }

    vlog_startup_routines_bootstrap();
    Verilated::addExitCb([](void *) { wrap_up(); }, nullptr);
    VerilatedVpi::callCbs(cbStartOfSimulation);
    settle_value_callbacks();

    while (!Verilated::gotFinish()) {
        do {
            // We must evaluate whole design until we process all 'events' for
            // this time step
            do {
                top->eval_step();
                VerilatedVpi::clearEvalNeeded();
                VerilatedVpi::doInertialPuts();
                settle_value_callbacks();
            } while (VerilatedVpi::evalNeeded());

            // Run ReadWrite callback as we are done processing this eval step
            VerilatedVpi::callCbs(cbReadWriteSynch);
            VerilatedVpi::doInertialPuts();
            settle_value_callbacks();
        } while (VerilatedVpi::evalNeeded());

        top->eval_end_step();

        // Call ReadOnly callbacks
        VerilatedVpi::callCbs(cbReadOnlySynch);

#if VM_TRACE
        if (tfp) {
            tfp->dump(main_time);
            if (traceFlush) {
                tfp->flush();
            }
        }
#endif
        // cocotb controls the clock inputs using cbAfterDelay so
        // skip ahead to the next registered callback
        const vluint64_t NO_TOP_EVENTS_PENDING = static_cast<vluint64_t>(~0ULL);
        vluint64_t next_time_cocotb = VerilatedVpi::cbNextDeadline();
        vluint64_t next_time_timing =
            top->eventsPending() ? top->nextTimeSlot() : NO_TOP_EVENTS_PENDING;
        vluint64_t next_time = std::min(std::min(next_time_cocotb, next_time_timing), clk_next);

        // If there are no more cbAfterDelay callbacks,
        // the next deadline is max value, so end the simulation now
        if (next_time == NO_TOP_EVENTS_PENDING) {
            break;
        } else {
            main_time = next_time;
        }

        // Call registered NextSimTime
        // It should be called in simulation cycle before everything else
        // but not on first cycle
        VerilatedVpi::callCbs(cbNextSimTime);
        settle_value_callbacks();

        // SPIKETRACK: the C++ clock's edge, before this time step's timed callbacks (cocotb's
        // clock toggles in the first timed callback of its time step)
        if (main_time == clk_next) {
#ifdef SPIKETRACK_STREAM_PUMP
            const bool rising = !top->clk;
            if (pump_on && rising) pump_sample();
#endif
            top->clk = !top->clk;
            clk_next += clk_half;
#ifdef SPIKETRACK_STREAM_PUMP
            if (pump_on && !rising) pump_drive();
#endif
        }

        // Call registered timed callbacks (e.g. clock timer)
        // These are called at the beginning of the time step
        // before the iterative regions (IEEE 1800-2012 4.4.1)
        VerilatedVpi::callTimedCbs();
        settle_value_callbacks();
    }

    top->final();

    wrap_up();

#if VM_TRACE
    if (tfp) {
        delete tfp;
        tfp = nullptr;
    }
#endif

    // Fail the sim if any assertion/error fired during the run.
    if (Verilated::threadContextp()->errorCount() > 0) {
        return 1;
    }

    return 0;
}
