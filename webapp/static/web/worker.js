// In-page retrieval (a module Web Worker): ONNX Runtime Web runs the exported student and canvas selector,
// sketch.js draws the strokes and computes the HOG, and the gallery's vectors are scored here, so a query
// never leaves the user's device. Messages:
//   {type: 'init', manifest: URL, ort: URL of ort.wasm.bundle.min.mjs} -> {type: 'ready', info} | {type: 'error', message}
//   {type: 'query', id, strokes, k, lam, canvas: 'auto' | 'cascade' | px, fuse: bool}  -> {type: 'result', id, ...} | {type: 'error', id, message}
// canvas 'auto' runs the selector; 'cascade' the confidence cascade where the export has one (search at the
// smallest stage's canvas, stop when the top-1 score leads the top-2 by the stage's margin, else go on).
import {hogDescriptor, renderSizes, strokeSequence} from './sketch.js';

let ort = null, M = null, selector = null, gallery = null;
const encoders = {};  // canvas px -> its ONNX Runtime session (one file may serve every canvas)

async function fetchChecked(url, what) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${what}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function sha256(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(d, b => b.toString(16).padStart(2, '0')).join('');
}

async function load(file) {  // a file of the export, checked against the manifest's sha256
  const bytes = await fetchChecked(new URL(file, M.base).href, file);
  if (crypto.subtle && (await sha256(bytes)) !== M.files[file]) throw new Error(`${file}: checksum mismatch`);
  return bytes;
}

async function init(msg) {
  const t0 = performance.now();
  ort = await import(msg.ort);
  ort.env.wasm.numThreads = 1;  // threads need cross-origin isolation; one student query is ~10 MFLOPs-0.3 GFLOPs
  ort.env.wasm.wasmPaths = {wasm: new URL('ort-wasm-simd-threaded.wasm', msg.ort).href};  // the loader is bundled
  const r = await fetch(msg.manifest);
  if (!r.ok) throw new Error(`manifest: HTTP ${r.status}`);
  M = await r.json();
  if (M.format !== 'sketchdown-web/1') throw new Error(`export format ${M.format}, this page reads sketchdown-web/1`);
  M.base = new URL('./', new URL(msg.manifest, self.location.href)).href;
  const opts = {executionProviders: ['wasm'], graphOptimizationLevel: 'all'};
  for (const e of M.encoders) {
    const session = await ort.InferenceSession.create(await load(e.file), opts);
    for (const c of e.canvases) encoders[c] = session;
  }
  if (M.selector) selector = await ort.InferenceSession.create(await load('selector.onnx'), opts);
  const g = await load('gallery.f32');
  gallery = new Float32Array(g.buffer, g.byteOffset, g.byteLength / 4);
  if (gallery.length !== M.gallery.count * M.gallery.dim) throw new Error('gallery.f32: wrong size');
  // the first runs allocate: run every canvas once so the first stroke is fast
  for (let i = 0; i < M.canvases.length; i++) await encode(new Float32Array(M.canvases[i] ** 2), i);
  return {loadMs: performance.now() - t0, model: M.model, weights: M.weights, photos: M.gallery.count,
          canvases: M.canvases, cascade: M.cascade ? M.cascade.stages : null,
          lams: M.selector ? M.selector.lams : [], defaultLam: M.selector ? M.selector.default_lam : null};
}

function softmax(v) {
  const m = Math.max(...v), e = Array.from(v, x => Math.exp(x - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map(x => x / s);
}

async function select(strokes, lam) {
  const seq = strokeSequence(strokes, M.selector);
  const out = await selector.run({seq: new ort.Tensor('float32', seq.data, [1, seq.length, 5]),
                                  lam: new ort.Tensor('float32', new Float32Array([lam]), [1])});
  const p = softmax(out.logits.data);
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return {index: best, probs: p, steps: seq.length, flops: M.selector.step_flops * seq.length + M.selector.head_flops};
}

async function encode(ink, canvasIndex) {  // ink (S*S) -> {embedding, logits}; network input = 1 - 2 * ink, 3 channels
  const S = Math.round(Math.sqrt(ink.length)), x = new Float32Array(3 * S * S);
  for (let k = 0; k < ink.length; k++) x[k] = x[k + S * S] = x[k + 2 * S * S] = 1 - 2 * ink[k];
  const out = await encoders[S].run({x: new ort.Tensor('float32', x, [1, 3, S, S]),
                                 canvas: new ort.Tensor('int64', BigInt64Array.from([BigInt(canvasIndex)]), [1])});
  return {embedding: out.embedding.data, logits: out.logits.data};
}

function search(q, k) {  // exact inner products with every gallery vector -> top k [index, score]
  const {count: n, dim} = M.gallery, scores = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    const off = i * dim;
    for (let d = 0; d < dim; d++) s += gallery[off + d] * q[d];
    scores[i] = s;
  }
  const order = Array.from(scores.keys()).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, k).map(i => [i, scores[i]]);
}

