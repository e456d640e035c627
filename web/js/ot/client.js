// The client's copy of a document: the ot.js state machine, a port of
// interplay.core.ot.client.ClientDocument (one operation in flight).
//
// At most one operation is in flight (sent, not yet acknowledged); later local edits are composed
// into one buffered operation. Undo and redo are local (ot.js UndoManager): each step is an
// inverse operation, transformed against every remote operation that arrives, so undo takes back
// only one's own edits; consecutive typing is one step.
//
//   state                 local edit                     server op (someone else's)   ack
//   synchronized          send it -> awaiting confirm    apply it                     (error)
//   awaiting confirm      buffer it -> awaiting w/ buf.  transform in-flight, apply   -> synchronized
//   awaiting with buffer  compose into the buffer        transform both, apply        send buffer*
//
// (*) Every operation sent is one splice, as the position-based wire requires: a buffer (or an
// undo step) that touches several places goes out a splice at a time, one per ack.

import { length, TextOp } from "./text.js";

export const SYNCHRONIZED = "synchronized";
export const AWAITING_CONFIRM = "awaiting confirm";
export const AWAITING_WITH_BUFFER = "awaiting with buffer";

export class ClientDocument {
  constructor(text = "", { revision = 0, undoLimit = 100 } = {}) {
    this.text = text;
    this.revision = revision;
    this.undoLimit = undoLimit; // every remote op is transformed through both stacks: bounded
    this.outstanding = null; // the operation in flight, rebased over what arrived since
    this.buffer = null; // local edits made while it flies
    this.undoStack = [];
    this.redoStack = [];
    this.lastSplice = null; // for grouping typing into one undo step
  }

  get state() {
    if (this.outstanding === null) return SYNCHRONIZED;
    return this.buffer === null ? AWAITING_CONFIRM : AWAITING_WITH_BUFFER;
  }

  get canUndo() {
    return this.undoStack.length > 0;
  }

  get canRedo() {
    return this.redoStack.length > 0;
  }

  /** The length of the server's text as this client knows it (what incoming server
   * operations, and wire positions from the server, refer to). */
  get serverLength() {
    return this.outstanding !== null ? this.outstanding.baseLength : length(this.text);
  }

  /** Apply a local edit; return `{op, base}` to send now, or null. The edit joins the previous
   * one as a single undo step if it continues it (typing on, deleting on), unless `group` says. */
  edit(op, group = null) {
    const inverse = op.invert(this.text);
    const splices = op.splices();
    const splice = splices.length === 1 ? splices[0] : null;
    if (group === null) group = continues(this.lastSplice, splice);
    if (group && this.undoStack.length) {
      this.undoStack[this.undoStack.length - 1] = inverse.compose(
        this.undoStack[this.undoStack.length - 1],
      );
    } else {
      this.push(this.undoStack, inverse);
    }
    this.redoStack.length = 0;
    this.lastSplice = splice;
    return this.applyLocal(op);
  }

  /** Take back the last undo step (remote edits made since stay). */
  undo() {
    if (!this.undoStack.length) return null;
    const inverse = this.undoStack.pop();
    this.push(this.redoStack, inverse.invert(this.text));
    this.lastSplice = null;
    return this.applyLocal(inverse);
  }

  redo() {
    if (!this.redoStack.length) return null;
    const op = this.redoStack.pop();
    this.push(this.undoStack, op.invert(this.text));
    this.lastSplice = null;
    return this.applyLocal(op);
  }

  /** Apply another client's operation (the next revision, or `revision`: a rebased op that
   * reaches the wire as several pieces carries one revision); return it as applied here. */
  receive(op, revision = null) {
    if (this.outstanding !== null) [this.outstanding, op] = TextOp.transform(this.outstanding, op);
    if (this.buffer !== null) [this.buffer, op] = TextOp.transform(this.buffer, op);
    this.text = op.apply(this.text);
    this.revision = revision === null ? this.revision + 1 : revision;
    this.rebaseSteps(op);
    return op;
  }

  /** Start over from the server's `text` at `revision`, keeping every local edit not in it.
   * `change` turns the server's text as this client knows it (after the operation in flight,
   * if `landed`: `text` holds it already) into `text`. The operation in flight (unless landed)
   * and the buffer are transformed over it as one operation (the server's change goes right of
   * a local insert at the same position, as a remote op does) and become the buffer; undo steps
   * move past `change` as past a remote op. Returns the first splice to send. */
  rebase(text, revision, change, landed = false) {
    let mine = TextOp.identity(change.baseLength);
    if (this.outstanding !== null && !landed) mine = mine.compose(this.outstanding);
    if (this.buffer !== null) mine = mine.compose(this.buffer);
    let theirs;
    [mine, theirs] = TextOp.transform(mine, change);
    this.text = mine.apply(text);
    this.revision = revision;
    this.outstanding = null;
    this.buffer = mine;
    this.rebaseSteps(theirs);
    return this.sendBuffered();
  }

  /** The server applied our operation in flight; return the buffered one to send next. */
  ack() {
    if (this.outstanding === null) throw new Error("ack: nothing is awaiting confirmation");
    this.revision += 1;
    this.outstanding = null;
    return this.sendBuffered();
  }

  /** After a reconnect: the operation in flight again, at our revision (its op id makes it
   * idempotent; the editor decides what to do when it is no longer one splice). */
  resend() {
    if (this.outstanding === null) return null;
    return { op: this.outstanding, base: this.revision };
  }

  // -- internals ---------------------------------------------------------------------------

  /** The undo and redo steps, moved past `op` (applied after the local text). */
  rebaseSteps(op) {
    for (const stack of [this.undoStack, this.redoStack]) {
      let remote = op;
      for (let index = stack.length - 1; index >= 0; index--) {
        [stack[index], remote] = TextOp.transform(stack[index], remote);
      }
    }
    this.lastSplice = null;
  }

  push(stack, step) {
    stack.push(step);
    if (stack.length > this.undoLimit) stack.shift(); // the oldest step is forgotten
  }

  applyLocal(op) {
    this.text = op.apply(this.text);
    if (this.buffer !== null) {
      this.buffer = this.buffer.compose(op);
      return null;
    }
    this.buffer = op;
    return this.outstanding === null ? this.sendBuffered() : null;
  }

  sendBuffered() {
    if (this.buffer === null) return null;
    const [head, rest] = splitFirst(this.buffer);
    this.buffer = rest;
    if (head === null) return null;
    this.outstanding = head;
    return { op: head, base: this.revision };
  }
}

/** Does splice `next` carry on the typing or deleting of splice `last`? */
function continues(last, next) {
  if (last === null || next === null) return false;
  const [lastAt, lastDeleted, lastInserted] = last;
  const [at, deleted, inserted] = next;
  if (inserted && !deleted && lastInserted && !lastDeleted) {
    return at === lastAt + length(lastInserted);
  }
  if (deleted && !inserted && lastDeleted && !lastInserted) {
    return at + deleted === lastAt || at === lastAt; // backspace, forward delete
  }
  return false;
}

/** `op` as its first splice and the rest (which applies after it); `[null, null]` for an
 * operation that changes nothing. */
function splitFirst(op) {
  let size = op.baseLength;
  let head = null;
  let rest = null;
  for (const [position, deleted, inserted] of op.splices()) {
    const piece = TextOp.splice(size, position, deleted, inserted);
    size = piece.targetLength;
    if (head === null) head = piece;
    else rest = rest === null ? piece : rest.compose(piece);
  }
  return [head, rest];
}
