"""``maker``: the positional constructor builds what the dataclass's ``__init__`` builds."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from interplay.core.documents import Acked, Piece, Remote
from interplay.core.effects import SaveEdit, StoredEdit
from interplay.core.events import Deliver
from interplay.core.frozen import maker
from interplay.core.ot import TextOp

EXAMPLES: list[object] = [
    Acked(document="d", revision=3, op_id="o", user="u"),
    Piece(position=1, deleted="ab", inserted="c"),
    Remote(
        document="d",
        revision=4,
        user="u",
        op_id="o",
        pieces=(Piece(position=0, deleted="", inserted="x"),),
    ),
    Deliver(to=("s1", "s2"), message="m"),
    StoredEdit(op=TextOp.splice(2, 1, 0, "x"), author="u", op_id="o"),
    SaveEdit(
        document="d",
        revision=2,
        edit=StoredEdit(op=TextOp.splice(0, 0, 0, "x"), author="u", op_id=""),
        snapshot="x",
        keep_from=1,
    ),
]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: type(e).__name__)
def test_maker_builds_the_same_frozen_object(example: object) -> None:
    values = [getattr(example, f.name) for f in dataclasses.fields(example)]  # type: ignore[arg-type]
    made = maker(type(example))(*values)
    assert type(made) is type(example)
    assert made == example and hash(made) == hash(example) and repr(made) == repr(example)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(made)[0].name, None)  # type: ignore[arg-type]


def test_maker_refuses_what_it_cannot_build_faithfully() -> None:
    @dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("n")

    @dataclass(frozen=True)
    class Unslotted:
        n: int

    with pytest.raises(TypeError, match="__post_init__"):
        maker(Checked)
    with pytest.raises(TypeError, match="not a slotted dataclass"):
        maker(Unslotted)
    with pytest.raises(TypeError):
        maker(Acked)("d", 1, "o")  # every field, or none
