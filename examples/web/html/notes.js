// The notes page: reads and adds notes through /api/ (proxied by nginx to the api backends).
"use strict";

const $ = (id) => document.getElementById(id);

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

async function refresh() {
  try {
    const data = await call("GET", "/api/notes");
    $("notes").replaceChildren(...data.notes.map((note) => {
      const item = document.createElement("li");
      item.textContent = note.text;
      item.title = `#${note.id} by ${note.by} at ${note.created_at}`;
      return item;
    }));
    showError("");
  } catch (e) {
    showError(`Cannot load notes: ${e.message}`);
  }
}

async function loadGreeting() {
  try {
    const info = await call("GET", "/api/info");
    $("greeting").textContent = `${info.greeting} (api ${info.version} on ${info.hostname})`;
  } catch (e) {
    $("greeting").textContent = "";
  }
}

$("new-note").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await call("POST", "/api/notes", { text: $("text").value });
    $("text").value = "";
    await refresh();
  } catch (e) {
    showError(`Cannot add the note: ${e.message}`);
  }
});

loadGreeting();
refresh();
