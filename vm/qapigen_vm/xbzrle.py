"""XBZRLE: QEMU's delta encoding of a page against the copy the destination holds.

The format (facts of QEMU's ``xbzrle.c``; this code is the project's own):

    encoding := (zrun nzrun)+
    zrun     := uleb128(count of equal bytes)          0 only as the very first run
    nzrun    := uleb128(count of changed bytes > 0), then those bytes of the new page

A trailing run of equal bytes is left out, so an unchanged page encodes to nothing.
Run lengths never exceed a page, so each uleb128 takes one byte (< 0x80) or two.

The encoder works on a whole batch of pages at once with numpy: the byte-difference
mask gives every run boundary, the run lengths and their output positions come from
cumulative sums, and the changed bytes drop into the output in one masked assignment
(they appear in the mask's row-major order, which is the encoding's order). Only the
decoder walks run headers in Python, because where a header lies depends on every
earlier one; it still moves the page bytes with one vectorised gather per batch.

Overflow follows QEMU's checks with a destination buffer of one page: before each
length there must be room for two bytes, and a run's data must fit; a page whose
encoding fails them is sent as a normal page instead.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ByteArray = npt.NDArray[np.uint8]
IntArray = npt.NDArray[np.int64]

OVERFLOW = -1  # encoded length of a page that does not fit in a page
ULEB_ONE_BYTE = 0x80  # lengths below this take one byte
# Pages with at most page_size / 64 changed 64-bit words (1 in 8) take the sparse path.
SPARSE_WORDS_DIVISOR = 64


class XbzrleError(ValueError):
    """An encoded page is malformed (the destination's "decode error")."""


def encode_pages(old: ByteArray, new: ByteArray) -> tuple[IntArray, ByteArray]:
    """Encode each row of ``new`` against the same row of ``old``.

    Both are (pages, page_size) uint8 arrays. Returns the encoded length per page
    (0: unchanged, ``OVERFLOW``: does not fit) and the encodings of the pages with a
    positive length, concatenated in page order.
    """
    count, size = new.shape
    if count == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    old = np.ascontiguousarray(old)
    new = np.ascontiguousarray(new)
    if size % 8:
        return _encode_dense(old, new)
    # Compare 64-bit words first: pages with few changed words (the case XBZRLE is
    # for) are analysed byte by byte only inside those words.
    changed_words = old.view(np.uint64) != new.view(np.uint64)
    per_row = changed_words.view(np.uint8).sum(axis=1, dtype=np.int32)
    dense = per_row > size // SPARSE_WORDS_DIVISOR
    if not dense.any():
        return _encode_sparse(old, new, changed_words)
    if dense.all():
        return _encode_dense(old, new)
    rows_dense = np.flatnonzero(dense)
    rows_sparse = np.flatnonzero(~dense)
    return _merge(
        count,
        [
            (rows_dense, *_encode_dense(old[rows_dense], new[rows_dense])),
            (
                rows_sparse,
                *_encode_sparse(
                    old[rows_sparse], new[rows_sparse], changed_words[rows_sparse]
                ),
            ),
        ],
    )


def _encode_sparse(
    old: ByteArray, new: ByteArray, changed_words: npt.NDArray[np.bool_]
) -> tuple[IntArray, ByteArray]:
    """Runs found from the changed words only (cost follows the changes)."""
    count, size = new.shape
    word_at = np.flatnonzero(changed_words)
    if not word_at.size:
        return np.zeros(count, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    old_bytes = old.reshape(-1, 8)[word_at]
    new_bytes = new.reshape(-1, 8)[word_at]
    word, byte = np.nonzero(old_bytes != new_bytes)
    position = word_at[word] * 8 + byte  # flat byte offsets, ascending
    values = new_bytes[word, byte]
    position_row = position // size
    # A run breaks where the next changed byte is not adjacent or in another page.
    breaks = np.ones(position.size, dtype=np.bool_)
    breaks[1:] = (position[1:] != position[:-1] + 1) | (
        position_row[1:] != position_row[:-1]
    )
    first = np.flatnonzero(breaks)
    length = np.diff(np.append(first, position.size))
    row = position_row[first]
    start = position[first] - row * size
    last_differs = old[:, -1] != new[:, -1]
    return _assemble(count, size, row, start, start + length, values, last_differs)


def _encode_dense(old: ByteArray, new: ByteArray) -> tuple[IntArray, ByteArray]:
    """Runs from the whole byte-difference matrix (pages changed in many places)."""
    count, size = new.shape
    differs = old != new
    # Each changed byte is copied and each changed run needs two length bytes at
    # least: pages changed almost everywhere overflow for sure and skip the run
    # analysis (the costly part), which random rewrites would otherwise pay in full.
    changed_bytes = differs.view(np.uint8).sum(axis=1, dtype=np.int32)
    run_starts = differs[:, 0].astype(np.int32) + (
        differs[:, 1:] > differs[:, :-1]
    ).view(np.uint8).sum(axis=1, dtype=np.int32)
    hopeless = changed_bytes + 2 * run_starts > size
    if hopeless.any():
        lengths = np.full(count, OVERFLOW, dtype=np.int64)
        rest = np.flatnonzero(~hopeless)
        if not rest.size:
            return lengths, np.zeros(0, dtype=np.uint8)
        lengths[rest], encoded = _encode_dense(old[rest], new[rest])
        return lengths, encoded
    # Pad each row with an equal byte at both ends: then every changed run has a
    # start and an end boundary, and the boundaries alternate start, end, start, ...
    padded = np.zeros((count, size + 2), dtype=np.bool_)
    padded[:, 1:-1] = differs
    edges = np.flatnonzero(padded[:, 1:] != padded[:, :-1])
    width = size + 1
    rows_all = edges // width
    cols_all = edges - rows_all * width
    return _assemble(
        count,
        size,
        rows_all[0::2],
        cols_all[0::2],
        cols_all[1::2],
        new[differs],
        differs[:, -1],
    )


def _assemble(
    count: int,
    size: int,
    row: IntArray,
    start: IntArray,
    end: IntArray,
    values: ByteArray,
    last_differs: npt.NDArray[np.bool_],
) -> tuple[IntArray, ByteArray]:
    """The encodings from the changed runs (row, [start, end)) in page order and
    the changed bytes in the same order."""
    if not row.size:
        return np.zeros(count, dtype=np.int64), np.zeros(0, dtype=np.uint8)
    # Equal bytes before each changed run: from the previous run's end in the row.
    previous_end = np.empty_like(end)
    previous_end[1:] = end[:-1]
    first_in_row = np.ones(row.size, dtype=np.bool_)
    first_in_row[1:] = row[1:] != row[:-1]
    previous_end[first_in_row] = 0
    zrun = start - previous_end
    nzrun = end - start
    zrun_bytes = 1 + (zrun >= ULEB_ONE_BYTE)
    nzrun_bytes = 1 + (nzrun >= ULEB_ONE_BYTE)
    run_size = zrun_bytes + nzrun_bytes + nzrun
    run_end = np.cumsum(run_size)
    run_start = run_end - run_size
    totals = np.bincount(row, weights=run_size, minlength=count).astype(np.int64)
    row_start = np.cumsum(totals) - totals
    # Output offsets relative to the page's own encoding, for QEMU's room checks:
    # two bytes free before each length, and the whole run inside the page.
    local_start = run_start - row_start[row]
    nzrun_at = local_start + zrun_bytes
    too_big = (nzrun_at + 2 > size) | (nzrun_at + nzrun_bytes + nzrun > size)
    overflow = np.bincount(row, weights=too_big, minlength=count) > 0
    # QEMU checks for room once more before finding out the rest is equal bytes.
    overflow |= ~last_differs & (totals > 0) & (totals + 2 > size)

    out = np.empty(int(run_end[-1]), dtype=np.uint8)
    is_header = np.zeros(out.size, dtype=np.bool_)
    _put_uleb128(out, is_header, run_start, zrun, zrun_bytes)
    _put_uleb128(out, is_header, run_start + zrun_bytes, nzrun, nzrun_bytes)
    out[~is_header] = values

    lengths = np.where(overflow, OVERFLOW, totals)
    dropped = overflow & (totals > 0)
    if dropped.any():
        out = out[np.repeat(~dropped, totals)]
    return lengths, out


def _merge(
    count: int, parts: list[tuple[IntArray, IntArray, ByteArray]]
) -> tuple[IntArray, ByteArray]:
    """Combine encodings of disjoint row subsets back into page order."""
    lengths = np.empty(count, dtype=np.int64)
    for rows, part_lengths, _ in parts:
        lengths[rows] = part_lengths
    sizes = np.maximum(lengths, 0)
    offsets = np.cumsum(sizes) - sizes
    out = np.empty(int(sizes.sum()), dtype=np.uint8)
    for rows, part_lengths, data in parts:
        part_sizes = np.maximum(part_lengths, 0)
        local = np.cumsum(part_sizes) - part_sizes
        target = np.repeat(offsets[rows] - local, part_sizes) + np.arange(data.size)
        out[target] = data
    return lengths, out


def _put_uleb128(
    out: ByteArray,
    is_header: npt.NDArray[np.bool_],
    at: IntArray,
    value: IntArray,
    nbytes: IntArray,
) -> None:
    """Write small uleb128 values (< 0x4000) at the given output offsets."""
    two = nbytes == 2
    out[at] = np.where(two, (value & 0x7F) | 0x80, value).astype(np.uint8)
    is_header[at] = True
    out[at[two] + 1] = (value[two] >> 7).astype(np.uint8)
    is_header[at[two] + 1] = True


def _read_uleb128(data: bytes, at: int) -> tuple[int, int]:
    """A small uleb128 at ``at``: (value, bytes used); a third byte is an error."""
    first = data[at]
    if first < ULEB_ONE_BYTE:
        return first, 1
    second = data[at + 1]
    if second >= ULEB_ONE_BYTE:
        raise XbzrleError("run length longer than two bytes")
    return (first & 0x7F) | (second << 7), 2


def parse_runs(
    encoded: bytes, page_size: int
) -> tuple[list[int], list[int], list[int]]:
    """The changed runs of one encoded page: (page offsets, data offsets, lengths).

    Applies QEMU's decoder rules: at least two bytes left before each run pair, no
    empty changed run, no empty equal run after the first, nothing beyond the page
    or the encoding. Data offsets index ``encoded``.
    """
    targets: list[int] = []
    sources: list[int] = []
    lengths: list[int] = []
    limit = len(encoded)
    i = 0
    d = 0
    while i < limit:
        if limit - i < 2:
            raise XbzrleError(f"truncated run at byte {i}")
        zrun, used = _read_uleb128(encoded, i)
        if i and not zrun:
            raise XbzrleError(f"empty equal run at byte {i}")
        i += used
        d += zrun
        if d > page_size:
            raise XbzrleError(f"equal run at byte {i - used} passes the page end")
        if limit - i < 2:
            raise XbzrleError(f"truncated run at byte {i}")
        nzrun, used = _read_uleb128(encoded, i)
        if not nzrun:
            raise XbzrleError(f"empty changed run at byte {i}")
        i += used
        if d + nzrun > page_size or i + nzrun > limit:
            raise XbzrleError(f"changed run at byte {i - used} passes the end")
        targets.append(d)
        sources.append(i)
        lengths.append(nzrun)
        d += nzrun
        i += nzrun
    return targets, sources, lengths


def decode_pages(base: ByteArray, lengths: IntArray, data: ByteArray) -> None:
    """Apply encodings to ``base`` (pages, page_size) in place.

    ``lengths`` holds each page's encoded length and ``data`` their concatenation.
    Every page is checked before any byte of ``base`` changes, so a bad encoding
    leaves ``base`` untouched (XbzrleError names the page's position in the batch).

    The run headers are walked for all pages in lock step: step k reads the k-th
    run pair of every page still going, so the Python loop runs as many times as
    the busiest page has runs, not once per run of the batch.
    """
    count, size = base.shape
    widths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(widths)
    cursor = ends - widths
    # Two spare bytes: a header read may look past a page's end before the checks
    # (which then reject that page) run.
    raw = np.concatenate(
        [np.asarray(data, dtype=np.uint8).reshape(-1), np.zeros(2, np.uint8)]
    )
    written = np.zeros(count, dtype=np.int64)
    first = np.ones(count, dtype=np.bool_)
    targets: list[IntArray] = []
    sources: list[IntArray] = []
    runs: list[IntArray] = []
    going = np.flatnonzero(cursor < ends)
    while going.size:
        at = cursor[going]
        end = ends[going]
        bad = end - at < 2
        zrun, used, wide = _read_uleb128_many(raw, at)
        bad |= wide | (~first[going] & (zrun == 0))
        at = at + used
        offset = written[going] + zrun
        bad |= (offset > size) | (end - at < 2)
        nzrun, used, wide = _read_uleb128_many(raw, at)
        at = at + used
        bad |= wide | (nzrun == 0) | (offset + nzrun > size) | (at + nzrun > end)
        if bad.any():
            _raise_for_page(raw, cursor, widths, int(going[np.argmax(bad)]), size)
        targets.append(going * size + offset)
        sources.append(at)
        runs.append(nzrun)
        cursor[going] = at + nzrun
        written[going] = offset + nzrun
        first[going] = False
        going = going[cursor[going] < end]
    if not runs:
        return
    run_lengths = np.concatenate(runs)
    within = np.arange(int(run_lengths.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(run_lengths) - run_lengths, run_lengths
    )
    flat = base.reshape(-1)
    flat[np.repeat(np.concatenate(targets), run_lengths) + within] = raw[
        np.repeat(np.concatenate(sources), run_lengths) + within
    ]


def _read_uleb128_many(
    raw: ByteArray, at: IntArray
) -> tuple[IntArray, IntArray, npt.NDArray[np.bool_]]:
    """Small uleb128 values at each offset: (values, bytes used, too long)."""
    low = raw[at].astype(np.int64)
    two = low >= ULEB_ONE_BYTE
    high = raw[at + 1].astype(np.int64)
    values = np.where(two, (low & 0x7F) | (high << 7), low)
    return values, 1 + two.astype(np.int64), two & (high >= ULEB_ONE_BYTE)


def _raise_for_page(
    raw: ByteArray, cursor: IntArray, widths: IntArray, page: int, size: int
) -> None:
    """Name what is wrong with one page of the batch (the walker found it bad)."""
    end = int(np.cumsum(widths)[page])
    encoded = raw[end - int(widths[page]) : end].tobytes()
    try:
        parse_runs(encoded, size)
    except XbzrleError as exc:
        raise XbzrleError(f"page {page} of the batch: {exc}") from None
    raise XbzrleError(f"page {page} of the batch: malformed encoding")
