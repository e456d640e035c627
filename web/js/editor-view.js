// The Editor view: a textarea running the ot.js client protocol (ClientEditor), the other
// editors' carets drawn over it, undo and redo of one's own edits, and the connection's state.
//
// The textarea is the person's; every `input` is diffed against the text we last showed into
// one splice (in code points) for the client's rules. Remote edits rewrite the textarea and put
// the person's selection back where the operation moved it.

import { Connection } from "./connection.js";
import { ClientEditor, diffOp } from "./edit-client.js";
import { codePointIndex, unitOffset } from "./ot/text.js";
import { ConnectionStatus, el, hueFor, personItem, toast } from "./ui.js";

export class EditorView {
  constructor(user) {
    this.user = user;
    this.rules = null;
    this.connection = null;
    this.shown = ""; // the text the textarea showed after our last look at it
    this.nodes = {
      text: document.getElementById("doc-text"),
      carets: document.getElementById("carets"),
      editors: document.getElementById("editor-list"),
      meta: document.getElementById("doc-meta"),
      name: document.getElementById("doc-name"),
      undo: document.getElementById("undo"),
      redo: document.getElementById("redo"),
    };
    this.status = new ConnectionStatus(
      document.getElementById("edit-status"),
      document.querySelector("#tab-editor .dot"),
      "Editor reconnected: your edits are being synced",
    );
    this.bind();
  }

  /** Open document `name` (ending the call on the previous one). */
  open(name) {
    if (this.rules?.document === name && this.connection?.state !== "closed") return;
    this.connection?.stop();
    this.nodes.name.value = name;
    this.rules = new ClientEditor(this.user, name);
    this.connection = new Connection("/edit", this, {
      onState: (state, detail) => this.status.show(this.connection, state, detail),
    });
    this.nodes.text.disabled = true;
    this.nodes.text.value = "";
    this.shown = "";
    this.render();
    this.connection.start();
  }

  // -- what the Connection calls ----------------------------------------------------------

  connected() {
    return this.rules.connected();
  }

  receive(frame) {
    this.takeInput(); // anything typed since the last input event goes first
    const [change, replies] = this.rules.receive(frame);
    if (["snapshot", "rebase", "reset", "edit"].includes(change?.kind)) {
      this.showText();
      if (change.kind === "reset" && change.lost) {
        toast("The server refused an edit: the edits made on top of it were lost");
      }
    } else if (change?.kind === "refused") {
      const reason = change.rejection?.message ?? "";
      toast(`The server refused an edit${reason ? `: ${reason}` : ""}`);
    }
    this.render();
    return replies;
  }

  // -- the person's actions ---------------------------------------------------------------

  bind() {
    const text = this.nodes.text;
    text.addEventListener("input", () => this.takeInput());
    text.addEventListener("beforeinput", (event) => {
      if (event.inputType === "historyUndo" || event.inputType === "historyRedo") {
        event.preventDefault();
        this.history(event.inputType === "historyUndo" ? "undo" : "redo");
      }
    });
    text.addEventListener("keydown", (event) => {
      const mod = event.ctrlKey || event.metaKey;
      const key = event.key.toLowerCase();
      if (mod && key === "z") {
        event.preventDefault();
        this.history(event.shiftKey ? "redo" : "undo");
      } else if (mod && key === "y") {
        event.preventDefault();
        this.history("redo");
      }
    });
    text.addEventListener("scroll", () => {
      this.nodes.carets.scrollTop = text.scrollTop;
    });
    document.addEventListener("selectionchange", () => {
      if (document.activeElement === text) this.takeSelection();
    });
    new ResizeObserver(() => this.renderCarets()).observe(text);
    this.nodes.undo.addEventListener("click", () => this.history("undo"));
    this.nodes.redo.addEventListener("click", () => this.history("redo"));
    document.getElementById("open-doc").addEventListener("submit", (event) => {
      event.preventDefault();
      const name = this.nodes.name.value.trim();
      if (name) this.open(name);
    });
  }

