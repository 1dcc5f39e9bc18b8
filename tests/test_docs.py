import subprocess
import sys
from pathlib import Path


def test_generated_docs_match_the_code():
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "docs/generate.py", "--check"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
