"""Whether the COCO evaluation's Java tools (pycocoevalcap's jars) can run here."""
from __future__ import annotations

import shutil
import subprocess
from typing import Optional


def java_problem(heap: Optional[str] = None) -> Optional[str]:
    """Why ``java`` cannot start a JVM (with a maximum ``heap``: METEOR 1.5 asks for 2G), or None when it
    can. A java that is there but fails (macOS's stub without a runtime, too little memory) is caught
    here, before a wrapper waits on it."""
    if shutil.which("java") is None:
        return "java is not on PATH"
    try:
        done = subprocess.run(["java", *([f"-Xmx{heap}"] if heap else []), "-version"], capture_output=True,
                              timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"java does not start ({error})"
    if done.returncode != 0:
        said = (done.stderr or done.stdout).decode("utf-8", errors="replace").strip().splitlines()
        return f"java does not start (status {done.returncode}{': ' + said[0] if said else ''})"
    return None
