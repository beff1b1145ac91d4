"""Wrong uses of generated bindings that mypy --strict must reject.

Type-checked by tests/bindings/test_generate.py against the golden 'constructs' package; the
expected mypy output is committed in negative_constructs.out (an error on each line
whose comment says so, and on no other line).
"""

from __future__ import annotations

from golden_constructs.commands import AsyncClient, SyncClient
from golden_constructs.events import JobDoneEvent, TickEvent
from golden_constructs.types import Job, JobInfo, JobInfo_Active, Status, Widths


def misuse(client: SyncClient, aclient: AsyncClient) -> None:
    client.job_start(id=1)  # error: wrong argument type
    client.job_start()  # error: missing required argument
    client.job_start(id="j", bogus=True)  # error: unknown argument
    client.job_start("j")  # error: arguments are keyword-only
    count: str = client.job_count()  # error: returns int
    widths = Widths.from_wire({})
    client.job_set(widths)  # error: boxed argument has the wrong type
    aclient.query_jobs().append(1)  # error: coroutine, not a list


def fields(job: Job, info: JobInfo) -> None:
    job.tags = "a"  # error: list[str]
    job.nonexistent = 1  # error: no such member
    Job(id="j")  # error: missing kind and tags
    JobInfo_Active(id="j", progress=1, kind=Status.ACTIVE)  # error: the tag is fixed
    info.progress  # error: not every branch has it
    status: Status = "active"  # error: a str is not an enum member


def stamps(done: JobDoneEvent) -> None:
    done.timestamp = 1.5  # error: a Timestamp, not a float
    seconds: float = done.timestamp  # error: float(done.timestamp) converts
    TickEvent(timestamp=1, count=1)  # error: the data member is timestamp_
    done.timestamp.seconds = 0  # error: a Timestamp is frozen
