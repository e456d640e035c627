"""Documents on many nodes (DESIGN §10): a replica per node, one revision log in the engine.

Alone, a ``DocumentHub`` gives each edit the next revision and the runtime stores it. On many
nodes the revision log is the engine's (a Redis stream), and each node's hub holds a *replica*
of every document open there, in the log's revision order. A local edit is proposed, not
applied: ``DocumentHub.propose`` rebases it onto the replica's head, and the engine commits it
by compare-and-set on that revision (``SharedDocuments.commit_edit``: one script appends it
only if the revision is the next, and answers a known ``(author, op_id)`` with its revision, so
a re-send through another node is acknowledged, not applied twice). On a conflict the node
reads what it is missing from the log, applies it to the replica (the editors here receive it
as ``Remote``s), rebases and commits again, as ShareDB does. Once committed, the edit is
applied with ``DocumentHub.observe_edit`` (its sender acked). Other nodes' edits arrive by
pub/sub and are applied in revision order (``InRevisionOrder``); a gap is read from the log
after ``fill_delay``, as the chat follower does.

One commit per document is in flight per node at a time (a lock per replica, which reading the
log takes too), so what this node applies between a proposal and its answer is only other
nodes' edits, and a successful compare-and-set means the replica's head was the log's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import anyio

from interplay.core.documents import Acked, DocumentEvent, EditDocument, EditProposal
from interplay.core.effects import StoredEdit
from interplay.core.events import Deliver
from interplay.core.follow import InRevisionOrder

from .errors import StorageFailed
from .outbox import Broadcast

if TYPE_CHECKING:
    from .server import Runtime

log = logging.getLogger("interplay.node")


class Outcome(Enum):
    COMMITTED = "OK"
    CONFLICT = "CONFLICT"  # the log is at another revision (``Committed.revision``)
    DUPLICATE = "DUP"  # that (author, op_id) made ``Committed.revision``


@dataclass(frozen=True, slots=True)
class Committed:
    """The engine's answer to ``commit_edit``: the revision made, the log's head, or the
    revision the re-sent op made."""

    outcome: Outcome
    revision: int


@dataclass(frozen=True, slots=True)
class SharedEdit:
    """One revision of a document's shared log, made through ``node``."""

    document: str
    revision: int
    edit: StoredEdit
    node: str


class SharedDocuments(Protocol):
    """What the engine does for documents (``interplay.backends.redis.RedisEngine``)."""

    async def commit_edit(self, proposal: EditProposal) -> Committed: ...

    async def read_edits(self, document: str, after: int, limit: int) -> list[SharedEdit]: ...

    async def subscribe_document(self, document: str) -> None: ...

    async def unsubscribe_document(self, document: str) -> None: ...


class Contended(StorageFailed):
    """An edit lost the compare-and-set ``attempts`` times in a row: the session ends
    UNAVAILABLE, and its client re-sends (with its op id, so nothing is applied twice)."""


@dataclass(slots=True)
class _Replica:
    """A document this node follows (subscribed, or subscribing)."""

    ready: anyio.Event
    order: InRevisionOrder[SharedEdit]
    lock: anyio.Lock
    loading: int = 0  # commands between ``watch`` and ``loaded``: not to be unsubscribed
    filling: bool = False
    proposing: EditProposal | None = None  # the commit in flight
    answered: bool = False  # its op id turned up in the log, applied as its sender's ack


