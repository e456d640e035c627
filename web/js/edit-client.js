// The client side of CollaborativeEdit, a port of interplay.core.edit_client.ClientEditor, plus
// the other editors' carets: what a reconnecting editor must remember so its edits land once
// and its text converges.
//
// - Every operation sent carries an op id (`<prefix>-<n>`); the one in flight (one at a time)
//   keeps its id across connections, so the server applies a re-send at most once.
// - `connected()` joins at the revision held (0 before the first snapshot: a snapshot), naming
//   the operation in flight (`opId`), then re-sends it under its op id. The edits missed arrive
//   first; our own in-flight operation among them is its ack, and its further pieces are
//   skipped. An operation in flight that remote edits split or emptied (no single splice
//   carries it) goes as it first went out, once; after that it waits for a snapshot.
// - A snapshot after the first (the server no longer kept what we missed) says, in `opId`,
//   whether our operation in flight landed. Every local edit that is not in it is *rebased*
//   onto it: the server's change since our base (a character diff of the server's text as we
//   knew it, with the landed operation applied, against the snapshot) is transformed against
//   them, and they go out again under new op ids: a "rebase", nothing typed is lost.
// - An operation the server refused ("reject") is never re-sent: a "refused" change, then the
//   editor starts over from a new snapshot (a "reset", `lost` if edits were made on top of it).
// - Carets: the server relays `cursor` (position, length) at its revision; we move each one
//   through what we hold unacknowledged, then through every edit applied here. Ours is sent
//   only while synchronized (nothing in flight: its position is then the server's too).

import { randomPrefix } from "./ids.js";
import { ClientDocument, SYNCHRONIZED } from "./ot/client.js";
import { TextOp } from "./ot/text.js";

export class ClientEditor {
  constructor(user, document, idPrefix = randomPrefix()) {
    this.user = user;
    this.document = document;
    this.idPrefix = idPrefix;
    this.doc = new ClientDocument();
    this.synced = false; // a snapshot has arrived
    // The server's text at our revision, as we know it: what a later snapshot is diffed
    // against to rebase our unacknowledged edits.
    this.confirmed = "";
    this.inFlight = null; // the op id of the operation awaiting its ack
    this.counter = 0;
    this.skip = null; // [revision, op id] of ours, acked by the catch-up
    this.awaitingSnapshot = false; // see connected()
    this.startOver = false; // an op was refused: the next snapshot is a reset
    this.firstSent = null; // the frame the operation in flight first went out as
    this.resentFirst = ""; // the op id of the first-sent frame re-sent on a reconnect
    this.carets = new Map(); // user -> {position, length, seen}, in local code points
    this.selection = [0, 0]; // ours, local code points
    this.sentSelection = null; // [position, length] last sent, moved as the server moves it
  }

  get text() {
    return this.doc.text;
  }

  get revision() {
    return this.doc.revision;
  }

  get settled() {
    return this.synced && this.doc.outstanding === null && this.doc.buffer === null;
  }

  // -- the application's calls -------------------------------------------------------------

  /** Replace `deleted` code points at `position` with `inserted`, applied at once. */
  edit(position, deleted, inserted) {
    if (!this.synced) throw new Error("document: wait for the snapshot before editing");
    const op = TextOp.splice(this.localLength(), position, deleted, inserted);
    this.moveCarets(op);
    return this.sent(this.doc.edit(op));
  }

  undo() {
    return this.local(() => this.doc.undo());
  }

  redo() {
    return this.local(() => this.doc.redo());
  }

  /** Our caret or selection moved (local code points): tell the others when we may. */
  select(position, length) {
    this.selection = [position, length];
    return this.cursorFrames();
  }

  // -- the connection's --------------------------------------------------------------------

