"""The `commands` module (async and sync clients, the handler protocol and base, the
dispatcher and the command tables) and the `_server` module (CommandDispatcher and one
marshal function per command, which only a server imports)."""

from __future__ import annotations

from dataclasses import dataclass

from .. import naming
from ..layout import INDENT, Assign, Group, Node, Return, lay_out
from ..render import header, py_string, render
from ..schema import Command, Schema
from .common import (
    RUNTIME,
    Imports,
    Reference,
    TypeMapper,
    TypeNames,
    is_deprecated,
    members_of,
    special_features,
)
from .docs import doc_text
from .literals import dict_literal, frozenset_literal, json_node, keyed
from .modules import ModulePlan
from .view import Member, Module, TypeUse

I2 = INDENT * 2

# The parameter that carries the undeclared arguments of a 'gen': false command.
OPEN_ARGUMENTS = "extra_arguments"

# The QMP commands that take the file descriptor sent along with them (SCM_RIGHTS).
# A fact of QEMU's monitor: of what a client passes with a command, only these two
# take a descriptor (getfd names it, add-fd puts it into a set). Everything else that
# uses one (migration to `fd:NAME`, add_client, `/dev/fdset/N` paths, the fd options
# of chardevs and netdevs) names a descriptor one of them stored, so only these two
# client methods need a descriptor parameter, and there it is required.
PASSED_FD_COMMANDS = frozenset({"getfd", "add-fd"})

# The client methods' parameter that carries that descriptor.
PASSED_FD = "fd"