class DocumentReplicas:
    """This node's replicas (see the module docstring)."""

    def __init__(
        self,
        shared: SharedDocuments,
        *,
        fill_delay: float = 0.02,
        read_batch: int = 1000,
        attempts: int = 100,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts: must be at least 1, got {attempts}")
        self.shared = shared
        self.fill_delay = fill_delay
        self.read_batch = read_batch
        self.attempts = attempts
        self.conflicts = 0  # commits refused because another node's edit came first
        self.gap_reads = 0  # log reads that filled a gap pub/sub left
        self._replicas: dict[str, _Replica] = {}
        self._runtime: Runtime | None = None

    def bind(self, runtime: Runtime) -> None:
        self._runtime = runtime

    # -- the runtime's hooks -------------------------------------------------------------

    async def watch(self, document: str) -> None:
        """Before ``document`` is loaded: subscribed (confirmed), so nothing committed after
        the load is missed; what arrives meanwhile waits for ``loaded``."""
        while True:
            replica = self._replicas.get(document)
            if replica is None:
                replica = _Replica(anyio.Event(), InRevisionOrder(), anyio.Lock())
                self._replicas[document] = replica
                try:
                    await self.shared.subscribe_document(document)
                except BaseException:
                    del self._replicas[document]
                    raise
                finally:
                    replica.ready.set()
                replica.loading += 1
                return
            await replica.ready.wait()
            if self._replicas.get(document) is replica:
                replica.loading += 1
                return

    def loaded(self, document: str) -> None:
        """The command ``watch`` came before was handled (or failed)."""
        replica = self._replicas.get(document)
        if replica is not None:
            replica.loading -= 1
            self._drain(document, replica)

    async def edit(self, command: EditDocument) -> None:
        """Propose ``command``, commit it by compare-and-set, observe it (module docstring).
        A ``CoreError`` refuses it, as alone; ``StorageFailed`` ends the session."""
        runtime = self._runtime
        assert runtime is not None, "the node is not running"
        hub, document = runtime.documents, command.document
        replica = self._replicas.get(document)  # watched before it was loaded
        if replica is None:  # never loaded: a name the hub refuses (``propose`` says why)
            hub.propose(command)
            raise RuntimeError(f"document {document!r} was not watched before its load")
        async with replica.lock:
            for _ in range(self.attempts):
                events, proposal = hub.propose(command)
                self._deliver(events)
                if proposal is None:
                    return  # a re-send this replica knows: acknowledged
                if self._drain(document, replica):
                    continue  # others' edits were waiting: rebase onto them first
                replica.proposing, replica.answered = proposal, False
                try:
                    committed = await self.shared.commit_edit(proposal)
                    if committed.outcome is Outcome.DUPLICATE:
                        # Made through another node: acked once it is applied here (also if
                        # pub/sub brings it meanwhile: ``_observe``), never as a Remote.
                        if not replica.answered:
                            await self._catch_up(document, until=committed.revision)
                        if not replica.answered:  # older than this replica's first revision
                            self._ack(proposal, committed.revision)
                        return
                finally:
                    replica.proposing = None
                if committed.outcome is Outcome.COMMITTED:
                    self._deliver(
                        hub.observe_edit(document, committed.revision, proposal.edit, proposal)
                    )
                    self._drain(document, replica)
                    return
                await self._catch_up(document, until=committed.revision)
                self.conflicts += 1
        raise Contended(
            f"document {document!r}: {self.attempts} commits in a row lost to other nodes' "
            "edits; re-send"
        )

    # -- following the logs --------------------------------------------------------------

    def heard(self, edit: SharedEdit) -> None:
        """Another node's revision, from pub/sub."""
        runtime, replica = self._runtime, self._replicas.get(edit.document)
        if runtime is None or replica is None:
            return
        head = runtime.documents.revision(edit.document)
        if head is None:
            if replica.loading:
                replica.order.hold(edit.revision, edit)  # applied once the load is done
            return
        ready, behind = replica.order.offer(edit.revision, edit, head)
        self._observe(edit.document, ready)
        if behind:
            self._fill_soon(edit.document, replica)

    async def resync(self) -> None:
        """Read every open document's log after its head; let go of those closed here."""
        runtime = self._runtime
        assert runtime is not None
        for document, replica in list(self._replicas.items()):
            if runtime.documents.revision(document) is not None:
                self._fill_soon(document, replica)
            elif not replica.loading and replica.ready.is_set() and not replica.lock.locked():
                replica.ready = leaving = anyio.Event()  # a watch meanwhile waits, then subscribes
                try:
                    await self.shared.unsubscribe_document(document)
                finally:
                    del self._replicas[document]
                    leaving.set()

    def _fill_soon(self, document: str, replica: _Replica) -> None:
        runtime = self._runtime
        if replica.filling or runtime is None:
            return
        replica.filling = True
        runtime.start_soon(self._fill, document, replica)

    async def _fill(self, document: str, replica: _Replica) -> None:
        try:
            await anyio.sleep(self.fill_delay)  # pub/sub may only be late
            async with replica.lock:
                if self._replicas.get(document) is replica:
                    self.gap_reads += 1
                    await self._catch_up(document)
        except StorageFailed as error:
            log.warning("document %r: cannot read its log (%s); retrying later", document, error)
        finally:
            replica.filling = False

    async def _catch_up(self, document: str, until: int | None = None) -> None:
        """Apply the log after the replica's head: to revision ``until``, or all it holds."""
        runtime = self._runtime
        assert runtime is not None
        hub = runtime.documents
        while (head := hub.revision(document)) is not None and (until is None or head < until):
            found = await self.shared.read_edits(document, head, self.read_batch)
            head = hub.revision(document)
            if head is None:
                return  # its last editor left meanwhile: the hub let it go
            found = [edit for edit in found if edit.revision > head]
            if found and found[0].revision != head + 1:
                self._lost(document, head, found[0].revision)
                return
            self._observe(document, [(edit.revision, edit) for edit in found])
            replica = self._replicas.get(document)
            if replica is not None:
                self._drain(document, replica)
            if len(found) < self.read_batch and (until is None or not found):
                return

    def _lost(self, document: str, head: int, first: int) -> None:
        """The log no longer holds what this replica misses (it fell more than the kept
        history behind): its editors are cut, and rejoin from a snapshot of the log."""
        runtime = self._runtime
        assert runtime is not None
        log.warning(
            "document %r: the replica is at %d but the log starts at %d; cutting its editors",
            document,
            head,
            first,
        )
        error = StorageFailed(f"document {document!r} fell behind its log; join again")
        for session in runtime.documents.editors_of(document):
            runtime.fail_session(session, error)

    def _drain(self, document: str, replica: _Replica) -> bool:
        """Apply what waits and is next; whether anything was."""
        runtime = self._runtime
        head = runtime.documents.revision(document) if runtime is not None else None
        if head is None:
            return False
        ready, behind = replica.order.drain(head)
        self._observe(document, ready)
        if behind:
            self._fill_soon(document, replica)
        return bool(ready)

    def _observe(self, document: str, ready: list[tuple[int, SharedEdit]]) -> None:
        runtime = self._runtime
        assert runtime is not None
        hub, events = runtime.documents, list[Deliver[DocumentEvent]]()
        replica = self._replicas.get(document)
        for revision, shared in ready:
            mine = replica.proposing if replica is not None else None
            edit = shared.edit
            if mine is not None and (mine.edit.author, mine.edit.op_id) == (
                edit.author,
                edit.op_id,
            ):
                # The op in flight is a re-send of this revision: its sender is acked.
                assert replica is not None
                replica.proposing, replica.answered = None, True
                mine = replace(mine, rebased=(), rebasing=False)
            else:
                mine = None
            events += hub.observe_edit(document, revision, edit, mine)
        self._deliver(events)

    def _ack(self, proposal: EditProposal, revision: int) -> None:
        edit = proposal.edit
        ack = Acked(
            document=proposal.document, revision=revision, op_id=edit.op_id, user=edit.author
        )
        self._deliver([Deliver(to=(proposal.session,), message=ack)])

    def _deliver(self, events: Sequence[Deliver[DocumentEvent]]) -> None:
        if not events:
            return
        runtime = self._runtime
        assert runtime is not None
        stamp = int(runtime.wall_clock() * 1000)
        runtime.deliver([(e.to, Broadcast(e.message, stamp)) for e in events])
