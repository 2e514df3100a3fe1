"""The accelerator's command protocol: 32-bit words on one command stream, replies on one
response stream. The RTL (:mod:`.top`) and the host driver (:mod:`spiketrack.sim.accel_driver`)
both take their constants from here.

Command = header word, address word, payload::

    word 0: op[3:0] | mem[7:4] | count[31:8]
    word 1: address (first row / first descriptor)
    WRITE : count rows of memory ``mem``, each as ``words_per_row(width)`` words, low word first
    READ  : none (reply: status word, then count rows as words)
    RUN   : none; ``mem`` is the run kind (RUN_RAW, RUN_TEMPLATE, RUN_SEARCH), ``address`` the
            first descriptor, ``count`` the number of descriptors (reply: status word at start)
    STATUS: none (reply: status word, flags word, then the counters of :data:`COUNTERS`)
    GUARD : template-memory rows ``[0, address)`` are template slots: a search run cannot write them

Memory ``EXT`` (7) is the external memory of an accelerator built with one (``Accelerator(ext=...)``:
the board's SDRAM, where its weights live): a row is :data:`EXT_ROW_BITS` bits, two 16-bit words of
the external bus at word address ``2 · row`` (low word first); WRITE and READ reach it like any
memory, one bus command per row. An accelerator without one refuses it as an unknown memory.

Every command gets one status word first: ``0xA5 << 24 | op << 20 | err << 16 | (count & 0xFFFF)``.
A refused command (``err != 0``) is not executed; the payload of a refused WRITE is read and
dropped. A WRITE whose payload stops for :data:`TIMEOUT` cycles is ended with ``ERR_TRUNCATED``
(the rows already complete stay written; nothing outside the addressed rows is touched).
"""

from __future__ import annotations

__all__ = ["Op", "Mem", "Err", "RunKind", "MEM_IDS", "EXT_ROW_BITS", "COUNTERS", "STATUS_MAGIC", "TIMEOUT", "words_per_row",
           "header", "status_word", "parse_status", "row_words", "words_row"]

STATUS_MAGIC = 0xA5
TIMEOUT = 4096   #: cycles without a payload word before a WRITE is ended as truncated


class Op:
    NOP, WRITE, READ, RUN, STATUS, GUARD = 0, 1, 2, 3, 4, 5


class Mem:
    PROG, W, TAB, CST, LV, ST, TM, EXT = 0, 1, 2, 3, 4, 5, 6, 7


EXT_ROW_BITS = 32   #: a row of memory EXT: two 16-bit words of the external bus


MEM_IDS = {"prog": Mem.PROG, "w": Mem.W, "tab": Mem.TAB, "cst": Mem.CST, "lv": Mem.LV, "st": Mem.ST, "tm": Mem.TM}


class RunKind:
    RAW, TEMPLATE, SEARCH = 0, 1, 2


class Err:
    OK = 0
    BUSY = 1        #: WRITE/READ/RUN/GUARD while a program runs
    BAD_OP = 2      #: unknown op
    BAD_MEM = 3     #: unknown memory id (or run kind)
    RANGE = 4       #: rows outside the memory
    ORDER = 5       #: a search run before a template run completed since the last load
    TRUNCATED = 6   #: a WRITE payload stopped before its last row
    NAMES = {0: "ok", 1: "busy", 2: "unknown op", 3: "unknown memory", 4: "out of range", 5: "out of order",
             6: "truncated"}


#: Counters returned by STATUS, in order (32 bits each, wrap around).
COUNTERS = ("cycles", "run_cycles", "runs", "descriptors", "ctrl_cycles", "conv_busy", "vec_busy", "mb_busy",
            "events", "saturated",
            "lv_reads", "lv_writes", "st_reads", "st_writes", "tm_reads", "tm_writes", "w_reads", "tab_reads",
            "cst_reads", "prog_reads", "guard_blocked", "rsp_stall", "fetch_busy", "ext_words", "w_writes")


def words_per_row(width: int) -> int:
    return -(-width // 32)


def header(op: int, mem: int = 0, count: int = 0) -> int:
    if not 0 <= count < 1 << 24:
        raise ValueError(f"count {count} does not fit 24 bits")
    return (op & 15) | (mem & 15) << 4 | count << 8


def status_word(op: int, err: int, count: int) -> int:
    return STATUS_MAGIC << 24 | (op & 15) << 20 | (err & 15) << 16 | (count & 0xFFFF)


def parse_status(word: int) -> dict:
    """``{op, err, count}`` of a status word; a word without the magic byte is a protocol error."""
    if word >> 24 != STATUS_MAGIC:
        raise ValueError(f"not a status word: {word:#010x} (protocol out of step)")
    return {"op": word >> 20 & 15, "err": word >> 16 & 15, "count": word & 0xFFFF}


def row_words(row: int, width: int) -> list[int]:
    """One memory row (an int of ``width`` bits) as 32-bit words, low first."""
    return [(row >> (32 * i)) & 0xFFFFFFFF for i in range(words_per_row(width))]


def words_row(words, width: int) -> int:
    return sum(int(w) << (32 * i) for i, w in enumerate(words)) & ((1 << width) - 1)
