"""Migration capabilities and parameters: QEMU 7.2 defaults, checks and exact texts."""

from __future__ import annotations

import pytest

from qapigen_vm import GuestRam, MigrationEngine, VmCommandError
from qapigen_vm.params import CAPABILITY_NAMES, MigrationSettings

MIB = 1 << 20


def test_defaults_are_qemu_7_2s() -> None:
    params = MigrationSettings().query_parameters().to_wire()
    # The values a fresh QEMU 7.2 reports (see the migration behaviour notes).
    assert params["max-bandwidth"] == 134217728
    assert params["downtime-limit"] == 300
    assert params["xbzrle-cache-size"] == 67108864
    assert params["multifd-channels"] == 2
    assert params["throttle-trigger-threshold"] == 50
    assert (
        params["cpu-throttle-initial"],
        params["cpu-throttle-increment"],
        params["max-cpu-throttle"],
    ) == (20, 10, 99)
    assert (params["compress-level"], params["compress-threads"]) == (1, 8)
    assert params["decompress-threads"] == 2
    assert params["x-checkpoint-delay"] == 20000
    assert params["max-postcopy-bandwidth"] == 0
    assert (params["announce-initial"], params["announce-max"]) == (50, 550)
    assert (params["announce-rounds"], params["announce-step"]) == (5, 100)
    assert params["tls-creds"] == "" and params["multifd-compression"] == "none"


def test_capabilities_all_off_in_schema_order() -> None:
    caps = MigrationSettings().query_capabilities()
    assert [c["capability"] for c in caps] == list(CAPABILITY_NAMES)
    assert not any(c["state"] for c in caps)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"compress-level": 99},
            "Parameter 'compress_level' expects a value between 0 and 9",
        ),
        (
            {"cpu-throttle-initial": 0},
            "Parameter 'cpu_throttle_initial' expects an integer in the range of 1 to 99",
        ),
        (
            {"cpu-throttle-increment": 100},
            "Parameter 'cpu_throttle_increment' expects an integer in the range of 1 "
            "to 99",
        ),
        (
            {"downtime-limit": 3000000},
            "Parameter 'downtime_limit' expects an integer in the range of 0 to "
            "(2000 * 1000) ms",
        ),
        (
            {"xbzrle-cache-size": 1000},
            "Parameter 'xbzrle_cache_size' expects a power of two no less than the "
            "target page size",
        ),
        (
            {"xbzrle-cache-size": 3 * 4096},
            "Parameter 'xbzrle_cache_size' expects a power of two no less than the "
            "target page size",
        ),
        (
            {"multifd-channels": 0},
            "Parameter 'multifd_channels' expects a value between 1 and 255",
        ),
        (
            {"max-cpu-throttle": 100},
            "Parameter 'max_cpu_throttle' expects an integer in the range of "
            "cpu_throttle_initial to 99",
        ),
        (
            {"cpu-throttle-initial": 50, "max-cpu-throttle": 40},
            "Parameter 'max_cpu_throttle' expects an integer in the range of "
            "cpu_throttle_initial to 99",
        ),
        (
            {"throttle-trigger-threshold": 0},
            "Parameter 'throttle_trigger_threshold' expects an integer in the range of "
            "1 to 100",
        ),
        (
            {"compress-threads": 0},
            "Parameter 'compress_threads' expects a value between 1 and 255",
        ),
        (
            {"decompress-threads": 256},  # 7.2 types it uint8: too big, not narrowed
            "Parameter 'decompress-threads' expects uint8_t",
        ),
        (
            {"compress-level": -1},  # read as 2**64-1, then too big for uint8
            "Parameter 'compress-level' expects uint8_t",
        ),
        (
            {"x-checkpoint-delay": 2**32},
            "Parameter 'x-checkpoint-delay' expects uint32_t",
        ),
        (
            {"max-bandwidth": 2**64},  # beyond uint64: a double to QEMU's parser
            "Parameter 'max-bandwidth' expects uint64",
        ),
        (
            {"announce-initial": 100001},
            "Parameter 'announce_initial' expects a value between 0 and 100000",
        ),
        (
            {"announce-rounds": 1001},
            "Parameter 'announce_rounds' expects a value between 0 and 1000",
        ),
        (
            {"announce-step": 0},
            "Parameter 'announce_step' expects a value between 0 and 10000",
        ),
        (
            {"downtime-limit": -1},  # uint64: wraps to a huge value
            "Parameter 'downtime_limit' expects an integer in the range of 0 to "
            "(2000 * 1000) ms",
        ),
        ({"bogus": 1}, "Parameter 'bogus' is unexpected"),
    ],
)
def test_parameter_validation_messages(
    request_: dict[str, object], message: str
) -> None:
    settings = MigrationSettings()
    before = settings.query_parameters()
    with pytest.raises(VmCommandError) as caught:
        settings.set_parameters(request_)
    assert caught.value.desc == message
    assert caught.value.error_class == "GenericError"
    # all or nothing: a refused request changes no parameter
    assert settings.query_parameters() == before


