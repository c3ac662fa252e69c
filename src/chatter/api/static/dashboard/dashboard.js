// The dashboard page: sign-in, totals, charts, breakdowns, the live feed; it refreshes
// itself (debounced) whenever a turn finishes or its usage is recorded.

import {
  apiUrl, authHeaders, clearCredential, getJson, loadCredential, login, renew, request, saveCredential,
} from "./api.js";
import { UsageCharts, fillBuckets } from "./charts.js";
import { Feed } from "./feed.js";
import { formatInt, formatMoney, formatPercent, periodOf, summaryRanges } from "./format.js";
import { EventFollower } from "./sse.js";
import {
  groupPoints, renderBreakdown, renderConversationDetail, renderConversations, renderTotals, renderUsers,
} from "./tables.js";

const $ = (id) => document.getElementById(id);
const REFRESH_ON = new Set(["usage_recorded", "workflow_completed", "workflow_failed", "workflow_cancelled"]);
const DEBOUNCE_MS = 250;
const STATUS_TEXT = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", stopped: "Not connected" };

const state = { me: null, admin: false, period: "7d", follower: null, charts: null, timer: null, running: null, again: false };
const feed = new Feed($("feed"), $("feed-empty"));

function showSignIn(message = "") {
  $("dashboard").hidden = true;
  $("account").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  $("email").focus();
}

function showConnection(status) {
  $("connection").textContent = STATUS_TEXT[status] ?? status;
  $("connection").dataset.state = status;
}

async function enter() {
  try {
    state.me = await getJson("auth/me");
  } catch (error) {
    clearCredential();
    showSignIn(error.status === 401 ? "That credential was refused; sign in again." : error.message);
    return;
  }
  state.admin = state.me.role === "admin";
  $("who").textContent = state.admin ? `${state.me.email} (admin)` : state.me.email;
  $("sign-in").hidden = true;
  $("account").hidden = false;
  $("dashboard").hidden = false;
  $("empty-origin").textContent = window.location.origin;
  state.charts ??= new UsageCharts($("tokens-chart"), $("cost-chart"));
  await refresh();
  await follow();
}

async function signOut(message = "") {
  const credential = loadCredential();
  state.follower?.stop();
  state.follower = null;
  clearTimeout(state.timer);
  state.timer = null;
  clearCredential();
  feed.clear();
  if (credential?.kind === "token" && credential.refresh) {
    fetch(apiUrl("auth/logout"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: credential.refresh }),
    }).catch(() => {});
  }
  showSignIn(message);
}

// --- the figures --------------------------------------------------------------------------

/** Events arriving while a refresh is pending join it rather than postpone it: on a busy
 * server (several turns a second) a restarting timer would never fire. */
function scheduleRefresh() {
  if (state.timer) return;
  state.timer = setTimeout(() => {
    state.timer = null;
    refresh();
  }, DEBOUNCE_MS);
}

/** One load at a time; a request during a load runs one more after it. */
function refresh() {
  if (state.running) {
    state.again = true;
    return state.running;
  }
  state.running = (async () => {
    try {
      do {
        state.again = false;
        await load();
      } while (state.again);
      $("load-error").textContent = "";
    } catch (error) {
      if (error.status === 401) await signOut("Your session has ended; sign in again.");
      else $("load-error").textContent = `Could not load the figures: ${error.message}`;
    } finally {
      state.running = null;
    }
  })();
  return state.running;
}

async function load() {
  const ranges = summaryRanges();
  const period = periodOf(state.period);
  const series = { start: period.start.toISOString(), granularity: period.granularity };
  const [today, week, month, usage, grouped] = await Promise.all([
    getJson("analytics/summary", { start: ranges.today.toISOString() }),
    getJson("analytics/summary", { start: ranges["7d"].toISOString() }),
    getJson("analytics/summary", { start: ranges["30d"].toISOString() }),
    getJson("analytics/usage", series),
    getJson("analytics/usage", { ...series, group_by: "provider,model,workflow" }),
  ]);
  renderSummaries({ today, "7d": week, "30d": month });
  period.end = new Date(usage.end); // the server's clock decides which buckets exist
  state.charts.show(fillBuckets(usage.points, period), period, usage.currency);
  renderBreakdowns(grouped, period);
  $("updated").textContent = new Date().toLocaleTimeString(undefined, { hour12: false });
  $("updated").setAttribute("datetime", new Date().toISOString());
}

