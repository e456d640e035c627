"""Redis as the engine many nodes share (DESIGN §10): rooms' streams, pub/sub, documents,
matches.

``RedisEngine`` is two things to the runtime: its ``Backend`` (reads for the hubs: a room's
record and window, older history, documents; writes: documents) and the ``SharedRooms`` a
``Node`` (runtime/node.py) follows rooms through: ``publish_many`` runs the one script that
sequences a TEXT (scripts.py), ``subscribe`` returns once Redis confirmed the room's channel,
``read_after``/``recent``/``heads`` read the stream, and ``run`` reads pub/sub for the node.

Connection loss is the node's to repair: ``run`` reports it (``listener.lost()``), retries
with backoff, subscribes every channel it follows again (``wire.py``: the node's own
pub/sub connection), and once Redis confirmed them all (what was published meanwhile is gone)
reports ``listener.reconnected()``, so the node reads every room and document from its head.
Any command that cannot reach Redis raises ``EngineUnavailable``.

Chat writes from the hub itself are not expected here: in node mode a TEXT goes through
``publish_many``, and rooms are created by ``LOAD``. Documents are a snapshot and a stream of
the revisions since (kept ones before it too, for their op ids); a node commits an edit with
``commit_edit`` (the COMMIT script: compare-and-set on the revision, op ids deduplicated) and
follows a document's log with ``subscribe_document``/``read_edits`` (runtime/node_documents.py).

The admin API's calls that touch every node go on ``ip:admin``, which every node's reader
subscribes to; a node answers on the asker's own channel ``ip:node:<id>`` (``disconnect``).

Matches (runtime/node_matches.py): a lease per match with a fencing token (ACQUIRE, RENEW),
fenced snapshot writes and state publishes (SAVE_MATCH, PUBLISH_STATE, CLOSE_MATCH), the
players' inputs in a stream per match (``send_input``, ``read_inputs``: a blocking XREAD on
one of the engine's own connections), states on a channel per match, and an owner's refusal
of an input on the player's node's own channel (``G`` notices, beside the admin answers).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from interplay.core.documents import EditProposal
from interplay.core.effects import (
    AppendMessage,
    CreateRoom,
    DocumentRecord,
    FindMessage,
    ForgetRoom,
    LoadDocument,
    LoadedRoom,
    LoadRoom,
    Read,
    ReadHistory,
    RoomAge,
    RoomAges,
    RoomRecord,
    SaveEdit,
    StoredEdit,
    TrimRoom,
    Write,
)
from interplay.core.ot import TextOp
from interplay.core.rooms import Kind, Proposal, RoomMessage
from interplay.runtime.backend import ReadResult, WriteConflict
from interplay.runtime.node import EngineUnavailable, Listener, Published
from interplay.runtime.node_documents import Committed, Outcome, SharedEdit
from interplay.runtime.node_matches import StoredMatch

from . import scripts
from .wire import PubSubConnection, ScriptConnection

log = logging.getLogger("interplay.redis")

# What ends a call UNAVAILABLE rather than the node: no connection, and any error Redis
# answers (out of memory under noeviction, a read-only replica, ...).
UNREACHABLE = (RedisError, OSError)
_BURST = 32  # pub/sub messages handled before the reader lets the writers run


ADMIN = "ip:admin"  # the admin API's calls to every node
ROOMS = "ip:rooms"  # every room some node loaded, in name order (retention's sweep)
SCAN = 1000  # stream entries retention reads per room per step


def room_keys(room: str) -> list[str]:
    tag = f"ip:{{r:{room}}}"
    return [f"{tag}:meta", f"{tag}:log", f"{tag}:ids"]


def presence_key(room: str) -> str:
    return f"ip:{{r:{room}}}:pres"


def room_channel(room: str) -> str:
    return f"ip:{{r:{room}}}:live"


def document_keys(document: str) -> list[str]:
    tag = f"ip:{{d:{document}}}"
    return [f"{tag}:doc", f"{tag}:ops", f"{tag}:opids"]


def match_keys(match: str) -> list[str]:
    """owner, fence, snap, in (scripts.py, "Matches")."""
    tag = f"ip:{{m:{match}}}"
    return [f"{tag}:owner", f"{tag}:fence", f"{tag}:snap", f"{tag}:in"]


def match_channel(match: str) -> str:
    return f"ip:{{m:{match}}}:states"


def document_channel(document: str) -> str:
    return f"ip:{{d:{document}}}:live"


def encode_edit(edit: StoredEdit, node: str) -> str:
    return json.dumps(
        [edit.op.ops, edit.author, edit.op_id, node], ensure_ascii=False, separators=(",", ":")
    )


def decode_edit(document: str, entry: bytes | str) -> SharedEdit:
    """A document's stream entry (or pub/sub payload): ``revision \\n body``."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    revision, body = text.split("\n", 1)
    op, author, op_id, node = json.loads(body)
    edit = StoredEdit(op=TextOp.from_components(op), author=author, op_id=op_id)
    return SharedEdit(document=document, revision=int(revision), edit=edit, node=node)


