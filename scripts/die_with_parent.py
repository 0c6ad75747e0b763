"""Run a command that dies with its parent: `python die_with_parent.py PARENT_PID -- COMMAND [ARG...]`.

What `make run` (scripts/stack.py) starts every process through, so that none outlives a
runner killed with SIGKILL. On Linux it asks the kernel for SIGKILL when the parent goes
(prctl PR_SET_PDEATHSIG), then replaces itself with COMMAND (exec: same pid, session and
process group; the setting survives exec). Why a launcher and not `preexec_fn`: the runner has
threads, and code between fork and exec in a threaded parent may deadlock; this runs after exec,
in a fresh single-threaded interpreter (stdlib only, started with -I -S).

The kernel's "parent" is the *thread* that forked: the runner forks from a thread that lives as
long as it does (scripts/stack.py). The setting is not inherited by COMMAND's own children
(gunicorn workers, the API Gateway adapter's environments): they watch their parent themselves
(docs/local-runner.md).

Elsewhere (macOS, BSD) there is no such call: the command just runs, and a killed runner leaves
its children behind (the runner says so when it starts).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie_to_parent(parent_pid: int) -> None:
    """SIGKILL this process when `parent_pid` ends; exit at once if it has ended already."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        error = os.strerror(ctypes.get_errno())
        print(f"die_with_parent: prctl(PR_SET_PDEATHSIG) failed ({error}); running untied", file=sys.stderr)
        return
    # The parent may have died between our fork and the prctl: then nobody will signal us.
    if os.getppid() != parent_pid:
        os._exit(1)


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        print(__doc__.splitlines()[0], file=sys.stderr)
        raise SystemExit(2)
    parent_pid, command = int(argv[0]), argv[2:]
    if sys.platform.startswith("linux"):
        tie_to_parent(parent_pid)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
