// The app: pick a name, then three views (Chat, Editor, Game), each on its own WebSocket call,
// opened the first time its tab is shown. The page's query string may preset what the welcome
// form asks (`?user=ann&room=lobby`) and what the other views open (`&doc=notes&match=m1`);
// `#chat`, `#editor`, `#game` choose the view.

import { ChatView } from "./chat-view.js";
import { EditorView } from "./editor-view.js";
import { GameView } from "./game-view.js";
import { avatar } from "./ui.js";

const MAX_ID = 255; // the server's limit on ids (user, room, document, match)
const params = new URLSearchParams(location.search);
const app = { user: null, chat: null, editor: null, game: null };
window.interplay = app; // for the curious (and the browser tests): the views and their rules

function validName(value, what) {
  const name = value.trim();
  if (!name) return [null, `${what}: must not be empty`];
  if (name.length > MAX_ID) return [null, `${what}: at most ${MAX_ID} characters`];
  return [name, ""];
}

function enter(user, room) {
  app.user = user;
  localStorage.setItem("interplay.user", user);
  document.getElementById("welcome").hidden = true;
  document.getElementById("me").hidden = false;
  document.getElementById("tabs").hidden = false;
  document.getElementById("me-name").textContent = user;
  document.getElementById("me-avatar").replaceWith(Object.assign(avatar(user), { id: "me-avatar" }));
  app.chat = new ChatView(user, room);
  app.editor = new EditorView(user);
  app.game = new GameView(user);
  show(location.hash.slice(1) || "chat");
}

function show(view) {
  if (!["chat", "editor", "game"].includes(view)) view = "chat";
  for (const tab of document.querySelectorAll(".tabs button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.view === view));
  }
  if (!app.user) return;
  for (const name of ["chat", "editor", "game"]) {
    document.getElementById(`view-${name}`).hidden = name !== view;
  }
  if (view === "editor") app.editor.open(app.editor.rules?.document ?? params.get("doc") ?? "notes");
  if (view === "game") {
    app.game.open(app.game.rules?.match ?? params.get("match") ?? "");
    document.getElementById("arena").focus();
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
}

for (const tab of document.querySelectorAll(".tabs button")) {
  tab.addEventListener("click", () => show(tab.dataset.view));
}
window.addEventListener("hashchange", () => show(location.hash.slice(1)));

const form = document.getElementById("welcome-form");
const nameInput = document.getElementById("welcome-name");
const roomInput = document.getElementById("welcome-room");
nameInput.value = params.get("user") ?? localStorage.getItem("interplay.user") ?? "";
roomInput.value = params.get("room") ?? "lobby";
form.addEventListener("submit", (event) => {
  event.preventDefault();
  const [user, userError] = validName(nameInput.value, "name");
  const [room, roomError] = validName(roomInput.value.replace(/^#/, ""), "room");
  document.getElementById("welcome-error").textContent = userError || roomError;
  if (user && room) enter(user, room);
});
if (params.get("user")) form.requestSubmit();
else nameInput.focus();
