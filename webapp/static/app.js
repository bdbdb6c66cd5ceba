// The drawing canvas (gr.HTML js_on_load; Gradio provides `element`, `props` and `watch`). Its value is the
// strokes JSON [[[x, y], ...], ...] on the canvas grid, sent throttled while drawing and on every mouse-up.
// When the app exported its models (props.inpage) and this browser runs them, the search runs here instead:
// a Web Worker (static/web/worker.js) ranks the default gallery on every pen move and pointer-up, and the
// strokes go to the server only when the visitor switches to it (or uses a setting only the server has).
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
  if (inPage()) { query('up'); return; }
  lastSent = performance.now();
  const v = payload();
  if (props.value !== v) props.value = v;   // the HTML component dispatches 'change' when its value changes
}
function sendThrottled() {
  if (inPage()) { query('move'); return; }
  const wait = THROTTLE_MS - (performance.now() - lastSent);
  if (wait <= 0) send();
  else if (!timer) timer = setTimeout(send, wait);
}
// ---- in-page search ----------------------------------------------------------------------------------
// Two workers ("lanes"): one follows the pen (a query whenever it is idle, always on the latest strokes),
// the other answers pointer-ups at once instead of waiting behind a move query still running.
const inpage = props.inpage || null;
const whereEl = element.querySelector('.sd-where'), inpageBox = element.querySelector('.sd-inpage');
const noteEl = element.querySelector('.sd-where-note');
const panel = (sel) => document.querySelector('#sd-live .sd-live' + (sel ? ' ' + sel : ''));  // beside the canvas, its own component
const SERVER_SETTINGS = '#sd-source, #sd-model, #sd-canvas-size, #sd-lam, #sd-compare, #sd-hog, #sd-k, #sd-rank-full, #sd-sketch-file';
let lanes = [], ready = false, seq = 0, shownSeq = 0, shownState = '', shownHits = '', upWatch = null;
const spent = {queries: 0, gflops: 0, full: 0};  // every query this page ran, as the server's counter counts
window.sdLive = {queries: [], mode: 'server'};  // what ran, for scripts/bench_browser.py and the tests
function inPage() { return ready && inpageBox.checked; }
function esc(t) { return String(t).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c])); }
function fmtG(g) { return g >= 1 ? g.toFixed(2) : g >= 0.01 ? g.toFixed(3) : g.toFixed(4); }
// as sketchdown.eval.plot.fmt_pct: the decimals a percentage needs not to show 0 or 100 when it is neither
function fmtPct(x) {
  for (const nd of [1, 2, 3]) {
    const r = Number(x.toFixed(nd));
    if (!(x > 0 && x < 100 && (r === 0 || r === 100))) return x.toFixed(nd);
  }
  return x.toFixed(3);
}
function setNote(text) { noteEl.textContent = text; }
function sketchState() { return strokes.length + ':' + strokes.reduce((a, s) => a + s.pts.length, 0); }  // strokes only grow or go
function setMode(on, why) {
  window.sdLive.mode = on ? 'browser' : 'server';
  document.body.classList.toggle('sd-in-page', on);
  if (panel()) panel().hidden = !on;
  if (on) { setNote('⚡ runs here (ONNX Runtime Web, WebAssembly): nothing is sent to the server'); shownState = ''; query('up'); }
  else {
    setNote(why || 'the server searches (every stroke is sent to it)');
    const v = payload();
    if (props.value !== v) props.value = v;
  }
}
function query(kind) {
  const state = sketchState(), t0 = performance.now();
  if (!strokes.length) { panel('.sd-live-grid').innerHTML = ''; shownHits = ''; shownState = state; shownSeq = ++seq; return; }
  if (kind === 'up') {
    if (state === shownState) { record({kind, ms: performance.now() - t0, current: true}); return; }  // already on screen
    upWatch = {state, t0};
  }
  const lane = kind === 'up' ? lanes[lanes.length - 1] : lanes[0];
  if (lane.busy && lane.busy.state === state) return;  // the query running there already has these strokes
  lane.pending = {kind, state, seq: ++seq, strokes: strokes.map(s => s.pts.slice())};  // these points, not later ones
  pump(lane);
}
function pump(lane) {  // one query per lane at a time, always the latest strokes: moves never queue up
  if (lane.busy || !lane.pending) return;
  const q = lane.busy = lane.pending; lane.pending = null;
  lane.worker.postMessage({type: 'query', id: q.seq, strokes: q.strokes, k: inpage.k, canvas: 'auto', fuse: true});
}
function record(entry) { window.sdLive.queries.push(entry); }
function showResult(r, q) {
  spent.queries++; spent.gflops += r.gflops; spent.full += r.fullGflops;
  if (q.seq > shownSeq) {  // a lane may finish an older query after a newer one: never go back
    shownSeq = q.seq; shownState = q.state;
    panel('.sd-live-badge').textContent = `${r.canvas} px`;
    const pct = 100 * r.gflops / r.fullGflops;
    panel('.sd-live-cost').textContent = `${fmtG(r.gflops)} GFLOPs = ${fmtPct(pct)}% of the full network's ` +
      `${fmtG(r.fullGflops)} · ${r.ms.total.toFixed(1)} ms on this device · ${spent.queries} queries here: ` +
      `${fmtG(spent.gflops)} GFLOPs, ${fmtPct(100 * (1 - spent.gflops / spent.full))}% fewer than the full network`;
    drawInk(r.ink, r.canvas);
    panel('.sd-live-probs').textContent = r.probs
      ? 'canvas selector: ' + Object.entries(r.probs).map(([c, p]) => `${c} px ${(100 * p).toFixed(0)}%`).join(' · ')
      : 'fixed canvas (no selector)';
    panel('.sd-live-cats').textContent = r.categories.length
      ? 'looks like: ' + r.categories.map(([c, p]) => `${c.replace(/_/g, ' ')} ${(100 * p).toFixed(0)}%`).join(' · ') : '';
    const key = r.hits.map(h => h.index).join(',');
    if (key !== shownHits) {  // rebuild the thumbnails only when the ranking changed (no flicker while drawing)
      shownHits = key;
      panel('.sd-live-grid').innerHTML = r.hits.map((h, i) => {
        const url = inpage.photos + h.path.split('/').map(encodeURIComponent).join('/');
        const name = h.label || h.category || h.path;
        return `<figure data-index="${h.index}"><a href="${url}" target="_blank" rel="noopener"><img src="${url}" alt="${esc(name)}" ` +
          `loading="lazy"></a><figcaption title="${esc(name)} · score ${h.score.toFixed(3)}">${i + 1}. ${esc(name)}</figcaption></figure>`;
      }).join('');
    }
  }
  const base = {workerMs: r.ms.total, parts: r.ms, canvas: r.canvas, strokes: q.strokes.length, hits: r.hits.map(h => h.index).join(',')};
  if (q.kind === 'move') record({kind: 'move', ...base});
  if (upWatch && upWatch.state === q.state) { record({kind: 'up', ms: performance.now() - upWatch.t0, ...base}); upWatch = null; }
}
function drawInk(ink, side) {  // the student's input at its true pixel grid, each pixel an integer block
  const c = panel('.sd-live-ink'), f = Math.max(1, Math.round(128 / side)), img = new ImageData(side, side);
  for (let k = 0; k < ink.length; k++) {
    const v = Math.round(255 * (1 - Math.min(1, Math.max(0, ink[k]))));
    img.data.set([v, v, v, 255], 4 * k);
  }
  c.width = c.height = side * f;
  const g = c.getContext('2d');
  g.imageSmoothingEnabled = false;
  createImageBitmap(img).then(bm => g.drawImage(bm, 0, 0, side * f, side * f));
}
function startLane(onReady) {
  const lane = {worker: new Worker(new URL(inpage.worker, location.href), {type: 'module'}), busy: null, pending: null};
  lane.worker.onmessage = (e) => {
    const m = e.data;
    if (m.type === 'ready') { onReady(m.info); return; }
    if (m.type === 'error' && m.id === undefined) { failed(m.message); return; }
    const q = lane.busy; lane.busy = null;
    if (m.type === 'result' && q && inPage()) showResult(m, q);
    else if (m.type === 'error') setNote(`⚠️ ${m.message}`);
    pump(lane);
  };
  lane.worker.postMessage({type: 'init', manifest: new URL(inpage.manifest, location.href).href,
                           ort: new URL(inpage.ort, location.href).href});
  return lane;
}
function failed(why) {
  for (const l of lanes) l.worker.terminate();
  lanes = []; ready = false; inpageBox.checked = false; inpageBox.disabled = true;
  setMode(false, `in-browser search unavailable (${why}): the server searches`);
}
function startInPage() {
  if (!inpage) return;
  whereEl.hidden = false;
  if (typeof WebAssembly !== 'object' || typeof Worker !== 'function') {
    inpageBox.checked = false; inpageBox.disabled = true;
    setNote('this browser cannot run the models (no WebAssembly or workers): the server searches');
    return;
  }
  setNote('loading the in-browser search (about 26 MB, once); the server answers meanwhile');
  let waiting = 2;
  const onReady = (info) => { window.sdLive.info = info; if (--waiting === 0) { ready = true; if (inpageBox.checked) setMode(true); } };
  try { lanes = [startLane(onReady), startLane(onReady)]; } catch (err) { failed(String(err)); return; }
  inpageBox.addEventListener('change', () => setMode(inPage(), inpageBox.checked ? undefined : 'you chose the server: every stroke is sent to it'));
  // the teaching panel, comparisons, your own photos and opened files are the server's: switch to it when used
  document.addEventListener('input', (e) => {
    if (inPage() && e.target.closest && e.target.closest(SERVER_SETTINGS)) {
      inpageBox.checked = false; setMode(false, 'switched to the server: that setting runs there');
    }
  }, true);
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
  b.addEventListener('click', () => {
    // a traced example's rank-per-stroke view is drawn by the server: replay it there
    if (name.startsWith('traced:') && inPage()) { inpageBox.checked = false; setMode(false, 'switched to the server: it draws the rank-per-stroke view'); }
    replay(examples[name]);
  });
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
    if (inPage()) query('up');
  } catch (err) {}
});
updateCount();
if (new URLSearchParams(location.search).get('search') === 'server') inpageBox.checked = false;  // ?search=server
startInPage();
