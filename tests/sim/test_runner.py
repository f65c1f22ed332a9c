"""The Verilator build cache (``drnn_sim.runner``): what a cached build is keyed on."""

from pathlib import Path

import cocotb

from drnn_sim import runner

ARGS = list(runner.BUILD_ARGS)


def _source(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "top.v"
    p.write_text(text)
    return p


def test_key_is_stable_for_identical_inputs(tmp_path):
    src = _source(tmp_path, "module top(input a); endmodule\n")
    assert runner.build_key([src], "top", False, ARGS) == runner.build_key([src], "top", False,
                                                                           ARGS)


def test_key_follows_sources_top_waves_and_arguments(tmp_path):
    src = _source(tmp_path, "module top(input a); endmodule\n")
    key = runner.build_key([src], "top", False, ARGS)
    assert runner.build_key([src], "top", True, ARGS) != key
    assert runner.build_key([src], "other", False, ARGS) != key
    assert runner.build_key([src], "top", False, ARGS + ["-DX"]) != key
    src.write_text("module top(input b); endmodule\n")
    assert runner.build_key([src], "top", False, ARGS) != key


def test_key_follows_the_bytes_of_cocotbs_libraries_not_their_location(tmp_path, monkeypatch):
    """CI's clean clone on this machine has its own venv with the same cocotb: its builds are
    the developer's. Libraries that differ in one byte must not share a build."""
    import shutil

    src = _source(tmp_path, "module top(input a); endmodule\n")
    runner._cocotb_libs.cache_clear()
    key = runner.build_key([src], "top", False, ARGS)
    libs = Path(cocotb.__file__).resolve().parent / "libs"
    other = tmp_path / "other-venv" / "site-packages" / "cocotb"
    shutil.copytree(libs, other / "libs")
    monkeypatch.setattr(cocotb, "__file__", str(other / "__init__.py"))
    try:
        runner._cocotb_libs.cache_clear()
        assert runner._cocotb_libs()[0] == other / "libs"
        assert runner.build_key([src], "top", False, ARGS) == key
        lib = next(p for p in sorted((other / "libs").rglob("*.so")))
        data = bytearray(lib.read_bytes())
        data[-1] ^= 1
        lib.write_bytes(bytes(data))
        runner._cocotb_libs.cache_clear()
        assert runner.build_key([src], "top", False, ARGS) != key
    finally:
        runner._cocotb_libs.cache_clear()


def test_a_build_is_reused_only_while_the_libraries_it_links_exist(tmp_path):
    """A simulator links cocotb's libraries by path: a build made from a venv since removed
    failed to start with return code 127 when it was reused."""
    import json

    build = tmp_path / "build"
    build.mkdir()
    assert not runner._usable(build)                       # no build.json: not built
    linked = tmp_path / "venv" / "cocotb" / "libs"
    (build / "build.json").write_text(json.dumps({"cocotb_libs": str(linked)}))
    assert not runner._usable(build)                       # that venv is gone
    linked.mkdir(parents=True)
    assert runner._usable(build)
    (build / "build.json").write_text(json.dumps({"key": "0"}))
    assert not runner._usable(build)                       # a build from before the record


def _finished(root: Path, name: str, mtime: float) -> Path:
    import os

    d = root / name
    d.mkdir()
    (d / "build.json").write_text("{}")
    os.utime(d / "build.json", (mtime, mtime))
    return d


def test_eviction_keeps_the_most_recently_used_and_ignores_builds_in_progress(tmp_path,
                                                                            monkeypatch):
    """Two pytest-xdist workers share the cache. A worker's temporary build has its
    build.json written just before it is renamed into place; the other worker's eviction
    listed it and then failed on its vanished build.json (CI, stop 42)."""
    monkeypatch.setattr(runner, "CACHE_BUILDS", 2)
    old = _finished(tmp_path, "top-a", 1000)
    mid = _finished(tmp_path, "top-b", 2000)
    new = _finished(tmp_path, "top-c", 3000)
    tmp = _finished(tmp_path, "top-d.tmp123", 500)          # another worker's, not finished
    (tmp_path / "top-e.lock").write_text("")
    (tmp_path / "top-f").mkdir()                             # no build.json: not a build
    assert runner._last_used(tmp) is None
    assert runner._last_used(tmp_path / "top-f") is None
    assert runner._last_used(tmp_path / "top-e.lock") is None
    runner.evict(tmp_path, keep=new)
    assert not old.exists()
    assert mid.exists() and new.exists() and tmp.exists()
    runner.evict(tmp_path, keep=old)                        # keep= never removes itself
    assert mid.exists() and new.exists()


def test_a_build_evicted_before_it_is_marked_used_is_built_again(tmp_path):
    build = _finished(tmp_path, "top-a", 1000)
    assert runner._touch(build / "build.json")
    import shutil

    shutil.rmtree(build)                                     # another worker evicted it
    assert not runner._touch(build / "build.json")


def test_marking_a_vanished_entry_used_does_not_create_its_stamp(tmp_path):
    """A half-evicted entry (stamp removed, directory not yet) must not get an empty stamp,
    which a later hit would read as a broken manifest."""
    entry = tmp_path / "top-a"
    entry.mkdir()
    assert not runner._touch(entry / "build.json")
    assert not (entry / "build.json").exists()


def test_generated_cores_are_evicted_by_last_use_not_by_generation(tmp_path, monkeypatch):
    import os

    from drnn_sim import cosim

    monkeypatch.setattr(runner, "CACHE_BUILDS", 1)
    old = tmp_path / "drnn_core-a"
    old.mkdir()
    (old / "manifest.json").write_text('{"top": "drnn_core"}')
    os.utime(old / "manifest.json", (1000, 1000))
    assert cosim._cached_manifest(old / "manifest.json") == {"top": "drnn_core"}  # a hit
    new = tmp_path / "drnn_core-b"
    new.mkdir()
    (new / "manifest.json").write_text("{}")
    os.utime(new / "manifest.json", (2000, 2000))
    runner.evict(tmp_path, keep=tmp_path / "none", stamp="manifest.json")
    assert old.exists() and not new.exists()       # old was used after new was made
