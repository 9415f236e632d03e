// The status page: one Sync button, live progress from GET /sync/status/stream, history, Stop,
// and the mailbox: its account (connect, reconnect), folders and newest messages, reloaded
// whenever the status stream says a sync moved (a click's or a new-mail sync's).
// No framework, no build step. The token comes from the URL fragment (#token=...), which the
// browser never sends to the server, and is kept in sessionStorage for this tab only. The stream
// is read with fetch (EventSource cannot send an Authorization header).
"use strict";

const TOKEN_KEY = "sync-coordinator-token";
const $ = (id) => document.getElementById(id);
const outcomes = { started: 0, joined: 0, queued: 0 };
const REASONS = {
  first_click: "a click",
  replaced_expired: "a click (replaced an expired task)",
  queued_full_sync: "the queued full sync",
  new_mail: "new mail",
  queued_follow_up: "new mail during the sync before",
};
const MAIL_LIMIT = 20;
const SIGN_IN_AGAIN = "Your token was refused or has expired: sign in again.";
const UNREACHABLE = "cannot reach the server";
let token = null;
let current = null; // the last status row received
let historyKey = "";
let expiryTimer = null;
let streamStop = null; // aborts the status stream at sign-out
let account; // undefined: not loaded yet; null: none registered
let folder = null; // the folder shown, or null for all
let mailTimer = null;

// Raised by `call` once the page is signed out: the sign-in message is already on screen.
class SignedOut extends Error {}

// The fragment: `token=` from `syncctl dev`'s link, `oauth2=connected` back from a provider.
function takeFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has("token")) sessionStorage.setItem(TOKEN_KEY, fragment.get("token"));
  if (fragment.toString()) history.replaceState(null, "", location.pathname + location.search);
  return fragment.get("oauth2") === "connected" ? fragment.get("provider") || "?" : null;
}

function claimsOf(jwt) {
  try {
    const part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

// `unreachable`: the error is about the connection, and goes away once the server answers.
function showError(text, unreachable = false) {
  $("error").textContent = text;
  $("error").hidden = !text;
  $("error").dataset.unreachable = unreachable ? "yes" : "";
}

function heardFromServer() {
  if ($("error").dataset.unreachable) showError("");
}

function showFailure(what, error) {
  if (error instanceof SignedOut) return; // "sign in again" stays
  showError(`${what}: ${error.message}`, error.message === UNREACHABLE);
}

// A problem document (RFC 9457) in words: its detail, else its title and status.
async function problemText(response) {
  try {
    const body = await response.json();
    if (body.detail) return body.detail;
    if (body.title) return `${body.title} (${response.status})`;
  } catch { /* not JSON */ }
  return `the server answered ${response.status}`;
}

async function call(method, path, body = undefined) {
  if (!token) throw new SignedOut(SIGN_IN_AGAIN);
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body && JSON.stringify(body) });
  } catch {
    throw new Error(UNREACHABLE);
  }
  heardFromServer();
  if (!response.ok) {
    if (response.status === 401) {
      signOut();
      throw new SignedOut(SIGN_IN_AGAIN);
    }
    const error = new Error(await problemText(response));
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : response.json();
}

function describeClick(answer) {
  const outcome = answer.outcome || (answer.reused ? "joined" : "started");
  outcomes[outcome] = (outcomes[outcome] || 0) + 1;
  const task = answer.task_id;
  const article = answer.sync_type === "incremental" ? "an" : "a";
  const said = {
    started: `Started ${article} ${answer.sync_type} sync (${task}).`,
    joined: `Joined the ${answer.sync_type} sync already running (${task}).`,
    queued: `A full sync is queued: it starts when the running ${answer.sync_type} sync ends.`,
  }[outcome] || `${outcome} (${task})`;
  const tally = Object.entries(outcomes).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
  $("outcome").textContent = `${said} Clicks so far: ${tally.join(", ")}.`;
  $("outcome").dataset.outcome = outcome;
}

async function onSync() {
  const full = $("full").checked;
  try {
    describeClick(await call("POST", `/sync/smart?force_full=${full}`));
    showError("");
  } catch (error) {
    showFailure("Sync", error);
  }
}

async function onStop() {
  if (!current || !current.task_id) return;
  const task = current.task_id;
  try {
    await call("POST", `/sync/tasks/${encodeURIComponent(task)}/cancel`);
    $("outcome").textContent = `Stop requested for ${task}.`;
    $("outcome").dataset.outcome = "cancelled";
    showError("");
  } catch (error) {
    showFailure("Stop", error);
  }
}

