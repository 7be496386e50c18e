"""How `make test` shares the suite between its pytest-xdist workers: a module stays on one
worker (its module-scoped stack starts once, its tests run in their written order), and the
chaos suite's modules all run on one worker."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from gridloop_devkit.testing import worker_group

TESTS_PER_MODULE = 8
# as `make test` runs it, with the harness plugin and nothing else from the project's config
PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "gridloop_devkit.testing", "-p", "xdist"]
PYTEST += ["-n", "2", "--dist", "loadgroup", "--no-loadscope-reorder", "-p", "no:cacheprovider"]


def test_a_module_is_one_group_and_the_chaos_suite_another() -> None:
    assert worker_group("tests/e2e/test_e2e_loop.py::test_a") == "tests/e2e/test_e2e_loop.py"
    assert worker_group("tests/e2e/test_e2e_loop.py::TestX::test_b[1]") == (
        "tests/e2e/test_e2e_loop.py"
    )
    assert worker_group("tests/chaos/test_chaos.py::test_a") == "tests/chaos"
    assert worker_group("tests/chaos/test_jetstream_wipe.py::test_b") == "tests/chaos"
    assert worker_group("services/intake/tests/test_x.py::test_c") == (
        "services/intake/tests/test_x.py"
    )


def test_two_workers_each_run_whole_groups(tmp_path: Path) -> None:
    modules = ["tests/chaos/test_one.py", "tests/chaos/test_two.py", "tests/e2e/test_three.py"]
    modules += ["libs/x/tests/test_four.py"]
    record = tmp_path / "ran"
    record.mkdir()
    for module in modules:
        path = tmp_path / module
        path.parent.mkdir(parents=True, exist_ok=True)
        tests = "\n".join(
            f"def test_{i}():\n    _ran('{module}::test_{i}')\n" for i in range(TESTS_PER_MODULE)
        )
        path.write_text(
            "import os, pathlib, uuid\n"
            "def _ran(nodeid):\n"
            f"    f = pathlib.Path({str(record)!r}) / uuid.uuid4().hex\n"
            "    f.write_text(os.environ['PYTEST_XDIST_WORKER'] + ' ' + nodeid)\n" + tests
        )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run(
        [*PYTEST, "--rootdir", str(tmp_path), *modules],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workers: dict[str, set[str]] = defaultdict(set)
    for f in record.iterdir():
        worker, nodeid = f.read_text().split(" ", 1)
        workers[worker_group(nodeid)].add(worker)
    assert sum(1 for _ in record.iterdir()) == TESTS_PER_MODULE * len(modules)
    assert set(workers) == {"tests/chaos", "tests/e2e/test_three.py", "libs/x/tests/test_four.py"}
    assert all(len(w) == 1 for w in workers.values()), dict(workers)
