// The client side of Chat, a port of interplay.core.chat_client.ClientRooms: what a
// reconnecting client must remember so the person sees no gap and no duplicate.
//
// Per room it keeps the `epoch` and the last `seq` shown. TEXTs at or below it are duplicates
// (history overlapping what was already seen) and are dropped; a TEXT beyond the next seq is a
// gap, answered by a resuming JOIN on the same socket. After every (re)connect, `connected()`
// gives a resuming JOIN per room, then every TEXT not yet acknowledged under its original id
// (the server stores it once). The sender's own copy of a TEXT (with its seq) is its ack.

import { randomPrefix } from "./ids.js";

/** A server frame (proto3 JSON of ChatMessage) as the application sees it. */
export function fromWire(frame) {
  return {
    kind: frame.type ?? "TEXT",
    room: frame.roomId ?? frame.room_id ?? "",
    sender: frame.senderId ?? frame.sender_id ?? "",
    id: frame.id ?? "",
    content: frame.content ?? "",
    timestamp: Number(frame.timestamp ?? 0),
    seq: Number(frame.seq ?? 0),
    epoch: frame.epoch ?? "",
  };
}

class Room {
  constructor() {
    this.epoch = "";
    this.lastSeq = null; // null: take the next TEXT as the start ...
    this.head = null; // ... if it is not past the head our JOIN echo carried (+ 1)
    this.syncing = true; // a JOIN was sent; its echo has not come back yet
    this.echoed = false; // the echo came back; a SYSTEM notice now means "start over"
    this.announced = false; // the application has seen its JOIN echo once
    this.members = new Set();
    this.known = null; // after a rejoin: the members known before, until presence settles
  }
}

export class ClientRooms {
  constructor(user, idPrefix = randomPrefix()) {
    if (!user) throw new Error("user: must not be empty");
    this.user = user;
    this.idPrefix = idPrefix;
    this.rooms = new Map();
    this.pending = new Map(); // id -> TEXT frame, in send order
    this.counter = 0;
    this.duplicates = 0;
    this.gaps = 0;
  }

  // -- the application's calls -------------------------------------------------------------

  join(room) {
    if (!this.rooms.has(room)) this.rooms.set(room, new Room());
    return [this.joinFrame(room, this.rooms.get(room))];
  }

  leave(room) {
    if (!this.rooms.delete(room)) throw new Error(`room: not in room ${room}`);
    for (const [id, text] of this.pending) if (text.roomId === room) this.pending.delete(id);
    return [{ type: "LEAVE", roomId: room, senderId: this.user }];
  }

  text(room, content) {
    if (!this.rooms.has(room)) throw new Error(`room: join room ${room} before sending TEXT`);
    this.counter++;
    const frame = {
      type: "TEXT",
      roomId: room,
      senderId: this.user,
      content,
      id: `${this.idPrefix}-${this.counter}`,
    };
    this.pending.set(frame.id, frame);
    return [frame];
  }

  typing(room) {
    if (!this.rooms.has(room)) return [];
    return [{ type: "TYPING", roomId: room, senderId: this.user }];
  }

  // -- the connection's --------------------------------------------------------------------

  /** A resuming JOIN per room, then every unacknowledged TEXT in its order and id. */
  connected() {
    const frames = [];
    for (const [room, state] of this.rooms) frames.push(this.joinFrame(room, state));
    return [...frames, ...this.pending.values()];
  }

  /** What the application sees of `message` (fromWire'd), and what to send in reply. */
  receive(message) {
    const state = this.rooms.get(message.room);
    if (state === undefined) return [[], []]; // a room left meanwhile
    if (message.kind === "JOIN" && message.epoch && message.sender === this.user) {
      return [this.echo(message, state), []];
    }
    if (state.syncing) return [[], []]; // superseded by the resuming JOIN in flight
    if (message.kind === "JOIN") return [this.present(message, state), []];
    const seen = this.presenceSettled(message.room, state);
    if (message.kind === "SYSTEM" && state.echoed) {
      state.lastSeq = null; // history reset or no longer retained: start over
      state.echoed = false;
      return [[...seen, message], []];
    }
    state.echoed = false;
    if (message.kind === "LEAVE") state.members.delete(message.sender);
    if (message.kind !== "TEXT") return [[...seen, message], []];
    const last = state.lastSeq;
    if (last === null && state.head !== null && message.seq > state.head + 1) {
      this.gaps++; // the first TEXT after a JOIN skipped past the head: join again
      return [seen, [this.joinFrame(message.room, state)]];
    }
    if (last !== null && message.seq <= last) {
      this.duplicates++;
      this.acknowledge(message);
      return [seen, []];
    }
    if (last !== null && message.seq > last + 1) {
      this.gaps++;
      return [seen, [this.joinFrame(message.room, state)]];
    }
    state.lastSeq = message.seq;
    this.acknowledge(message);
    return [[...seen, message], []];
  }

  members(room) {
    const state = this.rooms.get(room);
    return state === undefined ? [] : [...state.members].sort();
  }

  lastSeq(room) {
    return this.rooms.get(room)?.lastSeq ?? null;
  }

  // -- internals ---------------------------------------------------------------------------

  joinFrame(room, state) {
    state.syncing = true;
    const frame = { type: "JOIN", roomId: room, senderId: this.user };
    if (state.lastSeq !== null) frame.resumeAfterSeq = String(state.lastSeq);
    if (state.epoch) frame.epoch = state.epoch;
    return frame;
  }

  /** Our JOIN came back: the one-per-member presence JOINs and the history follow. */
  echo(message, state) {
    state.syncing = false;
    state.echoed = true;
    state.known = state.announced ? new Set([...state.members].filter((m) => m !== this.user)) : null;
    state.members = new Set([this.user]);
    state.epoch = message.epoch; // if it changed, a SYSTEM notice follows
    state.head = message.seq; // history ends there, live traffic starts right after
    if (state.announced) return []; // a rejoin (reconnect or gap) is invisible
    state.announced = true;
    return [message];
  }

  /** A presence JOIN: shown only if it tells the application something new. */
  present(message, state) {
    const fresh = !state.members.has(message.sender);
    state.members.add(message.sender);
    if (state.known !== null && state.known.has(message.sender)) {
      state.known.delete(message.sender);
      return []; // still here after our rejoin: the application knows
    }
    return fresh ? [message] : [];
  }

  /** The presence JOINs after a rejoin are over: LEAVE for whoever did not come back. */
  presenceSettled(room, state) {
    if (state.known === null) return [];
    const gone = [...state.known].sort();
    state.known = null;
    return gone.map((sender) => ({ ...fromWire({}), kind: "LEAVE", room, sender }));
  }

  acknowledge(message) {
    if (message.sender === this.user) this.pending.delete(message.id);
  }
}
