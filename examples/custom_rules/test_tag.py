"""interplay's checks, run on our own game's rules."""

from hypothesis import strategies as st
from tag import SIZE, Tag

from interplay.testing import check_rules

PARAMS = {
    "step": st.fixed_dictionaries({"dir": st.sampled_from(["n", "s", "e", "w", "up"])}),
    "tag": st.fixed_dictionaries({"target": st.sampled_from(["ann", "bob", "cy"])}),
}


def on_the_board(state):
    return all(0 <= p.x <= SIZE and 0 <= p.y <= SIZE for p in state.players)


def test_tag_keeps_every_promise():
    check_rules(Tag(), params=PARAMS, invariants=[on_the_board])
