"""stream_writes: chunks in order, errors raised to the reader, a closed reader stops the writer."""

import threading
from collections.abc import Generator

import pytest

from gmp_edge.api.streaming import stream_writes


def test_chunks_arrive_in_order_with_bounded_queue():
    def produce(write):
        for i in range(500):
            write(f"{i},".encode())

    assert b"".join(stream_writes(produce, depth=2)) == b"".join(
        f"{i},".encode() for i in range(500)
    )


def test_nothing_written_is_an_empty_stream():
    assert list(stream_writes(lambda write: None)) == []


def test_a_writer_error_reaches_the_reader_after_the_chunks_before_it():
    def produce(write):
        write(b"a")
        raise ValueError("readings changed during export")

    it = stream_writes(produce)
    assert next(it) == b"a"
    with pytest.raises(ValueError, match="readings changed"):
        next(it)


def test_closing_the_reader_stops_the_writer_and_runs_its_cleanup():
    cleaned = threading.Event()
    written = []

    def produce(write):
        try:
            for i in range(10_000):
                write(b"x")
                written.append(i)
        finally:
            cleaned.set()

    it = stream_writes(produce, depth=1)
    assert isinstance(it, Generator)  # so that closing it runs its finally
    assert next(it) == b"x"
    it.close()  # the client went away
    assert cleaned.wait(30)  # a deadline that only bounds a failure
    assert len(written) < 10  # stopped, not run to the end