def test_first_failing_check_wins_in_qemu_order() -> None:
    settings = MigrationSettings()
    with pytest.raises(VmCommandError) as caught:
        settings.set_parameters({"multifd-channels": 0, "compress-level": 10})
    assert "compress_level" in caught.value.desc


def test_type_errors_come_before_range_checks_in_member_order() -> None:
    """7.2 reads every member with its type first (in its member order, unknown
    members last), and only then checks ranges."""
    settings = MigrationSettings()
    with pytest.raises(VmCommandError) as caught:
        settings.set_parameters(
            {"bogus": 1, "multifd-channels": 0, "compress-level": 265}
        )
    assert caught.value.desc == "Parameter 'compress-level' expects uint8_t"


def test_negative_sizes_wrap_as_in_qemu() -> None:
    settings = MigrationSettings()
    settings.set_parameters({"max-bandwidth": -1, "max-postcopy-bandwidth": -2})
    params = settings.query_parameters()
    assert params.max_bandwidth == 2**64 - 1
    assert params.max_postcopy_bandwidth == 2**64 - 2


def test_multifd_levels_are_read_but_not_stored() -> None:
    """QEMU 7.2 accepts any uint8 multifd level and keeps the old one."""
    settings = MigrationSettings()
    settings.set_parameters({"multifd-zlib-level": 10, "multifd-zstd-level": 21})
    params = settings.query_parameters()
    assert (params.multifd_zlib_level, params.multifd_zstd_level) == (1, 1)
    with pytest.raises(VmCommandError) as caught:
        settings.set_parameters({"multifd-zlib-level": 256})
    assert caught.value.desc == "Parameter 'multifd-zlib-level' expects uint8_t"


def test_valid_parameters_are_stored() -> None:
    settings = MigrationSettings()
    settings.set_parameters(
        {"max-bandwidth": 12345, "downtime-limit": 1, "tls-creds": None}
    )
    params = settings.query_parameters()
    assert (params.max_bandwidth, params.downtime_limit) == (12345, 1)
    assert params.tls_creds == ""


def test_wrong_json_type_is_refused() -> None:
    with pytest.raises(VmCommandError) as caught:
        MigrationSettings().set_parameters({"downtime-limit": "300"})
    assert caught.value.desc == "Parameter 'downtime-limit' expects uint64"


def test_unknown_capability() -> None:
    with pytest.raises(VmCommandError) as caught:
        MigrationSettings().set_capabilities(
            [("no-such-capability", True)], is_running=False
        )
    assert caught.value.desc == (
        "Parameter 'capability' does not accept value 'no-such-capability'"
    )


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (
            [("postcopy-ram", True), ("x-ignore-shared", True)],
            "Postcopy is not compatible with ignore-shared",
        ),
        (
            [("multifd", True), ("compress", True)],
            "Multifd is not compatible with compress",
        ),
    ],
)
def test_capability_conflicts(caps: list[tuple[str, bool]], message: str) -> None:
    settings = MigrationSettings()
    with pytest.raises(VmCommandError) as caught:
        settings.set_capabilities(caps, is_running=False)
    assert caught.value.desc == message
    assert not any(c["state"] for c in settings.query_capabilities())


def test_postcopy_with_compress_is_accepted_as_in_qemu_7_2() -> None:
    settings = MigrationSettings()
    settings.set_capabilities(
        [("postcopy-ram", True), ("compress", True)], is_running=False
    )
    assert settings.capability("postcopy-ram") and settings.capability("compress")


def test_conflict_checked_against_already_set_capabilities() -> None:
    settings = MigrationSettings()
    settings.set_capabilities([("multifd", True)], is_running=False)
    with pytest.raises(VmCommandError, match="Multifd is not compatible with compress"):
        settings.set_capabilities([("compress", True)], is_running=False)


def test_capabilities_refused_while_migrating() -> None:
    with pytest.raises(VmCommandError) as caught:
        MigrationSettings().set_capabilities([("events", True)], is_running=True)
    assert caught.value.desc == "There's a migration process in progress"