function render(status) {
  current = status;
  const percent = Math.max(0, Math.min(100, Number(status.progress_percentage) || 0));
  $("bar-fill").style.width = `${percent}%`;
  $("bar").setAttribute("aria-valuenow", String(Math.round(percent)));
  $("percent").textContent = `${Math.round(percent)} %`;
  $("state").textContent = status.task_id
    ? `${status.sync_type || ""} ${status.status}`.trim()
    : "no sync yet";
  $("state").dataset.status = status.status;
  const stats = status.current_stats || {};
  $("counts").textContent = "total" in stats
    ? `${stats.imported ?? stats.fetched ?? 0} of ${stats.total} messages` // demo, imap
    : "";
  $("queued").hidden = !status.full_sync_queued;
  $("follow-up").hidden = !status.follow_up_queued;
  $("stop").disabled = !token || !status.is_syncing;
  const live = status.task_id && document.querySelector(
    `#tasks tr[data-task-id="${CSS.escape(status.task_id)}"]`);
  if (live) live.cells[3].textContent = `${Math.round(percent)} %`;
  const key = `${status.task_id}:${status.status}:${status.full_sync_queued}`;
  if (key !== historyKey) {
    historyKey = key;
    loadHistory();
  }
  if (status.task_id) reloadMailSoon(); // a sync moved: it may have stored mail
}

async function loadHistory() {
  let page;
  try {
    page = await call("GET", "/sync/tasks?limit=10");
  } catch (error) {
    showFailure("Task history", error);
    return;
  }
  const body = $("tasks").tBodies[0];
  body.replaceChildren(...page.tasks.map((task) => {
    const row = document.createElement("tr");
    row.dataset.taskId = task.task_id;
    const cells = [
      new Date(task.started_at).toLocaleTimeString([], { hour12: false }),
      task.sync_type,
      task.status,
      `${Math.round(task.progress_percentage)} %`,
      REASONS[task.start_reason] || task.start_reason || "",
      task.task_id,
    ];
    for (const text of cells) {
      const cell = row.insertCell();
      cell.textContent = text;
    }
    row.cells[5].className = "task";
    return row;
  }));
}

// Server-Sent Events over fetch: blocks separated by a blank line, `field: value` lines,
// `:` comments (heartbeats). Resumes with Last-Event-ID after a drop.
async function followStatus() {
  let lastId = null;
  let wait = 1000;
  const live = (text) => { if (token) $("live").textContent = `live updates: ${text}`; };
  while (token) {
    const headers = { Authorization: `Bearer ${token}` };
    if (lastId !== null) headers["Last-Event-ID"] = lastId;
    streamStop = new AbortController();
    try {
      const response = await fetch("/sync/status/stream",
        { headers, cache: "no-store", signal: streamStop.signal });
      if (response.status === 401) {
        signOut();
        return;
      }
      if (!response.ok) {
        const retry = Number(response.headers.get("Retry-After")) || 0;
        wait = Math.max(wait, retry * 1000);
        live(await problemText(response));
      } else {
        live("on");
        heardFromServer();
        wait = 1000;
        lastId = await readEvents(response.body, lastId);
        live("reconnecting");
      }
    } catch {
      live("reconnecting (server unreachable)");
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
    wait = Math.min(wait * 2, 15000);
  }
}

async function readEvents(stream, lastId) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastId;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { event: "message", data: [], id: null };
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") event.data.push(text);
        else if (field === "event") event.event = text;
        else if (field === "id") event.id = text;
      }
      if (event.id !== null) lastId = event.id;
      if (event.event === "status" && event.data.length) render(JSON.parse(event.data.join("\n")));
    }
  }
}

// Nothing is sent without a token: every action is disabled until the next sign-in.
function setSignedIn(signedIn) {
  for (const control of document.querySelectorAll("main button, main input, main select")) {
    if (control.closest("#signin")) continue;
    if (control.id !== "stop") control.disabled = !signedIn;
  }
  if (!signedIn) $("stop").disabled = true;
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  clearTimeout(expiryTimer);
  if (streamStop) streamStop.abort();
  setSignedIn(false);
  $("who").textContent = "Not signed in";
  $("signin").hidden = false;
  $("live").textContent = "live updates: sign in first";
  showError(SIGN_IN_AGAIN);
}

// Sign out when the token's `exp` passes, rather than send a token the server will refuse.
function signOutAtExpiry(claims) {
  if (typeof claims.exp !== "number") return;
  const left = claims.exp * 1000 - Date.now();
  if (left <= 0) signOut();
  else expiryTimer = setTimeout(signOut, Math.min(left, 2 ** 31 - 1));
}

// The mailbox: GET /accounts/imap (404: none yet), the connect buttons, the password form.
async function loadAccount() {
  try {
    showAccount(await call("GET", "/accounts/imap"));
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (error.status === 404) showAccount(null);
    else $("account-state").textContent = `Mailbox: ${error.message}`;
  }
}

