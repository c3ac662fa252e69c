// Tables built with DOM nodes and textContent, never parsed HTML: titles and emails are user data.

import { addMoney, compareMoney, formatInt, formatMoney, formatMs, formatPercent } from "./format.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function moneyCell(cost, currency) {
  return el("td", { class: "num", title: `${cost} ${currency}`, text: formatMoney(cost, currency) });
}

const TOTAL_ROWS = [
  ["requests", "Model calls", (s) => formatInt(s.requests)],
  ["executions", "Turns", (s) => formatInt(s.executions)],
  ["errors", "Failed turns", (s) => formatInt(s.errors)],
  ["error_rate", "Error rate", (s) => formatPercent(s.error_rate)],
  ["cancelled", "Cancelled turns", (s) => formatInt(s.cancelled)],
  ["prompt_tokens", "Prompt tokens", (s) => formatInt(s.prompt_tokens)],
  ["completion_tokens", "Completion tokens", (s) => formatInt(s.completion_tokens)],
  ["cached_tokens", "Cached tokens", (s) => formatInt(s.cached_tokens)],
  ["reasoning_tokens", "Reasoning tokens", (s) => formatInt(s.reasoning_tokens)],
  ["total_tokens", "Total tokens", (s) => formatInt(s.total_tokens)],
  ["cost", "Cost", (s) => formatMoney(s.cost, s.currency)],
  ["unknown_price_calls", "Calls with unknown price", (s) => formatInt(s.unknown_price_calls)],
  ["estimated_calls", "Calls with estimated usage", (s) => formatInt(s.estimated_calls)],
  ["tool_calls", "Tool calls", (s) => formatInt(s.tool_calls)],
  ["latency_p50_ms", "Latency p50", (s) => formatMs(s.latency_p50_ms)],
  ["latency_p95_ms", "Latency p95", (s) => formatMs(s.latency_p95_ms)],
  ["ttft_p50_ms", "Time to first token p50", (s) => formatMs(s.ttft_p50_ms)],
  ["ttft_p95_ms", "Time to first token p95", (s) => formatMs(s.ttft_p95_ms)],
];
export const PERIODS = ["today", "7d", "30d"];

/** summaries: {today, "7d", "30d"} -> rows of the totals table. */
export function renderTotals(tbody, summaries) {
  tbody.replaceChildren(
    ...TOTAL_ROWS.map(([metric, label, show]) =>
      el(
        "tr",
        {},
        el("th", { scope: "row", text: label }),
        ...PERIODS.map((period) =>
          el("td", {
            class: "num",
            "data-metric": metric,
            "data-period": period,
            title: metric === "cost" ? `${summaries[period].cost} ${summaries[period].currency}` : null,
            text: show(summaries[period]),
          }),
        ),
      ),
    ),
  );
}

function table(node, headings, rows, emptyText) {
  const caption = node.querySelector("caption");
  const head = el("thead", {}, el("tr", {}, ...headings.map((h, i) => el("th", { scope: "col", class: i ? "num" : null, text: h }))));
  const body = el("tbody");
  if (rows.length === 0) {
    body.append(el("tr", {}, el("td", { colspan: String(headings.length), class: "muted", text: emptyText })));
  } else {
    body.append(...rows);
  }
  node.replaceChildren(...(caption ? [caption] : []), head, body);
}

/** Sums usage points by a key, the most expensive (then the most tokens) first. */
export function groupPoints(points, keyOf) {
  const groups = new Map();
  for (const point of points) {
    const key = keyOf(point);
    const sum = groups.get(key) ?? { key, requests: 0, executions: 0, total_tokens: 0, cost: "0" };
    sum.requests += point.requests;
    sum.executions += point.executions;
    sum.total_tokens += point.total_tokens;
    sum.cost = addMoney(sum.cost, point.cost);
    groups.set(key, sum);
  }
  return [...groups.values()].sort(
    (a, b) => compareMoney(b.cost, a.cost) || b.total_tokens - a.total_tokens,
  );
}

export function renderBreakdown(node, label, groups, currency, countLabel = "Calls", count = (g) => g.requests) {
  const rows = groups.map((g) =>
    el("tr", {}, el("th", { scope: "row", text: g.key }), el("td", { class: "num", text: formatInt(count(g)) }),
      el("td", { class: "num", text: formatInt(g.total_tokens) }), moneyCell(g.cost, currency)),
  );
  table(node, [label, countLabel, "Tokens", "Cost"], rows, "No usage in this period.");
}

export function renderConversations(node, conversations, currency) {
  const rows = conversations.map((c) => {
    const button = el("button", { type: "button", class: "link", "data-conversation": c.conversation_id, text: c.title || "Untitled conversation" });
    return el("tr", {}, el("th", { scope: "row" }, button), el("td", { class: "num", text: formatInt(c.requests) }),
      el("td", { class: "num", text: formatInt(c.total_tokens) }), moneyCell(c.cost, c.currency ?? currency));
  });
  table(node, ["Conversation", "Calls", "Tokens", "Cost"], rows, "No conversations in the last 30 days.");
}

export function renderUsers(node, users, currency) {
  const rows = users.map((u) =>
    el("tr", {}, el("th", { scope: "row", text: u.email ?? u.user_id }), el("td", { class: "num", text: formatInt(u.requests) }),
      el("td", { class: "num", text: formatInt(u.total_tokens) }), moneyCell(u.cost, u.currency ?? currency)),
  );
  table(node, ["User", "Calls", "Tokens", "Cost"], rows, "No usage in the last 30 days.");
}

export function renderConversationDetail(node, detail) {
  const statuses = Object.entries(detail.executions).map(([status, n]) => `${formatInt(n)} ${status}`).join(", ") || "none";
  const models = el("table", {}, el("caption", { text: "By model" }));
  table(models, ["Model", "Calls", "Tokens", "Cost"], detail.by_model.map((m) =>
    el("tr", {}, el("th", { scope: "row", text: `${m.provider} / ${m.model}` }), el("td", { class: "num", text: formatInt(m.requests) }),
      el("td", { class: "num", text: formatInt(m.total_tokens) }), moneyCell(m.cost, m.currency))), "No model calls.");
  const close = el("button", { type: "button", class: "secondary", "data-close": "", text: "Close" });
  node.replaceChildren(
    el("h3", { tabindex: "-1", text: detail.title || "Untitled conversation" }),
    el("p", { class: "muted" }, `Conversation ${detail.conversation_id}`),
    el("p", { text: `${formatInt(detail.message_count)} messages · ${formatInt(detail.total_tokens)} tokens (${formatInt(detail.prompt_tokens)} prompt, ${formatInt(detail.completion_tokens)} completion) · ${formatMoney(detail.cost, detail.currency)} · turns: ${statuses}` }),
    el("div", { class: "table-wrap" }, models),
    close,
  );
  node.hidden = false;
  node.querySelector("h3").focus();
}
