"""Hypothesis strategies for interplay's domains.

Text is biased toward what breaks position arithmetic: astral code points (emoji, musical
symbols), combining marks, zero-width joiners, multi-byte BMP characters; plain ASCII too.
Positions count code points, as the wire does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from interplay.core.game import JOIN, LEAVE, Action
from interplay.core.ot import TextOp

CHARS = st.one_of(
    st.sampled_from(["a", "b", " ", "\n", "é", "€", "😀", "𝄞", "\u0301", "👩\u200d💻"]),
    st.characters(codec="utf-8", exclude_categories=["Cs"]),
)
texts = st.lists(CHARS, max_size=12).map("".join)


@st.composite
def components_for(draw: st.DrawFn, doc: str) -> list[int | str]:
    """The components of a random operation on ``doc`` (ot.js's form: a positive int retains,
    a negative one deletes, a string inserts), in no particular normal form."""
    components: list[int | str] = []
    remaining = len(doc)
    while remaining or draw(st.booleans()):
        kind = draw(st.sampled_from(["retain", "delete", "insert"]))
        if kind == "insert":
            components.append(draw(texts.filter(bool)))
            if not remaining and draw(st.booleans()):
                break
        elif remaining:
            n = draw(st.integers(1, remaining))
            components.append(n if kind == "retain" else -n)
            remaining -= n
    return components


def ops_for(doc: str, op_type: Any = TextOp) -> st.SearchStrategy[Any]:
    """A random operation valid for ``doc``: retains, deletes and inserts anywhere, built with
    ``op_type.from_components``."""
    return components_for(doc).map(op_type.from_components)


@dataclass(frozen=True, slots=True)
class Splice:
    """A position-based edit, as the wire carries one: at ``position`` remove ``deleted`` code
    points, insert ``inserted``."""

    position: int
    deleted: int
    inserted: str

    def op(self, length: int, op_type: Any = TextOp) -> Any:
        return op_type.splice(length, self.position, self.deleted, self.inserted)


@st.composite
def splices_for(draw: st.DrawFn, doc: str) -> Splice:
    """A valid position-based edit of ``doc``."""
    position = draw(st.integers(0, len(doc)))
    deleted = draw(st.integers(0, len(doc) - position))
    return Splice(position, deleted, draw(texts))


# -- chat --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatStep:
    """One step of a chat script: ``user`` does ``kind`` ("join", "post", "retry", "typing",
    "leave", "disconnect") in ``room``; a post carries ``content`` and an idempotency ``id``;
    a retry re-sends the post with that ``id`` (after a reconnect, say)."""

    user: str
    kind: str
    room: str
    content: str = ""
    id: str = ""


def chat_scripts(
    users: Sequence[str] = ("ann", "bob", "cy"),
    rooms: Sequence[str] = ("lobby", "dev"),
    *,
    max_steps: int = 40,
) -> st.SearchStrategy[list[ChatStep]]:
    """Scripts of joins, posts, retries of earlier posts, typing, leaves and disconnects. Posts
    get ids ``<user>-<n>``; a retry names an id posted before it in the script."""

    @st.composite
    def script(draw: st.DrawFn) -> list[ChatStep]:
        steps: list[ChatStep] = []
        posted: list[ChatStep] = []
        for n in range(draw(st.integers(0, max_steps))):
            user, room = draw(st.sampled_from(users)), draw(st.sampled_from(rooms))
            kind = draw(
                st.sampled_from(["join", "post", "post", "retry", "typing", "leave", "disconnect"])
            )
            if kind == "retry":
                if not posted:
                    continue
                steps.append(draw(st.sampled_from(posted)))
                continue
            step = ChatStep(
                user,
                kind,
                room,
                draw(texts) if kind == "post" else "",
                f"{user}-{n}" if kind == "post" else "",
            )
            if kind == "post":
                posted.append(step)
            steps.append(step)
        return steps

    return script()


# -- games -------------------------------------------------------------------------------


def action_logs(
    kinds: Mapping[str, st.SearchStrategy[Mapping[str, str]]],
    players: Sequence[str] = ("ann", "bob", "cy"),
    *,
    max_size: int = 40,
    wild: bool = True,
) -> st.SearchStrategy[list[Action]]:
    """Logs of actions for a ``Rules``: joins, leaves, and each of ``kinds`` (action kind ->
    a strategy of its parameters), with sequences numbered per player. With ``wild``, some
    actions are what a hostile or confused client sends: unknown kinds, repeated or
    non-positive sequences, actions before a join."""

    @st.composite
    def log(draw: st.DrawFn) -> list[Action]:
        actions: list[Action] = []
        sequences: dict[str, int] = {}
        for _ in range(draw(st.integers(0, max_size))):
            player = draw(st.sampled_from(players))
            kind = draw(st.sampled_from([JOIN, LEAVE, *kinds, *kinds]))
            if kind in (JOIN, LEAVE):
                actions.append(Action(player=player, kind=kind))
                continue
            params = draw(kinds[kind])
            sequences[player] = sequences.get(player, 0) + 1
            sequence = sequences[player]
            if wild and draw(st.integers(0, 9)) == 0:
                kind = draw(st.sampled_from([kind, "no-such-kind"]))
                sequence = draw(st.integers(-1, sequence))
            actions.append(Action(player=player, kind=kind, params=params, sequence=sequence))
        return actions

    return log()
