"""The reference VM as one object: built from a parsed command line, started, closed.

`Machine` owns what a qemu-system-x86_64 process owns for the migration subset: the
guest RAM (anonymous, or the file of ``-object memory-backend-file`` so that
``share=on`` makes the file the memory itself), the guest workload of ``-workload``, and
the migration engine with the run state (``-S``, ``-incoming``), the named descriptors
of getfd/closefd and the STOP/RESUME/MIGRATION events. It knows nothing of QMP or
asyncio: events go to the `EventSink` it is given, a failed incoming migration to
``on_incoming_failure``.
"""

from __future__ import annotations

from collections.abc import Callable

from .cmdline import VmConfig
from .engine import MigrationEngine
from .errors import VmCommandError
from .ram import PAGE_SIZE, GuestRam, RamError
from .runstate import EventSink
from .workload import GuestWorkload, Pattern, WorkloadError


class MachineError(Exception):
    """The VM cannot be created as configured; `str()` is the message to print."""


class Machine:
    """One reference VM: RAM, workload and migration engine from a `VmConfig`."""

    def __init__(
        self,
        config: VmConfig,
        *,
        sink: EventSink,
        on_incoming_failure: Callable[[str], None],
    ) -> None:
        self.config = config
        self.ram = self._create_ram(config)
        self.engine = MigrationEngine(
            self.ram,
            vm_uuid=config.uuid,
            incoming=config.incoming,
            start_paused=config.start_paused,
            sink=sink,
            on_incoming_failure=on_incoming_failure,
            objects={obj.id: obj for obj in config.objects},
        )
        self.workload: GuestWorkload | None = None
        self._closed = False

    @staticmethod
    def _create_ram(config: VmConfig) -> GuestRam:
        backend = config.memory_backend
        try:
            if backend is None:
                return GuestRam(config.ram_size)
            return GuestRam(
                backend.size, backing_file=backend.mem_path, share=backend.share
            )
        except RamError as exc:
            raise MachineError(str(exc)) from None

    def start(self) -> None:
        """Start listening for ``-incoming`` and start the guest workload, if any."""
        try:
            self.engine.start()
        except VmCommandError as exc:
            raise MachineError(
                f"-incoming {self.config.incoming}: {exc.desc}"
            ) from None
        workload = self.config.workload
        if workload.dirty_rate > 0:
            pages = None
            if workload.working_set is not None:
                pages = max(workload.working_set // PAGE_SIZE, 1)
            pattern: Pattern = workload.pattern  # type: ignore[assignment]
            try:
                self.workload = self.engine.start_workload(
                    rate=workload.dirty_rate,
                    pages=pages,
                    pattern=pattern,
                    seed=workload.seed,
                    bytes_per_page=workload.bytes_per_page,
                )
            except WorkloadError as exc:
                raise MachineError(f"-workload: {exc}") from None

    def close(self) -> None:
        """Stop migrations and the workload, release the RAM (flushing a shared file).

        Blocking (it joins engine threads); safe to call twice.
        """
        if self._closed:
            return
        self._closed = True
        self.engine.close()
        self.ram.close()