function categories(logits) {  // the three likeliest offered classes (probability over all the head's)
  if (!logits.length) return [];
  const p = softmax(logits), offered = new Set(M.offered);
  return Array.from(p.keys()).sort((a, b) => p[b] - p[a]).filter(i => offered.has(M.classes[i]))
    .slice(0, 3).map(i => [M.classes[i], p[i]]);
}

function thresholds(lam, fuse) {  // the cascade's stop margins at the offered lambda_F nearest lam (null: never)
  const C = M.cascade, lams = C.lams;
  let i = 0;
  for (let j = 1; j < lams.length; j++) if (Math.abs(lams[j] - lam) < Math.abs(lams[i] - lam)) i = j;
  const table = fuse ? C.fused : C.alone;
  return table ? table[i].map(t => (t === null ? Infinity : t)) : C.stages.slice(1).map(() => Infinity);
}

async function query(msg) {
  const t = [performance.now()];
  const strokes = msg.strokes.filter(s => Array.isArray(s) && s.length);
  const npts = strokes.reduce((a, s) => a + s.length, 0);
  if (!npts) throw new Error('the sketch is empty: draw at least one stroke');
  if (npts > M.max_points) throw new Error(`too many points (${npts} > ${M.max_points})`);
  const fuse = msg.fuse !== false && M.hog && M.alpha > 0, k = Math.max(1, Math.min(msg.k || 10, M.gallery.count));
  if (msg.canvas === 'cascade' && !M.cascade) throw new Error('this export has no cascade');
  const cascade = msg.canvas === 'cascade';
  let ci = M.canvases.indexOf(M.default_canvas), sel = null;
  if (cascade) ci = M.canvases.indexOf(M.cascade.stages[0]);
  else if (msg.canvas !== 'auto') ci = M.canvases.indexOf(+msg.canvas);
  else if (selector) { sel = await select(strokes, msg.lam ?? M.selector.default_lam); ci = sel.index; }
  if (ci < 0) throw new Error(`canvas ${msg.canvas} is not one of ${M.canvases}`);
  const stages = cascade ? M.cascade.stages : [M.canvases[ci]];
  t.push(performance.now());
  const inks = renderSizes(strokes, fuse ? [...stages, M.hog.size] : stages, M.render);
  const hog = fuse ? hogDescriptor(inks[M.hog.size], M.hog) : null;
  t.push(performance.now());
  const thr = cascade ? thresholds(msg.lam ?? M.cascade.default_lam, fuse) : [];
  const passes = [];
  let enc = null, hits = null, canvas = 0, encodeMs = 0, searchMs = 0, flops = 0;
  for (let i = 0; i < stages.length; i++) {
    canvas = stages[i];
    const t1 = performance.now();
    enc = await encode(inks[canvas], M.canvases.indexOf(canvas));
    const t2 = performance.now();
    const q = new Float32Array(M.gallery.dim);
    q.set(enc.embedding);
    if (hog) for (let j = 0; j < hog.length; j++) q[enc.embedding.length + j] = M.alpha * hog[j];
    hits = search(q, cascade ? Math.max(k, 2) : k);
    searchMs += performance.now() - t2; encodeMs += t2 - t1;
    flops += M.branch_flops[String(canvas)];
    if (!cascade) break;
    const margin = hits.length > 1 ? hits[0][1] - hits[1][1] : Infinity, stop = i < thr.length ? thr[i] : Infinity;
    passes.push({canvas, margin, threshold: stop === Infinity ? null : stop});
    if (margin >= stop) break;
  }
  t.push(performance.now());
  const hogFl = fuse ? M.hog.flops : 0, selFl = sel ? sel.flops : flops - M.branch_flops[String(canvas)];
  return {
    hits: hits.slice(0, k).map(([i, s]) => ({index: i, score: s, ...M.gallery.items[i]})),
    canvas, probs: sel ? Object.fromEntries(M.canvases.map((c, i) => [c, sel.probs[i]])) : null, steps: sel ? sel.steps : 0,
    cascade: cascade ? passes : null,
    gflops: (M.branch_flops[String(canvas)] + selFl + hogFl) / 1e9, selectorGflops: selFl / 1e9, hogGflops: hogFl / 1e9,
    fullGflops: M.full.flops / 1e9, fullName: M.full.name, params: M.params + (sel ? M.selector.params : 0),
    categories: categories(enc.logits),
    ink: inks[canvas],  // what the student saw: (canvas * canvas) float32, 1 = ink
    ms: {total: t[3] - t[0], select: t[1] - t[0], render: t[2] - t[1], encode: encodeMs, search: searchMs},
  };
}

self.onmessage = async (e) => {
  const msg = e.data;
  try {
    if (msg.type === 'init') self.postMessage({type: 'ready', info: await init(msg)});
    else if (msg.type === 'query') self.postMessage({type: 'result', id: msg.id, ...(await query(msg))});
  } catch (err) {
    self.postMessage({type: 'error', id: msg.id, message: String(err && err.message || err)});
  }
};
