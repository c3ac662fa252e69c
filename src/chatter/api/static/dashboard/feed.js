// The live feed: the newest ~50 events, newest first.

import { formatInt, formatMoney, formatTime } from "./format.js";
import { el } from "./tables.js";

const KEEP = 50;

/** One line about an event's data: model, status, tokens, cost, error. */
export function describe(event) {
  const d = event.data ?? {};
  const parts = [];
  if (d.workflow) parts.push(d.workflow);
  if (d.status) parts.push(d.status);
  if (d.provider || d.model) parts.push([d.provider, d.model].filter(Boolean).join("/"));
  if (typeof d.total_tokens === "number") parts.push(`${formatInt(d.total_tokens)} tokens`);
  if (d.cost !== undefined && d.cost !== null) parts.push(formatMoney(d.cost, d.currency ?? "USD"));
  if (d.error?.code) parts.push(`error: ${d.error.code}`);
  if (d.role) parts.push(d.role);
  return parts.join(" · ");
}

export class Feed {
  constructor(list, emptyNote) {
    this.list = list;
    this.emptyNote = emptyNote;
    this.seen = new Set();
  }

  clear() {
    this.seen.clear();
    this.list.replaceChildren();
    this.emptyNote.hidden = false;
  }

  /** Adds one event at the top (a repeated id is ignored). */
  add(event) {
    if (this.seen.has(event.id)) return;
    this.seen.add(event.id);
    const item = el(
      "li",
      { class: `feed-item cat-${event.category}`, "data-type": event.type },
      el("time", { datetime: event.created_at, text: formatTime(event.created_at) }),
      el("span", { class: "feed-type", text: event.type }),
      el("span", { class: "feed-text", text: describe(event) }),
    );
    item.dataset.id = String(event.id);
    this.list.prepend(item);
    while (this.list.children.length > KEEP) {
      const last = this.list.lastElementChild;
      this.seen.delete(Number(last.dataset.id));
      last.remove();
    }
    this.emptyNote.hidden = true;
  }
}
