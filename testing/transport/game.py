"""GameSync, end to end (DESIGN §4 "GameSync"): the checks of ``GameConformance``."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .base import SUPPRESSED, Transport
from .calls import CallEnded, rejected
from .server import Arena, GameLimits, GameSettings, ServerUnderTest

SETTINGS = GameSettings(tick_hz=50.0, full_every=25, grace=1.0)
ARENA = Arena(attack_range=1500)  # everyone within reach


def at(player: str, sequence: int) -> Any:
    """Until the client's mirror shows ``player`` with ``sequence`` applied."""
    return lambda c: (
        player in c.mirror.players and c.mirror.players[player].last_sequence >= sequence
    )


ACTIONS = st.lists(
    st.one_of(
        st.tuples(st.just("move"), st.integers(-14, 14)),  # valid within ±10
        st.tuples(st.just("fly"), st.just(0)),  # an unknown action type
    ),
    min_size=1,
    max_size=12,
)


class GameConformance(Transport):
    """GameSync, end to end (DESIGN §4 "GameSync"): every check, on your transport."""

    def serving(
        self, limits: GameLimits | None = None
    ) -> AbstractAsyncContextManager[ServerUnderTest]:
        return self.serve(arena=ARENA, game_settings=SETTINGS, game_limits=limits)

    async def test_two_players_and_a_late_joiner_hold_the_servers_state(self) -> None:
        async with (
            self.serving() as server,
            server.game("ann") as ann,
            server.game("bob") as bob,
        ):
            await ann.join("m")
            await bob.join("m")
            first = await ann.recv()
            assert first is not None and first.full and first.match_id == "m"
            await ann.until(lambda c: set(c.mirror.players) == {"ann", "bob"})
            sequence = await ann.act("move", dx="5", dy="-3")
            await bob.act("attack", target="ann")
            await ann.until(at("ann", sequence))
            await bob.until(at("ann", sequence))
            assert any(not s.full for s in ann.states)  # deltas flowed
            async with server.game("cy") as cy:
                await cy.join("m")
                joined = await cy.recv()
                assert joined is not None and joined.full  # a late joiner starts from a full state
                assert {p.player_id for p in joined.players} == {"ann", "bob", "cy"}
                await ann.until(lambda c: "cy" in c.mirror.players)
                # Quiet now: every mirror settles on the server's state.
                tick = server.match_tick("m")
                for client in (ann, bob, cy):
                    await client.until(lambda c: (c.mirror.tick or 0) > tick + 1)
                    assert client.mirror.players == server.match_players("m")
                await cy.end()
                with anyio.fail_after(5):
                    while await cy.recv() is not None:  # half-close: flushed, then OK
                        pass
            await ann.until(lambda c: "cy" not in c.mirror.players)
            health = ann.mirror.players["ann"].health
            assert health == ARENA.max_health - ARENA.damage

    @pytest.mark.parametrize(
        ("fields", "code", "text"),
        [
            (
                {"action_type": "fly", "sequence": 1},
                "INVALID_ARGUMENT",
                "action_type: must be one of",
            ),
            (
                {"action_type": "move", "parameters": {"dx": "50"}, "sequence": 1},
                "INVALID_ARGUMENT",
                "parameters.dx: an integer in [-10, 10]",
            ),
            (
                {"action_type": "move", "match_id": "other", "sequence": 1},
                "PERMISSION_DENIED",
                "match_id: this stream plays in match 'm'",
            ),
            ({"action_type": "move", "sequence": 0}, "INVALID_ARGUMENT", "sequence: must be"),
            ({"action_type": "join", "match_id": "m2"}, "ALREADY_EXISTS", "match_id: this stream"),
        ],
    )
    async def test_a_bad_action_is_refused_to_its_player_alone_and_the_match_plays_on(
        self, fields: dict[str, Any], code: str, text: str
    ) -> None:
        async with self.serving() as server, server.game("ann") as ann:
            await ann.join("m")
            await ann.until(lambda c: "ann" in c.mirror.players)
            async with server.game("bob") as bob:
                await bob.join("m")
                await bob.until(lambda c: "bob" in c.mirror.players)
                before = server.match_players("m")
                await bob.send_action(**{"player_id": "bob", "match_id": "m", **fields})
                await bob.until(lambda c: bool(c.rejected))
                [event] = bob.rejected
                status, field, rule = rejected(event.rejection)
                assert status == code and f"{field}: {rule}".startswith(text)
                assert event.sequence == fields.get("sequence", 0)
                assert f"{code} {text}" in event.data  # what an old client can show
                assert server.match_players("m")["ann"] == before["ann"]
                sequence = await bob.act("move", dx="1")  # the same stream plays on
                await bob.until(at("bob", sequence))
                await ann.until(at("bob", sequence))
            assert ann.rejected == []  # told to bob alone
            assert server.counters.errors == {} and server.counters.refusals == 1

    async def test_an_action_claiming_another_player_ends_that_stream(self) -> None:
        async with self.serving() as server, server.game("ann") as ann:
            await ann.join("m")
            await ann.until(lambda c: "ann" in c.mirror.players)
            async with server.game("bob") as bob:
                await bob.join("m")
                await bob.until(lambda c: "bob" in c.mirror.players)
                await bob.send_action("move", player_id="ann", match_id="m", sequence=1)
                with pytest.raises(CallEnded) as caught:
                    await bob.until(lambda c: False)
                assert caught.value.ended.code == "PERMISSION_DENIED"
                assert "player_id: this stream plays 'bob'" in caught.value.ended.message
            await ann.until(lambda c: "bob" not in c.mirror.players)  # bob's stream ended: he left
            sequence = await ann.act("move", dx="1")
            await ann.until(at("ann", sequence))

    async def test_actions_before_join_are_refused_and_over_the_rate_are_shaped(self) -> None:
        async with (
            self.serving(GameLimits(actions_per_second=3)) as server,
            server.game("ann") as ann,
        ):
            await ann.act("move", dx="1")
            await ann.until(lambda c: bool(c.rejected))
            assert rejected(ann.rejected[0].rejection) == (
                "FAILED_PRECONDITION",
                "action_type",
                "join a match first (action_type join)",
            )
            await ann.join()
            for _ in range(5):
                sequence = await ann.act("move", dx="1")
            await ann.until(at("ann", sequence))  # every one applied: waited for, not refused
            assert server.counters.shaped >= 1

    async def test_matches_are_isolated_and_an_empty_one_closes_after_grace(self) -> None:
        async with self.serving() as server:
            async with server.game("ann") as ann, server.game("ann") as ann2:
                await ann.join("m1")
                await ann2.join("m2")  # the same player id in another match is another player
                sequence = await ann.act("move", dx="3")
                await ann.until(at("ann", sequence))
                await ann2.until(lambda c: c.mirror.tick is not None and c.mirror.tick > 3)
                assert ann2.mirror.players["ann"].last_sequence == 0
                assert server.matches() == {"m1", "m2"}
                await ann2.send_action("leave")
                await ann2.end()
                with anyio.fail_after(5):
                    while await ann2.recv() is not None:
                        pass
                assert ann2.states[-1].tick <= server.match_tick("m2")
                assert server.game_sessions() == 1  # ann2 left; ann plays on
                with anyio.fail_after(5):
                    while "m2" in server.matches():  # closed by the driver ann's call runs
                        await ann.recv()
            assert server.counters.ticks > 0

    # Each example waits for ticks (~50 ms): a quarter of the profile's examples, at most 50.
    @settings(
        max_examples=max(1, min(settings().max_examples // 4, 50)),
        suppress_health_check=SUPPRESSED,
        deadline=None,
    )
    @given(actions=ACTIONS)
    async def test_valid_and_refused_actions_mixed_on_one_stream_match_the_model(
        self, actions: list[tuple[str, int]]
    ) -> None:
        """Exactly the bad actions are refused (each naming its sequence); the others are applied,
        the player's last_sequence the last of them."""
        refused = [n + 1 for n, (kind, dx) in enumerate(actions) if kind == "fly" or abs(dx) > 10]
        applied = [n + 1 for n in range(len(actions)) if n + 1 not in refused]
        async with (
            self.serving(GameLimits(actions_per_second=1000)) as server,
            server.game("ann") as ann,
        ):
            await ann.join("m")
            await ann.until(lambda c: "ann" in c.mirror.players)
            for kind, dx in actions:
                await ann.act(kind, dx=str(dx))
            await ann.until(
                lambda c: (
                    len(c.rejected) == len(refused) and (not applied or at("ann", applied[-1])(c))
                )
            )
            assert [event.sequence for event in ann.rejected] == refused
            assert server.counters.refusals == len(refused) and server.counters.errors == {}
