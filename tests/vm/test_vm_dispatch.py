"""qapigen-vm's dispatcher: the one generated from the VM's schema, which types
migrate-set-parameters' members as QEMU 7.2 does (the bundled schema types them
'int'), so bad requests get QEMU 7.2's texts before the handler runs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from qapigen_runtime.qmp.errors import QMPCommandError
from qapigen_vm.cmdline import parse_command_line
from qapigen_vm.dispatch import vm_dispatcher
from qapigen_vm.handlers import VmCommandHandler
from qapigen_vm.machine import Machine
from qapigen_vm_qmp.commands import CommandDispatcher


@pytest.fixture
def dispatcher() -> Iterator[CommandDispatcher]:
    machine = Machine(
        parse_command_line(["-m", "4"]),
        sink=lambda name, data: None,
        on_incoming_failure=lambda reason: None,
    )
    handler = VmCommandHandler(machine, command_names=list, request_quit=lambda: None)
    yield vm_dispatcher(handler)
    machine.close()


def run(
    dispatcher: CommandDispatcher, name: str, arguments: dict[str, object]
) -> object:
    return asyncio.run(dispatcher.dispatch(name, arguments))


def error_of(
    dispatcher: CommandDispatcher, name: str, arguments: dict[str, object]
) -> tuple[str, str]:
    with pytest.raises(QMPCommandError) as caught:
        run(dispatcher, name, arguments)
    return caught.value.error_class, caught.value.desc


# Replies of a real QEMU 7.2 to these requests.
@pytest.mark.parametrize(
    ("arguments", "desc"),
    [
        ({"compress-level": 265}, "Parameter 'compress-level' expects uint8_t"),
        ({"downtime-limit": "x"}, "Parameter 'downtime-limit' expects uint64"),
        ({"max-bandwidth": 1.5}, "Parameter 'max-bandwidth' expects uint64"),
        ({"x-checkpoint-delay": -1}, "Parameter 'x-checkpoint-delay' expects uint32_t"),
        (
            {"tls-creds": 5},
            "Invalid parameter type for 'tls-creds', expected: StrOrNull",
        ),
        (
            {"bogus": 1, "compress-level": 300},
            "Parameter 'compress-level' expects uint8_t",
        ),
        ({"bogus": 1}, "Parameter 'bogus' is unexpected"),
        (
            {"compress-level": 99},
            "Parameter 'compress_level' expects a value between 0 and 9",
        ),
    ],
)
def test_set_parameters_errors_are_qemu_7_2s(
    dispatcher: CommandDispatcher, arguments: dict[str, object], desc: str
) -> None:
    assert error_of(dispatcher, "migrate-set-parameters", arguments) == (
        "GenericError",
        desc,
    )


def test_set_parameters_wraps_negative_sizes(dispatcher: CommandDispatcher) -> None:
    assert run(dispatcher, "migrate-set-parameters", {"max-bandwidth": -1}) == {}
    reply = run(dispatcher, "query-migrate-parameters", {})
    assert isinstance(reply, dict) and reply["max-bandwidth"] == 2**64 - 1


def test_other_commands_go_through_the_generated_dispatcher(
    dispatcher: CommandDispatcher,
) -> None:
    assert error_of(dispatcher, "nonexistent", {}) == (
        "CommandNotFound",
        "The command nonexistent has not been found",
    )
    assert error_of(
        dispatcher, "client_migrate_info", {"protocol": "spice", "hostname": "h"}
    ) == ("DeviceNotActive", "SPICE is not in use")
