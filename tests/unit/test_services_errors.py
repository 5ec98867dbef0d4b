"""services.errors.translated: a domain refusal becomes the workflow error mapped to it."""

import pytest

from gmp_edge.services.errors import Conflict, Invalid, NotFound, translated


class _Base(Exception):
    pass


class _Sub(_Base):
    pass


REFUSALS = {_Sub: Conflict, _Base: Invalid, KeyError: NotFound}


@pytest.mark.parametrize(
    ("raised", "expected"),
    [(_Sub("stale"), Conflict), (_Base("bad"), Invalid), (KeyError("gone"), NotFound)],
)
def test_the_first_matching_entry_decides_and_the_message_stays(
    raised: Exception, expected: type[Exception]
) -> None:
    with pytest.raises(expected) as info, translated(REFUSALS):
        raise raised
    assert str(info.value) == str(raised)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unmapped_errors_and_results_pass_through() -> None:
    with pytest.raises(RuntimeError), translated(REFUSALS):
        raise RuntimeError("not ours")
    with translated(REFUSALS):
        value = 42
    assert value == 42
