"""The committed snapshot is exactly what the pinned openai-python declares.
A new pin fails here until `make sdk-snapshot` is run and the difference
audited (cargo test then checks every field is classified)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_snapshot_matches_the_installed_pinned_sdk():
    result = subprocess.run([sys.executable, str(ROOT / "scripts/sdk_snapshot.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_pin_is_the_one_installed():
    import openai
    pinned = next(line.split("==")[1].strip() for line in (ROOT / "tests/requirements.txt").read_text().splitlines()
                  if line.startswith("openai=="))
    assert openai.__version__ == pinned == "1.109.1"
