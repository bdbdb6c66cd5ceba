// The drawing canvas (gr.HTML js_on_load; Gradio provides `element`, `props` and `watch`). Its value is the
// strokes JSON [[[x, y], ...], ...] on the canvas grid, sent throttled while drawing and on every mouse-up.
const canvas = element.querySelector('canvas.sd-canvas');
const ctx = canvas.getContext('2d');
const SIZE = canvas.width;
const dpr = Math.max(1, Math.min(3, window.devicePixelRatio || 1));
canvas.width = SIZE * dpr; canvas.height = SIZE * dpr;
ctx.scale(dpr, dpr);
const countEl = element.querySelector('.sd-count');
const brushEl = element.querySelector('.sd-brush');
let strokes = [];      // [{pts: [[x, y], ...], w: width}]
let current = null;
let lastSent = 0, timer = null, replayToken = 0;
const THROTTLE_MS = 150;

function r1(v) { return Math.round(v * 10) / 10; }
function payload() { return JSON.stringify(strokes.map(s => s.pts.map(p => [r1(p[0]), r1(p[1])]))); }
function send() {
  clearTimeout(timer); timer = null;
  lastSent = performance.now();
  const v = payload();
  if (props.value !== v) props.value = v;   // the HTML component dispatches 'change' when its value changes
}
function sendThrottled() {
  const wait = THROTTLE_MS - (performance.now() - lastSent);
  if (wait <= 0) send();
  else if (!timer) timer = setTimeout(send, wait);
}
function updateCount() { countEl.textContent = strokes.length + (strokes.length === 1 ? ' stroke' : ' strokes'); }
function dot(p, w) { ctx.beginPath(); ctx.arc(p[0], p[1], w / 2, 0, 2 * Math.PI); ctx.fillStyle = '#111'; ctx.fill(); }
function seg(a, b, w) {
  ctx.beginPath(); ctx.lineWidth = w; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#111';
  ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
}
function redraw() {
  ctx.clearRect(0, 0, SIZE, SIZE);
  for (const s of strokes) {
    if (s.pts.length === 1) { dot(s.pts[0], s.w); continue; }
    ctx.beginPath(); ctx.lineWidth = s.w; ctx.lineCap = 'round'; ctx.lineJoin = 'round'; ctx.strokeStyle = '#111';
    ctx.moveTo(s.pts[0][0], s.pts[0][1]);
    for (let i = 1; i < s.pts.length; i++) ctx.lineTo(s.pts[i][0], s.pts[i][1]);
    ctx.stroke();
  }
  updateCount();
}
function pos(e) {
  const r = canvas.getBoundingClientRect();
  const x = (e.clientX - r.left) * SIZE / r.width, y = (e.clientY - r.top) * SIZE / r.height;
  return [Math.max(0, Math.min(SIZE, x)), Math.max(0, Math.min(SIZE, y))];
}
function addPoint(p) {
  const pts = current.pts, q = pts[pts.length - 1];
  if (Math.hypot(p[0] - q[0], p[1] - q[1]) < 1.5) return;
  pts.push(p); seg(q, p, current.w);
}
canvas.addEventListener('pointerdown', (e) => {
  if (e.pointerType === 'mouse' && e.button !== 0) return;
  e.preventDefault();
  replayToken++;
  try { canvas.setPointerCapture(e.pointerId); } catch (err) {}
  current = {pts: [pos(e)], w: +brushEl.value};
  strokes.push(current); dot(current.pts[0], current.w); updateCount();
});
canvas.addEventListener('pointermove', (e) => {
  if (!current) return;
  e.preventDefault();
  const evs = (e.getCoalescedEvents && e.getCoalescedEvents().length) ? e.getCoalescedEvents() : [e];
  for (const ev of evs) addPoint(pos(ev));
  sendThrottled();
});
function endStroke() { if (!current) return; current = null; send(); }
canvas.addEventListener('pointerup', endStroke);
canvas.addEventListener('pointercancel', endStroke);
canvas.addEventListener('lostpointercapture', endStroke);
canvas.addEventListener('contextmenu', (e) => e.preventDefault());

function undo() { replayToken++; current = null; strokes.pop(); redraw(); send(); }
function clearAll() { replayToken++; current = null; strokes = []; redraw(); send(); }
element.querySelector('.sd-undo').addEventListener('click', undo);
element.querySelector('.sd-clear').addEventListener('click', clearAll);
document.addEventListener('keydown', (e) => {
  const t = e.target && e.target.tagName;
  if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key === 'z' && t !== 'INPUT' && t !== 'TEXTAREA') { e.preventDefault(); undo(); }
});

// downloads: the strokes as the page sends them (JSON, opens again through "Open a sketch") and as SVG
function download(name, type, text) {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([text], {type}));
  a.download = name; document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
function svgText() {
  const paths = strokes.map(s => {
    const d = s.pts.map((p, i) => (i ? 'L' : 'M') + r1(p[0]) + ' ' + r1(p[1])).join(' ');
    return `<path d="${d}${s.pts.length === 1 ? ' l0.01 0' : ''}" stroke-width="${s.w}"/>`;
  }).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${SIZE}" height="${SIZE}" viewBox="0 0 ${SIZE} ${SIZE}">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n<g fill="none" stroke="#111" stroke-linecap="round" stroke-linejoin="round">\n` +
    `${paths}\n</g>\n</svg>\n`;
}
element.querySelector('.sd-save-json').addEventListener('click', () => download('sketch.json', 'application/json', payload()));
element.querySelector('.sd-save-svg').addEventListener('click', () => download('sketch.svg', 'image/svg+xml', svgText()));

const sleep = (ms) => new Promise(r => setTimeout(r, ms));
async function replay(example) {
  const token = ++replayToken;
  current = null; strokes = []; redraw(); send();
  for (const s of example) {
    if (token !== replayToken) return;
    const st = {pts: [s[0].slice()], w: +brushEl.value};
    strokes.push(st); dot(st.pts[0], st.w); updateCount();
    for (let i = 1; i < s.length; i += 2) {
      await sleep(16);
      if (token !== replayToken) return;
      for (let j = i; j < Math.min(i + 2, s.length); j++) { const q = st.pts[st.pts.length - 1]; st.pts.push(s[j].slice()); seg(q, s[j], st.w); }
      sendThrottled();
    }
    send();
    await sleep(280);
  }
}
const exBox = element.querySelector('.sd-examples');
const examples = props.examples || {};
for (const name of Object.keys(examples)) {
  const b = document.createElement('button');
  b.type = 'button'; b.className = 'sd-btn sd-example'; b.textContent = name; b.dataset.example = name;
  b.addEventListener('click', () => replay(examples[name]));
  exBox.appendChild(b);
}
// a value set from Python (e.g. a stroke JSON pushed by a test) redraws the canvas
watch('value', () => {
  if (current) return;
  try {
    const v = JSON.parse(props.value || '[]');
    if (JSON.stringify(v) === payload()) return;
    strokes = (Array.isArray(v) ? v : []).filter(Array.isArray).map(s => ({pts: s, w: +brushEl.value}));
    redraw();
  } catch (err) {}
});
updateCount();
