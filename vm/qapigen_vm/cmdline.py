"""qapigen-vm's command line, in qemu-system-x86_64's syntax.

Scripts written for QEMU start qapigen-vm with the same arguments, so options, option
values (`key=value,...` lists, sizes with k/M/G suffixes) and the wording of errors follow
QEMU 7.2 (``qapigen-vm: -m 12Q: Parameter 'size' expects ...``, exit status 1). Options
that only matter to a real machine (accelerators, display, serial, machine types) are
accepted and ignored. The guest workload has an option of its own, `-workload`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from qapigen_runtime.bindings.policy import CompatPolicy, PolicyOptionError

from .tls import AuthzSimple, TlsCredsX509, TlsError, UserObject

PROGRAM = "qapigen-vm"
PAGE_SIZE = 4096
DEFAULT_RAM_SIZE = 128 << 20
INCOMING_SCHEMES = ("tcp:", "unix:", "exec:", "fd:")
WORKLOAD_PATTERNS = ("random", "sequential", "sparse")


class CommandLineError(Exception):
    """A bad command line; `str()` is the whole message QEMU would print."""

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option
        self.message = message

    def __str__(self) -> str:
        prefix = f"{PROGRAM}: {self.option}: " if self.option else f"{PROGRAM}: "
        return prefix + self.message


@dataclass(frozen=True)
class QmpEndpoint:
    """A `-qmp` listener: `unix:PATH` or `tcp:HOST:PORT`, always server=on."""

    kind: str  # "unix" or "tcp"
    path: str = ""
    host: str = ""
    port: int = 0


@dataclass(frozen=True)
class MemoryBackendFile:
    """`-object memory-backend-file,...`: a file that holds the guest RAM."""

    id: str
    size: int
    mem_path: str
    share: bool


@dataclass(frozen=True)
class WorkloadConfig:
    """What the guest does to its memory: `-workload rate=N,working-set=SIZE,...`."""

    dirty_rate: int = 0  # pages per second; 0 is an idle guest
    working_set: int | None = None  # bytes; None means all of RAM
    pattern: str = "random"
    seed: int = 0
    bytes_per_page: int | None = (
        None  # bytes changed per dirtied page; None: whole page
    )


@dataclass(frozen=True)
class VmConfig:
    ram_size: int = DEFAULT_RAM_SIZE
    qmp: tuple[QmpEndpoint, ...] = ()
    incoming: str | None = None
    uuid: uuid.UUID | None = None
    name: str | None = None
    start_paused: bool = False
    daemonize: bool = False
    pidfile: str | None = None
    memory_backend: MemoryBackendFile | None = None
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    # -object tls-creds-x509 / authz-simple, in command-line order
    objects: tuple[UserObject, ...] = ()
    # -compat: what QMP does with deprecated and unstable symbols
    compat: CompatPolicy = field(default_factory=CompatPolicy)
    # -h or -version: print that and exit (the rest of the line is not used)
    show: Literal["help", "version"] | None = None


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?)([bBkKmMgGtTpPeE]?)")
_SUFFIX_SHIFT = {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}
_SIZE_HINT = (
    "\nOptional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
    "and exabytes, respectively."
)


def parse_size(text: str, default_suffix: str = "b") -> int | None:
    """A QEMU size: a number with an optional binary suffix; None when malformed."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        return None
    number, suffix = match.groups()
    shift = _SUFFIX_SHIFT[(suffix or default_suffix).lower()]
    value = int(float(number) * (1 << shift)) if "." in number else int(number) << shift
    return value if value < 1 << 64 else None


def parse_keyvals(text: str, implied_key: str | None = None) -> list[tuple[str, str]]:
    """QEMU's `a=1,b=2` lists; `,,` escapes a comma; a first bare word takes
    `implied_key` (the machine type of `-machine pc,...`, the qom-type of `-object`)."""
    items: list[tuple[str, str]] = []
    parts: list[str] = []
    current = ""
    i = 0
    while i < len(text):
        if text[i] == ",":
            if text[i + 1 : i + 2] == ",":
                current += ","
                i += 2
                continue
            parts.append(current)
            current = ""
        else:
            current += text[i]
        i += 1
    parts.append(current)
    for index, part in enumerate(parts):
        key, eq, value = part.partition("=")
        if not eq:
            if index == 0 and implied_key is not None:
                items.append((implied_key, key))
                continue
            # QEMU's legacy boolean flags: "server" means server=on, "nowait" wait=off.
            if key.startswith("no"):
                items.append((key[2:], "off"))
            else:
                items.append((key, "on"))
            continue
        items.append((key, value))
    return items


