#!/usr/bin/env python3
"""Run a command while the kernel's normal workers get no CPU: the fidelity-tail "forced race".

    race.py HOG_MS CPU -- COMMAND...   (as root)

Linux switches software receive timestamping on for the whole host from deferred work, run
by a kernel worker (a normal task) when one gets a CPU. On a busy host that can take
milliseconds, and a fresh tcpping-diag that pings before it has no kernel stamps. This
makes that happen every time: one process per CPU under SCHED_FIFO priority 5 spins for
HOG_MS, and COMMAND runs under SCHED_FIFO priority 10 on CPU, so whenever it sleeps the
CPU goes to a spinner, never to a worker. This process runs at priority 20 so that it can
start COMMAND among the spinners; it exits with COMMAND's status, its output passed through.
"""
import os
import sys
import time


def fifo(priority, cpus):
    os.sched_setaffinity(0, cpus)
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))


def main():
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    hog, cpu, cmd = float(sys.argv[1]) / 1000, int(sys.argv[2]), sys.argv[4:]
    ncpu = os.cpu_count() or 1
    fifo(20, range(ncpu))
    until = time.monotonic() + hog
    spinners = []
    for c in range(ncpu):
        pid = os.fork()
        if pid == 0:
            try:
                fifo(5, [c])
                while time.monotonic() < until:
                    pass
            finally:
                os._exit(0)
        spinners.append(pid)
    child = os.fork()
    if child == 0:
        try:
            fifo(10, [cpu])
            os.execvp(cmd[0], cmd)
        finally:
            os._exit(127)
    _, status = os.waitpid(child, 0)
    for pid in spinners:
        os.waitpid(pid, 0)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
