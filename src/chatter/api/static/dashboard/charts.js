// Tokens and cost over time, drawn by Chart.js (chart.umd.js, loaded before this module).

import { addMoney, bucketLabel, formatInt, formatMoney } from "./format.js";

const COLORS = { prompt: "#1f5fbf", completion: "#c2410c", cached: "#15803d", cost: "#6d28d9" };
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)").matches;

function baseOptions(formatTick) {
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: reducedMotion ? false : { duration: 250 },
    interaction: { mode: "index", intersect: false },
    datasets: { bar: { barPercentage: 1, categoryPercentage: 0.9 } },
    plugins: { legend: { position: "bottom", labels: { color: "#1f2933" } } },
    scales: {
      x: { stacked: true, ticks: { color: "#3e4c59", maxRotation: 0, autoSkipPadding: 16 }, grid: { display: false } },
      y: { stacked: true, beginAtZero: true, ticks: { color: "#3e4c59", callback: formatTick } },
    },
  };
}

/** Every bucket of the period, the empty ones as zeros: a gap is a quiet hour, not a missing one. */
export function fillBuckets(points, period) {
  const byBucket = new Map();
  for (const point of points) {
    const key = Date.parse(point.bucket);
    const sum = byBucket.get(key) ?? { prompt: 0, completion: 0, cached: 0, cost: "0" };
    sum.prompt += point.prompt_tokens;
    sum.completion += point.completion_tokens;
    sum.cached += point.cached_tokens;
    sum.cost = addMoney(sum.cost, point.cost);
    byBucket.set(key, sum);
  }
  const buckets = [];
  for (let ms = period.start.getTime(); ms <= period.end.getTime(); ms += period.step) {
    buckets.push({ ms, ...(byBucket.get(ms) ?? { prompt: 0, completion: 0, cached: 0, cost: "0" }) });
  }
  return buckets;
}

export class UsageCharts {
  constructor(tokensCanvas, costCanvas) {
    const Chart = window.Chart;
    this.tokens = new Chart(tokensCanvas, {
      type: "bar",
      data: {
        labels: [],
        datasets: [
          { label: "Prompt tokens", data: [], backgroundColor: COLORS.prompt },
          { label: "Completion tokens", data: [], backgroundColor: COLORS.completion },
        ],
      },
      options: baseOptions((value) => formatInt(value)),
    });
    this.currency = "USD";
    this.cost = new Chart(costCanvas, {
      type: "bar",
      data: { labels: [], datasets: [{ label: "Cost", data: [], backgroundColor: COLORS.cost }] },
      options: baseOptions((value) => formatMoney(String(value), this.currency)),
    });
  }

  show(buckets, period, currency) {
    this.currency = currency;
    const labels = buckets.map((b) => bucketLabel(b.ms, period.granularity));
    this.tokens.data.labels = labels;
    this.tokens.data.datasets[0].data = buckets.map((b) => b.prompt);
    this.tokens.data.datasets[1].data = buckets.map((b) => b.completion);
    this.cost.data.labels = labels;
    this.cost.data.datasets[0].label = `Cost (${currency})`;
    this.cost.data.datasets[0].data = buckets.map((b) => Number(b.cost));
    this.tokens.update();
    this.cost.update();
  }
}
