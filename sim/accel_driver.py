"""Host driver of the accelerator: one class, any transport (simulation or a board's link).

:class:`AccelDriver` speaks the command protocol of :mod:`spiketrack.hw.accel.protocol` over a
*transport*: any object with ``send(words)`` (32-bit words to the command stream) and
``recv(n)`` (the next ``n`` response words; blocking). :class:`SimTransport` connects it to an
amaranth.sim testbench (:mod:`spiketrack.sim.accel_sim`); a board link provides the same two
methods. Every reply's status word is checked: a refused command raises :class:`AccelError`
naming the command and the reason.
"""

from __future__ import annotations

import collections
import queue
import threading

from spiketrack.hw.accel.protocol import COUNTERS, EXT_ROW_BITS, MEM_IDS, Err, Mem, Op, RunKind, header, parse_status, row_words, \
    words_per_row, words_row

__all__ = ["AccelDriver", "AccelError", "SimTransport"]


class AccelError(RuntimeError):
    """The accelerator refused a command (``err``: the protocol's error code)."""

    def __init__(self, what: str, err: int):
        super().__init__(f"{what}: refused by the accelerator ({Err.NAMES.get(err, err)})")
        self.err = err


class SimTransport:
    """Word queues between a driver (its own thread) and a simulation testbench."""

    def __init__(self):
        self.to_dev: queue.Queue = queue.Queue()
        self._rx: collections.deque = collections.deque()   # response words not yet taken by recv
        self._rx_ready = threading.Condition()
        self.closed = threading.Event()
        self.busy_falls = 0          #: programs the testbench saw finish (busy falling)
        self.fell = threading.Condition()
        self.was_busy = False
        self.result = None
        self.error: BaseException | None = None
        self.wanted = 0              #: response words the host has asked ``recv`` for and not yet got
        self.kick = threading.Event()  #: set when the host sends words or starts waiting for some
        #: backdoor reads asked by the host (:meth:`peek`), answered by the testbench with
        #: ``peek_reader`` while the simulation stands still (:meth:`serve_peeks`)
        self.peeks: queue.Queue = queue.Queue()
        self.peek_reader = None

    # ---------------------------------------------------------------- testbench side
    def start_host(self, fn) -> threading.Thread:
        """Run the host side ``fn()`` in a thread; its value lands in ``result``, an exception in
        ``error``; ``closed`` is set when it returns."""
        def worker():
            try:
                self.result = fn()
            except BaseException as e:  # handed to the testbench's caller
                self.error = e
            finally:
                self.closed.set()
                self.kick.set()

        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        return thread

    def next_word(self, quiet: int, patience: int):
        """The next command word, or None. Once the design has been quiet for ``patience`` cycles,
        wait up to 50 ms for one (the host thread is busy computing; cycles would be wasted)."""
        try:
            return self.to_dev.get_nowait() if quiet < patience else self.to_dev.get(timeout=0.05)
        except queue.Empty:
            return None

    def observe_busy(self, busy: bool) -> None:
        """Called by the testbench every cycle with the design's ``busy``."""
        if self.was_busy and not busy:
            self.note_busy_fell()
        self.was_busy = bool(busy)

    def note_busy_fell(self) -> None:
        with self.fell:
            self.busy_falls += 1
            self.fell.notify_all()

    def wait_busy_fell(self, after: int, timeout: float = 3600.0) -> None:
        """Block until more than ``after`` programs have finished (no polling traffic meanwhile)."""
        with self.fell:
            if not self.fell.wait_for(lambda: self.busy_falls > after or self.closed.is_set(), timeout):
                raise TimeoutError(f"the accelerator stayed busy for {timeout} s")

    def peek(self, mem: str, addr: int, n: int, timeout: float = 600.0) -> list[int]:
        """Host side: rows ``addr .. addr + n - 1`` of memory ``mem`` read by the simulator's
        backdoor (no command, no simulated cycle), once every command sent before has been
        taken and the design is idle. Only a testbench that sets ``peek_reader`` answers."""
        if self.peek_reader is None:
            raise RuntimeError("this simulation has no backdoor reads (Verilator built with the stream pump)")
        done, box = threading.Event(), {}
        self.peeks.put((mem, addr, n, done, box))
        self.kick.set()
        while not done.wait(0.5):
            if self.closed.is_set() or timeout <= 0:
                raise TimeoutError(f"backdoor read of {n} rows of {mem!r} at {addr} not answered")
            timeout -= 0.5
        if "error" in box:
            raise box["error"]
        return box["rows"]

    def serve_peeks(self) -> int:
        """Testbench side, where the simulation stands still and the design is idle: answer the
        queued :meth:`peek` requests with ``peek_reader(mem, addr, n)``; returns how many."""
        served = 0
        while True:
            try:
                mem, addr, n, done, box = self.peeks.get_nowait()
            except queue.Empty:
                return served
            try:
                box["rows"] = self.peek_reader(mem, addr, n)
            except Exception as e:   # handed to the host thread
                box["error"] = e
            done.set()
            served += 1

    def send(self, words) -> None:
        for w in words:
            self.to_dev.put(int(w) & 0xFFFFFFFF)
        self.kick.set()

    def deliver(self, words) -> None:
        """Testbench side: response words from the design, in order."""
        with self._rx_ready:
            self._rx.extend(words)
            self._rx_ready.notify_all()

    def undelivered_wanted(self) -> int:
        """Response words the host waits for beyond those delivered (0: the host is not waiting)."""
        return max(0, self.wanted - len(self._rx))

    def recv(self, n: int, timeout: float = 600.0) -> list[int]:
        with self._rx_ready:
            self.wanted += n
            self.kick.set()
            try:
                while len(self._rx) < n:   # timeout: at most this long without a word
                    had = len(self._rx)
                    if not self._rx_ready.wait_for(lambda: len(self._rx) > had, timeout):
                        raise TimeoutError(f"no response word from the accelerator within {timeout} s "
                                           f"({had} of {n} words came)")
                return [self._rx.popleft() for _ in range(n)]
            finally:
                self.wanted -= n


