// The Game view: the arena on a canvas, moved with the arrow keys; every player is drawn from
// the mirror the full and delta states keep (ClientPlayer).

import { CONNECTED, Connection } from "./connection.js";
import { ClientPlayer } from "./game-client.js";
import { ConnectionStatus, el, hueFor } from "./ui.js";

const WORLD = 1000; // the default arena's width and height (core/arena.py)
const SPEED = 10; // the most a move may go per axis
const RANGE = 100; // attack range
const MAX_HEALTH = 100;
const MOVE_EVERY = 50; // ms between moves while an arrow is held (20/s; the limit is 60/s)
const ATTACK_EVERY = 250; // ms between attacks while space is held
const KEYS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

export class GameView {
  constructor(user) {
    this.user = user;
    this.rules = null;
    this.connection = null;
    this.held = new Set();
    this.timer = null;
    this.lastAttack = 0;
    this.events = [];
    this.nodes = {
      canvas: document.getElementById("arena"),
      scores: document.getElementById("scores"),
      events: document.getElementById("events"),
      meta: document.getElementById("game-meta"),
      match: document.getElementById("match-name"),
    };
    this.status = new ConnectionStatus(
      document.getElementById("game-status"),
      document.querySelector("#tab-game .dot"),
      "Game reconnected",
    );
    this.bind();
    const frame = () => {
      this.draw();
      requestAnimationFrame(frame);
    };
    requestAnimationFrame(frame);
  }

  open(match) {
    if (this.rules && this.rules.match === match) return;
    this.connection?.stop();
    this.rules = new ClientPlayer(this.user, match);
    this.nodes.match.textContent = match || "default";
    this.connection = new Connection("/game", this, {
      onState: (state, detail) => this.status.show(this.connection, state, detail),
    });
    this.connection.start();
  }

  // -- what the Connection calls ----------------------------------------------------------

  connected() {
    return this.rules.connected();
  }

  receive(state) {
    const replies = this.rules.receive(state);
    for (const event of state.events ?? []) {
      const kind = event.eventType ?? "";
      if (kind && kind !== "tick") this.events.unshift(describe(kind, event.data ?? ""));
    }
    this.events.length = Math.min(this.events.length, 14);
    this.renderPanel();
    return replies;
  }

  // -- the person's actions ---------------------------------------------------------------

  bind() {
    const canvas = this.nodes.canvas;
    canvas.addEventListener("keydown", (event) => {
      if (KEYS[event.key]) {
        event.preventDefault();
        const first = !this.held.has(event.key);
        this.held.add(event.key);
        if (first) this.step();
        if (this.timer === null) this.timer = setInterval(() => this.step(), MOVE_EVERY);
      } else if (event.key === " ") {
        event.preventDefault();
        this.attack();
      }
    });
    canvas.addEventListener("keyup", (event) => {
      this.held.delete(event.key);
      if (this.held.size === 0) this.stopMoving();
    });
    canvas.addEventListener("blur", () => {
      this.held.clear();
      this.stopMoving();
    });
    canvas.addEventListener("click", () => canvas.focus());
  }

