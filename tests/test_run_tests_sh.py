"""run_tests.sh's setup step, run by bash as the script defines it, with an environment whose pip
succeeds or fails: a failed install (a full disk, say) must stop the run with pip's own error, not
go on to fail later for want of pytest."""

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def setup_venv(tmp_path, pip_script: str) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"  # stands in for the environment's python -m pip
    python.write_text("#!/bin/sh\n" + pip_script)
    python.chmod(0o755)
    command = ('set -euo pipefail; eval "$(sed -n \'/^setup_venv()/,/^}/p\' run_tests.sh)"; '
               f'setup_venv {venv} runtime "the test\'s packages"; echo AFTER_SETUP')
    return subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True)


def test_a_failed_install_stops_the_run_with_pips_error(tmp_path):
    run = setup_venv(tmp_path, 'echo "ERROR: Could not install packages due to an OSError: '
                               '[Errno 28] No space left on device" >&2; exit 1\n')
    assert run.returncode != 0
    assert "No space left on device" in run.stdout
    assert "error: pip could not install .[runtime]" in run.stdout and "free disk:" in run.stdout
    assert "ready" not in run.stdout and "AFTER_SETUP" not in run.stdout


@pytest.mark.parametrize("pip_output", ["", "WARNING: Location of something\n"])
def test_a_good_install_goes_on(tmp_path, pip_output):
    run = setup_venv(tmp_path, f'printf "{pip_output}"; exit 0\n')
    assert run.returncode == 0, run.stdout + run.stderr
    assert "ready" in run.stdout and "AFTER_SETUP" in run.stdout
    assert "WARNING: Location" not in run.stdout  # pip's noise is filtered
