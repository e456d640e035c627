// Small DOM helpers shared by the views.

/** A stable hue for a name, so a person has one color in every view and on every screen. */
export function hueFor(name) {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

/** `el("li", {class: "x", dataset: {...}}, child, "text", ...)`. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") node.style.cssText = value;
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function avatar(name) {
  const first = Array.from(name)[0] ?? "?";
  return el("span", { class: "avatar", style: `--hue: ${hueFor(name)}`, title: name }, first);
}

/** A person in a list: avatar, name, "(you)" for oneself, then `extra` nodes. */
export function personItem(name, me, dataset, ...extra) {
  const you = name === me ? el("span", { class: "you" }, "(you)") : null;
  return el("li", { dataset }, avatar(name), el("span", {}, name), you, ...extra);
}

const LABELS = {
  connecting: "connecting…",
  connected: "connected",
  reconnecting: "reconnecting",
  closed: "offline",
  failed: "disconnected",
};

/** A view's connection state on its status pill and its tab's dot, and a toast when it comes
 * back after a loss. The pill's `data-reconnects` counts the connections re-established. */
export class ConnectionStatus {
  constructor(pill, dot, backMessage) {
    Object.assign(this, { pill, dot, backMessage });
    this.lost = false;
  }

  show(connection, state, detail) {
    const { pill, dot } = this;
    pill.dataset.state = state;
    dot.dataset.state = state;
    pill.dataset.reconnects = String(connection?.reconnects ?? 0);
    pill.textContent = detail && state !== "connected" ? `${LABELS[state]} · ${detail}` : LABELS[state];
    pill.title = detail || LABELS[state];
    if (state === "reconnecting") this.lost = true;
    if (state === "connected" && this.lost) {
      this.lost = false;
      toast(this.backMessage);
    }
  }
}

let toastTimer = null;

export function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    node.hidden = true;
  }, 3500);
}

export function clockTime(milliseconds) {
  const date = milliseconds ? new Date(milliseconds) : new Date();
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}
