"""A compile cache for Verilator's run-time library (its ``OBJCACHE`` hook, as ``ccache`` would be).

Every Verilator build compiles the same run-time sources (``verilated.cpp``, ``verilated_vpi.cpp``,
``verilated_dpi.cpp``, ``verilated_threads.cpp``) with the same flags: about 15 s of a build's 26 s
for a small unit. ``run_cocotb`` sets ``OBJCACHE`` to this script, so make runs each compile as
``objcache.py <compiler> <arguments>``. A compile of a source under ``$VERILATOR_ROOT/include``
whose object and dependency file are cached under the same key is answered from the cache; any
other compile (the design's classes, the C++ main) runs unchanged.

The key covers the whole command line, the source's bytes and the size and modification time of
every file in the run-time include folder (a reinstalled Verilator changes it). The design's own
headers are not read by these sources: the run-time library is the same for every design.
Entries are written atomically (a temporary file renamed), so parallel builds may share a cache.

Usage (by make): ``python -m spiketrack.sim.objcache CXX ARGS...``; the cache folder is
``$SPIKETRACK_OBJCACHE_DIR``, the include folder ``$SPIKETRACK_VERILATOR_INCLUDE`` (else
``$VERILATOR_ROOT/include``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["cache_key", "main", "CACHE_DIR_ENV", "INCLUDE_ENV"]

CACHE_DIR_ENV = "SPIKETRACK_OBJCACHE_DIR"
INCLUDE_ENV = "SPIKETRACK_VERILATOR_INCLUDE"   #: the run-time include folder (else $VERILATOR_ROOT/include)


def _runtime_include() -> Path | None:
    if os.environ.get(INCLUDE_ENV):
        return Path(os.environ[INCLUDE_ENV]).resolve()
    root = os.environ.get("VERILATOR_ROOT")
    return Path(root, "include").resolve() if root else None


def _cacheable(args: list[str]) -> tuple[Path, Path] | None:
    """``(source, object)`` of a compile of one run-time source to ``-o OBJECT``, else None."""
    include = _runtime_include()
    if include is None or "-c" not in args or "-o" not in args:
        return None
    i = args.index("-o")
    if i + 1 >= len(args):
        return None
    sources = [a for a in args if a.endswith((".cpp", ".cc", ".c")) and not a.startswith("-")]
    if len(sources) != 1:
        return None
    src = Path(sources[0]).resolve()
    if include not in src.parents:
        return None
    return src, Path(args[i + 1])


def cache_key(args: list[str], source: Path, include: Path) -> str:
    """SHA-256 over the command line, the source's bytes and the include folder's file stamps."""
    h = hashlib.sha256(json.dumps(args).encode())
    h.update(source.read_bytes())
    for f in sorted(include.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(include)} {st.st_size} {st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def _put(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f"{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print("objcache: usage: objcache.py COMPILER ARGS...", file=sys.stderr)
        return 2
    found = _cacheable(args)
    cache_dir = os.environ.get(CACHE_DIR_ENV)
    if found is None or not cache_dir:
        return subprocess.call(args)
    source, obj = found
    dep = obj.with_suffix(".d")
    key = cache_key(args, source, _runtime_include())
    cached_obj, cached_dep = Path(cache_dir) / f"{key}.o", Path(cache_dir) / f"{key}.d"
    if cached_obj.is_file() and cached_dep.is_file():
        _put(cached_obj, obj)
        _put(cached_dep, dep)
        return 0
    rc = subprocess.call(args)
    if rc == 0 and obj.is_file() and dep.is_file():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        _put(dep, cached_dep)
        _put(obj, cached_obj)
    return rc


if __name__ == "__main__":
    sys.exit(main())
