// The client side of CollaborativeEdit, a port of interplay.core.edit_client.ClientEditor, plus
// the other editors' carets: what a reconnecting editor must remember so its edits land once
// and its text converges.
//
// - Every operation sent carries an op id (`<prefix>-<n>`); the one in flight (one at a time)
//   keeps its id across connections, so the server applies a re-send at most once.
// - `connected()` joins at the revision held (0 before the first snapshot: a snapshot), then
//   re-sends the operation in flight under its op id. The edits missed arrive first; our own
//   in-flight operation among them is its ack, and its further pieces are skipped.
// - A snapshot at another revision than ours starts over from it (a "reset"; `lost` if local
//   edits were never acknowledged).
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
    this.inFlight = null; // the op id of the operation awaiting its ack
    this.counter = 0;
    this.skip = null; // [revision, op id] of ours, acked by the catch-up
    this.resendAfterSnapshot = false;
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

  connected() {
    const revision = this.synced ? this.doc.revision : 0;
    const join = {
      operation: "join",
      documentId: this.document,
      userId: this.user,
      version: String(revision),
    };
    const resend = this.synced ? this.doc.resend() : null;
    this.resendAfterSnapshot = resend !== null && revision === 0;
    this.sentSelection = null;
    if (resend === null || this.resendAfterSnapshot) return [join];
    return [join, this.request(resend, this.inFlight)];
  }

  /** What changed for the person (`{kind, user, ...}` or null), and the frames to send. */
  receive(frame) {
    const kind = frame.operation;
    const version = Number(frame.version ?? 0);
    if (kind === "snapshot") return this.snapshot(frame.content ?? "", version);
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

  snapshot(text, revision) {
    const resend = this.resendAfterSnapshot;
    this.resendAfterSnapshot = false;
    if (this.synced && this.doc.revision === revision) {
      const send = resend ? this.doc.resend() : null; // a rejoin with nothing missed
      return [null, [...(send ? [this.request(send, this.inFlight)] : []), ...this.cursorFrames()]];
    }
    const unsent = this.inFlight !== null || this.doc.buffer !== null;
    const lost = this.synced && unsent;
    const kind = this.synced ? "reset" : "snapshot";
    this.doc = new ClientDocument(text, { revision });
    this.inFlight = null;
    this.skip = null;
    this.synced = true;
    this.carets.clear();
    this.selection = [0, 0];
    this.sentSelection = null;
    return [{ kind, lost }, this.cursorFrames()];
  }

  sent(send) {
    if (send === null) return [];
    this.counter++;
    this.inFlight = `${this.idPrefix}-${this.counter}`;
    return [this.request(send, this.inFlight)];
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
