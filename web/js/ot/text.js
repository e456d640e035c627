// Text operations (the ot.js model), a port of interplay.core.ot.text.
//
// An operation is a normalised list of components: a number > 0 retains that many code points,
// a number < 0 deletes -n code points, a string inserts itself. Normalised means no empty
// component, no two neighbours of the same kind, and an insert always before an adjacent
// delete, so equal edits are equal values. Lengths and positions count Unicode code points (what
// the server counts), never UTF-16 units: `length(s)` and `slice(s, a, b)` below do that.

/** The number of code points in `text` (not `text.length`, which counts UTF-16 units). */
export function length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdbff || i + 1 === text.length) {
      n++;
      continue;
    }
    const next = text.charCodeAt(i + 1);
    if (next >= 0xdc00 && next <= 0xdfff) i++; // a surrogate pair is one code point
    n++;
  }
  return n;
}

/** `text` from code point `start` up to (not including) code point `end`. */
export function slice(text, start, end = Infinity) {
  return Array.from(text).slice(start, end).join("");
}

/** The UTF-16 offset of code point `index` in `text` (for textarea selections). */
export function unitOffset(text, index) {
  let units = 0;
  let seen = 0;
  for (const char of text) {
    if (seen === index) break;
    units += char.length;
    seen++;
  }
  return units;
}

/** The code point index of UTF-16 offset `offset` in `text`. */
export function codePointIndex(text, offset) {
  return length(text.slice(0, offset));
}

class Builder {
  constructor() {
    this.ops = [];
    this.base = 0;
    this.target = 0;
  }

  retain(n) {
    if (n <= 0) return;
    this.base += n;
    this.target += n;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === "number" && last > 0) ops[ops.length - 1] = last + n;
    else ops.push(n);
  }

  insert(text) {
    if (!text) return;
    this.target += length(text);
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === "string") {
      ops[ops.length - 1] = last + text;
    } else if (typeof last === "number" && last < 0) {
      // Keep inserts before deletes: "delete then insert" == "insert then delete".
      if (ops.length > 1 && typeof ops[ops.length - 2] === "string") ops[ops.length - 2] += text;
      else ops.splice(ops.length - 1, 0, text);
    } else {
      ops.push(text);
    }
  }

  delete(n) {
    if (n <= 0) return;
    this.base += n;
    const ops = this.ops;
    const last = ops[ops.length - 1];
    if (typeof last === "number" && last < 0) ops[ops.length - 1] = last - n;
    else ops.push(-n);
  }

  add(component) {
    if (typeof component === "string") this.insert(component);
    else if (component > 0) this.retain(component);
    else this.delete(-component);
  }

  build() {
    return new TextOp(this.ops, this.base, this.target);
  }
}

/** Walks a component list, splitting components as the other side demands. */
class Cursor {
  constructor(ops) {
    this.ops = ops;
    this.index = 0;
    this.head = ops.length ? ops[0] : null;
    this.chars = null; // the head's code points, when it is an insert being split
  }

  get done() {
    return this.head === null;
  }

  takeAll() {
    this.index++;
    this.head = this.index < this.ops.length ? this.ops[this.index] : null;
    this.chars = null;
  }

  /** Consume `n` code points of the head; return the part taken. */
  take(n) {
    const head = this.head;
    if (typeof head === "string") {
      const chars = this.chars ?? Array.from(head);
      if (n >= chars.length) {
        this.takeAll();
        return head;
      }
      this.chars = chars.slice(n);
      this.head = this.chars.join("");
      return chars.slice(0, n).join("");
    }
    const size = Math.abs(head);
    if (n >= size) {
      this.takeAll();
      return head;
    }
    this.head = head > 0 ? head - n : head + n;
    return head > 0 ? n : -n;
  }
}

function componentLength(component) {
  return typeof component === "string" ? length(component) : Math.abs(component);
}

export class TextOp {
  constructor(ops, baseLength, targetLength) {
    this.ops = ops;
    this.baseLength = baseLength;
    this.targetLength = targetLength;
    Object.freeze(this.ops);
    Object.freeze(this);
  }

  // -- construction ------------------------------------------------------------------------

  /** Normalise any list of components (zeros and empty strings are dropped). */
  static fromComponents(components) {
    const builder = new Builder();
    for (const component of components) builder.add(component);
    return builder.build();
  }

  static identity(size) {
    return TextOp.fromComponents([size]);
  }

