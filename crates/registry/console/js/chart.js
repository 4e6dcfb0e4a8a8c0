// A small line chart drawn as SVG (no library): points over time, gaps where there is no data.

const NS = 'http://www.w3.org/2000/svg';
const W = 480;
const H = 160;
const PAD = { l: 44, r: 8, t: 8, b: 22 };

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

/** `points` are `{x: ms since epoch, y: number|null}`; `max` fixes the top of the scale. */
export function lineChart(points, { max, unit = '', label }) {
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart' });
  svg.append(el('title', {}, label));
  const values = points.filter((p) => p.y !== null && p.y !== undefined);
  if (!values.length) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'axis' }, 'No data yet'));
    return svg;
  }
  const x0 = Math.min(...points.map((p) => p.x));
  const x1 = Math.max(...points.map((p) => p.x));
  const top = max ?? Math.max(1, ...values.map((p) => p.y)) * 1.1;
  const sx = (x) => PAD.l + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (W - PAD.l - PAD.r);
  const sy = (y) => H - PAD.b - (y / top) * (H - PAD.t - PAD.b);
  for (const f of [0, 0.5, 1]) {
    const y = sy(top * f);
    svg.append(el('line', { x1: PAD.l, x2: W - PAD.r, y1: y, y2: y, class: 'grid' }));
    svg.append(el('text', { x: PAD.l - 4, y: y + 4, 'text-anchor': 'end', class: 'axis' }, `${Math.round(top * f)}${unit}`));
  }
  const long = x1 - x0 > 12 * 3600e3;
  const fmt = (x) => new Date(x).toLocaleString(undefined, long ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' } : { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  svg.append(el('text', { x: PAD.l, y: H - 4, class: 'axis' }, fmt(x0)));
  svg.append(el('text', { x: W - PAD.r, y: H - 4, 'text-anchor': 'end', class: 'axis' }, fmt(x1)));
  // One polyline per run of points with data.
  let run = [];
  const flush = () => {
    if (run.length === 1) svg.append(el('circle', { cx: run[0][0], cy: run[0][1], r: 2.5, class: 'dot' }));
    if (run.length > 1) svg.append(el('polyline', { points: run.map((p) => p.join(',')).join(' '), class: 'line' }));
    run = [];
  };
  for (const p of points) {
    if (p.y === null || p.y === undefined) flush();
    else run.push([sx(p.x).toFixed(1), sy(p.y).toFixed(1)]);
  }
  flush();
  return svg;
}