  /** What a new connection sends first: a join at the revision held, naming the operation in
   * flight, then that operation under its op id (see the notes at the top). */
  connected() {
    this.sentSelection = null;
    if (this.startOver) return [this.join(0, "")]; // a snapshot to start over from
    const revision = this.synced ? this.doc.revision : 0;
    const resend = this.synced ? this.doc.resend() : null;
    const join = this.join(revision, resend !== null ? this.inFlight : "");
    // At revision 0 the join asks for a snapshot: until it comes, edits stay local (sent
    // against revision 0 they would be applied after it, and rebased onto it as well).
    this.awaitingSnapshot = revision === 0;
    if (resend === null || this.awaitingSnapshot) return [join];
    if (resend.op.splices().length !== 1) {
      // Remote edits split it or emptied it: no single wire edit carries it rebased, so it
      // goes as it first went out, at its first base, and the server rebases it over the same
      // edits we did. Once: if that connection ends too before the ack (its base no longer
      // kept), sending it so again would loop; a snapshot to rebase onto instead.
      const first = this.firstSent;
      if (first !== null && first.opId === this.inFlight && this.inFlight !== this.resentFirst) {
        this.resentFirst = first.opId;
        return [join, first];
      }
      this.awaitingSnapshot = true;
      return [this.join(0, this.inFlight)];
    }
    return [join, this.request(resend, this.inFlight)];
  }

  /** What changed for the person (`{kind, user, ...}` or null), and the frames to send. */
  receive(frame) {
    const kind = frame.operation;
    const version = Number(frame.version ?? 0);
    if (kind === "snapshot") return this.snapshot(frame.content ?? "", version, frame.opId ?? "");
    if (kind === "reject") return this.refused(frame);
    if (kind === "ack") {
      if (this.inFlight !== null && frame.opId === this.inFlight) return [null, this.acked()];
      return [null, []]; // a second ack for an op the catch-up already acknowledged
    }
    if (kind === "cursor") return [this.remoteCaret(frame, version), []];
    if (!["insert", "delete", "replace", "noop"].includes(kind)) return [null, []];
    const user = frame.userId ?? "";
    const opId = frame.opId ?? "";
    const ours = user === this.user;
    if (ours && this.inFlight !== null && opId === this.inFlight) {
      this.skip = [version, opId]; // our op, applied before we reconnected: this is its ack
      return [null, this.acked()];
    }
    if (ours && this.skip && this.skip[0] === version && this.skip[1] === opId) {
      return [null, []]; // a further piece of that op, already counted
    }
    const position = kind === "noop" ? 0 : Number(frame.position ?? 0);
    const deleted = kind === "insert" || kind === "noop" ? 0 : Number(frame.length ?? 0);
    const inserted = kind === "delete" || kind === "noop" ? "" : (frame.content ?? "");
    const size = this.doc.serverLength;
    const op =
      deleted || inserted
        ? TextOp.splice(size, position, deleted, inserted)
        : TextOp.identity(size);
    this.confirmed = op.apply(this.confirmed);
    const applied = this.doc.receive(op, version);
    this.moveCarets(applied);
    const caret = this.carets.get(user);
    if (caret && (deleted || inserted)) caret.seen = Date.now();
    return [{ kind: "edit", user, op: applied }, []];
  }

  // -- internals ---------------------------------------------------------------------------

  localLength() {
    return Array.from(this.doc.text).length;
  }

  local(step) {
    const before = this.doc.text;
    const send = step();
    if (this.doc.text !== before) {
      // Undo/redo changed the text: move the carets by what changed (one diff).
      this.moveCarets(diffOp(before, this.doc.text));
    }
    return this.sent(send);
  }

  snapshot(text, revision, opId) {
    this.skip = null;
    this.awaitingSnapshot = false;
    if (this.startOver || !this.synced) {
      const kind = this.startOver ? "reset" : "snapshot";
      const lost = this.startOver && (this.inFlight !== null || this.doc.buffer !== null);
      this.startOver = false;
      this.confirmed = text;
      this.doc = new ClientDocument(text, { revision });
      this.inFlight = null;
      this.synced = true;
      this.carets.clear();
      this.selection = [0, 0];
      this.sentSelection = null;
      return [{ kind, lost }, this.cursorFrames()];
    }
    const doc = this.doc;
    const [before, beforeRevision] = [doc.text, doc.revision];
    const landed = this.inFlight !== null && opId === this.inFlight;
    const base = landed ? doc.outstanding.apply(this.confirmed) : this.confirmed;
    const send = doc.rebase(text, revision, TextOp.diff(base, text), landed);
    this.confirmed = text;
    this.inFlight = null;
    const requests = this.sent(send);
    if (doc.text === before && doc.revision === beforeRevision) return [null, requests];
    // The other editors' carets were at positions of the old text: moved by what changed here.
    if (doc.text !== before) this.moveCarets(diffOp(before, doc.text));
    return [{ kind: "rebase", lost: false }, [...requests, ...this.cursorFrames()]];
  }