  /** Turn what the textarea now shows into an edit. */
  takeInput() {
    const rules = this.rules;
    const value = this.nodes.text.value;
    if (!rules?.synced || value === this.shown) return;
    const [position, deleted, inserted] = diffOp(this.shown, value).splices()[0];
    this.shown = value;
    this.connection.send(rules.edit(position, deleted, inserted));
    this.takeSelection();
    this.render();
  }

  takeSelection() {
    if (!this.rules?.synced) return;
    const text = this.nodes.text;
    const value = text.value;
    const start = codePointIndex(value, text.selectionStart);
    const end = codePointIndex(value, text.selectionEnd);
    this.connection.send(this.rules.select(start, end - start));
  }

  history(step) {
    if (!this.rules?.synced) return;
    this.takeInput();
    const before = this.rules.text;
    this.connection.send(step === "undo" ? this.rules.undo() : this.rules.redo());
    const after = this.rules.text;
    if (after !== before) {
      const [[position, , inserted]] = diffOp(before, after).splices();
      const caret = position + Array.from(inserted).length;
      this.rules.selection = [caret, 0];
      this.showText();
      this.takeSelection();
    }
    this.render();
  }

  // -- showing ----------------------------------------------------------------------------

  /** Put the client's text in the textarea, keeping the person's selection and scroll. */
  showText() {
    const text = this.nodes.text;
    const value = this.rules.text;
    const scroll = text.scrollTop;
    const [position, length] = this.rules.selection;
    text.value = value;
    this.shown = value;
    text.disabled = false;
    text.placeholder = "Start typing: everyone on this document sees it as you type.";
    text.setSelectionRange(unitOffset(value, position), unitOffset(value, position + length));
    text.scrollTop = scroll;
  }

  render() {
    const rules = this.rules;
    this.nodes.undo.disabled = !rules?.doc.canUndo;
    this.nodes.redo.disabled = !rules?.doc.canRedo;
    this.nodes.meta.textContent = rules?.synced
      ? `revision ${rules.revision} · ${rules.doc.state}`
      : "waiting for the document…";
    this.nodes.meta.dataset.revision = String(rules?.revision ?? 0);
    this.nodes.meta.dataset.settled = String(Boolean(rules?.settled));
    this.renderEditors();
    this.renderCarets();
  }

  renderEditors() {
    const rules = this.rules;
    const people = [[this.user, rules?.doc.state ?? ""]];
    for (const user of [...(rules?.carets.keys() ?? [])].sort()) people.push([user, "editing"]);
    this.nodes.editors.replaceChildren(
      ...people.map(([name, state]) =>
        personItem(name, this.user, { editor: name }, el("span", { class: "state" }, state)),
      ),
    );
  }

  /** Draw the other editors' carets and selections over the textarea: a copy of the text in
   * the same font and wrapping, invisible but for the marks. */
  renderCarets() {
    const overlay = this.nodes.carets;
    const text = this.nodes.text;
    overlay.style.width = `${text.clientWidth}px`;
    if (!this.rules?.synced) {
      overlay.replaceChildren();
      return;
    }
    const chars = Array.from(this.rules.text);
    const carets = [...this.rules.carets].map(([user, c]) => ({ user, ...c, hue: hueFor(user) }));
    const cuts = new Set([0, chars.length]);
    for (const c of carets) {
      cuts.add(c.position);
      cuts.add(c.position + c.length);
    }
    const points = [...cuts].sort((a, b) => a - b);
    const nodes = [];
    for (let i = 0; i < points.length; i++) {
      const at = points[i];
      for (const c of carets) {
        if (c.position + c.length === at) {
          nodes.push(
            el(
              "span",
              { class: "caret", style: `--hue: ${c.hue}`, dataset: { user: c.user } },
              el("span", { class: "flag" }, c.user),
            ),
          );
        }
      }
      if (i + 1 === points.length) break;
      const piece = chars.slice(at, points[i + 1]).join("");
      const cover = carets.find((c) => c.length && c.position <= at && at < c.position + c.length);
      const mark = cover && el("mark", { style: `--hue: ${cover.hue}` }, piece);
      nodes.push(mark || document.createTextNode(piece));
    }
    nodes.push(document.createTextNode("\u200b")); // keeps a trailing newline's line
    overlay.replaceChildren(...nodes);
    overlay.scrollTop = text.scrollTop;
  }
}
