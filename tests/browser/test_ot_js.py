"""The browser's OT (web/js/ot/) against the core's (interplay.core.ot), run in chromium on
random documents and operations: same components from apply, transform, compose, invert,
splices, caret moves and character diffs, and the same client state machine step by step."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import Page

from interplay.core.ot import ClientDocument, TextOp
from interplay.testing.strategies import ops_for, texts

pytestmark = pytest.mark.slow

ALGEBRA = """async ([doc, a, b, c, index]) => {
  const { TextOp } = await import("/js/ot/text.js");
  const op = (components) => TextOp.fromComponents(components);
  const [a2, b2] = TextOp.transform(op(a), op(b));
  return {
    applied: op(a).apply(doc),
    transformed: [a2.ops, b2.ops],
    composed: op(a).compose(op(c)).ops,
    inverted: op(a).invert(doc).ops,
    splices: op(a).splices(),
    moved: op(a).transformIndex(index),
    lengths: [op(a).baseLength, op(a).targetLength],
  };
}"""


def components(op: TextOp) -> list[int | str]:
    return list(op.ops)


@given(st.data())
def test_text_operations_agree_with_the_core(module_page: Page, data: st.DataObject) -> None:
    doc = data.draw(texts)
    a, b = data.draw(ops_for(doc)), data.draw(ops_for(doc))
    c = data.draw(ops_for(a.apply(doc)))
    index = data.draw(st.integers(0, len(doc)))
    got = module_page.evaluate(ALGEBRA, [doc, components(a), components(b), components(c), index])
    a2, b2 = TextOp.transform(a, b)
    assert got == {
        "applied": a.apply(doc),
        "transformed": [components(a2), components(b2)],
        "composed": components(a.compose(c)),
        "inverted": components(a.invert(doc)),
        "splices": [list(s) for s in a.splices()],
        "moved": a.transform_index(index),
        "lengths": [a.base_length, a.target_length],
    }


DIFF = """async (pairs) => {
  const { TextOp } = await import("/js/ot/text.js");
  return pairs.map(([before, after]) => TextOp.diff(before, after).ops);
}"""


@given(st.data())
def test_character_diffs_agree_with_the_core(module_page: Page, data: st.DataObject) -> None:
    """``TextOp.diff`` (difflib's matching blocks between the common ends) gives the same
    operation in JS, on unrelated texts, on a text and an edit of it, and on repetitive ones
    (where which block difflib picks first matters)."""
    pairs = []
    for _ in range(data.draw(st.integers(1, 8))):
        before = data.draw(texts | st.text("ab𝄞", max_size=30))
        if data.draw(st.booleans()):
            after = data.draw(ops_for(before)).apply(before)
        else:
            after = data.draw(texts | st.text("ab𝄞", max_size=30))
        pairs.append([before, after])
    got = module_page.evaluate(DIFF, pairs)
    assert got == [components(TextOp.diff(before, after)) for before, after in pairs]
    for (before, after), ops in zip(pairs, got, strict=True):
        assert TextOp.from_components(ops).apply(before) == after


CLIENT = """async (steps) => {
  const { TextOp } = await import("/js/ot/text.js");
  const { ClientDocument } = await import("/js/ot/client.js");
  const doc = new ClientDocument(steps[0][1]);
  const out = [];
  for (const [kind, arg] of steps.slice(1)) {
    let sent = null;
    if (kind === "edit") sent = doc.edit(TextOp.fromComponents(arg));
    else if (kind === "remote") doc.receive(TextOp.fromComponents(arg));
    else if (kind === "ack") sent = doc.ack();
    else if (kind === "undo") sent = doc.undo();
    else if (kind === "redo") sent = doc.redo();
    else if (kind === "rebase") {
      const [text, revision, change, landed] = arg;
      sent = doc.rebase(text, revision, TextOp.fromComponents(change), landed);
    }
    out.push({
      text: doc.text, revision: doc.revision, state: doc.state,
      outstanding: doc.outstanding && doc.outstanding.ops,
      buffer: doc.buffer && doc.buffer.ops,
      sent: sent && [sent.op.ops, sent.base],
    });
  }
  return out;
}"""


def _snapshot(doc: ClientDocument, sent: Any) -> dict[str, Any]:
    return {
        "text": doc.text,
        "revision": doc.revision,
        "state": doc.state.value,
        "outstanding": None if doc.outstanding is None else components(doc.outstanding),
        "buffer": None if doc.buffer is None else components(doc.buffer),
        "sent": None if sent is None else [components(sent.op), sent.base],
    }


@given(st.data())
def test_client_state_machine_agrees_with_the_core(module_page: Page, data: st.DataObject) -> None:
    """Local edits, someone else's edits, acks, undo, redo and rebases onto a later snapshot
    (with the operation in flight landed in it or not) in a random order: the JS client ends
    every step in the core client's state and sends what it sends."""
    start = data.draw(texts)
    doc = ClientDocument(start)
    server = start  # the server's text at the client's revision, for valid remote ops
    steps: list[list[Any]] = [["start", start]]
    expected = []
    for _ in range(data.draw(st.integers(1, 12))):
        kinds = ["edit", "remote", "undo", "redo", "rebase"] + (["ack"] if doc.outstanding else [])
        kind = data.draw(st.sampled_from(kinds))
        sent: Any = None
        if kind == "edit":
            op = data.draw(ops_for(doc.text))
            steps.append([kind, components(op)])
            sent = doc.edit(op)
        elif kind == "remote":
            op = data.draw(ops_for(server))
            steps.append([kind, components(op)])
            doc.receive(op)
            server = op.apply(server)
        elif kind == "ack":
            assert doc.outstanding is not None
            server = doc.outstanding.apply(server)
            steps.append([kind, None])
            sent = doc.ack()
        elif kind == "rebase":
            landed = doc.outstanding is not None and data.draw(st.booleans())
            known = doc.outstanding.apply(server) if landed and doc.outstanding else server
            text = data.draw(ops_for(known)).apply(known)
            change = TextOp.diff(known, text)
            revision = doc.revision + data.draw(st.integers(0, 3))
            steps.append([kind, [text, revision, components(change), landed]])
            sent = doc.rebase(text, revision=revision, change=change, landed=int(landed))
            server = text
        else:
            steps.append([kind, None])
            sent = doc.undo() if kind == "undo" else doc.redo()
        expected.append(_snapshot(doc, sent))
    assert module_page.evaluate(CLIENT, steps) == expected
