// One WebSocket call (/chat, /edit or /game) that survives its connection: it reconnects with
// backoff and lets the client's rules say what re-establishes the session.
//
// Close codes (the server's): 1000 ended cleanly; 1012 the server is restarting; 1006 the
// connection was lost; 4000 + a gRPC status otherwise. Transient ones (1006, 1012, and the
// statuses the Python clients retry: 4014 UNAVAILABLE, 4008 RESOURCE_EXHAUSTED = slow consumer,
// 4010 ABORTED = join again, an edit's base is no longer kept, 4004 DEADLINE_EXCEEDED) reconnect
// after a delay (gRPC's connection
// backoff: 1 s, x1.6 per attempt, +-20 % jitter, at most 30 s here: a person is waiting); any
// other is fatal for this call and its reason is shown.

export const CONNECTING = "connecting";
export const CONNECTED = "connected";
export const RECONNECTING = "reconnecting";
export const CLOSED = "closed";
export const FAILED = "failed";

export const TRANSIENT = new Set([1001, 1006, 1011, 1012, 1013, 4004, 4008, 4010, 4014]);
const STATUS = {
  4001: "CANCELLED", 4002: "UNKNOWN", 4003: "INVALID_ARGUMENT", 4004: "DEADLINE_EXCEEDED",
  4005: "NOT_FOUND", 4006: "ALREADY_EXISTS", 4007: "PERMISSION_DENIED", 4008: "RESOURCE_EXHAUSTED",
  4009: "FAILED_PRECONDITION", 4010: "ABORTED", 4011: "OUT_OF_RANGE", 4012: "UNIMPLEMENTED",
  4013: "INTERNAL", 4014: "UNAVAILABLE", 4015: "DATA_LOSS", 4016: "UNAUTHENTICATED",
};

export class Backoff {
  constructor({ initial = 1.0, multiplier = 1.6, jitter = 0.2, cap = 30.0 } = {}) {
    Object.assign(this, { initial, multiplier, jitter, cap });
    this.attempt = 0;
  }

  /** Seconds to wait before the next attempt. */
  nextDelay() {
    const base = Math.min(this.cap, this.initial * this.multiplier ** Math.min(this.attempt, 1000));
    this.attempt++;
    return base * (1 - this.jitter + 2 * this.jitter * Math.random());
  }

  reset() {
    this.attempt = 0;
  }
}

/** The URL of endpoint `path` beside this page (so an app mounted under a prefix, as the ASGI
 * app may be, finds its endpoints under it), with the page's `access_token`, if it was opened
 * with one, passed on. */
export function endpoint(path, page = location) {
  const url = new URL(path.replace(/^\//, ""), page.href);
  url.protocol = page.protocol === "https:" ? "wss:" : "ws:";
  const token = new URLSearchParams(page.search).get("access_token");
  url.search = token ? `?access_token=${encodeURIComponent(token)}` : "";
  url.hash = "";
  return url.href;
}

/** What a close code means, for a person. */
export function describeClose(code, reason) {
  if (code === 1000) return "ended";
  if (code === 1006) return "connection lost";
  if (code === 1012) return "server restarting";
  const because = reason ? `: ${reason}` : "";
  return STATUS[code] ? `${STATUS[code]}${because}` : `closed ${code}${because}`;
}

/**
 * `client` supplies `connected()` (the frames that re-establish the session, sent on every open)
 * and `receive(frame)` (returns frames to send in reply). `onState(state, detail)` hears every
 * change of state; `detail` says why (the close reason, the delay before the next attempt).
 */
export class Connection {
  constructor(path, client, { onState = () => {}, backoff = new Backoff() } = {}) {
    this.path = path;
    this.client = client;
    this.onState = onState;
    this.backoff = backoff;
    this.state = CLOSED;
    this.socket = null;
    this.timer = null;
    this.reconnects = 0; // how many times a lost connection was re-established
    this.lastClose = null;
  }

  start() {
    if (this.socket || this.timer) return;
    this.open(CONNECTING);
  }

  /** Send frames if connected; the client's rules keep what must survive a disconnect. */
  send(frames) {
    if (this.state !== CONNECTED) return;
    for (const frame of frames) this.socket.send(JSON.stringify(frame));
  }

  /** End the call as gRPC's half-close does: the server flushes, then closes with 1000. */
  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ end: true }));
    } else if (this.socket) {
      this.socket.close();
    }
    this.socket = null;
    this.setState(CLOSED, "left");
  }

  // -- internals ---------------------------------------------------------------------------

  open(state) {
    this.setState(state, this.lastClose);
    const socket = new WebSocket(endpoint(this.path), ["interplay.v1.json"]);
    this.socket = socket;
    socket.onopen = () => {
      if (socket !== this.socket) return;
      if (state === RECONNECTING) this.reconnects++;
      this.backoff.reset();
      this.setState(CONNECTED);
      this.send(this.client.connected());
    };
    socket.onmessage = (event) => {
      if (socket !== this.socket) return;
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch (error) {
        console.error(`${this.path}: a frame that is not JSON`, error);
        return;
      }
      this.send(this.client.receive(frame));
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.lastClose = describeClose(event.code, event.reason);
      if (event.code === 1000) {
        this.setState(CLOSED, this.lastClose);
      } else if (TRANSIENT.has(event.code)) {
        const delay = this.backoff.nextDelay();
        this.setState(RECONNECTING, `${this.lastClose}; retrying in ${delay.toFixed(1)} s`);
        this.timer = setTimeout(() => {
          this.timer = null;
          this.open(RECONNECTING);
        }, delay * 1000);
      } else {
        this.setState(FAILED, this.lastClose);
      }
    };
  }

  setState(state, detail = "") {
    this.state = state;
    this.onState(state, detail);
  }
}