@dataclass
class CommandView:
    wire: str
    method: str
    params: list[Member]
    boxed: TypeUse | None
    returns: TypeUse | None
    doc: str
    cond_json: object
    deprecated: bool
    allow_oob: bool
    # 'gen': false commands take arguments beyond the declared ones (device_add)
    open_arguments: bool = False
    # 'success-response': false commands (guest-shutdown) get no reply on success:
    # the client sends them through the base class, which does not wait for one
    success_response: bool = True
    # the command takes a descriptor passed with it (PASSED_FD_COMMANDS)
    passes_fd: bool = False
    # its features a server's `-compat` policy acts on
    special: tuple[str, ...] = ()

    @property
    def runner(self) -> str:
        return "run_" + self.method.rstrip("_")

    @property
    def not_found(self) -> str:
        """QEMU's CommandNotFound text for this command."""
        return f"The command {self.wire} has not been found"

    def signature(self, is_async: bool, suffix: str, client: bool = False) -> Node:
        """``[async ]def method(self, *, a: T, b: U | None = None) -> R:`` + suffix;
        a `client` method of a command that takes a passed descriptor also takes it
        (``fd: int``; a handler gets it from the connection, see
        `qapigen_runtime.qmp.passed_fds`)."""
        params: list[Node] = ["self"]
        if self.boxed is not None:
            params += [f"arguments: {self.boxed.annotation}", "/"]
        elif self.params:
            params.append("*")
            params += [p.parameter for p in self.params]
            if self.open_arguments:
                params.append(f"{OPEN_ARGUMENTS}: dict[str, object] | None = None")
        if client and self.passes_fd:
            if "*" not in params:
                params.append("*")
            params.append(f"{PASSED_FD}: int")
        returns = "None"
        if self.returns is not None and self.success_response:
            returns = self.returns.annotation
        keyword = "async def" if is_async else "def"
        return Group(
            f"{keyword} {self.method}(", params, f") -> {returns}:{suffix}", is_def=True
        )

    @property
    def warn_deprecated(self) -> Node:
        message = py_string(f"QMP command '{self.wire}' is deprecated")
        return Group(
            "_warnings.warn(", [message, "DeprecationWarning", "stacklevel=2"], ")"
        )

    def client_body(self, is_async: bool) -> str:
        lines: list[str] = []
        # No arguments, no "arguments" member: QEMU reads requests one byte at a
        # time, so every byte sent costs it time.
        call_arguments: list[Node] = [py_string(self.wire)]
        if self.boxed is not None:
            lines.append(
                lay_out(Assign("_arguments", self.boxed.encode_node("arguments")), I2)
            )
            call_arguments.append("_arguments")
        elif self.params:
            required: list[Node] = [
                _item(p.wire, p.type.encode_node(p.attr))
                for p in self.params
                if not p.omissible
            ]
            value = Group("{", required, "}", literal=True)
            lines.append(lay_out(Assign("_arguments: dict[str, object]", value), I2))
            if self.open_arguments:
                lines.append(f"{I2}if {OPEN_ARGUMENTS} is not None:")
                lines.append(f"{I2}{INDENT}_arguments.update({OPEN_ARGUMENTS})")
            for p in self.params:
                where = f"argument '{p.wire}' of QMP command '{self.wire}'"
                lines += p.deprecation_lines(p.attr, where, I2, stacklevel=2)
                if p.omissible:
                    lines.append(p.set_optional("_arguments", p.attr, I2))
            if required or self.open_arguments:
                call_arguments.append("_arguments")
            else:  # only optional arguments: maybe none given
                call_arguments.append("_arguments or None")
        if self.passes_fd:
            call_arguments.append(f"fds=[{PASSED_FD}]")
        wait = "await " if is_async else ""
        call = Group(f"{wait}self._transport.execute(", call_arguments, ")")
        if not self.success_response:
            if len(call_arguments) == 1:
                call_arguments.append("None")
            call = Group(f"{wait}self._execute_no_reply(", call_arguments, ")")
            lines.append(lay_out(call, I2))
        elif self.returns is None:
            lines.append(lay_out(call, I2))
        else:
            lines.append(lay_out(Assign("_reply", call), I2))
            decode = self.returns.decode_call(["_reply", '""', "False"])
            lines.append(lay_out(Return(decode), I2))
        return "\n".join(lines)

    @property
    def runner_body(self) -> str:
        """Decode the arguments strictly (in member order, then refuse unknown ones,
        as QEMU's input visitor does), call the handler, encode the reply."""
        lines: list[str] = []
        if self.boxed is not None:
            decode = Group(f"{self.boxed.decoder}(", ["_arguments", '""', "True"], ")")
            call = Group(f"await _handler.{self.method}(", [decode], ")")
        else:
            for p in self.params:
                if p.special:
                    # refused by the server's input policy here, in member order
                    refused: list[Node] = ["_arguments", py_string(p.wire), '""', '""']
                    if not p.optional:
                        refused.append("True")  # asked whether or not it is there
                    refuse = Group("_c.refuse_member(", refused, ")")
                    lines.append(lay_out(refuse, INDENT))
                helper = "_c.optional" if p.optional else "_c.required"
                args: list[Node] = ["_arguments", py_string(p.wire), '""', "True"]
                tail: list[Node] = [p.type.decoder_node]
                if p.required_but_omissible:
                    # required unless the server's conditions leave it out
                    helper = "_c.omissible"
                    tail.append('""' if p.cond_json is not None else "None")
                value = Group(f"{helper}(", [*args, *tail], ")")
                lines.append(lay_out(Assign(p.attr, value), INDENT))
            strict = "False" if self.open_arguments else "True"
            # a set display, not frozenset(): a decoded argument may be named so
            known: Node = "_c.NO_MEMBERS"
            if self.params:
                known = Group(
                    "{", [py_string(p.wire) for p in self.params], "}", literal=True
                )
            check: Node = Group(
                "_c.extra_members(", ["_arguments", known, '""', strict], ")"
            )
            kwargs: list[Node] = [f"{p.attr}={p.attr}" for p in self.params]
            if self.open_arguments:
                # what QEMU's own handler of such a command reads from the request
                check = Assign(OPEN_ARGUMENTS, check)
                kwargs.append(f"{OPEN_ARGUMENTS}={OPEN_ARGUMENTS}")
            lines.append(lay_out(check, INDENT))
            call = Group(f"await _handler.{self.method}(", kwargs, ")")
        if self.returns is None:
            lines.append(lay_out(call, INDENT))
            lines.append(INDENT + "return {}")
        else:
            lines.append(lay_out(Assign("_reply", call), INDENT))
            lines.append(lay_out(Return(self.returns.encode_node("_reply")), INDENT))
        return "\n".join(lines)

    @property
    def special_params(self) -> Node | None:
        items: list[Node] = [
            keyed(p.wire, json_node(p.special)) for p in self.params if p.special
        ]
        if not items:
            return None
        return keyed(self.wire, Group("{", items, "}", literal=True, explode=True))

    @property
    def conditional_params(self) -> Node | None:
        items: list[Node] = [
            keyed(p.wire, json_node(p.cond_json)) for p in self.params if p.cond_json
        ]
        if not items:
            return None
        return keyed(self.wire, Group("{", items, "}", literal=True, explode=True))


def _item(key: str, value: Node) -> Node:
    """``"key": value`` as a dict item."""
    if isinstance(value, Group):
        return Group(
            f"{py_string(key)}: {value.opening}",
            value.items,
            value.closing,
            explode=value.explode,
            literal=value.literal,
        )
    assert isinstance(value, str)
    return f"{py_string(key)}: {value}"


def command_view(
    command: Command, mapper: TypeMapper, methods: naming.NameScope
) -> CommandView:
    method = methods.add(
        command.name, naming.attribute_name(command.name), command.info
    )
    params: list[Member] = []
    boxed = None
    passes_fd = command.name in PASSED_FD_COMMANDS
    arg_type = command.arg_type
    if arg_type is not None and command.boxed:
        boxed = mapper.use(arg_type)
    elif arg_type is not None:
        where = f"the arguments of command '{command.name}'"
        reserved = (OPEN_ARGUMENTS, PASSED_FD) if passes_fd else (OPEN_ARGUMENTS,)
        params = members_of(
            mapper, arg_type.members, command.doc, where, reserved=reserved
        )
        for param in params:
            mapper.import_deprecated_values(param.type)
    returns = mapper.use(command.ret_type) if command.ret_type is not None else None
    doc = doc_text(
        command.doc,
        members_heading="Args",
        members=[(p.attr, p.doc) for p in params],
        deprecated=is_deprecated(command.features),
        deprecated_use="calling it",
        condition=command.ifcond.to_json(),
        fallback=f"QMP command {command.name}.",
    )
    if passes_fd:
        doc += (
            f"\n\nA client sends `{PASSED_FD}` (a file descriptor) with the command,\n"
            "by SCM_RIGHTS over a unix socket; a handler takes it with\n"
            "`qapigen_runtime.qmp.passed_fds.take_passed_fd()`."
        )
    return CommandView(
        command.name,
        method,
        params,
        boxed,
        returns,
        doc,
        command.ifcond.to_json(),
        is_deprecated(command.features),
        command.allow_oob,
        open_arguments=not command.gen and boxed is None and bool(params),
        success_response=command.success_response,
        passes_fd=passes_fd,
        special=tuple(special_features(command.features)),
    )


