// Server-Sent Events over fetch(): EventSource cannot send an Authorization header, so
// this reads the stream itself, remembers the last event id and reconnects with
// Last-Event-ID after a drop (the server then replays what was missed, in order).

const WATCHDOG_MS = 60_000; // no byte (not even a heartbeat) for this long: reconnect
const MAX_BACKOFF_MS = 30_000;

/** Parses an SSE body into frames {id, event, data, retry}. */
export async function* sseFrames(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { id: null, event: "message", data: [], retry: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = buffer.search(/[\r\n]/);
        // A "\r" at the very end may be the first half of "\r\n": wait for more.
        if (end < 0 || (buffer[end] === "\r" && end === buffer.length - 1)) break;
        const line = buffer.slice(0, end);
        const crlf = buffer[end] === "\r" && buffer[end + 1] === "\n";
        buffer = buffer.slice(end + (crlf ? 2 : 1));
        if (line === "") {
          if (frame.data.length || frame.retry !== null || frame.id !== null) {
            yield { ...frame, data: frame.data.join("\n") };
          }
          frame = { id: null, event: "message", data: [], retry: null };
          continue;
        }
        applyLine(frame, line);
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function applyLine(frame, line) {
  if (line.startsWith(":")) return; // a comment: heartbeat
  const colon = line.indexOf(":");
  const field = colon < 0 ? line : line.slice(0, colon);
  let value = colon < 0 ? "" : line.slice(colon + 1);
  if (value.startsWith(" ")) value = value.slice(1);
  if (field === "data") frame.data.push(value);
  else if (field === "event") frame.event = value;
  else if (field === "id" && !value.includes("\0")) frame.id = value;
  else if (field === "retry" && /^\d+$/.test(value)) frame.retry = Number(value);
}

/**
 * Follows `url` until stop(). Options: headers() -> the auth headers of each attempt;
 * onEvent(type, data, id); onStatus("connecting" | "live" | "reconnecting" | "stopped");
 * onUnauthorized() -> a promise of true when the credential was renewed.
 */
export class EventFollower {
  constructor(url, { headers, onEvent, onStatus, onUnauthorized }) {
    this.url = url;
    this.headers = headers;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onUnauthorized = onUnauthorized;
    this.lastEventId = null;
    this.retryMs = 3000;
    this.controller = null;
    this.stopped = true;
  }

  start(lastEventId = null) {
    this.lastEventId = lastEventId;
    this.stopped = false;
    this.#run();
  }

  stop() {
    this.stopped = true;
    this.controller?.abort();
    this.onStatus("stopped");
  }

  async #run() {
    let failures = 0;
    while (!this.stopped) {
      this.onStatus(failures ? "reconnecting" : "connecting");
      const outcome = await this.#once();
      if (this.stopped || outcome === "unauthorized") return;
      failures = outcome === "received" ? 1 : failures + 1;
      const wait = Math.min(this.retryMs * 2 ** (failures - 1), MAX_BACKOFF_MS);
      this.onStatus("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  async #once() {
    const controller = new AbortController();
    this.controller = controller;
    let watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS);
    let received = false;
    try {
      const headers = { Accept: "text/event-stream", ...this.headers() };
      if (this.lastEventId !== null) headers["Last-Event-ID"] = this.lastEventId;
      const response = await fetch(this.url, { headers, signal: controller.signal, cache: "no-store" });
      if (response.status === 401) {
        const renewed = await this.onUnauthorized();
        return renewed ? "failed" : "unauthorized";
      }
      if (!response.ok || !response.body) return "failed";
      this.onStatus("live");
      for await (const frame of sseFrames(response.body)) {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS);
        received = true;
        if (frame.retry !== null) this.retryMs = frame.retry;
        if (frame.id !== null) this.lastEventId = frame.id;
        if (frame.data) this.#dispatch(frame);
      }
    } catch (error) {
      if (error.name !== "AbortError") console.warn("event stream dropped:", error);
    } finally {
      clearTimeout(watchdog);
    }
    return received ? "received" : "failed";
  }

  #dispatch(frame) {
    let data;
    try {
      data = JSON.parse(frame.data);
    } catch {
      return;
    }
    this.onEvent(frame.event, data, frame.id);
  }
}