def encode_body(proposal: Proposal, node: str = "", kind: Kind = Kind.TEXT) -> str:
    """The part of an entry the node makes; ``node`` is where it was sent (see ``_handle``)."""
    return json.dumps(
        [int(kind), proposal.room, proposal.sender, proposal.id, proposal.content, node],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_entry(entry: bytes | str) -> RoomMessage:
    """A stream entry (or pub/sub payload) back into the message members see."""
    return decode_sent(entry)[0]


def decode_sent(entry: bytes | str) -> tuple[RoomMessage, str]:
    """The message of an entry, and the node it was sent through."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    seq, epoch, stamp, body = text.split("\n", 3)
    kind, room, sender, id, content, node = json.loads(body)
    message = RoomMessage(
        kind=Kind(kind),
        room=room,
        sender=sender,
        id=id or f"{epoch}-{seq}",
        content=content,
        timestamp=int(stamp),
        seq=int(seq),
        epoch=epoch,
    )
    return message, node


class RedisEngine:
    """One node's connections to the shared Redis (see the module docstring)."""

    def __init__(self, url: str, *, retain: int = 10_000, node: str = "") -> None:
        self.url = url
        self.path = url  # what the ready line says the data is
        self.retain = max(retain, 1)
        self.node = node
        self.healthy = False
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=10
        )
        self._publish = self._client.register_script(scripts.PUBLISH)
        self._load = self._client.register_script(scripts.LOAD)
        self._presence = self._client.register_script(scripts.PRESENCE)
        self._heartbeat = self._client.register_script(scripts.HEARTBEAT)
        self._commit = self._client.register_script(scripts.COMMIT)
        self._trim = self._client.register_script(scripts.TRIM)
        self._forget = self._client.register_script(scripts.FORGET)
        self._acquire = self._client.register_script(scripts.ACQUIRE)
        self._renew = self._client.register_script(scripts.RENEW)
        self._save_match = self._client.register_script(scripts.SAVE_MATCH)
        self._publish_state = self._client.register_script(scripts.PUBLISH_STATE)
        self._close_match = self._client.register_script(scripts.CLOSE_MATCH)
        self._nodes_alive = self._client.register_script(scripts.NODES_ALIVE)
        self._delete = self._client.register_script(scripts.DELETE)
        self._sub = PubSubConnection(url)
        self._spare_epoch = _new_epoch()  # offered to every PUBLISH; replaced once taken
        self._scripting: list[ScriptConnection] = []  # idle connections for pipelines
        self._up = anyio.Event()  # set while healthy
        self._restoring: set[str] = set()  # channels a (re)connect awaits confirmations of
        self._sent_here = b',"' + json.dumps(node, ensure_ascii=False).encode()[1:-1] + b'"]'
        self._listener: Listener | None = None
        self._confirming: dict[str, int] = {}  # channel -> confirmations awaited
        self._confirmed: dict[str, anyio.Event] = {}
        self._rooms: dict[str, str] = {}  # channel -> room
        self._documents: dict[str, str] = {}  # channel -> document
        self._matches: dict[str, str] = {}  # channel -> match
        self._own = f"ip:node:{node}"  # this node's channel: the answers it asked for
        self._asked: dict[str, _Answers] = {}  # admin question -> the answers so far
        self._answering: list[tuple[str, str]] = []  # (channel, payload) to publish

    # -- the Backend protocol ------------------------------------------------------------

    async def read(self, read: Read) -> ReadResult:
        try:
            if isinstance(read, LoadRoom):
                return await self._load_room(read)
            if isinstance(read, ReadHistory):
                return await self.read_after(read.room, read.after_seq, read.limit)
            if isinstance(read, LoadDocument):
                return await self._document(read.document)
            if isinstance(read, RoomAges):
                return await self._room_ages(read)
            if isinstance(read, FindMessage):
                # Not looked up here: loads name no ids (``LoadedRoom.ids``), so a hub asks
                # only by mistake; the PUBLISH script recognises a re-sent TEXT itself.
                return None
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        raise TypeError(f"not a read: {read!r}")

    async def write(self, writes: Sequence[Write]) -> None:
        edits, trims, forgets = [], [], []
        for write in writes:
            if isinstance(write, SaveEdit):
                edits.append(write)
            elif isinstance(write, TrimRoom):
                trims.append((room_keys(write.room), [write.before_seq]))
            elif isinstance(write, ForgetRoom) and write.head is not None:
                keys = [*room_keys(write.room), presence_key(write.room), ROOMS]
                forgets.append((keys, [write.room, write.head]))
            elif isinstance(write, ForgetRoom):
                continue  # (not from the sweep: nothing says it is still as it was seen)
            elif isinstance(write, CreateRoom):
                continue  # LOAD creates rooms
            elif isinstance(write, AppendMessage):
                raise TypeError("in node mode a TEXT is sequenced by publish_many(), not written")
            else:
                raise TypeError(f"not a write: {write!r}")
        if edits:  # a runtime without a node: the same compare-and-set, refused as a conflict
            answers = await self._run(self._commit, [self._edit_call(write) for write in edits])
            for write, (outcome, revision) in zip(edits, answers, strict=True):
                if outcome != b"OK":
                    raise WriteConflict(
                        f"document {write.document!r}: revision {write.revision} not stored "
                        f"({outcome.decode()} {revision})"
                    )
        if trims:
            await self._run(self._trim, trims)
        if forgets:  # (one that someone joined meanwhile, on any node, is left alone)
            await self._run(self._forget, forgets)

    async def _room_ages(self, read: RoomAges) -> list[RoomAge]:
        """Retention's step across nodes: the rooms some node loaded (``ip:rooms``), in name
        order after ``read.after_room``, each with its head, its oldest seq and its first
        seq stamped at or after ``read.before``. Every node sweeps them all: a trim done
        twice is done once. At most ``SCAN`` entries of a room are read per step: if all of
        them expired, it says the next is kept, and the next step trims on from there."""
        start = f"({read.after_room}" if read.after_room else "-"
        names = await self._client.zrangebylex(ROOMS, start, "+", start=0, num=read.limit)
        pipe = self._client.pipeline(transaction=False)
        for name in names:
            meta, log_key, _ = room_keys(name.decode())
            pipe.hmget(meta, "e", "s")
            pipe.xrange(log_key, "-", "+", count=SCAN)
            pipe.hlen(presence_key(name.decode()))
        answers = await pipe.execute()
        ages = []
        rows = zip(names, answers[::3], answers[1::3], answers[2::3], strict=True)
        for name, (epoch, head), entries, present in rows:
            if epoch is None:
                continue  # forgotten meanwhile
            messages = [decode_entry(fields[b"m"]) for _, fields in entries]
            kept = next((m.seq for m in messages if m.timestamp >= read.before), None)
            if kept is None and (len(messages) == SCAN or present):
                # The rest, the next step; or someone is in it on some node: it is trimmed
                # (to the seq after its head), never forgotten.
                kept = messages[-1].seq + 1 if messages else int(head) + 1
            ages.append(
                RoomAge(
                    room=name.decode(),
                    epoch=epoch.decode(),
                    head=int(head),
                    oldest=messages[0].seq if messages else None,
                    first_kept=kept,
                )
            )
        return ages

    async def _run(self, script: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``script`` once per ``(keys, args)``, in order, in one pipeline; loaded first if
        Redis does not have it (never yet, or restarted): NOSCRIPT fails every call of the
        pipeline, so none of them ran."""
        for attempt in (1, 2):
            commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
            answers = await self._execute(commands)
            failed = next((a for a in answers if isinstance(a, Exception)), None)
            if failed is None:
                return answers
            if str(failed).startswith("NOSCRIPT") and attempt == 1:
                [sha] = await self._execute([("SCRIPT", "LOAD", script.script)])
                script.sha = sha.decode() if isinstance(sha, bytes) else sha
                continue
            raise EngineUnavailable(f"redis at {self.url} refused a script ({failed})")
        raise AssertionError("unreachable")

    async def _execute(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """One pipeline on a connection of the engine's own (``wire.py``): one that is idle,
        or a new one, so pipelines of different tasks do not wait for each other."""
        connection = self._scripting.pop() if self._scripting else ScriptConnection(self.url)
        try:
            answers = await connection.execute(commands)
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        self._scripting.append(connection)
        return answers

    async def aclose(self) -> None:
        await self._sub.close()
        for connection in self._scripting:
            await connection.close()
        await self._client.aclose()

    async def _load_room(self, read: LoadRoom) -> LoadedRoom:
        epoch, head, recent, first, present = await self._load(
            keys=[*room_keys(read.room), presence_key(read.room), ROOMS],
            args=[read.recent, _new_epoch(), read.room],
        )
        mine = f"{self.node}\0".encode()
        elsewhere = tuple(
            tuple(field.decode().split("\0", 1))
            for field in present[::2]
            if not field.startswith(mine)
        )
        messages = [decode_entry(fields[b"m"]) for _, fields in _entries(recent)]
        messages.reverse()
        oldest = int(first.split(b"-")[0]) if first else None
        return LoadedRoom(
            record=RoomRecord(epoch=epoch.decode(), head=int(head)),
            recent=messages,
            first_seq=oldest,
            elsewhere=elsewhere,  # type: ignore[arg-type]
        )

    # -- documents ------------------------------------------------------------------------

    def _edit_call(
        self,
        write: SaveEdit | EditProposal,
    ) -> tuple[list[str], list[Any]]:
        """The COMMIT script's keys and arguments: a proposal made on revision ``base`` (or a
        hub's ``SaveEdit`` of ``revision``)."""
        base = write.base if isinstance(write, EditProposal) else write.revision - 1
        edit = write.edit
        key = f"{edit.author}\0{edit.op_id}" if edit.op_id else ""
        snapshot = write.snapshot
        args = [
            base,
            key,
            encode_edit(edit, self.node),
            write.keep_from,
            document_channel(write.document),
            snapshot or "",
            int(snapshot is not None),
        ]
        return document_keys(write.document), args

    async def _document(self, document: str) -> DocumentRecord | None:
        doc, ops, _ = document_keys(document)
        pipe = self._client.pipeline(transaction=True)
        pipe.hmget(doc, ["text", "revision"])
        pipe.xrange(ops, "-", "+")
        (text, revision), found = await pipe.execute()
        if text is None and not found:
            return None
        snapshot = int(revision) if revision is not None else 0
        edits, earlier = [], []
        for _, fields in found:
            shared = decode_edit(document, fields[b"e"])
            if shared.revision > snapshot:
                edits.append(shared.edit)
            else:
                earlier.append((shared.edit.author, shared.edit.op_id, shared.revision))
        return DocumentRecord(
            text=text.decode() if text is not None else "",
            revision=snapshot,
            edits=edits,
            earlier=earlier,
        )

    # -- the SharedDocuments protocol (runtime/node_documents.py) --------------------------

    async def commit_edit(self, proposal: EditProposal) -> Committed:
        """One COMMIT (an editor waits for each)."""
        [(outcome, revision)] = await self._run(self._commit, [self._edit_call(proposal)])
        return Committed(Outcome(outcome.decode()), int(revision))

    async def _eval(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """One call of ``script`` (``_run``: loaded first if Redis lost it)."""
        [answer] = await self._run(script, [(keys, args)])
        return answer

    async def read_edits(self, document: str, after: int, limit: int) -> list[SharedEdit]:
        try:
            found = await self._client.xrange(
                document_keys(document)[1], f"{after + 1}-0", "+", count=limit
            )
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        return [decode_edit(document, fields[b"e"]) for _, fields in found]

    async def subscribe_document(self, document: str) -> None:
        channel = document_channel(document)
        self._documents[channel] = document
        await self._subscribe(channel)

    async def unsubscribe_document(self, document: str) -> None:
        channel = document_channel(document)
        self._documents.pop(channel, None)
        await self._unsubscribe(channel)

    # -- the SharedMatches protocol (runtime/node_matches.py) -----------------------------

    async def acquire_match(self, match: str, ttl: float) -> int | None:
        """The match's lease for ``ttl`` seconds if no one else holds it: its fence, else None."""
        owner, fence = match_keys(match)[:2]
        answer = await self._eval(self._acquire, [owner, fence], [self.node, int(ttl * 1000)])
        return int(answer[1]) if int(answer[0]) == 1 else None

    async def renew_match(self, match: str, fence: int, ttl: float) -> bool:
        owner = match_keys(match)[0]
        held = f"{self.node}|{fence}"
        return bool(await self._eval(self._renew, [owner], [held, int(ttl * 1000)]))

    async def load_match(self, match: str) -> StoredMatch:
        snap = match_keys(match)[2]
        try:
            data, fence, tick = await self._client.hmget(snap, ["data", "fence", "tick"])
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url}: {error}") from None
        return StoredMatch(
            data=data.decode() if data is not None else None,
            fence=int(fence or 0),
            tick=int(tick or 0),
        )

    async def save_match(self, match: str, fence: int, data: str, position: str) -> bool:
        owner, _, snap, inputs = match_keys(match)
        args = [f"{self.node}|{fence}", fence, data, position]
        return bool(await self._eval(self._save_match, [owner, snap, inputs], args))

    async def close_match(self, match: str, fence: int, position: str) -> bool:
        owner, _, snap, inputs = match_keys(match)
        args = [f"{self.node}|{fence}", position]
        return bool(await self._eval(self._close_match, [owner, snap, inputs], args))

    async def publish_states(self, states: Sequence[tuple[str, int, int, str]]) -> list[bool]:
        """Each ``(match, fence, tick, payload)``, fenced (PUBLISH_STATE), in one pipeline."""
        calls = []
        for match, fence, tick, payload in states:
            owner, _, snap, _ = match_keys(match)
            calls.append(
                ([owner, snap], [f"{self.node}|{fence}", tick, match_channel(match), payload])
            )
        return [bool(answer) for answer in await self._run(self._publish_state, calls)]

    async def send_input(self, match: str, entry: str) -> str:
        [found] = await self._execute([("XADD", match_keys(match)[3], "*", "i", entry)])
        if isinstance(found, Exception):
            raise EngineUnavailable(f"redis at {self.url} refused an input ({found})")
        return found.decode() if isinstance(found, bytes) else str(found)

    async def read_inputs(
        self, positions: dict[str, str], block: float
    ) -> list[tuple[str, str, str]]:
        """``(match, entry id, entry)`` after each match's position, waiting up to ``block``
        seconds for the first (a blocking XREAD: one of the engine's connections meanwhile)."""
        names = {match_keys(match)[3]: match for match in positions}
        command = ["XREAD", "COUNT", 1000, "BLOCK", max(1, int(block * 1000)), "STREAMS"]
        command += [*names, *positions.values()]
        [found] = await self._execute([tuple(command)])
        if isinstance(found, Exception):
            raise EngineUnavailable(f"redis at {self.url} refused a read ({found})")
        out = []
        for stream, entries in found or ():
            match = names[stream.decode()]
            for entry_id, flat in entries:
                fields = dict(zip(flat[::2], flat[1::2], strict=True))
                out.append((match, entry_id.decode(), fields[b"i"].decode()))
        return out

    async def notify_node(self, node: str, payload: str) -> None:
        [answer] = await self._execute([("PUBLISH", f"ip:node:{node}", payload)])
        if isinstance(answer, Exception):
            raise EngineUnavailable(f"redis at {self.url} refused a notice ({answer})")

    async def nodes_alive(self, nodes: Sequence[str]) -> set[str]:
        alive = await self._eval(self._nodes_alive, ["ip:nodes"], list(nodes))
        return {node.decode() for node in alive}

    async def subscribe_match(self, match: str) -> None:
        channel = match_channel(match)
        self._matches[channel] = match
        await self._subscribe(channel)

    async def unsubscribe_match(self, match: str) -> None:
        channel = match_channel(match)
        self._matches.pop(channel, None)
        await self._unsubscribe(channel)

    # -- the SharedRooms protocol (runtime/node.py) ----------------------------------------

    async def publish_many(self, proposals: Sequence[Proposal]) -> list[Published]:
        """Sequence each TEXT (the PUBLISH script), in order, in one pipeline (one write and
        one read for them all); Redis runs each script whole: as if sent one by one."""
        calls = [(room_keys(p.room), self._publish_args(p)) for p in proposals]
        answers = await self._run(self._publish, calls)
        published = []
        for proposal, (outcome, entry) in zip(proposals, answers, strict=True):
            if outcome == b"DUP":  # the original's entry: another sender's body, perhaps
                published.append(Published(message=decode_entry(entry), duplicate=True))
                continue
            # Stored as proposed: only the stream's seq, epoch and stamp are news.
            seq, epoch, stamp, _ = entry.split(b"\n", 3)
            if epoch == self._spare_epoch.encode():
                self._spare_epoch = _new_epoch()  # it started a room: never offer it again
            message = RoomMessage(
                kind=proposal.kind,
                room=proposal.room,
                sender=proposal.sender,
                id=proposal.id or f"{epoch.decode()}-{int(seq)}",
                content=proposal.content,
                timestamp=int(stamp),
                seq=int(seq),
                epoch=epoch.decode(),
            )
            published.append(Published(message=message, duplicate=False))
        return published

    def _publish_args(self, proposal: Proposal) -> list[Any]:
        key = f"{proposal.sender}\0{proposal.id}" if proposal.id else ""
        return [
            key,
            encode_body(proposal, self.node, proposal.kind),
            self.retain,
            self._spare_epoch,  # (the epoch a room starts under, if this TEXT starts it)
            proposal.epoch,
            proposal.seen,
            proposal.timestamp,
            room_channel(proposal.room),
        ]

    async def presence(self, room: str, user: str, present: bool) -> None:
        """This node's ``user`` arrived in (left) ``room``: recorded, and told to every node."""
        payload = "P\n" + json.dumps([int(present), room, user, self.node], ensure_ascii=False)
        args = [f"{self.node}\0{user}", int(present), room_channel(room), payload, room]
        try:
            await self._presence(keys=[presence_key(room), f"ip:node:{self.node}:rooms"], args=args)
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None

    async def typing(self, room: str, user: str, stamp: int) -> None:
        payload = "T\n" + json.dumps([room, user, self.node, stamp], ensure_ascii=False)
        try:
            await self._client.publish(room_channel(room), payload)
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None

    async def heartbeat(self, ttl: float) -> tuple[bool, int]:
        """Renew this node for ``ttl`` seconds and reap the nodes past theirs: (whether this
        node was unknown, i.e. new or reaped meanwhile; how many were reaped)."""
        try:
            new, reaped = await self._heartbeat(
                keys=["ip:nodes"], args=[self.node, int(ttl * 1000)]
            )
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        return bool(new), int(reaped)

    async def disconnect(
        self, user: str, reason: str, *, reconnect: bool, here: Callable[[], int], wait: float
    ) -> int:
        """Ask every other node to end ``user``'s sessions, then end this node's (``here``),
        then add up the others' answers, waiting at most ``wait`` seconds for them: PUBLISH
        says how many readers heard the question, so a node that died since is not waited
        for longer than that."""
        token = _new_epoch()
        answers = self._asked[token] = _Answers()
        question = json.dumps([token, user, reason, int(reconnect), self.node], ensure_ascii=False)
        try:
            try:
                heard = await self._client.publish(ADMIN, "D\n" + question)
            except UNREACHABLE as error:
                raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
            cut = here()
            answers.expect(heard - 1 if self.healthy else heard)  # (this node's reader heard it)
            with anyio.move_on_after(wait):
                await answers.all.wait()
            return cut + answers.cut
        finally:
            del self._asked[token]

    async def delete_history(self, room: str, user: str) -> tuple[int, str, int]:
        """Forget ``room``'s messages (or ``user``'s) in the shared stream, renumbering what
        is left under a new epoch, told to every node following it: (removed, epoch, head)."""
        [(removed, epoch, head)] = await self._run(
            self._delete, [(room_keys(room), [user, _new_epoch(), room_channel(room)])]
        )
        return int(removed), epoch.decode() if isinstance(epoch, bytes) else epoch, int(head)

    async def read_after(self, room: str, after: int, limit: int) -> list[RoomMessage]:
        log_key = room_keys(room)[1]
        try:
            found = await self._client.xrange(log_key, f"{after + 1}-0", "+", count=limit)
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        return [decode_entry(fields[b"m"]) for _, fields in found]

    async def recent(self, room: str, count: int) -> list[RoomMessage]:
        log_key = room_keys(room)[1]
        try:
            found = await self._client.xrevrange(log_key, "+", "-", count=count)
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        messages = [decode_entry(fields[b"m"]) for _, fields in found]
        messages.reverse()
        return messages

    async def heads(self, rooms: Sequence[str]) -> dict[str, tuple[str, int] | None]:
        """Each room's ``(epoch, head)`` as Redis holds it (None: Redis lost the room)."""
        pipe = self._client.pipeline(transaction=False)
        for room in rooms:
            pipe.hmget(room_keys(room)[0], ["e", "s"])
        try:
            found = await pipe.execute()
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        return {
            room: (e.decode(), int(s)) if e is not None else None
            for room, (e, s) in zip(rooms, found, strict=True)
        }

    async def subscribe(self, room: str) -> None:
        """Return once Redis confirmed the room's channel: from then on nothing published
        to it is missed (unless the connection drops: ``listener.reconnected``)."""
        channel = room_channel(room)
        self._rooms[channel] = room
        await self._subscribe(channel)

    async def _subscribe(self, channel: str) -> None:
        with anyio.move_on_after(5):  # (starting, or reconnecting: a moment, not a failure)
            await self._up.wait()
        if not self.healthy:
            raise EngineUnavailable(f"redis at {self.url} is unreachable")
        event = self._confirmed.setdefault(channel, anyio.Event())
        self._confirming[channel] = self._confirming.get(channel, 0) + 1
        try:
            await self._sub.subscribe([channel])
        except UNREACHABLE as error:
            raise EngineUnavailable(f"redis at {self.url} is unreachable ({error})") from None
        with anyio.move_on_after(10):
            await event.wait()
        if not event.is_set() or not self.healthy:
            raise EngineUnavailable(f"redis at {self.url}: no confirmation of {channel!r}")

    async def unsubscribe(self, room: str) -> None:
        channel = room_channel(room)
        self._rooms.pop(channel, None)
        await self._unsubscribe(channel)

    async def _unsubscribe(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        self._confirming.pop(channel, None)
        if self._sub.connected:
            with contextlib.suppress(*UNREACHABLE):  # gone with the connection, if it dropped
                await self._sub.unsubscribe([channel])

    async def run(self, listener: Listener) -> None:
        """Read pub/sub for ``listener`` until cancelled (see the module docstring)."""
        self._listener = listener
        delay = 0.1
        connected = False
        while True:
            try:
                if not connected:
                    await self._client.ping()
                    await self._sub.connect()
                    connected = True
                    # Everything followed, again (the node's own channel keeps the connection
                    # subscribed); healthy once Redis confirmed it all (``_restored``).
                    self._restoring = {
                        self._own,
                        ADMIN,
                        *self._rooms,
                        *self._documents,
                        *self._matches,
                    }
                    await self._sub.subscribe(sorted(self._restoring))
                    delay = 0.1
                burst = 0
                while True:
                    for reply in await self._sub.read():
                        self._handle(reply, listener)
                        burst += 1
                        if burst >= _BURST:
                            # A burst is parsed without waiting on the socket: let the session
                            # writers drain what it delivered (a receiver is not slow for it),
                            # a batch of frames each.
                            burst = 0
                            await anyio.lowlevel.checkpoint()
                    while self._answering:
                        await self._client.publish(*self._answering.pop(0))
            except UNREACHABLE as error:
                if connected or self.healthy:
                    log.warning("redis at %s: connection lost (%s); retrying", self.url, error)
                connected = False
                self.healthy = False
                self._up = anyio.Event()
                listener.lost()
                await self._sub.close()
                self._confirming.clear()
                for event in self._confirmed.values():
                    event.set()  # a subscribe waiting for its confirmation gives up
                self._confirmed.clear()
                await anyio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _handle(self, reply: Any, listener: Listener) -> None:
        if not isinstance(reply, list) or len(reply) < 3:
            return  # a PONG (the idle check's), or an error reply
        kind, channel_name, data = reply[0], reply[1], reply[2]
        channel = channel_name.decode()
        if kind == b"message":
            if channel == self._own and data[:2] == b"G\n":
                listener.heard_notice(data)  # an owner refused an input of a session here
                return
            if channel == ADMIN or channel == self._own:
                self._admin(data, listener)
                return
            document = self._documents.get(channel)
            if document is not None:
                edit = decode_edit(document, data)
                if edit.node != self.node:  # this node's own come from its commits' answers
                    listener.heard_edit(edit)
                return
            match = self._matches.get(channel)
            if match is not None:
                listener.heard_state(match, data)
                return
            room = self._rooms.get(channel)
            if room is None:
                return
            if data[:2] == b"P\n":
                present, room, user, node = json.loads(data[2:])
                if node != self.node:
                    listener.presence(room, user, node, present=bool(present))
            elif data[:2] == b"X\n":  # (this node's own too: its members are told the same way)
                epoch, head, user = json.loads(data[2:])
                listener.deleted(room, epoch, int(head), user)
            elif data[:2] == b"T\n":
                room, user, node, stamp = json.loads(data[2:])
                if node != self.node:
                    typing = RoomMessage(kind=Kind.TYPING, room=room, sender=user, timestamp=stamp)
                    listener.heard(typing)
            elif not data.endswith(self._sent_here):
                # This node's own TEXTs come from the answers to its pipeline, in the order
                # its sessions sent them (a re-send's acknowledgement among them); the copy
                # pub/sub brings, perhaps before the answers, would overtake those (and is
                # not even decoded: the entry's body ends with the node it was sent through).
                message, node = decode_sent(data)
                if node != self.node:
                    listener.heard(message)
        elif kind == b"subscribe":
            if channel in self._restoring:
                self._restoring.discard(channel)
                if not self._restoring:
                    self._restored(listener)
                return
            waiting = self._confirming.get(channel, 0)
            if waiting:
                self._confirming[channel] = waiting - 1
                event = self._confirmed.get(channel)
                if event is not None:
                    event.set()
                    self._confirmed[channel] = anyio.Event()

    def _restored(self, listener: Listener) -> None:
        """Every channel is subscribed again after a (re)connect: what was published while
        it was down is gone, so the node reads every room and document again."""
        self.healthy = True
        self._up.set()
        listener.reconnected()

    def _admin(self, data: bytes, listener: Listener) -> None:
        """A question from another node's admin API, or an answer to this node's."""
        if data[:2] == b"D\n":
            token, user, reason, reconnect, node = json.loads(data[2:])
            if node != self.node:
                cut = listener.disconnect(user, reason, reconnect=bool(reconnect))
                self._answering.append((f"ip:node:{node}", "A\n" + json.dumps([token, cut])))
        elif data[:2] == b"A\n":
            token, cut = json.loads(data[2:])
            answers = self._asked.get(token)
            if answers is not None:
                answers.add(int(cut))


@dataclass(slots=True)
class _Answers:
    """The other nodes' answers to one admin question: how many of their sessions ended."""

    cut: int = 0
    count: int = 0
    expected: int | None = None
    all: anyio.Event = field(default_factory=anyio.Event)

    def add(self, cut: int) -> None:
        self.cut += cut
        self.count += 1
        self._check()

    def expect(self, count: int) -> None:
        self.expected = count
        self._check()

    def _check(self) -> None:
        if self.expected is not None and self.count >= self.expected:
            self.all.set()


def _entries(raw: list[Any]) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """XREVRANGE inside a script answers flat lists: [id, [field, value, ...]]."""
    out = []
    for entry_id, flat in raw:
        out.append((entry_id, dict(zip(flat[::2], flat[1::2], strict=True))))
    return out


def _new_epoch() -> str:
    import secrets

    return secrets.token_hex(8)
