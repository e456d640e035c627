// The Chat view: rooms, messages with history, members from JOIN/LEAVE presence, typing, and
// the connection's state; the rules (no gap, no duplicate, re-send) are ClientRooms'.

import { ClientRooms, fromWire } from "./chat-client.js";
import { Connection } from "./connection.js";
import { avatar, clockTime, ConnectionStatus, el, personItem } from "./ui.js";

const TYPING_EVERY = 2000; // ms between our TYPING frames while we type
const TYPING_SHOWN = 3500; // ms a TYPING from someone else stays on screen
const KEEP = 500; // messages kept on screen per room

export class ChatView {
  constructor(user, firstRoom) {
    this.user = user;
    this.rules = new ClientRooms(user);
    this.rooms = new Map(); // room -> {messages, unread, typing: Map(user -> expiry)}
    this.current = null;
    this.lastTyping = 0;
    this.nodes = {
      rooms: document.getElementById("room-list"),
      messages: document.getElementById("messages"),
      members: document.getElementById("member-list"),
      memberCount: document.getElementById("member-count"),
      title: document.getElementById("room-title"),
      typing: document.getElementById("typing"),
      input: document.getElementById("message-input"),
    };
    this.status = new ConnectionStatus(
      document.getElementById("chat-status"),
      document.querySelector("#tab-chat .dot"),
      "Chat reconnected: caught up on what you missed",
    );
    this.connection = new Connection("/chat", this, {
      onState: (state, detail) => this.status.show(this.connection, state, detail),
    });
    this.bind();
    this.join(firstRoom);
    this.connection.start();
    setInterval(() => this.renderTyping(), 500);
  }

  // -- what the Connection calls ----------------------------------------------------------

  connected() {
    return this.rules.connected();
  }

  receive(frame) {
    const pending = this.rules.pending.size;
    const [shown, replies] = this.rules.receive(fromWire(frame));
    for (const message of shown) this.show(message);
    this.renderMembers();
    if (shown.some((m) => m.kind !== "TYPING") || this.rules.pending.size !== pending) {
      this.renderMessages();
    }
    return replies;
  }

  // -- the person's actions ---------------------------------------------------------------

  join(room) {
    if (!this.rooms.has(room)) {
      this.rooms.set(room, { messages: [], unread: 0, typing: new Map() });
      this.connection.send(this.rules.join(room));
    }
    this.select(room);
  }

  leave(room) {
    this.connection.send(this.rules.leave(room));
    this.rooms.delete(room);
    if (this.current === room) this.current = null;
    const next = [...this.rooms.keys()][0];
    if (next) this.select(next);
    else this.renderAll();
  }

  select(room) {
    this.current = room;
    this.rooms.get(room).unread = 0;
    this.nodes.input.placeholder = `Message #${room}`;
    this.renderAll();
    this.nodes.input.focus();
  }

  send(content) {
    if (!this.current || !content.trim()) return;
    this.connection.send(this.rules.text(this.current, content));
    this.lastTyping = 0; // typing on after a send is news again
    this.renderMessages();
  }

  bind() {
    document.getElementById("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.send(this.nodes.input.value);
      this.nodes.input.value = "";
    });
    this.nodes.input.addEventListener("input", () => {
      const now = Date.now();
      if (this.current && this.nodes.input.value && now - this.lastTyping > TYPING_EVERY) {
        this.lastTyping = now;
        this.connection.send(this.rules.typing(this.current));
      }
    });
    document.getElementById("join-room").addEventListener("submit", (event) => {
      event.preventDefault();
      const input = document.getElementById("join-room-name");
      const room = input.value.trim().replace(/^#/, "");
      if (room) this.join(room);
      input.value = "";
    });
  }

  // -- showing ----------------------------------------------------------------------------

  show(message) {
    const room = this.rooms.get(message.room);
    if (!room) return;
    if (message.kind === "TYPING") {
      if (message.sender !== this.user) room.typing.set(message.sender, Date.now() + TYPING_SHOWN);
      this.renderTyping();
      return;
    }
    if (message.kind === "TEXT") room.typing.delete(message.sender);
    room.messages.push(message);
    if (room.messages.length > KEEP) room.messages.splice(0, room.messages.length - KEEP);
    if (message.room !== this.current && message.kind === "TEXT") {
      room.unread++;
      this.renderRooms();
    }
  }

  renderAll() {
    this.renderRooms();
    this.renderMessages();
    this.renderMembers();
    this.renderTyping();
    this.nodes.title.textContent = this.current ? `#${this.current}` : "No room";
  }

  renderRooms() {
    const list = this.nodes.rooms;
    list.replaceChildren();
    for (const [name, room] of this.rooms) {
      const leave = el("button", { class: "leave", type: "button", title: `Leave #${name}` }, "×");
      leave.addEventListener("click", (event) => {
        event.stopPropagation();
        this.leave(name);
      });
      const item = el(
        "li",
        { class: name === this.current ? "active" : "", dataset: { room: name } },
        el("span", { class: "name" }, `# ${name}`),
        room.unread ? el("span", { class: "unread" }, String(room.unread)) : null,
        leave,
      );
      item.addEventListener("click", () => this.select(name));
      list.append(item);
    }
  }

  renderMessages() {
    const list = this.nodes.messages;
    const room = this.rooms.get(this.current);
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.replaceChildren();
    if (!room) return;
    let previous = null;
    for (const message of room.messages) {
      list.append(this.messageNode(message, previous));
      previous = message;
    }
    for (const frame of this.rules.pending.values()) {
      if (frame.roomId !== this.current) continue;
      const pending = {
        kind: "TEXT",
        room: frame.roomId,
        sender: this.user,
        id: frame.id,
        content: frame.content,
        seq: 0,
        timestamp: 0,
      };
      list.append(this.messageNode(pending, null, true));
    }
    if (atBottom || previous?.sender === this.user) list.scrollTop = list.scrollHeight;
  }

  messageNode(message, previous, pending = false) {
    if (message.kind !== "TEXT") {
      const text = {
        JOIN: message.sender === this.user ? `You joined #${message.room}` : `${message.sender} joined`,
        LEAVE: `${message.sender} left`,
        SYSTEM: message.content,
      }[message.kind] ?? message.content;
      const kind = message.kind;
      return el("li", { class: `notice ${kind.toLowerCase()}`, dataset: { kind } }, text);
    }
    const continued =
      previous?.kind === "TEXT" &&
      previous.sender === message.sender &&
      message.timestamp - previous.timestamp < 120000;
    const classes = ["message", continued && "continued", pending && "pending"].filter(Boolean);
    return el(
      "li",
      {
        class: classes.join(" "),
        dataset: { seq: String(message.seq), id: message.id, sender: message.sender },
      },
      avatar(message.sender),
      el(
        "div",
        { class: "who" },
        el("strong", {}, message.sender),
        pending ? null : el("time", {}, clockTime(message.timestamp)),
      ),
      el("div", { class: "body" }, message.content),
    );
  }

  renderMembers() {
    const members = this.current ? this.rules.members(this.current) : [];
    this.nodes.memberCount.textContent = String(members.length);
    this.nodes.members.replaceChildren(
      ...members.map((name) => personItem(name, this.user, { member: name })),
    );
  }

  renderTyping() {
    const room = this.rooms.get(this.current);
    const now = Date.now();
    const who = room ? [...room.typing].filter(([, until]) => until > now).map(([name]) => name) : [];
    const verb = who.length === 1 ? "is" : "are";
    this.nodes.typing.textContent = who.length ? `${who.join(", ")} ${verb} typing…` : "";
  }
}