function renderSummaries(summaries) {
  const today = summaries.today;
  const month = summaries["30d"];
  $("kpi-requests").textContent = formatInt(today.requests);
  $("kpi-tokens").textContent = formatInt(today.total_tokens);
  $("kpi-cost").textContent = formatMoney(today.cost, today.currency);
  $("kpi-cost").title = `${today.cost} ${today.currency}`;
  $("kpi-errors").textContent = formatPercent(today.error_rate);
  renderTotals($("totals").tBodies[0], summaries);
  $("empty").hidden = month.requests > 0 || month.executions > 0;
  renderConversations($("conversations"), month.top_conversations, month.currency);
  $("users").hidden = month.top_users === null;
  if (month.top_users !== null) {
    $("active-users").textContent = formatInt(month.active_users);
    renderUsers($("by-user"), month.top_users, month.currency);
  }
}

function renderBreakdowns(grouped, period) {
  const currency = grouped.currency;
  $("breakdown-period").textContent = period.name === "30d" ? "(30 days)" : "(7 days)";
  renderBreakdown($("by-model"), "Model", groupPoints(grouped.points, (p) => `${p.provider} / ${p.model}`), currency);
  renderBreakdown($("by-provider"), "Provider", groupPoints(grouped.points, (p) => p.provider), currency);
  renderBreakdown($("by-workflow"), "Workflow", groupPoints(grouped.points, (p) => p.workflow), currency,
    "Turns", (g) => g.executions);
}

// --- live events ------------------------------------------------------------------------------

async function follow() {
  state.follower?.stop();
  feed.clear();
  const scope = state.admin ? { all: "true" } : {};
  const history = await getJson("events/history", { ...scope, limit: 50 });
  for (const event of [...history.items].reverse()) feed.add(event);
  // From the newest event shown (or the very start): nothing between the page and the stream is lost.
  const lastId = history.items.length ? String(history.items[0].id) : "0";
  state.follower = new EventFollower(apiUrl("events", scope), {
    headers: authHeaders,
    onStatus: showConnection,
    onEvent: (type, event) => {
      feed.add(event);
      if (REFRESH_ON.has(type)) scheduleRefresh();
    },
    onUnauthorized: async () => {
      if (await renew()) return true;
      await signOut("Your session has ended; sign in again.");
      return false;
    },
  });
  state.follower.start(lastId);
}

// --- controls ---------------------------------------------------------------------------------

async function showConversation(button) {
  const detail = $("conversation-detail");
  try {
    const figures = await getJson(`analytics/conversations/${encodeURIComponent(button.dataset.conversation)}`);
    renderConversationDetail(detail, figures);
    detail.returnFocus = button;
  } catch (error) {
    $("load-error").textContent = `Could not load the conversation: ${error.message}`;
  }
}

async function downloadCsv() {
  const period = periodOf(state.period);
  const response = await request("analytics/usage", {
    start: period.start.toISOString(),
    granularity: period.granularity,
    group_by: "provider,model,workflow",
    format: "csv",
  });
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: `chatter-usage-${state.period}.csv` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function bind() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("sign-in-error").textContent = "";
    try {
      await login($("email").value.trim(), $("password").value);
      $("password").value = "";
      await enter();
    } catch (error) {
      $("sign-in-error").textContent = error.status === 401 ? "Wrong email or password." : error.message;
    }
  });
  $("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    saveCredential({ kind: "key", value: $("api-key").value.trim() });
    $("api-key").value = "";
    await enter();
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const radio of document.querySelectorAll("input[name=period]")) {
    radio.addEventListener("change", () => {
      state.period = radio.value;
      refresh();
    });
  }
  $("download-csv").addEventListener("click", () =>
    downloadCsv().catch((error) => { $("load-error").textContent = `Download failed: ${error.message}`; }));
  $("conversations").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-conversation]");
    if (button) showConversation(button);
  });
  $("conversation-detail").addEventListener("click", (event) => {
    if (!event.target.closest("button[data-close]")) return;
    const detail = $("conversation-detail");
    detail.hidden = true;
    detail.returnFocus?.focus();
  });
}

bind();
if (loadCredential()) enter();
else showSignIn();