def _on_off(key: str, value: str, option: str) -> bool:
    if value in ("on", "yes", "true", "y"):
        return True
    if value in ("off", "no", "false", "n"):
        return False
    raise CommandLineError(f"Parameter '{key}' expects 'on' or 'off'", option)


def _parse_qmp(value: str, option: str) -> QmpEndpoint:
    kind, _, rest = value.partition(":")
    address, _, options_text = rest.partition(",")
    options = dict(parse_keyvals(options_text)) if options_text else {}
    if kind not in ("unix", "tcp") or not address:
        raise CommandLineError(f"'{value}' is not a valid char driver", option)
    if not _on_off("server", options.get("server", "off"), option):
        raise CommandLineError(
            "only server=on is supported: qapigen-vm listens for QMP clients", option
        )
    if _on_off("wait", options.get("wait", "on"), option):
        raise CommandLineError(
            "only wait=off is supported: qapigen-vm starts without a QMP client", option
        )
    if kind == "unix":
        return QmpEndpoint(kind="unix", path=address)
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise CommandLineError(
            f"address resolution failed for {address}: Servname not supported for"
            " ai_socktype",
            option,
        )
    return QmpEndpoint(
        kind="tcp", host=host.strip("[]") or "0.0.0.0", port=int(port_text)
    )


def _parse_object(value: str, option: str) -> MemoryBackendFile:
    props = parse_keyvals(value, implied_key="qom-type")
    settings = dict(props)
    qom_type = settings.get("qom-type", "")
    if qom_type != "memory-backend-file":
        raise CommandLineError(
            f"Parameter 'qom-type' does not accept value '{qom_type}'", option
        )
    known = {"qom-type", "id", "size", "mem-path", "share", "prealloc", "merge", "dump"}
    for key, _ in props:
        if key not in known:
            raise CommandLineError(f"Invalid parameter '{key}'", option)
    for required in ("id", "size", "mem-path"):
        if required not in settings:
            raise CommandLineError(f"Parameter '{required}' is missing", option)
    size = parse_size(settings["size"])
    if size is None:
        raise CommandLineError("Parameter 'size' expects a size value", option)
    if size == 0 or size % PAGE_SIZE:
        raise CommandLineError(
            f"property 'size' of memory-backend-file must be a positive multiple of"
            f" {PAGE_SIZE}",
            option,
        )
    return MemoryBackendFile(
        id=settings["id"],
        size=size,
        mem_path=settings["mem-path"],
        share=_on_off("share", settings.get("share", "off"), option),
    )


_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_TLS_CREDS_KEYS = {"qom-type", "id", "dir", "endpoint", "verify-peer"}
_AUTHZ_KEYS = {"qom-type", "id", "identity"}


def _object_settings(
    props: list[tuple[str, str]],
    known: set[str],
    required: tuple[str, ...],
    option: str,
) -> dict[str, str]:
    """QEMU's first checks on -object properties: unknown ones, missing ones, the id."""
    for key, _ in props:
        if key not in known:
            raise CommandLineError(f"Invalid parameter '{key}'", option)
    settings = dict(props)
    for name in ("id", *required):
        if name not in settings:
            raise CommandLineError(f"Parameter '{name}' is missing", option)
    if not _IDENTIFIER.fullmatch(settings["id"]):
        raise CommandLineError(
            "Parameter 'id' expects an identifier\nIdentifiers consist of letters, "
            "digits, '-', '.', '_', starting with a letter.",
            option,
        )
    return settings


def _parse_tls_creds(props: list[tuple[str, str]], option: str) -> TlsCredsX509:
    """`-object tls-creds-x509,id=ID,dir=DIR[,endpoint=client|server][,verify-peer=]`;
    the files are checked now, as QEMU loads them when it creates the object."""
    settings = _object_settings(props, _TLS_CREDS_KEYS, (), option)
    endpoint = settings.get("endpoint", "client")
    if endpoint not in ("client", "server"):
        raise CommandLineError(
            f"Parameter 'endpoint' does not accept value '{endpoint}'", option
        )
    verify_peer = _on_off("verify-peer", settings.get("verify-peer", "on"), option)
    if "dir" not in settings:
        # QEMU prints this one (and the file errors) without the option's location.
        raise CommandLineError("Missing 'dir' property value")
    creds = TlsCredsX509(
        id=settings["id"],
        dir=settings["dir"],
        endpoint="server" if endpoint == "server" else "client",
        verify_peer=verify_peer,
    )
    try:
        creds.check_files()
    except TlsError as exc:
        raise CommandLineError(str(exc)) from None
    return creds