class AccelDriver:
    """Commands of the accelerator (see :mod:`spiketrack.hw.accel.protocol`).

    Parameters
    ----------
    transport : object with ``send(words)`` and ``recv(n)``.
    widths : dict of memory name -> row width in bits (``hw.accel.top.mem_widths``).
    """

    def __init__(self, transport, widths: dict[str, int]):
        self.t, self.widths = transport, dict(widths)

    def _status(self, what: str, op: int) -> dict:
        st = parse_status(self.t.recv(1)[0])
        if st["op"] != op:
            raise AccelError(f"{what}: reply to op {st['op']}, expected {op} (protocol out of step)", -1)
        if st["err"]:
            raise AccelError(what, st["err"])
        return st

    def _width(self, mem: str) -> int:
        if mem == "ext":
            return EXT_ROW_BITS
        if mem not in self.widths:
            raise ValueError(f"no memory {mem!r}; memories: {', '.join(self.widths)}, ext")
        return self.widths[mem]

    def write(self, mem: str, addr: int, rows) -> None:
        """Write ``rows`` from ``addr``; split into several WRITE commands where the transport
        carries at most ``max_words`` words per command (a framed link). ``mem`` ``"ext"``: the
        external memory, 32-bit rows (``protocol.EXT_ROW_BITS``)."""
        w = self._width(mem)
        rows = [int(r) for r in rows]
        limit = getattr(self.t, "max_words", None)
        step = max(1, (limit - 2) // words_per_row(w)) if limit else max(1, len(rows))
        for i in range(0, max(1, len(rows)), step):
            part = rows[i:i + step]
            words = [header(Op.WRITE, MEM_IDS.get(mem, Mem.EXT), len(part)), addr + i]
            for r in part:
                words += row_words(r, w)
            self.t.send(words)
            self._status(f"write {len(part)} rows of {mem!r} at {addr + i}", Op.WRITE)

    def read(self, mem: str, addr: int, n: int) -> list[int]:
        w = self._width(mem)
        self.t.send([header(Op.READ, MEM_IDS.get(mem, Mem.EXT), n), addr])
        self._status(f"read {n} rows of {mem!r} at {addr}", Op.READ)
        k = words_per_row(w)
        words = self.t.recv(n * k)
        return [words_row(words[i * k:(i + 1) * k], w) for i in range(n)]

    def peek(self, mem: str, addr: int, n: int) -> list[int]:
        """Rows ``addr .. addr + n - 1`` of ``mem`` by the transport's backdoor (a simulation
        that has one: :meth:`SimTransport.peek`), the same rows :meth:`read` returns."""
        if mem not in self.widths:
            raise ValueError(f"no memory {mem!r}; memories: {', '.join(self.widths)}")
        return self.t.peek(mem, addr, n)

    def run(self, first: int, count: int, kind: int = RunKind.RAW) -> None:
        self._falls = getattr(self.t, "busy_falls", None)
        self.t.send([header(Op.RUN, kind, count), first])
        self._status(f"run {count} descriptors from {first}", Op.RUN)

    def guard(self, rows: int) -> None:
        self.t.send([header(Op.GUARD), rows])
        self._status(f"guard {rows}", Op.GUARD)

    def status(self) -> dict:
        """``{busy, template_valid, counters...}``."""
        self.t.send([header(Op.STATUS), 0])
        st = self._status("status", Op.STATUS)
        words = self.t.recv(st["count"])
        flags = words[0]
        return {"busy": bool(flags & 1), "template_valid": bool(flags >> 1 & 1), "guard": flags >> 8,
                **dict(zip(COUNTERS, words[1:]))}

    def wait_idle(self) -> dict:
        """Status once the running program has finished (a simulation transport says when busy
        falls; otherwise STATUS is polled)."""
        falls = getattr(self, "_falls", None)
        if falls is not None and hasattr(self.t, "wait_busy_fell"):
            self._falls = None
            self.t.wait_busy_fell(falls)
        while True:
            st = self.status()
            if not st["busy"]:
                return st
