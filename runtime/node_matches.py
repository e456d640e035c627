"""Matches on many nodes (DESIGN §10): one node ticks a match, every node serves its players.

One node *owns* a match: it holds the match's lease (``SharedMatches.acquire_match``: a key
``node|fence`` with an expiry, the fence incremented on every acquisition) and runs it in its
``MatchHub`` like any match alone, unchanged rules. Only the holder renews the lease (every
``renew`` seconds); the owner stops ticking the moment its own deadline (the time it sent its
last successful renewal, plus the lease) lapses, so an owner that was paused (SIGSTOP) or cut
off does not tick a match another node may own by then. Every write it makes names its fence,
and Redis refuses a stale one (the scripts check the lease), so what a stale owner still sends
when it wakes changes nothing.

**Inputs** (joins, actions, leaves) of every player, on every node, the owner's own included,
go to the match's input *stream*, which the owner reads. A stream, not a pub/sub channel: the
stream keeps what is sent while the lease moves, or while the owner's connection is down, and
the new owner reads on from the position its last snapshot holds, so no input is lost with
the owner; pub/sub would drop everything published while no owner listened. What is lost
then is only what one node allows too: an action superseded by a later one of the same
player (its sequence is not above the last applied; ignored, as alone). An input the owner
refuses (a player id taken on another node, the rate) is told back to its node, which
refuses the message to its sender as alone (``refusals``; one it can no longer match to a
message is counted in ``refusals_unsent``).

**States**: the owner encodes each tick's state once (``encode_state``: the whole match, a
line per player), publishes it once, fenced, and delivers it to its own players directly;
every other node decodes it once and offers it to its players through the runtime's normal
game outbox (the newest-state slot; superseded states counted as alone). A node drops a state
whose fence is below the highest it has seen, or whose tick is not above the last it
delivered (``stale_states``), so ticks only increase for every player. A session starts
receiving with the first state its player is in: its full state first, as alone.

**Snapshots** (every ``snapshot_every`` ticks): the match (``MatchHub.snapshot``: tick,
players, the rules' state, queued inputs, seats) and the input position, written by a script
that refuses a stale fence. **Failover**: a node with players in a match tries to acquire its
lease every ``renew`` seconds; once the owner's lapses (SIGKILL), one of them takes it
(fence + 1), attaches the last snapshot, numbers its next tick above the last one published,
and reads the inputs after the snapshot's position. The seats of a node that died (its
liveness lapsed, runtime/node.py) leave. A match whose owner lapsed while Redis was away comes
back by itself: the first node to acquire its lease again goes on (from its own copy, if no
one else held the lease meanwhile).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from interplay.core import errors as core_errors
from interplay.core.errors import CoreError
from interplay.core.game import (
    JOIN,
    Action,
    GameEvent,
    LoopSnapshot,
    PlayerState,
    TickState,
    check_action,
)
from interplay.core.matches import (
    Act,
    EndSession,
    JoinMatch,
    LeaveMatch,
    MatchSnapshot,
    TickReady,
    check_claim,
    check_join,
    check_kind,
)
from interplay.core.rate import TokenBucket

from .errors import StorageFailed

if TYPE_CHECKING:
    from .server import Runtime

log = logging.getLogger("interplay.node")

LEASE = 5.0  # seconds a match's owner holds it without renewing (renewed every fifth of it)
START = "0-0"  # the input position before the first entry
KEPT_MESSAGES = 64  # a session's latest actions kept, to refuse one the owner refused


@dataclass(frozen=True, slots=True)
class StoredMatch:
    """What Redis holds of a match: the last snapshot (None: none yet), its fence, and the
    last tick an owner published."""

    data: str | None
    fence: int
    tick: int


class SharedMatches(Protocol):
    """What the engine does for matches (``interplay.backends.redis.RedisEngine``)."""

    node: str

    async def acquire_match(self, match: str, ttl: float) -> int | None: ...

    async def renew_match(self, match: str, fence: int, ttl: float) -> bool: ...

    async def load_match(self, match: str) -> StoredMatch: ...

    async def save_match(self, match: str, fence: int, data: str, position: str) -> bool: ...

    async def close_match(self, match: str, fence: int, position: str) -> bool: ...

    async def publish_states(self, states: Sequence[tuple[str, int, int, str]]) -> list[bool]: ...

    async def send_input(self, match: str, entry: str) -> str: ...

    async def read_inputs(
        self, positions: dict[str, str], block: float
    ) -> list[tuple[str, str, str]]: ...

    async def notify_node(self, node: str, payload: str) -> None: ...

    async def nodes_alive(self, nodes: Sequence[str]) -> set[str]: ...

    async def subscribe_match(self, match: str) -> None: ...

    async def unsubscribe_match(self, match: str) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchStatistics:
    owned: int  # matches this node ticks now
    relayed: int  # matches this node has players in
    leases_acquired: int
    leases_lost: int  # renewals refused: another node holds it
    leases_lapsed: int  # the local deadline passed without a renewal: stopped ticking
    states_published: int
    states_refused: int  # publishes Redis refused: a stale fence
    states_unpublished: int  # publishes that could not reach Redis (its players missed them)
    states_relayed: int  # other nodes' states delivered to players here
    stale_states: int  # states dropped: a fence below the highest seen, or an old tick
    inputs_sent: int
    actions_ignored: int  # repeats (a sequence not above the last sent): ignored, as alone
    inputs_applied: int  # inputs this node, as owner, read and handed to its hub
    inputs_refused: int  # ... that the hub refused (told back to their node)
    refusals: int  # refusals of the owner told to this node's players
    refusals_unsent: int  # ... whose message was no longer known here (counted, not told)
    snapshots_saved: int
    snapshots_refused: int  # snapshot writes Redis refused: a stale fence
    players_reaped: int  # seats of dead nodes this node, as owner, let go


@dataclass(slots=True)
class _Seat:
    """A session here and the player it plays."""

    match: str
    player: str
    join: Any  # its join message (refused later if the owner refuses it)
    bucket: TokenBucket
    sequence: int = 0  # the highest sequence forwarded
    messages: dict[int, Any] = field(default_factory=dict)  # sequence -> wire message


@dataclass(slots=True)
class _Relay:
    """A match this node has players in."""

    ready: anyio.Event
    sessions: dict[str, str] = field(default_factory=dict)  # session -> player
    fresh: set[str] = field(default_factory=set)  # sessions whose next state must be full
    admitted: set[str] = field(default_factory=set)  # sessions the owner seated
    fence: int = 0  # the highest seen
    tick: int = 0  # the last delivered here
    cache: dict[str, PlayerState] = field(default_factory=dict)  # a player's line -> state


@dataclass(slots=True)
class _Owned:
    """A match this node holds the lease of."""

    fence: int
    position: str  # the last input read
    deadline: float  # monotonic: stop ticking after this without a renewal
    floor: int = 0  # the last tick published before this node took it
    since_snapshot: int = 0
    published: int = 0  # the tick of its last state this node published (0: none yet)
    lines: dict[str, tuple[PlayerState, str]] = field(default_factory=dict)  # encoded players
    opened: bool = False  # its hub has (had) the match


class NodeMatches:
    """This node's part in matches (see the module docstring)."""

    def __init__(
        self,
        shared: SharedMatches,
        *,
        lease: float = LEASE,
        renew: float | None = None,
        snapshot_every: int = 30,
        input_wait: float = 0.05,
    ) -> None:
        renew = lease / 5 if renew is None else renew
        if not 0 < renew < lease or snapshot_every < 1 or not input_wait > 0:
            raise ValueError(
                "need 0 < renew < lease, snapshot_every >= 1, input_wait > 0; got "
                f"{renew}, {lease}, {snapshot_every}, {input_wait}"
            )
        self.shared = shared
        self.node = shared.node
        self.lease = lease
        self.renew = renew
        self.snapshot_every = snapshot_every
        self.input_wait = input_wait
        self._runtime: Runtime | None = None
        self._seats: dict[str, _Seat] = {}
        self._relays: dict[str, _Relay] = {}
        self._owned: dict[str, _Owned] = {}
        self._paused: dict[str, tuple[int, MatchSnapshot | None, str]] = {}
        self._publishing: deque[tuple[str, int, int, str]] = deque()
        self._saving: deque[tuple[str, int, str, str]] = deque()
        # (match, entry): leaves of sessions that ended, joins told again; sent as Redis takes them
        self._unsent: deque[tuple[str, str]] = deque()
        self._wakeup = anyio.Event()  # the writer: states, snapshots, leaves
        self._lease_wakeup = anyio.Event()
        self._owned_changed = anyio.Event()
        self._suspects: set[str] = set()  # nodes found dead once (twice: their seats leave)
        self._counts = {f.name: 0 for f in fields(MatchStatistics)}

    def bind(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def statistics(self) -> MatchStatistics:
        counts = dict(self._counts, owned=len(self._owned), relayed=len(self._relays))
        return MatchStatistics(**counts)

    def _count(self, name: str, by: int = 1) -> None:
        self._counts[name] += by

    def owns(self, match: str) -> bool:
        return match in self._owned

    def player_of(self, session: str) -> str | None:
        seat = self._seats.get(session)
        return seat.player if seat else None

    async def run(self) -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._leases)
            tasks.start_soon(self._read_inputs)
            tasks.start_soon(self._write)

    # -- the runtime's hooks: this node's sessions -------------------------------------------

    async def handle(self, session: str, command: Any, message: Any) -> None:
        """A GameSync command of a session here: checked as alone (a ``CoreError`` refuses
        it), then sent to the match's owner as an input."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        hub = runtime.games
        seat = self._seats.get(session)
        where = None if seat is None else (seat.match, seat.player)
        if isinstance(command, JoinMatch):
            check_join(command, hub.limits, where)
            await self._join(session, command, message)
            return
        if isinstance(command, Act):
            check_kind(command.action)
            check_claim(where, command.action.player, command.match, "action_type")
            assert seat is not None
            check_action(hub.rules, command.action)
            sequence = command.action.sequence
            if sequence <= seat.sequence:
                self._count("actions_ignored")  # a repeat or late: ignored, as alone
                return
            while (delay := seat.bucket.delay(runtime._now())) > 0:
                runtime.counters.shaped += 1
                await anyio.sleep(delay)
            seat.bucket.take(runtime._now())
            seat.sequence = sequence
            seat.messages[sequence] = message
            if len(seat.messages) > KEPT_MESSAGES:
                del seat.messages[next(iter(seat.messages))]
            action = command.action
            await self._send(
                seat.match,
                ["act", session, seat.player, action.kind, dict(action.params), sequence],
            )
            return
        if isinstance(command, LeaveMatch):
            check_claim(where, command.player, command.match, "player_id")
            assert seat is not None
            self._unseat(session)
            await self._send(seat.match, ["leave", session, seat.player])
            return
        self.end(session)

    async def _join(self, session: str, command: JoinMatch, message: Any) -> None:
        runtime = self._runtime
        assert runtime is not None
        relay = await self._watch(command.match)
        rate = runtime.games.limits.actions_per_second
        self._seats[session] = _Seat(
            command.match, command.player, message, TokenBucket(rate, rate, now=runtime._now())
        )
        relay.sessions[session] = command.player
        relay.fresh.add(session)
        try:
            await self._send(command.match, ["join", session, command.player])
        except BaseException:
            self._unseat(session)
            raise
        self._lease_wakeup.set()  # the match may have no owner yet

    def end(self, session: str) -> None:
        """The session ended: its player leaves (sent as soon as Redis takes it)."""
        seat = self._seats.get(session)
        if seat is None:
            return
        self._unseat(session)
        entry = json.dumps(["leave", self.node, session, seat.player])
        self._unsent.append((seat.match, entry))
        self._wakeup.set()

    def rejoin(self) -> None:
        """The other nodes took this one for dead (it could not renew its liveness): its
        players may have been let go, so their joins are sent again (a join the owner still
        has is recognised and ignored)."""
        for session, seat in self._seats.items():
            entry = json.dumps(["join", self.node, session, seat.player])
            self._unsent.append((seat.match, entry))
        self._wakeup.set()

    def _unseat(self, session: str) -> None:
        seat = self._seats.pop(session, None)
        if seat is not None:
            relay = self._relays.get(seat.match)
            if relay is not None:
                relay.sessions.pop(session, None)
                relay.fresh.discard(session)
                relay.admitted.discard(session)

    async def _send(self, match: str, entry: list[Any]) -> None:
        entry.insert(1, self.node)
        await self.shared.send_input(match, json.dumps(entry, ensure_ascii=False))
        self._count("inputs_sent")

    async def _watch(self, match: str) -> _Relay:
        while True:
            relay = self._relays.get(match)
            if relay is None:
                relay = self._relays[match] = _Relay(anyio.Event())
                try:
                    await self.shared.subscribe_match(match)
                except BaseException:
                    del self._relays[match]
                    raise
                finally:
                    relay.ready.set()
                return relay
            await relay.ready.wait()
            if self._relays.get(match) is relay:
                return relay

    # -- the runtime's hooks: ticks ------------------------------------------------------

    def before_ticks(self, now: float) -> None:
        """Before the hub advances: a match whose lease deadline lapsed stops here (kept
        aside, in case this node gets the lease back before anyone else)."""
        runtime = self._runtime
        assert runtime is not None
        hub = runtime.games
        for match, owned in list(self._owned.items()):
            if now > owned.deadline:
                snapshot = hub.detach(match) if match in hub.matches else None
                self._paused[match] = (owned.fence, snapshot, owned.position)
                del self._owned[match]
                self._count("leases_lapsed")
                self._lease_wakeup.set()

    def ticked(self, ready: list[TickReady], stamp: int) -> list[TickReady]:
        """After the hub advanced: each owned state published once, a snapshot every
        ``snapshot_every`` ticks, closed matches forgotten; returns the states for this
        node's own sessions (the seats' ids here are ``node/session``)."""
        runtime = self._runtime
        assert runtime is not None
        hub, mine, local = runtime.games, f"{self.node}/", []
        for tick in ready:
            owned = self._owned.get(tick.match)
            if owned is None:
                continue
            owned.opened = True
            state = tick.state
            seats = hub.seats(tick.match)
            if not state.periodic_full:  # the joiners' only; every seat in a full state
                joined = [event.data for event in state.events if event.kind == JOIN]
                seats = {name: seats[name] for name in joined if name in seats}
            payload = encode_state(
                owned.fence, self.node, state, stamp, seats, owned.published, owned.lines
            )
            owned.published = state.tick
            self._publishing.append((tick.match, owned.fence, state.tick, payload))
            owned.since_snapshot += 1
            relay = self._relays.get(tick.match)
            if relay is not None:
                relay.fence = max(relay.fence, owned.fence)
                relay.tick = max(relay.tick, state.tick)
            to = tuple(sid[len(mine) :] for sid in tick.to if sid.startswith(mine))
            restart = tuple(sid[len(mine) :] for sid in tick.restart if sid.startswith(mine))
            if relay is not None:
                relay.admitted.update(to)  # seated: served by whichever node owns it next
            local.append(TickReady(match=tick.match, state=state, to=to, restart=restart))
        for match, owned in self._owned.items():
            if match not in hub.matches:
                if owned.opened:  # closed: empty past its grace
                    owned.opened = False
                    self._saving.append((match, owned.fence, "", owned.position))
            elif owned.since_snapshot >= self.snapshot_every:
                owned.since_snapshot = 0
                data = encode_snapshot(hub.snapshot(match), owned.position)
                self._saving.append((match, owned.fence, data, owned.position))
        if self._publishing or self._saving:
            self._wakeup.set()
        return local

    # -- the engine's reader: states and notices --------------------------------------------

    def heard_state(self, match: str, payload: bytes) -> None:
        """A state an owner published (``Listener``)."""
        relay = self._relays.get(match)
        runtime = self._runtime
        if relay is None or runtime is None or not relay.sessions:
            return
        fence, node, tick = header(payload)
        if node == self.node:
            return  # delivered here as it ticked
        if fence < relay.fence or tick <= relay.tick:
            self._count("stale_states")
            return
        state, stamp, seats, prev = decode_state(payload, relay.cache)
        if fence != relay.fence or prev != relay.tick:
            # Another owner, or a state missed: a delta would not apply, so full states next.
            relay.fresh.update(relay.sessions)
        relay.fence, relay.tick = fence, tick
        mine = f"{self.node}/"
        for name, seat in seats.items():
            sid = seat[len(mine) :] if seat.startswith(mine) else None
            if sid is not None and relay.sessions.get(sid) == name:
                relay.admitted.add(sid)
        present = {player.player for player in state.players}
        to = tuple(
            sid for sid, name in relay.sessions.items() if sid in relay.admitted and name in present
        )
        restart = tuple(sid for sid in to if sid in relay.fresh)
        relay.fresh.difference_update(restart)
        if to:
            runtime.offer_tick(match, state, to, restart, stamp)
            self._count("states_relayed")

    def heard_notice(self, payload: bytes) -> None:
        """The owner refused an input of a session here (``Listener``)."""
        runtime = self._runtime
        if runtime is None or payload[:2] != b"G\n":
            return
        session, sequence, error_name, error_field, text = json.loads(payload[2:])
        seat = self._seats.get(session)
        message = None
        if seat is not None:
            message = seat.join if not sequence else seat.messages.pop(sequence, None)
        error_type = getattr(core_errors, error_name, None)
        if (
            message is None
            or not (isinstance(error_type, type) and issubclass(error_type, CoreError))
            or error_type is core_errors.Refused  # (not a game rule's: another signature)
        ):
            self._count("refusals_unsent")
            return
        if not sequence:
            self._unseat(session)  # its join was refused: it plays nowhere
        self._count("refusals")
        runtime.refuse(session, message, error_type(error_field, text))

    # -- the owner's side ----------------------------------------------------------------

    async def _read_inputs(self) -> None:
        """Read the owned matches' input streams and hand each input to the hub."""
        while True:
            if not self._owned:
                self._owned_changed = anyio.Event()
                await self._owned_changed.wait()
                continue
            reading = dict(self._owned)
            positions = {match: owned.position for match, owned in reading.items()}
            try:
                found = await self.shared.read_inputs(positions, self.input_wait)
            except StorageFailed:
                await anyio.sleep(0.1)
                continue
            for match, entry_id, entry in found:
                owned = self._owned.get(match)
                if owned is not reading[match]:
                    continue  # lost meanwhile: the next owner reads it
                owned.position = entry_id
                self._apply(match, owned, entry)

    def _apply(self, match: str, owned: _Owned, entry: str) -> None:
        runtime = self._runtime
        assert runtime is not None
        hub, now = runtime.games, runtime._now()
        kind, node, session, player, *rest = json.loads(entry)
        seat = f"{node}/{session}"
        self._count("inputs_applied")
        sequence = 0
        try:
            if kind == "join":
                if hub.match_of(seat) == match and hub.player_of(seat) == player:
                    return  # in the snapshot already: applied by the previous owner
                hub.handle(JoinMatch(session=seat, player=player, match=match), now=now)
                loop = hub.loop(match)
                if loop is not None and loop.tick < owned.floor:
                    loop.skip_to(owned.floor, now)
                runtime._wake_timers()
            elif kind == "act":
                action_kind, params, sequence = rest
                action = Action(player=player, kind=action_kind, params=params, sequence=sequence)
                hub.handle(Act(session=seat, action=action, match=match), now=now)
            else:
                hub.handle(EndSession(session=seat), now=now)
        except CoreError as error:
            self._count("inputs_refused")
            notice = [session, sequence, type(error).__name__, error.field, error.rule]
            self._tell(node, "G\n" + json.dumps(notice, ensure_ascii=False))

    def _tell(self, node: str, payload: str) -> None:
        runtime = self._runtime
        if runtime is not None:
            runtime.start_soon(self._notify, node, payload)

    async def _notify(self, node: str, payload: str) -> None:
        try:
            await self.shared.notify_node(node, payload)
        except StorageFailed:
            self._count("refusals_unsent")

    async def _leases(self) -> None:
        """Renew the owned leases; try to take those of matches this node has players in."""
        while True:
            with anyio.move_on_after(self.renew):
                await self._lease_wakeup.wait()
            self._lease_wakeup = anyio.Event()
            try:
                await self._renew_all()
                await self._acquire_all()
                await self._reap()
            except StorageFailed:
                pass  # owned matches tick on until their deadline, then stop
            await self._let_go()

    async def _renew_all(self) -> None:
        runtime = self._runtime
        assert runtime is not None
        for match, owned in list(self._owned.items()):
            sent = runtime._now()
            if await self.shared.renew_match(match, owned.fence, self.lease):
                if self._owned.get(match) is owned:
                    owned.deadline = sent + self.lease
                continue
            if self._owned.get(match) is owned:
                self._count("leases_lost")
                del self._owned[match]
                if match in runtime.games.matches:
                    runtime.games.detach(match)

    async def _acquire_all(self) -> None:
        runtime = self._runtime
        assert runtime is not None
        wanted = {seat.match for seat in self._seats.values()} | set(self._paused)
        for match in sorted(wanted - set(self._owned)):
            sent = runtime._now()
            fence = await self.shared.acquire_match(match, self.lease)
            if fence is None:
                self._paused.pop(match, None)  # another node goes on: this copy is old now
                continue
            await self._adopt(match, fence, sent + self.lease)

    async def _adopt(self, match: str, fence: int, deadline: float) -> None:
        """Go on with ``match`` from this node's own copy (no one held it since) or from
        the last snapshot, its next tick above the last one published."""
        runtime = self._runtime
        assert runtime is not None
        hub = runtime.games
        stored = await self.shared.load_match(match)
        paused = self._paused.pop(match, None)
        if paused is not None and paused[0] >= fence - 1:
            _, snapshot, position = paused  # no one else held it: this copy is the newest
        else:
            snapshot = decode_snapshot(stored.data) if stored.data else None
            position = snapshot_position(stored.data) if stored.data else START
        owned = _Owned(fence=fence, position=position, deadline=deadline, floor=stored.tick)
        owned.since_snapshot = self.snapshot_every  # its first tick is snapshotted
        if match in hub.matches:
            hub.detach(match)  # (a copy left from an earlier lease)
        if snapshot is not None:
            hub.attach(match, snapshot, now=runtime._now(), tick=stored.tick)
            owned.opened = True
        self._owned[match] = owned
        self._count("leases_acquired")
        relay = self._relays.get(match)
        if relay is not None:
            relay.fresh.update(relay.sessions)  # a full state next, from the new owner
        self._owned_changed.set()
        runtime._wake_timers()

    async def _reap(self) -> None:
        """Seats of nodes found dead twice in a row (a lease period apart) leave."""
        runtime = self._runtime
        assert runtime is not None
        hub = runtime.games
        seated: dict[str, list[str]] = {}
        for match in self._owned:
            if match not in hub.matches:
                continue
            for seat in hub.seats(match).values():
                node = seat.split("/", 1)[0]
                if node != self.node:
                    seated.setdefault(node, []).append(seat)
        if not seated:
            self._suspects.clear()
            return
        alive = await self.shared.nodes_alive(sorted(seated))
        dead = set(seated) - alive
        now = runtime._now()
        for node in dead & self._suspects:
            for seat in seated[node]:
                hub.handle(EndSession(session=seat), now=now)
                self._count("players_reaped")
        self._suspects = dead

    async def _let_go(self) -> None:
        """Stop following matches no session here plays in (and this node does not own); a
        join meanwhile waits for the unsubscription, then subscribes again."""
        for match, relay in list(self._relays.items()):
            if relay.sessions or match in self._owned or not relay.ready.is_set():
                continue
            relay.ready = leaving = anyio.Event()
            try:
                with contextlib.suppress(StorageFailed):  # gone with the connection
                    await self.shared.unsubscribe_match(match)
            finally:
                del self._relays[match]
                leaving.set()

    async def _write(self) -> None:
        """Send the states, snapshots and inputs queued, in order."""
        while True:
            if not (self._publishing or self._saving or self._unsent):
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
                continue
            if self._publishing:
                batch = list(self._publishing)
                self._publishing.clear()
                try:
                    answers = await self.shared.publish_states(batch)
                except StorageFailed:
                    self._count("states_unpublished", len(batch))
                else:
                    published = sum(answers)
                    self._count("states_published", published)
                    self._count("states_refused", len(answers) - published)
            while self._saving:
                match, fence, data, position = self._saving.popleft()
                await self._save(match, fence, data, position)
            while self._unsent:
                match, entry = self._unsent[0]
                try:
                    await self.shared.send_input(match, entry)
                except StorageFailed:
                    await anyio.sleep(0.2)  # kept: it must reach the owner
                    break
                self._unsent.popleft()
                self._count("inputs_sent")

    async def _save(self, match: str, fence: int, data: str, position: str) -> None:
        runtime = self._runtime
        assert runtime is not None
        try:
            if not data:
                if await self.shared.close_match(match, fence, position):
                    owned = self._owned.get(match)
                    if (
                        owned is not None
                        and owned.fence == fence
                        and match not in runtime.games.matches
                    ):
                        del self._owned[match]
                return
            saved = await self.shared.save_match(match, fence, data, position)
        except StorageFailed:
            return  # the next one, a moment later
        if saved:
            self._count("snapshots_saved")
            return
        self._count("snapshots_refused")
        owned = self._owned.get(match)
        if owned is not None and owned.fence == fence:  # another node holds it now
            self._count("leases_lost")
            del self._owned[match]
            if match in runtime.games.matches:
                runtime.games.detach(match)