function showAccount(found) {
  account = found;
  const state = $("account-state");
  state.dataset.state = found ? found.state || "connected" : "none";
  $("reconnect").hidden = !(found && found.state === "reauth_required");
  if (!found) {
    state.textContent = "No mailbox is connected yet: connect one below.";
    $("connect").open = true;
    showMail({ folders: [] }, { messages: [] });
    return;
  }
  const via = found.auth === "oauth2" ? ` with ${found.provider}` : "";
  if (found.state === "reauth_required") {
    const why = found.state_reason ? ` (${found.state_reason})` : "";
    state.textContent = `The connection to ${found.username} expired${why}: reconnect it.`;
    return;
  }
  state.textContent = `Connected: ${found.username} at ${found.host}${via}.`;
  $("connect").open = false;
  loadMail();
}

async function loadProviders() {
  let answer;
  try {
    answer = await call("GET", "/accounts/oauth2/providers");
  } catch {
    return; // none configured here: the password form stays
  }
  $("providers").replaceChildren(...answer.providers.map((provider) => {
    const button = document.createElement("button");
    button.type = "button";
    button.id = `connect-${provider.provider}`;
    button.textContent = `Connect ${provider.title}`;
    button.addEventListener("click", () => connectWith(provider.provider));
    return button;
  }));
}

// The provider's page, then back to /ui/#oauth2=connected (the token stays in this tab).
async function connectWith(provider) {
  try {
    const answer = await call("POST", `/accounts/oauth2/${encodeURIComponent(provider)}/start`);
    location.assign(answer.authorization_url);
  } catch (error) {
    showFailure("Connect", error);
  }
}

async function onConnectImap(event) {
  event.preventDefault();
  const body = {
    host: $("imap-host").value.trim(),
    port: Number($("imap-port").value),
    security: $("imap-security").value,
    username: $("imap-username").value.trim(),
    password: $("imap-password").value,
  };
  try {
    await call("PUT", "/accounts/imap?verify=true", body);
  } catch (error) {
    showFailure("Connect", error);
    return;
  }
  $("imap-password").value = "";
  showError("");
  $("outcome").textContent = `Mailbox connected: ${body.username} at ${body.host}.`;
  await loadAccount();
  onSync(); // its mail now, not at the next new message
}

// Folders and the newest messages; at most one reload a second while a sync stores mail.
function reloadMailSoon() {
  if (mailTimer || !account) return;
  mailTimer = setTimeout(() => {
    mailTimer = null;
    loadMail();
  }, 1000);
}

async function loadMail() {
  if (!account) return;
  const query = new URLSearchParams({ limit: String(MAIL_LIMIT) });
  if (folder) query.set("folder", folder);
  try {
    const [folders, page] = await Promise.all([
      call("GET", "/mail/folders"),
      call("GET", `/mail/messages?${query}`),
    ]);
    showMail(folders, page);
  } catch (error) {
    showFailure("Mail", error);
  }
}

function showMail(folders, page) {
  if (!account) folders = { folders: [] };
  const all = [{ folder: null, messages: folders.folders.reduce((n, f) => n + f.messages, 0) }];
  const entries = folders.folders.length ? [...all, ...folders.folders] : [];
  $("folders").replaceChildren(...entries.map((entry) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${entry.folder || "All"} (${entry.messages})`;
    button.dataset.folder = entry.folder || "";
    button.setAttribute("aria-pressed", String(entry.folder === folder));
    button.addEventListener("click", () => {
      folder = entry.folder;
      loadMail();
    });
    return button;
  }));
  $("messages").replaceChildren(...page.messages.map((message) => {
    const item = document.createElement("li");
    item.dataset.uid = String(message.uid);
    item.dataset.folder = message.folder;
    if (!message.flags.includes("\\Seen")) item.className = "unread";
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = message.subject || "(no subject)";
    const meta = document.createElement("span");
    meta.className = "meta";
    const when = new Date(message.received_at).toLocaleString([], { hour12: false });
    for (const text of [message.sender || "(no sender)", when, message.folder]) {
      const part = document.createElement("span");
      part.textContent = text;
      meta.append(part);
    }
    item.append(subject, meta);
    return item;
  }));
  $("mail-note").textContent = account && !page.messages.length ? "No messages synced yet." : "";
}

function start() {
  const connected = takeFragment();
  token = sessionStorage.getItem(TOKEN_KEY);
  $("sync").addEventListener("click", onSync);
  $("stop").addEventListener("click", onStop);
  $("signin").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    location.reload();
  });
  if (!token) {
    setSignedIn(false);
    $("signin").hidden = false;
    $("live").textContent = "live updates: sign in first";
    return;
  }
  const claims = claimsOf(token);
  $("who").textContent = `Signed in as ${claims.sub || "?"}`;
  signOutAtExpiry(claims);
  if (!token) return;
  $("imap-form").addEventListener("submit", onConnectImap);
  $("reconnect").addEventListener("click", () => account && connectWith(account.provider));
  followStatus();
  loadProviders();
  loadAccount();
  if (connected) {
    $("outcome").textContent = `Mailbox connected with ${connected}.`;
    onSync(); // its mail now
  }
}

start();