def _parse_authz(props: list[tuple[str, str]], option: str) -> AuthzSimple:
    """`-object authz-simple,id=ID,identity=DN` (commas in the DN doubled)."""
    settings = _object_settings(props, _AUTHZ_KEYS, ("identity",), option)
    return AuthzSimple(id=settings["id"], identity=settings["identity"])


def parse_object(value: str, option: str) -> MemoryBackendFile | UserObject:
    """One -object: a memory backend, TLS credentials or an authz-simple."""
    props = parse_keyvals(value, implied_key="qom-type")
    qom_type = dict(props).get("qom-type", "")
    if qom_type == "tls-creds-x509":
        return _parse_tls_creds(props, option)
    if qom_type == "authz-simple":
        return _parse_authz(props, option)
    return _parse_object(value, option)


def _parse_workload(value: str, option: str) -> WorkloadConfig:
    settings = dict(parse_keyvals(value))
    known = {"rate", "working-set", "pattern", "seed", "bytes-per-page"}
    for key in settings:
        if key not in known:
            raise CommandLineError(
                f"Invalid parameter '{key}' (known: {', '.join(sorted(known))})", option
            )

    def integer(key: str) -> int | None:
        if key not in settings:
            return None
        if not settings[key].isdigit():
            raise CommandLineError(
                f"Parameter '{key}' expects a non-negative integer", option
            )
        return int(settings[key])

    working_set = None
    if "working-set" in settings:
        working_set = parse_size(settings["working-set"])
        if working_set is None:
            raise CommandLineError(
                "Parameter 'working-set' expects a size value", option
            )
    pattern = settings.get("pattern", "random")
    if pattern not in WORKLOAD_PATTERNS:
        raise CommandLineError(
            f"Parameter 'pattern' does not accept value '{pattern}'"
            f" (choose from {', '.join(WORKLOAD_PATTERNS)})",
            option,
        )
    bytes_per_page = integer("bytes-per-page")
    if bytes_per_page is not None and not 1 <= bytes_per_page <= PAGE_SIZE:
        raise CommandLineError(
            f"Parameter 'bytes-per-page' expects a value between 1 and {PAGE_SIZE}",
            option,
        )
    return WorkloadConfig(
        dirty_rate=integer("rate") or 0,
        working_set=working_set,
        pattern=pattern,
        seed=integer("seed") or 0,
        bytes_per_page=bytes_per_page,
    )


# Options that take an argument and are ignored: they configure hardware qapigen-vm
# does not have. Flags (no argument) that are ignored likewise.
IGNORED_WITH_ARGUMENT = {
    "-accel",
    "-display",
    "-serial",
    "-vga",
    "-smp",
    "-cpu",
    "-monitor",
}
IGNORED_FLAGS = {
    "-nodefaults",
    "-nographic",
    "-enable-kvm",
    "-no-reboot",
    "-no-shutdown",
}
WITH_ARGUMENT = {
    "-m",
    "-compat",
    "-qmp",
    "-incoming",
    "-uuid",
    "-name",
    "-pidfile",
    "-object",
    "-machine",
    "-M",
    "-workload",
} | IGNORED_WITH_ARGUMENT
# Options that print something and end the process (status 0), as QEMU's do.
HELP_OPTIONS = {"-h", "-help"}  # and --help, as every option takes two dashes
VERSION_OPTIONS = {"-version"}
FLAGS = {"-S", "-daemonize"} | HELP_OPTIONS | VERSION_OPTIONS | IGNORED_FLAGS


def _parse_compat(value: str, option: str) -> CompatPolicy:
    """``-compat deprecated-input=reject,...`` with QEMU 7.2's messages (every
    setting needs its '='; QEMU's keyval parser takes no bare flag here)."""
    for part in value.split(","):
        if part and "=" not in part:
            raise CommandLineError(f"Expected '=' after parameter '{part}'", option)
    try:
        return CompatPolicy.from_settings(
            (key, setting) for key, setting in parse_keyvals(value) if key
        )
    except PolicyOptionError as error:
        raise CommandLineError(str(error), option) from None


