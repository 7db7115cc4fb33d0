"""scripts/test.sh (what `make test` and CI run): exit codes and the second pass on the other engine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

TESTS = '''
import pytest

def test_passes():
    assert True

@pytest.mark.db_engine
def test_engine_dependent():
    assert True

def test_fails_when_asked():
    import os
    assert os.environ.get("MAKE_IT_FAIL") != "1"
'''


def run_script(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(TESTS)
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_BOTH_DBS", "MAKE_IT_FAIL")}
    base.update(BIN=str(Path(sys.executable).parent), BROKER_VAR_DIR=str(tmp_path / "var"))
    return subprocess.run(["bash", "scripts/test.sh", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                           "-p", "no:randomly", str(tmp_path / "test_sample.py"), *args],
                          cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=300)


def test_passing_suite_exits_zero_with_one_pass_on_sqlite(tmp_path: Path) -> None:
    result = run_script(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("== pytest (") == 1
    assert "3 passed" in result.stdout.splitlines()[-1]


def test_failure_is_the_exit_code(tmp_path: Path) -> None:
    result = run_script(tmp_path, MAKE_IT_FAIL="1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout.splitlines()[-1]


def test_no_tests_collected_is_reported_and_not_a_failure(tmp_path: Path) -> None:
    result = run_script(tmp_path, "-m", "no_such_marker")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == "== pytest (sqlite): no tests collected"


def test_postgresql_run_repeats_db_engine_tests_on_sqlite_first(tmp_path: Path) -> None:
    # The sample tests touch no database, so the PostgreSQL URL need not point at a live server.
    result = run_script(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused")
    assert result.returncode == 0, result.stdout + result.stderr
    labels = [line.split(")")[0] + ")" for line in result.stdout.splitlines() if line.startswith("== pytest (")]
    assert labels == ["== pytest (sqlite, db_engine)", "== pytest (postgresql)"]
    assert "1 passed, 2 deselected" in result.stdout
    assert "3 passed" in result.stdout.splitlines()[-1]


def test_a_failure_on_the_other_engine_fails_the_run(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "import os, pytest\n"
        "@pytest.fixture(autouse=True)\n"
        "def _fail_on_sqlite(request):\n"
        "    if request.node.get_closest_marker('db_engine') and not os.environ.get('DATABASE_URL'):\n"
        "        pytest.fail('engine-dependent failure on SQLite')\n")
    result = run_script(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/unused")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "3 passed" in result.stdout
    assert result.stdout.splitlines()[-1] == ("== the db_engine tests failed on the other engine (exit code 1); "
                                              "see above")