  refused(frame) {
    const change = { kind: "refused", user: this.user, rejection: frame.rejection ?? null };
    if (this.inFlight === null || frame.opId !== this.inFlight || this.startOver) {
      return [change, []]; // not the op in flight (or already starting over)
    }
    this.startOver = true;
    return [change, [this.join(0, "")]];
  }

  join(revision, pending) {
    return {
      operation: "join",
      documentId: this.document,
      userId: this.user,
      version: String(revision),
      opId: pending,
    };
  }

  sent(send) {
    if (send === null) return [];
    this.counter++;
    this.inFlight = `${this.idPrefix}-${this.counter}`;
    if (this.awaitingSnapshot) return []; // in flight here; the snapshot's rebase sends it
    this.firstSent = this.request(send, this.inFlight);
    return [this.firstSent];
  }

  request(send, opId) {
    const pieces = send.op.splices();
    if (pieces.length !== 1) throw new Error(`an edit must be one splice, not ${pieces.length}`);
    const [[position, deleted, inserted]] = pieces;
    const operation = deleted && inserted ? "replace" : inserted ? "insert" : "delete";
    return {
      operation,
      documentId: this.document,
      userId: this.user,
      position,
      length: deleted,
      content: inserted,
      version: String(send.base),
      opId,
    };
  }

  acked() {
    this.inFlight = null;
    this.confirmed = this.doc.outstanding.apply(this.confirmed);
    const next = this.sent(this.doc.ack());
    return next.length ? next : this.cursorFrames();
  }

  cursorFrames() {
    if (!this.synced || this.doc.state !== SYNCHRONIZED) return [];
    const [position, length] = this.selection;
    const sent = this.sentSelection;
    const revision = this.doc.revision;
    if (sent && sent[0] === position && sent[1] === length) return [];
    this.sentSelection = [position, length];
    return [
      {
        operation: "cursor",
        documentId: this.document,
        userId: this.user,
        position,
        length,
        version: String(revision),
      },
    ];
  }

  remoteCaret(frame, version) {
    const user = frame.userId ?? "";
    if (!user || user === this.user) return null;
    let start = Number(frame.position ?? 0);
    let end = start + Number(frame.length ?? 0);
    if (version === this.doc.revision) {
      // The server's text at our revision: move through what we hold unacknowledged.
      for (const op of [this.doc.outstanding, this.doc.buffer]) {
        if (op === null) continue;
        start = op.transformIndex(start);
        end = op.transformIndex(end);
      }
    }
    const size = this.localLength();
    start = Math.min(start, size);
    end = Math.min(Math.max(end, start), size);
    this.carets.set(user, { position: start, length: end - start, seen: Date.now() });
    return { kind: "cursor", user };
  }

  moveCarets(op) {
    for (const caret of this.carets.values()) {
      [caret.position, caret.length] = moveRange(op, [caret.position, caret.length]);
    }
    this.selection = moveRange(op, this.selection);
    // The server moves the caret we sent through every edit too (ours once acknowledged).
    if (this.sentSelection) this.sentSelection = moveRange(op, this.sentSelection);
  }
}

/** Where `[position, length]` ends up after `op`. */
function moveRange(op, [position, length]) {
  const start = op.transformIndex(position);
  const end = op.transformIndex(position + length);
  return [start, Math.max(0, end - start)];
}

/** One splice turning `before` into `after` (the common prefix and suffix kept). */
export function diffOp(before, after) {
  const a = Array.from(before);
  const b = Array.from(after);
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (
    suffix < a.length - prefix &&
    suffix < b.length - prefix &&
    a[a.length - 1 - suffix] === b[b.length - 1 - suffix]
  ) {
    suffix++;
  }
  const inserted = b.slice(prefix, b.length - suffix).join("");
  return TextOp.splice(a.length, prefix, a.length - prefix - suffix, inserted);
}
