"""The build's own inputs: AERON_SOURCE_DIR overrides the fetched sources, and a
wrong one is refused with a clear message.  Configure-only (no compile)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent


def configure(tmp_path: Path, aeron_dir: str) -> subprocess.CompletedProcess[str]:
    cmake = shutil.which("cmake", path=os.path.dirname(sys.executable)) or shutil.which("cmake")
    assert cmake, "cmake is a build requirement"
    import pybind11

    env = {**os.environ, "AERON_SOURCE_DIR": aeron_dir}
    return subprocess.run(
        [cmake, "-S", str(ROOT), "-B", str(tmp_path / "b"), "-G", "Ninja" if shutil.which("ninja", path=os.path.dirname(sys.executable)) else "Unix Makefiles",
         f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_a_wrong_aeron_source_dir_is_refused_by_name(tmp_path: Path) -> None:
    r = configure(tmp_path, str(tmp_path / "not-aeron"))
    assert r.returncode != 0
    said = " ".join(r.stderr.split())  # CMake wraps long messages
    assert (f"AERON_SOURCE_DIR does not hold Aeron's sources: AERON_SOURCE_DIR={tmp_path / 'not-aeron'} "
            "missing=aeron-client/src/main/c/aeronc.h") in said, r.stderr


def test_aeron_source_dir_overrides_the_fetched_sources(tmp_path: Path) -> None:
    # Use the cached copy of the pinned sources as "the user's checkout".
    cache = Path(os.environ.get("TICKLINE_CACHE_DIR", Path.home() / ".cache" / "tickline"))
    candidates = sorted(cache.glob("pyaeron-0.1.0-*/third_party/aeron"))
    assert candidates, f"the build fetched Aeron's sources into the cache: cache={cache}"
    r = configure(tmp_path, str(candidates[0]))
    assert f"tickline: Aeron sources from {candidates[0]}" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.returncode == 0, r.stderr[-2000:]