def _command_views(
    schema: Schema, names: TypeNames, plan: ModulePlan, imports: Imports
) -> list[CommandView]:
    mapper = TypeMapper(names, Reference(plan, imports))
    # The client classes' and handler classes' namespace: one method per command.
    methods = naming.NameScope("the client classes")
    return [command_view(c, mapper, methods) for c in schema.commands()]


def generate_commands(
    schema: Schema, names: TypeNames, plan: ModulePlan, schema_name: str
) -> list[Module]:
    imports = Imports()
    commands = _command_views(schema, names, plan, imports)
    imports.module("typing as _typing")
    imports.name(f"{RUNTIME}.bindings.client", "AsyncClientBase as _AsyncClientBase")
    imports.name(f"{RUNTIME}.bindings.client", "SyncClientBase as _SyncClientBase")
    imports.name(f"{RUNTIME}.qmp.errors", "CommandNotFound as _CommandNotFound")
    if any(c.deprecated or any(p.deprecated for p in c.params) for c in commands):
        imports.module("warnings as _warnings")
    module = Module(
        "commands.py",
        f"QMP commands of the QAPI schema {schema_name}.\n\n{header(schema_name)}",
        imports.lines(),
    )
    method_names: list[Node] = [
        f"{py_string(c.wire)}: {py_string(c.method)}" for c in commands
    ]
    conditions = [
        keyed(c.wire, json_node(c.cond_json)) for c in commands if c.cond_json
    ]
    arguments = [c.conditional_params for c in commands if c.conditional_params]
    features = [
        keyed(c.wire, json_node(list(c.special))) for c in commands if c.special
    ]
    argument_features = [c.special_params for c in commands if c.special_params]
    oob: list[Node] = [py_string(c.wire) for c in commands if c.allow_oob]
    no_reply: list[Node] = [
        py_string(c.wire) for c in commands if not c.success_response
    ]
    module.body = render(
        "commands.py.j2",
        module=module,
        commands=commands,
        schema_name=schema_name,
        methods=dict_literal("METHODS: dict[str, str]", method_names),
        command_conditions=dict_literal(
            "COMMAND_CONDITIONS: dict[str, object]", conditions
        ),
        argument_conditions=dict_literal(
            "ARGUMENT_CONDITIONS: dict[str, dict[str, object]]", arguments
        ),
        oob_commands=frozenset_literal("OOB_COMMANDS: frozenset[str]", oob),
        no_reply_commands=frozenset_literal(
            "NO_REPLY_COMMANDS: frozenset[str]", no_reply
        ),
        command_features=dict_literal(
            "COMMAND_FEATURES: dict[str, list[str]]", features
        ),
        argument_features=dict_literal(
            "ARGUMENT_FEATURES: dict[str, dict[str, list[str]]]", argument_features
        ),
    )
    return [module, _generate_server(commands, schema_name)]


def _generate_server(commands: list[CommandView], schema_name: str) -> Module:
    # The views spell types as `_t.X` and use `_c`: both imported here whatever they
    # use, so the views built for commands.py serve as they are.
    imports = Imports()
    imports.name(RUNTIME, "codec as _c")
    imports.name("collections.abc", "Collection as _Collection")
    imports.name(f"{RUNTIME}.bindings", "dispatch as _dispatch")
    imports.name(f"{RUNTIME}.bindings.policy", "CompatPolicy as _CompatPolicy")
    imports.name(".", "commands as _commands")
    imports.name(".", "types as _t")
    module = Module(
        "_server.py",
        f"What a server of {schema_name} needs: `CommandDispatcher`, and the\n"
        "marshal function of each QMP command (arguments decoded strictly, in member\n"
        "order, then unknown ones refused, as QEMU's input visitor does; the\n"
        "handler called; the reply encoded). `commands` names the dispatcher and\n"
        "imports this module only when a program uses it.\n\n" + header(schema_name),
        imports.lines(),
    )
    runners: list[Node] = [f"{py_string(c.wire)}: {c.runner}" for c in commands]
    module.body = render(
        "server.py.j2",
        module=module,
        commands=commands,
        runners=dict_literal("RUNNERS: dict[str, _dispatch.Runner]", runners),
    )
    return module