def _split_options(argv: Sequence[str]) -> list[tuple[str, str, str | None]]:
    """QEMU's first pass over the command line: every option must exist and have its
    argument before any is acted on. Each as (as written, -name, argument or None)."""
    options: list[tuple[str, str, str | None]] = []
    index = 0
    while index < len(argv):
        raw = argv[index]
        # QEMU accepts --option as well as -option.
        option = raw[1:] if raw.startswith("--") else raw
        index += 1
        if option in FLAGS:
            options.append((raw, option, None))
            continue
        if option not in WITH_ARGUMENT:
            raise CommandLineError("invalid option", raw)
        if index >= len(argv):
            raise CommandLineError("requires an argument", raw)
        options.append((raw, option, argv[index]))
        index += 1
    return options


def parse_command_line(argv: Sequence[str]) -> VmConfig:
    """Parse the arguments after the program name; raises CommandLineError."""
    ram_size: int | None = None
    qmp: list[QmpEndpoint] = []
    incoming: str | None = None
    vm_uuid: uuid.UUID | None = None
    name: str | None = None
    start_paused = False
    daemonize = False
    pidfile: str | None = None
    backends: dict[str, MemoryBackendFile] = {}
    objects: dict[str, UserObject] = {}
    machine_backend: str | None = None
    workload = WorkloadConfig()
    compat = CompatPolicy()

    for raw, option, value in _split_options(argv):
        # QEMU prints its help or version when it reaches the option, ignoring what
        # follows (every option was checked first).
        if option in HELP_OPTIONS:
            return VmConfig(show="help")
        if option in VERSION_OPTIONS:
            return VmConfig(show="version")
        if value is None:
            start_paused |= option == "-S"
            daemonize |= option == "-daemonize"
            continue
        where = f"{raw} {value}"
        if option == "-m":
            settings = dict(parse_keyvals(value, implied_key="size"))
            size = parse_size(settings.get("size", ""), default_suffix="m")
            if size is None:
                raise CommandLineError(
                    "Parameter 'size' expects a non-negative number below 2^64"
                    + _SIZE_HINT,
                    where,
                )
            if size == 0 or size % PAGE_SIZE:
                raise CommandLineError(
                    f"RAM size must be a positive multiple of {PAGE_SIZE} bytes", where
                )
            ram_size = size
        elif option == "-qmp":
            qmp.append(_parse_qmp(value, where))
        elif option == "-incoming":
            if value != "defer" and not value.startswith(INCOMING_SCHEMES):
                raise CommandLineError(f"unknown migration protocol: {value}", where)
            incoming = value
        elif option == "-uuid":
            try:
                vm_uuid = uuid.UUID(value)
            except ValueError:
                raise CommandLineError(
                    "failed to parse UUID string: wrong format", where
                ) from None
        elif option == "-name":
            name = dict(parse_keyvals(value, implied_key="guest")).get("guest", value)
        elif option == "-pidfile":
            pidfile = value
        elif option == "-object":
            created = parse_object(value, where)
            if created.id in backends or created.id in objects:
                raise CommandLineError(
                    f"attempt to add duplicate property '{created.id}' to object"
                    " (type 'container')",
                    where,
                )
            if isinstance(created, MemoryBackendFile):
                backends[created.id] = created
            else:
                objects[created.id] = created
        elif option in ("-machine", "-M"):
            settings = dict(parse_keyvals(value, implied_key="type"))
            machine_backend = settings.get("memory-backend", machine_backend)
        elif option == "-workload":
            workload = _parse_workload(value, where)
        elif option == "-compat":
            compat = _parse_compat(value, where)

    memory_backend = None
    if machine_backend is not None:
        memory_backend = backends.get(machine_backend)
        if memory_backend is None:
            raise CommandLineError(f"Memory backend '{machine_backend}' not found")
        if ram_size is not None and ram_size != memory_backend.size:
            raise CommandLineError(
                "Machine memory size does not match the size of the memory backend"
            )
        ram_size = memory_backend.size
    if daemonize and not qmp:
        raise CommandLineError(
            "-daemonize without -qmp leaves no way to control the VM; add a -qmp option"
        )
    return VmConfig(
        ram_size=ram_size if ram_size is not None else DEFAULT_RAM_SIZE,
        qmp=tuple(qmp),
        incoming=incoming,
        uuid=vm_uuid,
        name=name,
        start_paused=start_paused,
        daemonize=daemonize,
        pidfile=pidfile,
        memory_backend=memory_backend,
        workload=workload,
        objects=tuple(objects.values()),
        compat=compat,
    )
