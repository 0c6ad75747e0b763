"""The load generator on this machine: wrk, installed with apt-get when missing (and we are root)."""

from __future__ import annotations

import os
import shutil
import subprocess

from . import log


def ensure_wrk(install: bool = True) -> str | None:
    """wrk's path, installing the Debian package first if allowed and possible; None without it."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is not installed: apt-get install wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
        if shutil.which("wrk") is None:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False, capture_output=True)
        return shutil.which("wrk")
    return None


def wrk_version(wrk: str) -> str:
    output = subprocess.run([wrk, "-v"], capture_output=True, text=True)
    return (output.stdout or output.stderr).split("\n")[0].split(" Copyright")[0]
