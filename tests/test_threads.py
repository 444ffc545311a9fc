"""Thread settings that keep CPU use in step with the work when other processes share the machine."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mammo.io.cores import cgroup_cpus, usable_cores
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
    assert options.intra_op_num_threads == usable_cores() <= len(os.sched_getaffinity(0))
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert session_options(1).intra_op_num_threads == 1


@pytest.mark.parametrize(
    ("files", "cpus"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cgroup v2, --cpus 1.5
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1.0),  # v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage"}, None),
        ({}, None),
    ],
)
def test_a_container_cpu_quota_caps_the_cores(tmp_path, files, cpus):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpus(tmp_path) == cpus
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == (min(affinity, -(-cpus // 1)) if cpus else affinity)