  stopMoving() {
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Actions are for now: none is queued while disconnected (a burst of them on reconnect
   * would only exceed the server's action rate). */
  get playing() {
    return this.rules !== null && this.connection?.state === CONNECTED;
  }

  step() {
    if (!this.playing || this.held.size === 0) return;
    let dx = 0;
    let dy = 0;
    for (const key of this.held) {
      dx += KEYS[key][0];
      dy += KEYS[key][1];
    }
    if (!dx && !dy) return;
    const params = { dx: String(Math.sign(dx) * SPEED), dy: String(Math.sign(dy) * SPEED) };
    this.connection.send(this.rules.act("move", params));
    this.renderMeta();
  }

  attack() {
    const now = Date.now();
    if (!this.playing || now - this.lastAttack < ATTACK_EVERY) return;
    const me = this.rules.mirror.players.get(this.user);
    if (!me) return;
    this.lastAttack = now;
    let target = null;
    let best = Infinity;
    for (const p of this.rules.mirror.players.values()) {
      const distance = Math.hypot(p.x - me.x, p.y - me.y);
      if (p.id !== this.user && p.health > 0 && distance < best) [target, best] = [p, distance];
    }
    if (!target) return;
    this.connection.send(this.rules.act("attack", { target: target.id }));
    this.renderMeta();
  }

  // -- showing ----------------------------------------------------------------------------

  renderPanel() {
    const rules = this.rules;
    const players = [...rules.mirror.players.values()].sort((a, b) => a.id.localeCompare(b.id));
    this.nodes.scores.replaceChildren(
      ...players.map((p) => {
        const classes = [p.id === this.user && "mine", p.health <= 0 && "dead"];
        const swatch = el("span", { class: "swatch", style: `--hue: ${hueFor(p.id)}` });
        const health = el("span", { style: `width: ${Math.max(0, p.health)}%` });
        const row = el(
          "tr",
          {
            class: classes.filter(Boolean).join(" "),
            dataset: { player: p.id, x: String(p.x), y: String(p.y) },
          },
          el("td", {}, el("div", { class: "who" }, swatch, p.id)),
          el("td", {}, el("div", { class: "bar" }, health)),
          el("td", {}, p.attributes.kills ?? "0"),
          el("td", {}, p.attributes.deaths ?? "0"),
        );
        return row;
      }),
    );
    this.renderMeta();
    this.nodes.events.replaceChildren(...this.events.map((text) => el("li", {}, text)));
  }

  /** The status line: also after each action sent, so "in flight" is never stale. */
  renderMeta() {
    const rules = this.rules;
    const me = rules.mirror.players.get(this.user);
    this.nodes.meta.textContent =
      `tick ${rules.mirror.tick ?? "–"} · ${rules.mirror.players.size} playing` +
      (me ? ` · you at (${me.x}, ${me.y})` : "") +
      ` · ${rules.unconfirmed.size} moves in flight`;
    this.nodes.meta.dataset.tick = String(rules.mirror.tick ?? "");
    this.nodes.meta.dataset.unconfirmed = String(rules.unconfirmed.size);
  }

  draw() {
    const canvas = this.nodes.canvas;
    const size = Math.round(canvas.clientWidth * (window.devicePixelRatio || 1));
    if (!size) return;
    if (canvas.width !== size) canvas.width = canvas.height = size;
    const g = canvas.getContext("2d");
    const scale = size / WORLD;
    g.fillStyle = "#0f172a";
    g.fillRect(0, 0, size, size);
    g.strokeStyle = "rgba(148, 163, 184, 0.09)";
    g.lineWidth = 1;
    for (let i = 100; i < WORLD; i += 100) {
      g.beginPath();
      g.moveTo(i * scale, 0);
      g.lineTo(i * scale, size);
      g.moveTo(0, i * scale);
      g.lineTo(size, i * scale);
      g.stroke();
    }
    if (!this.rules) return;
    const players = [...this.rules.mirror.players.values()];
    const me = this.rules.mirror.players.get(this.user);
    if (me && me.health > 0) {
      g.beginPath();
      g.arc(me.x * scale, me.y * scale, RANGE * scale, 0, Math.PI * 2);
      g.fillStyle = "rgba(99, 102, 241, 0.08)";
      g.fill();
      g.strokeStyle = "rgba(129, 140, 248, 0.35)";
      g.setLineDash([4 * scale, 6 * scale]);
      g.stroke();
      g.setLineDash([]);
    }
    const radius = Math.max(7, 18 * scale);
    for (const p of players) {
      const x = p.x * scale;
      const y = p.y * scale;
      const dead = p.health <= 0;
      g.beginPath();
      g.arc(x, y, radius, 0, Math.PI * 2);
      g.fillStyle = dead ? "#475569" : `hsl(${hueFor(p.id)} 70% 55%)`;
      g.fill();
      if (p.id === this.user) {
        g.lineWidth = Math.max(2, 3 * scale);
        g.strokeStyle = "#f8fafc";
        g.stroke();
      }
      g.font = `600 ${Math.max(11, 13 * scale)}px system-ui, sans-serif`;
      g.textAlign = "center";
      g.fillStyle = dead ? "#94a3b8" : "#e2e8f0";
      g.fillText(dead ? `${p.id} ✕` : p.id, x, y - radius - 8 * scale - 4);
      const w = radius * 2.4;
      g.fillStyle = "rgba(15, 23, 42, 0.8)";
      g.fillRect(x - w / 2, y + radius + 5, w, 4);
      g.fillStyle = p.health > 30 ? "#22c55e" : "#ef4444";
      g.fillRect(x - w / 2, y + radius + 5, (w * Math.max(0, p.health)) / MAX_HEALTH, 4);
    }
  }
}

function describe(kind, data) {
  if (kind === "hit") {
    const [who, rest] = data.split(">");
    return `${who} hit ${rest.split(":")[0]}`;
  }
  if (kind === "miss") return `${data.split(">")[0]} missed`;
  if (kind === "death") {
    const [dead, killer] = data.split("<");
    return `${killer} knocked out ${dead}`;
  }
  if (kind === "respawn") return `${data} is back`;
  if (kind === "join") return `${data} joined`;
  if (kind === "leave") return `${data} left`;
  return `${kind} ${data}`;
}
