/* global document, window, location */
// The dashboard's entry: hash routes (#/tasks, #/task/<id>, #/queues, …) to pages, and the API key form.
// A page is `render(main, params, signal)`: it draws into `main` and stops its polls and streams when
// `signal` aborts (the operator went to another page).

import { apiKey, onUnauthenticated, setApiKey } from "./api.mjs";
import { render as agents } from "./agents.mjs";
import { render as approvals } from "./approvals.mjs";
import { render as deadLetters } from "./deadletters.mjs";
import { limits, queues } from "./figures.mjs";
import { render as task } from "./task.mjs";
import { render as tasks } from "./tasks.mjs";

const PAGES = { tasks, task, queues, limits, agents, approvals, "dead-letters": deadLetters };

const main = document.getElementById("main");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("key-input");
let current = null;

/** `#/task/<id>?a=b` as `{ page: "task", id, query }`. */
function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, search = ""] = hash.split("?");
  const [page = "tasks", id] = path.split("/").map(decodeURIComponent);
  return { page: PAGES[page] ? page : "tasks", id, query: new URLSearchParams(search) };
}

function show() {
  if (current) current.abort();
  current = new AbortController();
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === (r.page === "task" ? "tasks" : r.page));
  main.replaceChildren();
  document.title = `Clawfleet · ${r.page}`;
  PAGES[r.page](main, r, current.signal);
}

function askForKey() {
  keyForm.hidden = false;
  keyInput.value = apiKey();
  keyInput.focus();
}

keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  setApiKey(keyInput.value.trim());
  keyForm.hidden = true;
  show();
});
document.getElementById("key-forget").addEventListener("click", () => {
  setApiKey("");
  keyInput.value = "";
});
document.getElementById("key-button").addEventListener("click", () => (keyForm.hidden ? askForKey() : (keyForm.hidden = true)));
onUnauthenticated(askForKey);
window.addEventListener("hashchange", show);
show();
