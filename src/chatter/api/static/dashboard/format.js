// Numbers, money and time for display. Money arrives as exact decimal strings; sums are
// done exactly (BigInt at a fixed scale), and only the display rounds.

const SCALE = 18;
const UNIT = 10n ** BigInt(SCALE);
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export function toScaled(text) {
  const match = /^(-?)(\d*)(?:\.(\d*))?$/.exec(String(text ?? "0").trim());
  if (!match) return 0n;
  const [, sign, whole, fraction = ""] = match;
  const digits = BigInt((whole || "0") + fraction.padEnd(SCALE, "0").slice(0, SCALE));
  return sign ? -digits : digits;
}

export function fromScaled(value) {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString().padStart(SCALE + 1, "0");
  const whole = digits.slice(0, -SCALE);
  const fraction = digits.slice(-SCALE).replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/** The exact sum of decimal strings, as a decimal string. */
export function addMoney(...values) {
  return fromScaled(values.reduce((sum, v) => sum + toScaled(v), 0n));
}

export function compareMoney(a, b) {
  const d = toScaled(a) - toScaled(b);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
}

export function formatInt(value) {
  return integer.format(Number(value ?? 0));
}

export function formatPercent(value) {
  return percent.format(Number(value ?? 0));
}

export function formatMs(value) {
  if (value === null || value === undefined) return "–";
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
}

/** A short display of an exact amount: more decimals for small amounts. */
export function formatMoney(text, currency = "USD") {
  const amount = Number(text ?? 0);
  const digits = amount === 0 ? 2 : Math.abs(amount) < 0.01 ? 6 : Math.abs(amount) < 1 ? 4 : 2;
  try {
    return new Intl.NumberFormat(undefined, {
      style: "currency",
      currency,
      minimumFractionDigits: 2,
      maximumFractionDigits: digits,
    }).format(amount);
  } catch {
    return `${text} ${currency}`;
  }
}

export function formatTime(iso) {
  return new Date(iso).toLocaleTimeString(undefined, { hour12: false });
}

/** The buckets a period's chart shows: UTC-aligned like the rollups, the newest last. */
export function periodOf(name, now = new Date()) {
  if (name === "30d") {
    const today = Math.floor(now.getTime() / DAY_MS) * DAY_MS;
    return { name, granularity: "day", step: DAY_MS, start: new Date(today - 29 * DAY_MS), end: now };
  }
  const hour = Math.floor(now.getTime() / HOUR_MS) * HOUR_MS;
  return { name, granularity: "hour", step: HOUR_MS, start: new Date(hour - 167 * HOUR_MS), end: now };
}

export function bucketLabel(ms, granularity) {
  const date = new Date(ms);
  if (granularity === "day") {
    return date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
  }
  return date.toLocaleString(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit", hour12: false });
}

/** Start of today in the viewer's time zone, 7 and 30 days back from now. */
export function summaryRanges(now = new Date()) {
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  return {
    today: midnight,
    "7d": new Date(now.getTime() - 7 * DAY_MS),
    "30d": new Date(now.getTime() - 30 * DAY_MS),
  };
}