  /** At `position` of a document of `size`, delete `deleted`, insert `inserted`. */
  static splice(size, position, deleted, inserted = "") {
    if (position < 0 || deleted < 0 || position + deleted > size) {
      throw new RangeError(
        `splice at ${position} deleting ${deleted} does not fit a document of ${size}`,
      );
    }
    const builder = new Builder();
    builder.retain(position);
    builder.insert(inserted);
    builder.delete(deleted);
    builder.retain(size - position - deleted);
    return builder.build();
  }

  /** An operation that turns `before` into `after`, keeping what they share: the common ends,
   * then the matching blocks of Python's `difflib.SequenceMatcher` (no junk, no autojunk) in
   * between, found the same way, so the page rebases onto a snapshot exactly as
   * `interplay.core.ot.text.TextOp.diff` does (any correct character diff converges; the same
   * one gives the same text as the Python client). Code points, not UTF-16 units. */
  static diff(before, after) {
    const a = Array.from(before);
    const b = Array.from(after);
    let start = 0;
    const stop = Math.min(a.length, b.length);
    while (start < stop && a[start] === b[start]) start++;
    let end = 0;
    while (end < stop - start && a[a.length - 1 - end] === b[b.length - 1 - end]) end++;
    const builder = new Builder();
    builder.retain(start);
    const old = a.slice(start, a.length - end);
    const now = b.slice(start, b.length - end);
    let i = 0;
    let j = 0;
    for (const [ai, bj, size] of matchingBlocks(old, now)) {
      builder.insert(now.slice(j, bj).join(""));
      builder.delete(ai - i);
      builder.retain(size);
      i = ai + size;
      j = bj + size;
    }
    builder.retain(end);
    return builder.build();
  }

  // -- queries -----------------------------------------------------------------------------

  get isIdentity() {
    return this.ops.every((c) => typeof c === "number" && c > 0);
  }

  /** `[position, deleted, inserted]` pieces, each relative to the text after the ones before
   * it: how a position-based wire carries an op that does not fit in one splice. */
  splices() {
    const out = [];
    let position = 0;
    let pendingInsert = "";
    let pendingDelete = 0;
    for (const component of [...this.ops, 0]) {
      if (typeof component === "string") {
        pendingInsert += component;
        continue;
      }
      if (component < 0) {
        pendingDelete -= component;
        continue;
      }
      if (pendingInsert || pendingDelete) {
        out.push([position, pendingDelete, pendingInsert]);
        position += length(pendingInsert);
        pendingInsert = "";
        pendingDelete = 0;
      }
      position += component;
    }
    return out;
  }

  /** Where a caret at `index` ends up after this operation (an insert at the caret pushes it
   * right; a delete around it pulls it to the deletion's start). */
  transformIndex(index) {
    let moved = index;
    let position = 0;
    for (const component of this.ops) {
      if (typeof component === "string") {
        if (position <= index) moved += length(component);
      } else if (component > 0) {
        position += component;
      } else {
        if (position < index) moved -= Math.min(-component, index - position);
        position -= component;
      }
      if (position > index) break;
    }
    return moved;
  }

  // -- the algebra -------------------------------------------------------------------------

  apply(text) {
    const chars = Array.from(text);
    if (chars.length !== this.baseLength) {
      throw new RangeError(
        `operation expects a document of ${this.baseLength} code points, got ${chars.length}`,
      );
    }
    const parts = [];
    let index = 0;
    for (const component of this.ops) {
      if (typeof component === "string") {
        parts.push(component);
      } else if (component > 0) {
        parts.push(chars.slice(index, index + component).join(""));
        index += component;
      } else {
        index -= component;
      }
    }
    return parts.join("");
  }

  /** The operation that undoes this one, given the text it was applied to. */
  invert(text) {
    const chars = Array.from(text);
    const builder = new Builder();
    let index = 0;
    for (const component of this.ops) {
      if (typeof component === "string") {
        builder.delete(length(component));
      } else if (component > 0) {
        builder.retain(component);
        index += component;
      } else {
        builder.insert(chars.slice(index, index - component).join(""));
        index -= component;
      }
    }
    return builder.build();
  }

