"""Hypothesis strategies shared by the OT tests."""

from __future__ import annotations

from hypothesis import strategies as st

from interplay.core.ot import TextOp

# Biased toward what breaks position arithmetic: astral code points (emoji, musical symbols),
# combining marks, multi-byte BMP characters; plain ASCII too.
CHARS = st.one_of(
    st.sampled_from(["a", "b", " ", "\n", "é", "€", "😀", "𝄞", "\u0301", "👩\u200d💻"]),
    st.characters(codec="utf-8", exclude_categories=("Cs",)),
)
texts = st.lists(CHARS, max_size=12).map("".join)


@st.composite
def ops_for(draw: st.DrawFn, doc: str) -> TextOp:
    """A random operation valid for ``doc``: retains, deletes and inserts anywhere."""
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
    return TextOp.from_components(components)
