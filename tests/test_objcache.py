"""sim/objcache.py: Verilator's run-time sources are compiled once per command line and read back
from the cache in later builds; every other compile runs."""

import sys

from spiketrack.sim import objcache

FAKE_CXX = '''import sys
from pathlib import Path
args = sys.argv[1:]
out = Path(args[args.index("-o") + 1])
src = Path([a for a in args if a.endswith(".cpp")][0])
out.write_text("object of " + src.read_text() + " with " + " ".join(a for a in args if a.startswith("-O")))
out.with_suffix(".d").write_text(f"{out.name}: {src}\\n")
with open(Path(__file__).with_name("calls.log"), "a") as fh:
    fh.write(src.name + "\\n")
'''


def _setup(tmp_path, monkeypatch):
    include = tmp_path / "verilator" / "include"
    include.mkdir(parents=True)
    (include / "verilated.cpp").write_text("runtime v1")
    (include / "verilated.h").write_text("header")
    cxx = tmp_path / "cxx.py"
    cxx.write_text(FAKE_CXX)
    monkeypatch.setenv(objcache.INCLUDE_ENV, str(include))
    monkeypatch.setenv(objcache.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return include, [sys.executable, str(cxx)], tmp_path / "calls.log"


def _compile(build, cxx, src, opt, monkeypatch):
    build.mkdir(exist_ok=True)
    monkeypatch.chdir(build)
    assert objcache.main([*cxx, opt, "-MMD", "-I.", "-c", "-o", "verilated.o", str(src)]) == 0
    return (build / "verilated.o").read_text(), (build / "verilated.d").read_text()


def test_runtime_sources_compile_once_per_command_line(tmp_path, monkeypatch):
    include, cxx, log = _setup(tmp_path, monkeypatch)
    src = include / "verilated.cpp"
    first = _compile(tmp_path / "b1", cxx, src, "-O2", monkeypatch)
    again = _compile(tmp_path / "b2", cxx, src, "-O2", monkeypatch)
    assert again == first and first[0] == "object of runtime v1 with -O2"
    assert log.read_text().split() == ["verilated.cpp"]              # the second build read the cache
    assert _compile(tmp_path / "b3", cxx, src, "-O1", monkeypatch)[0].endswith("-O1")   # other flags
    src.write_text("runtime v2")                                       # a changed source
    assert _compile(tmp_path / "b4", cxx, src, "-O2", monkeypatch)[0] == "object of runtime v2 with -O2"
    assert log.read_text().split() == ["verilated.cpp"] * 3


def test_sources_outside_the_runtime_always_compile(tmp_path, monkeypatch):
    include, cxx, log = _setup(tmp_path, monkeypatch)
    main_cpp = tmp_path / "verilator_main.cpp"
    main_cpp.write_text("main of the design")
    for b in ("b1", "b2"):
        assert _compile(tmp_path / b, cxx, main_cpp, "-O2", monkeypatch)[0] == "object of main of the design with -O2"
    assert log.read_text().split() == ["verilator_main.cpp"] * 2
    assert not (tmp_path / "cache").exists()


def test_a_failed_compile_is_not_cached(tmp_path, monkeypatch):
    include, _, _ = _setup(tmp_path, monkeypatch)
    failing = [sys.executable, "-c", "import sys; sys.exit(3)"]
    monkeypatch.chdir(tmp_path)
    assert objcache.main([*failing, "-c", "-o", "verilated.o", str(include / "verilated.cpp")]) == 3
    assert not (tmp_path / "cache").exists()
