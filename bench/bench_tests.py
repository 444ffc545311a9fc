"""How long `make test` takes: the whole pytest suite, timed, with the machine's load before and after.

Runs `python -m pytest -q` (what `make test` runs; extra arguments are passed on and recorded) and writes
bench/results/tests.json: wall and CPU time (the children's user + system time, which hardly grows when other
work shares the machine), the load average before and after, and the pass / skip / fail counts from pytest's
JUnit XML. bench/readme_results.py puts the line in the README.
    python bench/bench_tests.py [PYTEST_ARGS...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from machine import Machine, timed

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "tests.json"


def counts(junit: Path) -> dict[str, int]:
    """passed, skipped, failed (failures + errors) from a JUnit XML report."""
    root = ET.parse(junit).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return {"passed": total - skipped - failed, "skipped": skipped, "failed": failed}


def main() -> None:
    """Run the suite once and write the JSON."""
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="mammo-test-bench-") as tmp:
        junit = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-q", f"--junitxml={junit}", *extra]
        machine = Machine.start()
        with timed() as t:
            code = subprocess.run(command, cwd=ROOT, check=False).returncode
        machine_block = machine.finish()
        result = {
            "command": " ".join(["python -m pytest -q", *extra]),
            "exit_code": code,
            **counts(junit),
            "wall_seconds": round(t["wall"], 1),
            "cpu_seconds": round(t["cpu"], 1),
            "load_average_at_start": machine_block["load_average_at_start"],
            "load_average_at_end": machine_block["load_average_at_end"],
            "machine": machine_block,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
