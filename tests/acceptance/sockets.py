"""What a started process really exposes: the addresses it listens on and the command
lines of its whole process tree (what ``ps`` shows every local user)."""

from __future__ import annotations

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def command_lines(pid: int) -> list[str]:
    """The command line of every process in ``pid``'s tree, as /proc/<pid>/cmdline has it."""
    lines = []
    for process in process_tree(pid):
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.NoSuchProcess:
            continue  # a child that ended meanwhile shows nothing any more
    return lines


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """Every (address, port) a process in ``pid``'s tree listens on over TCP."""
    found: set[tuple[str, int]] = set()
    for process in process_tree(pid):
        try:
            connections = process.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN}
    return found
