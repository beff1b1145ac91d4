"""What ``qapigen-vm -h`` and ``-version`` print (on stdout, exit status 0, as QEMU).

The help lists the options qapigen-vm takes, then those it accepts and ignores; a
test checks it against the command-line parser's own tables, so neither can drift.
"""

from __future__ import annotations

import textwrap

from qapigen_runtime.version import distribution_version

from .cmdline import IGNORED_FLAGS, IGNORED_WITH_ARGUMENT, PROGRAM
from .handlers import PACKAGE

# (synopsis, what it does), in the order a QEMU user looks for them
OPTIONS: tuple[tuple[str, str], ...] = (
    (
        "-m [size=]SIZE",
        "guest RAM size (default 128M; suffixes k, M, G, T; a bare number is MiB)",
    ),
    (
        "-qmp unix:PATH,server=on,wait=off",
        "serve QMP on a unix socket (repeatable; tcp:HOST:PORT,server=on,wait=off "
        "for TCP)",
    ),
    (
        "-incoming URI",
        "wait for an incoming migration on tcp:HOST:PORT, unix:PATH, exec:COMMAND "
        "or fd:FD; 'defer' waits for migrate-incoming",
    ),
    ("-S", "start with the guest stopped ('cont' runs it)"),
    ("-uuid UUID", "the VM's UUID (what validate-uuid compares)"),
    ("-name [guest=]NAME", "the VM's name"),
    (
        "-object memory-backend-file,id=ID,size=SIZE,mem-path=FILE[,share=on|off]",
        "guest RAM held in FILE (select it with -machine memory-backend=ID); with "
        "share=on the file is the memory itself",
    ),
    (
        "-object tls-creds-x509,id=ID,dir=DIR[,endpoint=client|server]"
        "[,verify-peer=on|off]",
        "TLS credentials for migration (the tls-creds parameter names ID)",
    ),
    (
        "-object authz-simple,id=ID,identity=DN",
        "who may connect to a TLS destination (the tls-authz parameter names ID)",
    ),
    (
        "-machine [type=]NAME[,memory-backend=ID]",
        "also -M; the machine type is ignored, memory-backend selects the RAM",
    ),
    (
        "-compat [deprecated-input=accept|reject|crash][,deprecated-output=accept|hide]"
        "[,unstable-input=...][,unstable-output=...]",
        "what QMP does with deprecated and unstable commands, arguments and members",
    ),
    ("-daemonize", "go to the background once the VM is ready (needs -qmp)"),
    ("-pidfile FILE", "write the process id to FILE"),
    (
        "-workload rate=N[,working-set=SIZE][,pattern=random|sequential|sparse]"
        "[,seed=N][,bytes-per-page=N]",
        "a guest that dirties N pages per second (qapigen-vm's own option)",
    ),
    ("-h, -help, --help", "print this help and exit"),
    ("-version", "print the version and exit"),
)

_INDENT = " " * 4
_WIDTH = 88


def version_text(qemu_version: tuple[int, int, int]) -> str:
    """What `-version` prints, in QEMU's shape: the QEMU release this VM answers as
    (query-version's `qemu`), then in parentheses the package (query-version's
    `package`, where QEMU puts its distributor's version) with qapigen's version."""
    major, minor, micro = qemu_version
    return (
        f"QEMU emulator version {major}.{minor}.{micro}"
        f" ({PACKAGE} {distribution_version()})\n"
        "Copyright (c) the qapigen developers (MIT license)\n"
    )


def help_text(qemu_version: tuple[int, int, int]) -> str:
    lines = [
        version_text(qemu_version).rstrip("\n"),
        f"usage: {PROGRAM} [options]",
        "",
        "Options (as qemu-system-x86_64 spells them; --option works too):",
    ]
    for synopsis, description in OPTIONS:
        lines.append(synopsis)
        lines += textwrap.wrap(
            description,
            _WIDTH,
            initial_indent=_INDENT,
            subsequent_indent=_INDENT,
            break_on_hyphens=False,
        )
    ignored = sorted(IGNORED_WITH_ARGUMENT) + sorted(IGNORED_FLAGS)
    lines += [
        "",
        "Accepted and ignored (they configure hardware qapigen-vm does not have):",
        *textwrap.wrap(
            " ".join(
                f"{option} ARG" if option in IGNORED_WITH_ARGUMENT else option
                for option in ignored
            ),
            _WIDTH,
            initial_indent=_INDENT,
            subsequent_indent=_INDENT,
            break_on_hyphens=False,
        ),
    ]
    return "\n".join(lines) + "\n"