def test_deprecated_5_2_commands_wrap_the_parameters() -> None:
    engine = MigrationEngine(GuestRam(MIB))
    engine.migrate_set_downtime(0.12345)
    assert engine.query_migrate_parameters().downtime_limit == 123
    engine.migrate_set_speed(12345)
    assert engine.query_migrate_parameters().max_bandwidth == 12345
    engine.migrate_set_cache_size(4096)
    assert engine.query_migrate_cache_size() == 4096
    assert engine.query_migrate_parameters().xbzrle_cache_size == 4096
    engine.close()


@pytest.mark.parametrize("value", [-0.5, 2000.5, float("nan")])
def test_set_downtime_range(value: float) -> None:
    settings = MigrationSettings()
    with pytest.raises(VmCommandError) as caught:
        settings.set_downtime(value)
    assert caught.value.desc == (
        "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000 "
        "seconds"
    )


def test_set_cache_size_checks_like_the_parameter() -> None:
    with pytest.raises(VmCommandError, match="xbzrle_cache_size"):
        MigrationSettings().set_cache_size(1000)


# -- command preconditions on an idle VM (QEMU 7.2's replies) -------------------------


@pytest.fixture
def idle() -> MigrationEngine:
    return MigrationEngine(GuestRam(MIB))


def _desc(call: object) -> str:
    assert callable(call)
    with pytest.raises(VmCommandError) as caught:
        call()
    return caught.value.desc


def test_idle_command_errors(idle: MigrationEngine) -> None:
    assert (
        _desc(lambda: idle.migrate_continue("pre-switchover"))
        == "Migration not in expected state: none"
    )
    assert _desc(idle.migrate_pause) == (
        "migrate-pause is currently only supported during postcopy-active state"
    )
    assert _desc(lambda: idle.migrate_recover("tcp:127.0.0.1:1")) == (
        "Migrate recover can only be run when postcopy is paused."
    )
    assert _desc(idle.migrate_start_postcopy) == (
        "Enable postcopy with migrate_set_capability before the start of migration"
    )
    assert _desc(lambda: idle.migrate_incoming("tcp:127.0.0.1:0")) == (
        "'-incoming' was not specified on the command line"
    )
    assert _desc(lambda: idle.migrate("tcp:127.0.0.1:1", resume=True)) == (
        "Cannot resume if there is no paused migration"
    )
    assert _desc(lambda: idle.client_migrate_info("vnc", "h")) == (
        "Parameter 'protocol' expects 'spice'"
    )
    with pytest.raises(VmCommandError) as caught:
        idle.client_migrate_info("spice", "h")
    assert (caught.value.error_class, caught.value.desc) == (
        "DeviceNotActive",
        "SPICE is not in use",
    )
    assert _desc(lambda: idle.closefd("nope")) == (
        "File descriptor named 'nope' not found"
    )
    idle.close()


def test_bad_uri_fails_without_error_desc() -> None:
    events: list[tuple[str, dict[str, object]]] = []
    engine = MigrationEngine(GuestRam(MIB), sink=lambda n, d: events.append((n, d)))
    engine.migrate_set_capabilities([("events", True)])
    assert _desc(lambda: engine.migrate("foo:bar")) == (
        "Parameter 'uri' expects a valid migration protocol"
    )
    assert engine.query_migrate().to_wire() == {"status": "failed"}
    assert events == [
        ("MIGRATION", {"status": "setup"}),
        ("MIGRATION", {"status": "failed"}),
    ]
    assert engine.query_status()["running"] is True
    engine.close()


def test_incoming_preconditions() -> None:
    engine = MigrationEngine(GuestRam(MIB), incoming="defer")
    assert engine.query_status()["status"] == "inmigrate"
    assert _desc(lambda: engine.migrate("tcp:127.0.0.1:1")) == (
        "Guest is waiting for an incoming migration"
    )
    # 7.2: "defer" is no protocol once the VM runs
    assert _desc(lambda: engine.migrate_incoming("defer")) == (
        "unknown migration protocol: defer"
    )
    assert _desc(lambda: engine.migrate_incoming("bogus:x")) == (
        "unknown migration protocol: bogus:x"
    )
    engine.migrate_incoming("tcp:127.0.0.1:0")
    assert _desc(lambda: engine.migrate_incoming("tcp:127.0.0.1:0")) == (
        "The incoming migration has already been started"
    )
    engine.close()


def test_unimplemented_capability_is_refused_at_migrate(idle: MigrationEngine) -> None:
    idle.migrate_set_capabilities([("rdma-pin-all", True)])
    assert _desc(lambda: idle.migrate("tcp:127.0.0.1:1")) == (
        "Capability 'rdma-pin-all' is not supported by the reference VM yet"
    )
    assert idle.query_migrate().status is None
    idle.close()
