"""Text operations (the ot.js model): retain / insert / delete over the whole document.

An operation is a normalised tuple of components: an ``int > 0`` retains that many code points,
an ``int < 0`` deletes ``-n`` code points, a ``str`` inserts itself. Normalised means no empty
component, no two neighbours of the same kind, and an insert always before an adjacent delete,
so equal edits are equal values. Lengths and positions count Unicode code points (Python ``str``
indices), the unit of the editing traces; never UTF-16 units or UTF-8 bytes.

``transform(a, b)`` gives ``(a2, b2)`` with ``apply(apply(d, a), b2) == apply(apply(d, b), a2)``
(TP1); when both insert at one position, ``a``'s text goes first (left).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ..frozen import maker

Component = int | str


class _Builder:
    """Appends components while keeping the normal form."""

    __slots__ = ("base", "ops", "target")

    def __init__(self) -> None:
        self.ops: list[Component] = []
        self.base = 0
        self.target = 0

    def retain(self, n: int) -> None:
        if n <= 0:
            return
        self.base += n
        self.target += n
        ops = self.ops
        if ops and isinstance(ops[-1], int) and ops[-1] > 0:
            ops[-1] += n
        else:
            ops.append(n)

    def insert(self, text: str) -> None:
        if not text:
            return
        self.target += len(text)
        ops = self.ops
        if ops and isinstance(ops[-1], str):
            ops[-1] += text
        elif ops and isinstance(ops[-1], int) and ops[-1] < 0:
            # Keep inserts before deletes: "delete then insert" == "insert then delete".
            if len(ops) > 1 and isinstance(ops[-2], str):
                ops[-2] += text
            else:
                ops.insert(len(ops) - 1, text)
        else:
            ops.append(text)

    def delete(self, n: int) -> None:
        if n <= 0:
            return
        self.base += n
        ops = self.ops
        if ops and isinstance(ops[-1], int) and ops[-1] < 0:
            ops[-1] -= n
        else:
            ops.append(-n)

    def add(self, component: Component) -> None:
        if isinstance(component, str):
            self.insert(component)
        elif component > 0:
            self.retain(component)
        else:
            self.delete(-component)

    def build(self) -> TextOp:
        return _text_op(tuple(self.ops), self.base, self.target)


@dataclass(frozen=True, slots=True)
class TextOp:
    ops: tuple[Component, ...]
    base_length: int
    target_length: int

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_components(cls, components: Iterable[Component]) -> TextOp:
        """Normalise any sequence of components (zeros and empty strings are dropped)."""
        builder = _Builder()
        for component in components:
            builder.add(component)
        return builder.build()

    @classmethod
    def identity(cls, length: int) -> TextOp:
        return cls.from_components([length])

    @classmethod
    def splice(cls, length: int, position: int, deleted: int, inserted: str = "") -> TextOp:
        """At ``position`` of a document of ``length``, delete ``deleted``, insert ``inserted``.

        Raises ValueError if the range does not fit the document.
        """
        if position < 0 or deleted < 0 or position + deleted > length:
            raise ValueError(
                f"splice at {position} deleting {deleted} does not fit a document of {length}"
            )
        builder = _Builder()
        builder.retain(position)
        builder.insert(inserted)
        builder.delete(deleted)
        builder.retain(length - position - deleted)
        return builder.build()

    @classmethod
    def diff(cls, old: str, new: str) -> TextOp:
        """An operation that turns ``old`` into ``new``, keeping what they share: the common
        ends, then ``difflib``'s matching blocks in between (a character diff; any correct
        one would do, a closer one rebases edits onto ``new`` more faithfully)."""
        builder = _Builder()
        start, stop = 0, min(len(old), len(new))
        while start < stop and old[start] == new[start]:
            start += 1
        end = 0
        while end < stop - start and old[-1 - end] == new[-1 - end]:
            end += 1
        builder.retain(start)
        matcher = difflib.SequenceMatcher(
            None, old[start : len(old) - end], new[start : len(new) - end], autojunk=False
        )
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                builder.retain(i2 - i1)
            else:
                builder.insert(new[start + j1 : start + j2])
                builder.delete(i2 - i1)
        builder.retain(end)
        return builder.build()

    # -- queries ---------------------------------------------------------------------------

    def splices(self) -> Iterator[tuple[int, int, str]]:
        """``(position, deleted, inserted)`` pieces, each relative to the text after the ones
        before it: how a position-based wire carries an op that does not fit in one splice."""
        position = 0
        pending_insert = ""
        pending_delete = 0
        for component in (*self.ops, 0):
            if isinstance(component, str):
                pending_insert += component
                continue
            if component < 0:
                pending_delete -= component
                continue
            if pending_insert or pending_delete:
                yield position, pending_delete, pending_insert
                position += len(pending_insert)
                pending_insert, pending_delete = "", 0
            position += component

    def transform_index(self, index: int) -> int:
        """Where a caret at ``index`` ends up after this operation (an insert at the caret
        pushes it right; a delete around it pulls it to the deletion's start)."""
        moved = index
        position = 0
        for component in self.ops:
            if isinstance(component, str):
                if position <= index:
                    moved += len(component)
            elif component > 0:
                position += component
            else:
                if position < index:
                    moved -= min(-component, index - position)
                position -= component
            if position > index:
                break
        return moved

    # -- the algebra -----------------------------------------------------------------------

    def apply(self, text: str) -> str:
        if len(text) != self.base_length:
            raise ValueError(
                f"operation expects a document of {self.base_length} code points, got {len(text)}"
            )
        parts: list[str] = []
        index = 0
        for component in self.ops:
            if isinstance(component, str):
                parts.append(component)
            elif component > 0:
                parts.append(text[index : index + component])
                index += component
            else:
                index -= component
        return "".join(parts)

    def invert(self, text: str) -> TextOp:
        """The operation that undoes this one, given the text it was applied to."""
        builder = _Builder()
        index = 0
        for component in self.ops:
            if isinstance(component, str):
                builder.delete(len(component))
            elif component > 0:
                builder.retain(component)
                index += component
            else:
                builder.insert(text[index : index - component])
                index -= component
        return builder.build()

    def compose(self, other: TextOp) -> TextOp:
        """One operation with the effect of this one followed by ``other``."""
        if self.target_length != other.base_length:
            raise ValueError(
                f"cannot compose: first produces {self.target_length} code points, "
                f"second expects {other.base_length}"
            )
        builder = _Builder()
        first, second = _Cursor(self.ops), _Cursor(other.ops)
        while not (first.done and second.done):
            a, b = first.peek(), second.peek()
            if isinstance(a, int) and a < 0:  # the first deletes: that happens anyway
                builder.delete(-a)
                first.take_all()
                continue
            if isinstance(b, str):  # the second inserts: that happens anyway
                builder.insert(b)
                second.take_all()
                continue
            if a is None or b is None:
                raise AssertionError("compose: operation lengths disagree")  # checked above
            n = min(len(a) if isinstance(a, str) else a, abs(b))
            piece = first.take(n)
            second.take(n)
            if b < 0:  # the second deletes what the first inserted or kept
                if not isinstance(piece, str):
                    builder.delete(n)
            elif isinstance(piece, str):
                builder.insert(piece)
            else:
                builder.retain(n)
        return builder.build()

    @staticmethod
    def transform(a: TextOp, b: TextOp) -> tuple[TextOp, TextOp]:
        """``(a2, b2)``: ``a`` rebased over ``b`` and ``b`` over ``a`` (TP1; ``a`` goes left)."""
        if a.base_length != b.base_length:
            raise ValueError(
                f"cannot transform: operations expect {a.base_length} and "
                f"{b.base_length} code points"
            )
        # Fast path: two single splices whose ranges neither overlap nor touch (what concurrent
        # editors mostly send, the wire being position-based) only shift each other.
        first, second = _splice_of(a), _splice_of(b)
        if first is not None and second is not None:
            pa, da, sa = first
            pb, db, sb = second
            length = a.base_length
            if pa + da < pb:
                return (
                    splice_op(length - db + len(sb), pa, da, sa),
                    splice_op(length - da + len(sa), pb - da + len(sa), db, sb),
                )
            if pb + db < pa:
                return (
                    splice_op(length - db + len(sb), pa - db + len(sb), da, sa),
                    splice_op(length - da + len(sa), pb, db, sb),
                )
        return TextOp._transform(a, b)

    @staticmethod
    def _transform(a: TextOp, b: TextOp) -> tuple[TextOp, TextOp]:
        """The general case: walk both operations component by component."""
        a_out, b_out = _Builder(), _Builder()
        first, second = _Cursor(a.ops), _Cursor(b.ops)
        while not (first.done and second.done):
            x, y = first.peek(), second.peek()
            if isinstance(x, str):  # a's insert goes first on a tie
                a_out.insert(x)
                b_out.retain(len(x))
                first.take_all()
                continue
            if isinstance(y, str):
                a_out.retain(len(y))
                b_out.insert(y)
                second.take_all()
                continue
            if x is None or y is None:
                raise AssertionError("transform: operation lengths disagree")  # checked above
            n = min(abs(x), abs(y))
            first.take(n)
            second.take(n)
            if x > 0 and y > 0:
                a_out.retain(n)
                b_out.retain(n)
            elif x < 0 < y:  # only a deletes it
                a_out.delete(n)
            elif y < 0 < x:  # only b deletes it
                b_out.delete(n)
            # both delete the same text: nothing is left for either to do
        return a_out.build(), b_out.build()


class _Cursor:
    """Walks a component tuple, splitting components as the other side demands."""

    __slots__ = ("_head", "_index", "_ops")

    def __init__(self, ops: tuple[Component, ...]) -> None:
        self._ops = ops
        self._index = 0
        self._head: Component | None = ops[0] if ops else None

    @property
    def done(self) -> bool:
        return self._head is None

    def peek(self) -> Component | None:
        return self._head

    def take_all(self) -> None:
        self._index += 1
        self._head = self._ops[self._index] if self._index < len(self._ops) else None

    def take(self, n: int) -> Component:
        """Consume ``n`` code points of the head; return the part taken."""
        head = self._head
        assert head is not None
        piece: Component
        rest: Component
        if isinstance(head, str):
            piece, rest, size = head[:n], head[n:], len(head)
        elif head > 0:
            piece, rest, size = n, head - n, head
        else:
            piece, rest, size = -n, head + n, -head
        if n >= size:
            self.take_all()
        else:
            self._head = rest
        return piece


# ``TextOp(ops, base_length, target_length)`` for the builders above, which keep the normal
# form themselves: without the dataclass's ``__init__`` (core/frozen.py).
_text_op = maker(TextOp)


def _splice_of(op: TextOp) -> tuple[int, int, str] | None:
    """``(position, deleted, inserted)`` if ``op`` is one splice (or nothing), else None."""
    ops, index, count = op.ops, 0, len(op.ops)
    position, inserted, deleted = 0, "", 0
    if index < count and type(ops[index]) is int and ops[index] > 0:  # type: ignore[operator]
        position = ops[index]  # type: ignore[assignment]
        index += 1
    if index < count and type(ops[index]) is str:
        inserted = ops[index]  # type: ignore[assignment]
        index += 1
    if index < count and type(ops[index]) is int and ops[index] < 0:  # type: ignore[operator]
        deleted = -ops[index]  # type: ignore[operator]
        index += 1
    if index < count and type(ops[index]) is int and ops[index] > 0:  # type: ignore[operator]
        index += 1
    return (position, deleted, inserted) if index == count else None


def splice_op(length: int, position: int, deleted: int, inserted: str) -> TextOp:
    """``TextOp.splice`` for arguments known to fit, without the builder (the hot paths)."""
    if not (inserted or deleted):  # nothing: one retain, as the normal form has it
        return _text_op((length,) if length else (), length, length)
    ops: list[Component] = []
    if position:
        ops.append(position)
    if inserted:
        ops.append(inserted)
    if deleted:
        ops.append(-deleted)
    if length - position - deleted:
        ops.append(length - position - deleted)
    return _text_op(tuple(ops), length, length - deleted + len(inserted))
