"""Thread settings that keep CPU use in step with the work when other processes share the machine."""

from __future__ import annotations

import os
import subprocess
import sys

from mammo.predict.onnx import session_options


def _policy(env: dict[str, str]) -> str:
    """OMP_WAIT_POLICY as a fresh interpreter sees it after `import mammo`."""
    code = "import os, mammo; print(os.environ.get('OMP_WAIT_POLICY'))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_mammo_makes_openmp_threads_sleep_unless_the_user_chose():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _policy(env) == "PASSIVE"
    assert _policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"


def test_onnx_sessions_use_the_usable_cores_without_spinning():
    options = session_options()
    assert options.intra_op_num_threads == len(os.sched_getaffinity(0))
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(1).intra_op_num_threads == 1
