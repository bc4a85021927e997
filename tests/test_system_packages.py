"""`make test` on a fresh machine: the system packages it needs are installed when missing, or it
stops at once with the command to run (scripts/system-packages)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = str(Path(__file__).resolve().parents[1] / "scripts" / "system-packages")


def test_packages_already_installed_need_nothing():
    result = subprocess.run([SCRIPT, "bash", "coreutils"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0
    assert result.stdout == result.stderr == ""


def test_a_user_who_cannot_install_is_told_the_one_command_to_run():
    if os.getuid() != 0:
        pytest.skip("runs the script as another user, which only root can")
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", SCRIPT, "bash", "no-such-package-x"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "apt-get install -y --no-install-recommends no-such-package-x" in result.stderr
    assert "bash" not in result.stderr.split("packages:")[1].split("\n")[0]