  /** One operation with the effect of this one followed by `other`. */
  compose(other) {
    if (this.targetLength !== other.baseLength) {
      throw new RangeError(
        `cannot compose: first produces ${this.targetLength} code points, ` +
          `second expects ${other.baseLength}`,
      );
    }
    const builder = new Builder();
    const first = new Cursor(this.ops);
    const second = new Cursor(other.ops);
    while (!(first.done && second.done)) {
      const a = first.head;
      const b = second.head;
      if (typeof a === "number" && a < 0) {
        builder.delete(-a); // the first deletes: that happens anyway
        first.takeAll();
        continue;
      }
      if (typeof b === "string") {
        builder.insert(b); // the second inserts: that happens anyway
        second.takeAll();
        continue;
      }
      if (a === null || b === null) throw new Error("compose: operation lengths disagree");
      const n = Math.min(componentLength(a), Math.abs(b));
      const piece = first.take(n);
      second.take(n);
      if (b < 0) {
        if (typeof piece !== "string") builder.delete(n); // deletes what the first kept
      } else if (typeof piece === "string") {
        builder.insert(piece);
      } else {
        builder.retain(n);
      }
    }
    return builder.build();
  }

  /** `[a2, b2]`: `a` rebased over `b` and `b` over `a` (TP1; `a` goes left on a tie). */
  static transform(a, b) {
    if (a.baseLength !== b.baseLength) {
      throw new RangeError(
        `cannot transform: operations expect ${a.baseLength} and ${b.baseLength} code points`,
      );
    }
    const aOut = new Builder();
    const bOut = new Builder();
    const first = new Cursor(a.ops);
    const second = new Cursor(b.ops);
    while (!(first.done && second.done)) {
      const x = first.head;
      const y = second.head;
      if (typeof x === "string") {
        aOut.insert(x); // a's insert goes first on a tie
        bOut.retain(length(x));
        first.takeAll();
        continue;
      }
      if (typeof y === "string") {
        aOut.retain(length(y));
        bOut.insert(y);
        second.takeAll();
        continue;
      }
      if (x === null || y === null) throw new Error("transform: operation lengths disagree");
      const n = Math.min(Math.abs(x), Math.abs(y));
      first.take(n);
      second.take(n);
      if (x > 0 && y > 0) {
        aOut.retain(n);
        bOut.retain(n);
      } else if (x < 0 && y > 0) {
        aOut.delete(n); // only a deletes it
      } else if (y < 0 && x > 0) {
        bOut.delete(n); // only b deletes it
      }
      // both delete the same text: nothing is left for either to do
    }
    return [aOut.build(), bOut.build()];
  }
}

/** `difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()` for arrays of
 * code points: `[i, j, size]` triples, increasing, not adjacent, ending with `[len a, len b, 0]`. */
function matchingBlocks(a, b) {
  const indices = new Map(); // code point -> its indices in b, ascending (difflib's b2j)
  b.forEach((char, j) => {
    const list = indices.get(char);
    if (list === undefined) indices.set(char, [j]);
    else list.push(j);
  });
  const blocks = [];
  const queue = [[0, a.length, 0, b.length]];
  while (queue.length) {
    const [alo, ahi, blo, bhi] = queue.pop();
    const [i, j, k] = longestMatch(a, indices, alo, ahi, blo, bhi);
    if (!k) continue;
    blocks.push([i, j, k]);
    if (alo < i && blo < j) queue.push([alo, i, blo, j]);
    if (i + k < ahi && j + k < bhi) queue.push([i + k, ahi, j + k, bhi]);
  }
  blocks.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  const out = [];
  let [i1, j1, k1] = [0, 0, 0];
  for (const [i2, j2, k2] of blocks) {
    if (i1 + k1 === i2 && j1 + k1 === j2) {
      k1 += k2; // adjacent: one block
    } else {
      if (k1) out.push([i1, j1, k1]);
      [i1, j1, k1] = [i2, j2, k2];
    }
  }
  if (k1) out.push([i1, j1, k1]);
  out.push([a.length, b.length, 0]);
  return out;
}

/** difflib's `find_longest_match` with no junk: the longest block of `a[alo:ahi]` equal to one
 * of `b[blo:bhi]`, the earliest in `a` on a tie, then the earliest in `b`. (With no junk the
 * extension loops difflib runs after this never extend a block, so they are left out.) */
function longestMatch(a, indices, alo, ahi, blo, bhi) {
  let [besti, bestj, bestsize] = [alo, blo, 0];
  let lengths = new Map(); // j -> length of the match ending at a[i - 1], b[j]
  for (let i = alo; i < ahi; i++) {
    const next = new Map();
    for (const j of indices.get(a[i]) ?? []) {
      if (j < blo) continue;
      if (j >= bhi) break;
      const k = (lengths.get(j - 1) ?? 0) + 1;
      next.set(j, k);
      if (k > bestsize) [besti, bestj, bestsize] = [i - k + 1, j - k + 1, k];
    }
    lengths = next;
  }
  return [besti, bestj, bestsize];
}