# -- encodings (JSON; the runtime imports no wire library) ---------------------------------


def _player_line(state: PlayerState) -> str:
    return json.dumps(
        [state.player, state.x, state.y, state.health, state.attributes, state.last_sequence],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def encode_state(
    fence: int,
    node: str,
    state: TickState,
    stamp: int,
    seats: Mapping[str, str],
    prev: int,
    cache: dict[str, tuple[PlayerState, str]],
) -> str:
    """One tick of a match for every node: a header line, then a line per player. ``seats``
    (player -> ``node/session``) tells each node which of its sessions the owner seated;
    ``prev`` is the tick of the owner's state before (a delta is relative to it). A player's
    line is kept in ``cache`` until its state object is replaced (the core never mutates)."""
    changed = [player.player for player in state.changed]
    events = [[event.id, event.kind, event.data] for event in state.events]
    head = [fence, node, state.tick, stamp, state.periodic_full, changed, events, seats, prev]
    lines = [json.dumps(head, ensure_ascii=False, separators=(",", ":"))]
    fresh = {}
    for player in state.players:
        cached = cache.get(player.player)
        line = cached[1] if cached is not None and cached[0] is player else _player_line(player)
        fresh[player.player] = (player, line)
        lines.append(line)
    cache.clear()
    cache.update(fresh)
    return "\n".join(lines)


def header(payload: bytes) -> tuple[int, str, int]:
    """(fence, node, tick) of a published state, without decoding its players."""
    end = payload.find(b",", payload.find(b",", payload.find(b",") + 1) + 1)
    fence, node, tick = json.loads(payload[:end] + b"]")
    return int(fence), str(node), int(tick)


def decode_state(
    payload: bytes, cache: dict[str, PlayerState]
) -> tuple[TickState, int, dict[str, str], int]:
    """The state and its stamp. A player whose line is as in the last state keeps its
    ``PlayerState`` object (``cache``: line -> state), so an encoder's per-player cache hits."""
    lines = payload.decode().split("\n")
    _, _, tick, stamp, periodic_full, changed, events, seats, prev = json.loads(lines[0])
    players = []
    fresh: dict[str, PlayerState] = {}
    for line in lines[1:]:
        state = cache.get(line)
        if state is None:
            state = _state(json.loads(line))
        fresh[line] = state
        players.append(state)
    cache.clear()
    cache.update(fresh)
    by_name = {state.player: state for state in players}
    return (
        TickState(
            tick=tick,
            players=tuple(players),
            changed=tuple(by_name[name] for name in changed if name in by_name),
            events=tuple(GameEvent(id=i, kind=k, data=d) for i, k, d in events),
            periodic_full=bool(periodic_full),
            applied=(),
        ),
        int(stamp),
        seats,
        int(prev),
    )


def _action(action: Action) -> list[Any]:
    return [action.player, action.kind, dict(action.params), action.sequence]


def _unaction(raw: list[Any]) -> Action:
    player, kind, params, sequence = raw
    return Action(player=player, kind=kind, params=params, sequence=sequence)


def _state(raw: list[Any]) -> PlayerState:
    player, x, y, health, attributes, last_sequence = raw
    return PlayerState(
        player=player,
        x=float(x),
        y=float(y),
        health=int(health),
        attributes=tuple((str(k), str(v)) for k, v in attributes),
        last_sequence=int(last_sequence),
    )


def encode_snapshot(snapshot: MatchSnapshot, position: str = START) -> str:
    loop = snapshot.loop
    return json.dumps(
        {
            "tick": loop.tick,
            "players": [json.loads(_player_line(p)) for p in loop.players],
            "sequences": loop.sequences,
            "applied": loop.applied_sequences,
            "tokens": loop.tokens,
            "joins": [_action(a) for a in loop.joins],
            "actions": [_action(a) for a in loop.actions],
            "leaves": [_action(a) for a in loop.leaves],
            "seats": snapshot.seats,
            "position": position,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_snapshot(data: str) -> MatchSnapshot:
    raw = json.loads(data)
    loop = LoopSnapshot(
        tick=int(raw["tick"]),
        players=tuple(_state(p) for p in raw["players"]),
        sequences=tuple((str(p), int(s)) for p, s in raw["sequences"]),
        applied_sequences=tuple((str(p), int(s)) for p, s in raw["applied"]),
        tokens=tuple((str(p), float(t)) for p, t in raw["tokens"]),
        joins=tuple(_unaction(a) for a in raw["joins"]),
        actions=tuple(_unaction(a) for a in raw["actions"]),
        leaves=tuple(_unaction(a) for a in raw["leaves"]),
    )
    return MatchSnapshot(loop=loop, seats=tuple((str(p), str(s)) for p, s in raw["seats"]))


def snapshot_position(data: str) -> str:
    return str(json.loads(data)["position"])
