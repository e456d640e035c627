"""The laws of text operations (ot.js's test-text-operation.js), for any operation type.

    from interplay.testing import check_ot_laws
    check_ot_laws(MyTextOp)            # raises OTLawBroken naming the law and the example

The type needs ``interplay.core.ot.TextOp``'s interface: ``from_components(components)`` (a
positive int retains, a negative one deletes, a string inserts), ``splice(length, position,
deleted, inserted)``, ``apply(text)``, ``compose(other)``, ``invert(text)``,
``transform(a, b) -> (a', b')`` and ``base_length``/``target_length``. The server and every
client transform with it, so a type that breaks one of these laws makes documents diverge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from .strategies import ops_for, texts


class OTLawBroken(AssertionError):
    """An operation type broke one of the laws; the message names it and the example."""


def check_ot_laws(op_type: Any, *, max_examples: int | None = None, shrink: bool = True) -> None:
    """Check every law on generated documents and operations (under the current Hypothesis
    profile unless ``max_examples`` says otherwise); raise ``OTLawBroken`` for the first one
    broken, with Hypothesis' smallest example (the first found, with ``shrink=False``)."""
    for law, check in _laws(op_type).items():
        run = given(st.data())(check)
        chosen = _settings(max_examples=max_examples, shrink=shrink)
        if chosen is not None:
            run = chosen(run)
        try:
            run()
        except Exception as error:
            notes = "\n".join(getattr(error, "__notes__", ()))
            raise OTLawBroken(f"{op_type.__name__} breaks {law}: {error}\n{notes}") from None


def _settings(*, shrink: bool = True, **given: int | None) -> settings | None:
    """Hypothesis settings for what the caller chose; None: the current profile's."""
    chosen: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if not shrink:
        chosen["phases"] = [phase for phase in Phase if phase is not Phase.shrink]
    return settings(**chosen) if chosen else None


def _laws(T: Any) -> dict[str, Callable[[st.DataObject], None]]:
    def lengths(data: st.DataObject) -> None:
        doc = data.draw(texts, label="document")
        op = data.draw(ops_for(doc, T), label="op")
        assert op.base_length == len(doc), f"base_length {op.base_length} != {len(doc)}"
        applied = op.apply(doc)
        assert len(applied) == op.target_length, f"applied {applied!r}: not target_length"

    def tp1(data: st.DataObject) -> None:
        doc = data.draw(texts, label="document")
        a, b = data.draw(ops_for(doc, T), label="a"), data.draw(ops_for(doc, T), label="b")
        a2, b2 = T.transform(a, b)
        assert a2.base_length == b.target_length and b2.base_length == a.target_length, (
            "transformed ops do not fit the other's result"
        )
        left, right = b2.apply(a.apply(doc)), a2.apply(b.apply(doc))
        assert left == right, f"b'(a(doc)) = {left!r} but a'(b(doc)) = {right!r}"

    def tie_break(data: st.DataObject) -> None:
        doc = data.draw(texts, label="document")
        at = data.draw(st.integers(0, len(doc)), label="position")
        x = data.draw(texts.filter(bool), label="a inserts")
        y = data.draw(texts.filter(bool), label="b inserts")
        a, b = T.splice(len(doc), at, 0, x), T.splice(len(doc), at, 0, y)
        _a2, b2 = T.transform(a, b)
        merged = b2.apply(a.apply(doc))
        expected = doc[:at] + x + y + doc[at:]
        assert merged == expected, (
            f"two inserts at {at}: got {merged!r}, want {expected!r} (the first operation's "
            "insert goes left of the second's, on the server and every client alike)"
        )

    def compose(data: st.DataObject) -> None:
        doc = data.draw(texts, label="document")
        a = data.draw(ops_for(doc, T), label="a")
        after = a.apply(doc)
        b = data.draw(ops_for(after, T), label="b")
        composed = a.compose(b)
        assert composed.apply(doc) == b.apply(after), "a.compose(b) is not a then b"
        assert (composed.base_length, composed.target_length) == (len(doc), b.target_length)

    def invert(data: st.DataObject) -> None:
        doc = data.draw(texts, label="document")
        op = data.draw(ops_for(doc, T), label="op")
        assert op.invert(doc).apply(op.apply(doc)) == doc, "op.invert(doc) does not undo op"

    return {
        "the lengths law (base_length, target_length)": lengths,
        "TP1 (transform converges)": tp1,
        "the insert tie-break": tie_break,
        "compose (a.compose(b) = b after a)": compose,
        "invert (undo)": invert,
    }
