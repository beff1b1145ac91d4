"""qapigen-vm's command line follows qemu-system-x86_64's syntax and error wording."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from qapigen_runtime.bindings.policy import CompatPolicy
from qapigen_vm.cmdline import (
    FLAGS,
    IGNORED_FLAGS,
    IGNORED_WITH_ARGUMENT,
    WITH_ARGUMENT,
    CommandLineError,
    QmpEndpoint,
    parse_command_line,
    parse_keyvals,
    parse_size,
)
from qapigen_vm.handlers import QEMU_VERSION
from qapigen_vm.usage import help_text


def test_a_typical_migration_destination() -> None:
    config = parse_command_line(
        [
            "-M", "pc", "-accel", "tcg", "-nodefaults", "-display", "none",
            "-m", "64",
            "-qmp", "unix:/run/vm.sock,server=on,wait=off",
            "-qmp", "tcp:127.0.0.1:4444,server,nowait",
            "-incoming", "defer",
            "-S",
            "-uuid", "12345678-1234-5678-1234-567812345678",
            "-name", "guest=dst,debug-threads=on",
        ]
    )  # fmt: skip
    assert config.ram_size == 64 << 20
    assert config.qmp == (
        QmpEndpoint(kind="unix", path="/run/vm.sock"),
        QmpEndpoint(kind="tcp", host="127.0.0.1", port=4444),
    )
    assert config.incoming == "defer"
    assert config.start_paused
    assert config.uuid == uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert config.name == "dst"


def test_memory_backend_file_sets_the_ram_size() -> None:
    config = parse_command_line(
        [
            "-object", "memory-backend-file,id=ram0,size=32M,mem-path=/dev/shm/r,share=on",
            "-machine", "q35,memory-backend=ram0",
        ]
    )  # fmt: skip
    assert config.memory_backend is not None
    assert config.memory_backend.share
    assert config.memory_backend.mem_path == "/dev/shm/r"
    assert config.ram_size == 32 << 20


def test_compat_option() -> None:
    assert parse_command_line([]).compat == CompatPolicy()
    config = parse_command_line(
        [
            "-compat",
            "deprecated-input=reject,deprecated-output=hide,unstable-input=crash",
        ]
    )
    assert config.compat == CompatPolicy(
        deprecated_input="reject", deprecated_output="hide", unstable_input="crash"
    )
    # the last setting of a key wins, as with QEMU
    assert (
        parse_command_line(
            ["-compat", "deprecated-input=reject,deprecated-input=accept"]
        ).compat
        == CompatPolicy()
    )


def test_workload_option() -> None:
    config = parse_command_line(
        ["-workload", "rate=20000,working-set=256M,pattern=sequential,seed=7"]
    )
    assert config.workload.dirty_rate == 20000
    assert config.workload.working_set == 256 << 20
    assert config.workload.pattern == "sequential"
    assert config.workload.seed == 7


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Texts observed from qemu-system-x86_64 7.2 with the same arguments.
        (["-bogus"], "qapigen-vm: -bogus: invalid option"),
        (["-m"], "qapigen-vm: -m: requires an argument"),
        (
            ["-m", "12Q"],
            "qapigen-vm: -m 12Q: Parameter 'size' expects a non-negative number below 2^64",
        ),
        (
            ["-object", "memory-backend-file,id=m,size=1M"],
            "qapigen-vm: -object memory-backend-file,id=m,size=1M:"
            " Parameter 'mem-path' is missing",
        ),
        (
            ["-object", "bogus,id=x"],
            "qapigen-vm: -object bogus,id=x: Parameter 'qom-type' does not accept value"
            " 'bogus'",
        ),
        (
            ["-object", "memory-backend-file,id=m,size=xyz,mem-path=/f"],
            "qapigen-vm: -object memory-backend-file,id=m,size=xyz,mem-path=/f:"
            " Parameter 'size' expects a size value",
        ),
        (
            ["-object", "memory-backend-file,id=m,size=1M,mem-path=/f,share=maybe"],
            "qapigen-vm: -object memory-backend-file,id=m,size=1M,mem-path=/f,share=maybe:"
            " Parameter 'share' expects 'on' or 'off'",
        ),
        (
            ["-object", "memory-backend-file,id=m,size=1M,mem-path=/f,bogus=1"],
            "qapigen-vm: -object memory-backend-file,id=m,size=1M,mem-path=/f,bogus=1:"
            " Invalid parameter 'bogus'",
        ),
        (
            ["-incoming", "foo:bar"],
            "qapigen-vm: -incoming foo:bar: unknown migration protocol: foo:bar",
        ),
        (["-uuid", "xyz"], "qapigen-vm: -uuid xyz: failed to parse UUID string: wrong format"),
        (
            ["-qmp", "bogus:x"],
            "qapigen-vm: -qmp bogus:x: 'bogus:x' is not a valid char driver",
        ),
        (
            ["-machine", "memory-backend=nope"],
            "qapigen-vm: Memory backend 'nope' not found",
        ),
        (
            [
                "-m", "64M",
                "-object", "memory-backend-file,id=m,size=32M,mem-path=/f,share=on",
                "-machine", "memory-backend=m",
            ],
            "qapigen-vm: Machine memory size does not match the size of the memory backend",
        ),
        (["-name"], "qapigen-vm: -name: requires an argument"),
        # QEMU 7.2's own texts for -compat
        (
            ["-compat", "deprecated-input=bogus"],
            "qapigen-vm: -compat deprecated-input=bogus:"
            " Parameter 'deprecated-input' does not accept value 'bogus'",
        ),
        (
            ["-compat", "deprecated-output=reject"],
            "qapigen-vm: -compat deprecated-output=reject:"
            " Parameter 'deprecated-output' does not accept value 'reject'",
        ),
        (["-compat", "bogus=1"], "qapigen-vm: -compat bogus=1: Parameter 'bogus' is unexpected"),
        (
            ["-compat", "deprecated-input"],
            "qapigen-vm: -compat deprecated-input:"
            " Expected '=' after parameter 'deprecated-input'",
        ),
    ],
)  # fmt: skip
def test_errors_read_like_qemus(argv: list[str], message: str) -> None:
    with pytest.raises(CommandLineError) as caught:
        parse_command_line(argv)
    assert str(caught.value).splitlines()[0] == message.splitlines()[0]


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("512", "m", 512 << 20),
        ("1G", "m", 1 << 30),
        ("4096", "b", 4096),
        ("1.5k", "b", 1536),
        ("2g", "b", 2 << 30),
        ("", "b", None),
        ("-1", "b", None),
        ("16E", "b", None),
    ],
)
def test_sizes(text: str, default: str, expected: int | None) -> None:
    assert parse_size(text, default) == expected


def test_keyvals_escape_commas_and_take_an_implied_key() -> None:
    assert parse_keyvals("pc,a=1,,2,flag", implied_key="type") == [
        ("type", "pc"),
        ("a", "1,2"),
        ("flag", "on"),
    ]


# -- help, version, and what QEMU reports before it starts -----------------------


def run_vm(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qapigen_vm.main", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("option", ["-h", "-help", "--help"])
def test_help_is_printed_and_exits_0(option: str) -> None:
    """As qemu-system-x86_64 7.2: usage on stdout, nothing on stderr, status 0."""
    result = run_vm(option)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == help_text(QEMU_VERSION)
    # QEMU's shape: version and copyright lines, then the usage line
    assert result.stdout.splitlines()[2] == "usage: qapigen-vm [options]"


def test_help_comes_when_reached_after_every_option_is_checked() -> None:
    """As QEMU: a first pass checks that every option exists, then -h prints the
    help where it stands, whatever follows it."""
    assert parse_command_line(["-m", "64", "-h", "-m", "x"]).show == "help"
    assert parse_command_line(["--version"]).show == "version"
    with pytest.raises(CommandLineError, match="-bogus: invalid option"):
        parse_command_line(["-m", "64", "-h", "-bogus"])


def test_help_lists_every_option_the_parser_takes_or_ignores() -> None:
    text = help_text(QEMU_VERSION)
    documented = {line.split()[0].rstrip(",") for line in text.splitlines() if line}
    taken = (WITH_ARGUMENT | FLAGS) - IGNORED_WITH_ARGUMENT - IGNORED_FLAGS - {"-help"}
    assert taken - {"-M"} <= documented  # -M is documented with -machine
    assert "also -M" in text
    ignored_part = text.split("Accepted and ignored")[1]
    for option in IGNORED_WITH_ARGUMENT:
        assert f"{option} ARG" in ignored_part
    for option in IGNORED_FLAGS:
        assert f" {option}" in ignored_part
    assert max(len(line) for line in text.splitlines() if line.startswith(" ")) <= 88


def test_version() -> None:
    result = run_vm("-version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("QEMU emulator version 7.2.0 (qapigen-vm ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # QEMU 7.2's text for memory it cannot have (its -m 1T here too); 256 TiB is
        # beyond any x86-64 process's address space, whatever the overcommit policy.
        (["-m", "256T"], "qapigen-vm: cannot set up guest memory 'pc.ram': Cannot "
         "allocate memory"),
        # QEMU 7.2 does not check the descriptor (it then waits in inmigrate for
        # ever); an error in the style of its other -incoming failures instead
        (["-incoming", "fd:999"], "qapigen-vm: -incoming fd:999: Failed to use file "
         "descriptor 999: Bad file descriptor"),
    ],
)  # fmt: skip
def test_what_the_vm_cannot_have_is_one_line_and_status_1(
    argv: list[str], message: str
) -> None:
    result = run_vm(*argv)
    assert result.returncode == 1
    assert result.stderr == message + "\n"
    assert result.stdout == ""
