// The sketch side of retrieval, in the page: the same steps, in the same order and arithmetic, as the
// Python library, so a ranking made here matches the server's. Each function names its Python original.
// Strokes are [[[x, y], ...], ...] in canvas pixels; ink maps are Float32Array(S * S), row-major, 1 = ink.

const f32 = Math.fround;

// sketchdown.sketch.strokes.Sketch.normalized: fit into a `size` square, centred, `margin` each side.
// numpy does this in float32 (the strokes are float32, the scalars adopt their type): so does fround.
export function normalized(strokes, size, margin) {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const s of strokes) for (const [x, y] of s) {
    const fx = f32(x), fy = f32(y);
    if (fx < x0) x0 = fx; if (fx > x1) x1 = fx; if (fy < y0) y0 = fy; if (fy > y1) y1 = fy;
  }
  const span = Math.max(x1 - x0, y1 - y0, 1e-6);
  const scale = f32(size * (1 - 2 * margin) / span), half = f32(size / 2);
  const cx = f32((x0 + x1) / 2), cy = f32((y0 + y1) / 2);
  return strokes.map(s => s.map(([x, y]) => [f32(f32(f32(f32(x) - cx) * scale) + half), f32(f32(f32(f32(y) - cy) * scale) + half)]));
}

// sketchdown.sketch.strokes.rdp: Ramer-Douglas-Peucker on one polyline (iterative)
export function rdp(pts, eps) {
  const n = pts.length;
  if (n < 3 || eps <= 0) return pts;
  const keep = new Uint8Array(n); keep[0] = keep[n - 1] = 1;
  const stack = [[0, n - 1]];
  while (stack.length) {
    const [i, j] = stack.pop();
    if (j <= i + 1) continue;
    const a = pts[i], b = pts[j];
    const abx = f32(b[0] - a[0]), aby = f32(b[1] - a[1]);
    const norm = Math.hypot(abx, aby);
    let best = -1, bestD = -Infinity;
    for (let m = i + 1; m < j; m++) {
      const p = pts[m];
      const d = norm < 1e-9 ? Math.hypot(p[0] - a[0], p[1] - a[1])
        : Math.abs(f32(f32(abx * f32(p[1] - a[1])) - f32(aby * f32(p[0] - a[0])))) / norm;
      if (d > bestD) { bestD = d; best = m; }
    }
    if (bestD > eps) { keep[best] = 1; stack.push([i, best], [best, j]); }
  }
  return pts.filter((_, m) => keep[m]);
}

// sketchdown.sketch.strokes.stroke_sequence: RDP-simplified stroke-5 on a 256 canvas, deltas / scale,
// at most maxLen rows (the last, end of sketch, kept). Returns {data: Float32Array(L * 5), length: L}.
export function strokeSequence(strokes, sel) {
  const simp = normalized(strokes, 256, 0).map(s => rdp(s, sel.epsilon));
  const rows = [];
  let px = null, py = null;
  for (const s of simp) {
    s.forEach(([x, y], i) => {
      const dx = px === null ? 0 : f32(x - px), dy = py === null ? 0 : f32(y - py);
      const up = i === s.length - 1 ? 1 : 0;
      rows.push([dx, dy, 1 - up, up, 0]);
      px = x; py = y;
    });
  }
  rows.push([0, 0, 0, 0, 1]);
  const seq = rows.length > sel.max_len ? rows.slice(0, sel.max_len - 1).concat([rows[rows.length - 1]]) : rows;
  const data = new Float32Array(seq.length * 5);
  seq.forEach((r, i) => { data.set([r[0] / sel.scale, r[1] / sel.scale, r[2], r[3], r[4]], i * 5); });
  return {data, length: seq.length};
}

// sketchdown.sketch.lineprofile.LineProfile.ink: bilinear lookup of the measured line profile
function profileInk(prof, beyond, perp) {
  const t = prof.table, nb = t.length, np_ = t[0].length;
  const fb = Math.min(beyond / prof.step, nb - 1), fp = Math.min(perp / prof.step, np_ - 1);
  if (fb >= nb - 1 || fp >= np_ - 1) return 0;
  const b0 = Math.min(Math.floor(fb), nb - 2), p0 = Math.min(Math.floor(fp), np_ - 2);
  const wb = fb - b0, wp = fp - p0;
  return t[b0][p0] * (1 - wb) * (1 - wp) + t[b0 + 1][p0] * wb * (1 - wp)
    + t[b0][p0 + 1] * (1 - wb) * wp + t[b0 + 1][p0 + 1] * wb * wp;
}

// sketchdown.sketch.lineprofile.draw_profile: the strokes on a big x big canvas, Uint8Array (255 = ink)
export function drawProfile(strokes, big, render) {
  const prof = render.profile;
  const reach = (prof.table.length - 1) * prof.step;
  const img = new Float64Array(big * big);
  for (const st of normalized(strokes, big, render.margin)) {
    const p = [];
    for (const [x, y] of st) {
      const q = [Math.round(x * 16) / 16, Math.round(y * 16) / 16];
      const last = p[p.length - 1];
      if (!last || last[0] !== q[0] || last[1] !== q[1]) p.push(q);
    }
    const segs = p.length === 1 ? [[p[0], p[0]]] : p.slice(1).map((b, i) => [p[i], b]);
    for (const [a, b] of segs) {
      const x0 = Math.max(0, Math.floor(Math.min(a[0], b[0]) - reach)), x1 = Math.min(big - 1, Math.ceil(Math.max(a[0], b[0]) + reach));
      const y0 = Math.max(0, Math.floor(Math.min(a[1], b[1]) - reach)), y1 = Math.min(big - 1, Math.ceil(Math.max(a[1], b[1]) + reach));
      const abx = b[0] - a[0], aby = b[1] - a[1], len = Math.hypot(abx, aby);
      const ux = len < 1e-9 ? 0 : abx / len, uy = len < 1e-9 ? 0 : aby / len;
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          let beyond, perp;
          if (len < 1e-9) { beyond = Math.hypot(x - a[0], y - a[1]); perp = 0; }
          else {
            const along = (x - a[0]) * ux + (y - a[1]) * uy;
            perp = Math.abs((y - a[1]) * ux - (x - a[0]) * uy);
            beyond = Math.max(Math.max(-along, along - len), 0);
          }
          const ink = profileInk(prof, beyond, perp);
          if (ink > 0) { const k = y * big + x; img[k] += (1 - img[k]) * ink; }
        }
      }
    }
  }
  const out = new Uint8Array(big * big);
  for (let k = 0; k < out.length; k++) out[k] = Math.floor(img[k] * 255 + 0.5);
  return out;
}

function rintEven(v) {  // cvRound: half to even (v >= 0)
  const f = Math.floor(v), d = v - f;
  return d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
}

function areaTable(n, size) {  // per output index: [[input index, float32 weight], ...]
  const scale = n / size, tab = [];
  for (let o = 0; o < size; o++) {
    const f0 = o * scale, f1 = (o + 1) * scale, row = [];
    for (let i = Math.floor(f0); i < Math.min(n, Math.ceil(f1)); i++) {
      const w = Math.max(0, Math.min(f1, i + 1) - Math.max(f0, i));
      if (w > 0) row.push([i, f32(w / scale)]);
    }
    tab.push(row);
  }
  return tab;
}

// cv2.resize(uint8, INTER_AREA) as sketchdown.sketch.render._downsample uses it, / 255: Float32Array ink.
// OpenCV halves with (a + b + c + d + 2) >> 2; other ratios accumulate in float32 and round half to even.
export function downsample(img, n, size) {
  const out = new Float32Array(size * size);
  if (n === size) { for (let k = 0; k < out.length; k++) out[k] = f32(img[k] / 255); return out; }
  if (n === 2 * size) {
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) {
      const k = 2 * y * n + 2 * x;
      out[y * size + x] = f32(((img[k] + img[k + 1] + img[k + n] + img[k + n + 1] + 2) >> 2) / 255);
    }
    return out;
  }
  const tab = areaTable(n, size), rows = new Float32Array(n * size);
  for (let y = 0; y < n; y++) for (let o = 0; o < size; o++) {
    let acc = 0;
    for (const [i, w] of tab[o]) acc = f32(acc + f32(img[y * n + i] * w));
    rows[y * size + o] = acc;
  }
  for (let o = 0; o < size; o++) for (let x = 0; x < size; x++) {
    let acc = 0;
    for (const [i, w] of tab[o]) acc = f32(acc + f32(rows[i * size + x] * w));
    out[o * size + x] = f32(Math.min(255, rintEven(acc)) / 255);
  }
  return out;
}

// sketchdown.sketch.render.render_sketch_sizes: one 256 px drawing, area-downsampled to every size asked
export function renderSizes(strokes, sizes, render) {
  const big = render.ref, img = drawProfile(strokes, big, render), out = {};
  for (const s of new Set(sizes)) out[s] = downsample(img, big, s);
  return out;
}

function gaussianKernel(blur) {  // cv2.getGaussianKernel(2 * ceil(3 * blur) + 1, blur), float32
  const k = 2 * Math.ceil(3 * blur) + 1, c = (k - 1) / 2, w = new Float64Array(k);
  let sum = 0;
  for (let i = 0; i < k; i++) { w[i] = Math.exp(-0.5 * (i - c) * (i - c) / (blur * blur)); sum += w[i]; }
  return Float32Array.from(w, v => v / sum);
}

function blurReplicate(a, S, blur) {  // cv2.GaussianBlur(..., borderType=BORDER_REPLICATE), separable
  const w = gaussianKernel(blur), r = (w.length - 1) / 2, tmp = new Float32Array(S * S), out = new Float32Array(S * S);
  const clamp = (i) => (i < 0 ? 0 : i >= S ? S - 1 : i);
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    let acc = 0;
    for (let t = -r; t <= r; t++) acc += w[t + r] * a[y * S + clamp(x + t)];
    tmp[y * S + x] = acc;
  }
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    let acc = 0;
    for (let t = -r; t <= r; t++) acc += w[t + r] * tmp[clamp(y + t) * S + x];
    out[y * S + x] = acc;
  }
  return out;
}

function normalize(v, eps) {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  const d = Math.sqrt(s) + eps;
  for (let i = 0; i < v.length; i++) v[i] /= d;
}

// sketchdown.sketch.hog._level: one pyramid level of an (S, S) ink map -> unit vector
function hogLevel(ink, S, cell, bins, blur) {
  const a = blur > 0 ? blurReplicate(ink, S, blur) : ink;
  const n = S / cell, hist = new Float64Array(n * n * bins);
  for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) {
    const gx = x > 0 && x < S - 1 ? f32(a[y * S + x + 1] - a[y * S + x - 1]) : 0;
    const gy = y > 0 && y < S - 1 ? f32(a[(y + 1) * S + x] - a[(y - 1) * S + x]) : 0;
    const mag = Math.hypot(gx, gy);
    let ang = Math.atan2(gy, gx) % Math.PI;
    if (ang < 0) ang += Math.PI;
    const pos = ang * (bins / Math.PI), lo = Math.floor(pos), wHi = pos - lo;
    const b0 = ((lo % bins) + bins) % bins, b1 = (b0 + 1) % bins;
    const c = (Math.floor(y / cell) * n + Math.floor(x / cell)) * bins;
    hist[c + b0] += mag * (1 - wHi);
    hist[c + b1] += mag * wHi;
  }
  const m = n - 1, blk = 4 * bins, f = new Float64Array(m * m * blk);
  const cellAt = (cy, cx) => (cy * n + cx) * bins;
  for (let by = 0; by < m; by++) for (let bx = 0; bx < m; bx++) {
    const v = new Float64Array(blk);
    [cellAt(by, bx), cellAt(by + 1, bx), cellAt(by, bx + 1), cellAt(by + 1, bx + 1)].forEach((c, q) => {
      for (let b = 0; b < bins; b++) v[q * bins + b] = hist[c + b];
    });
    normalize(v, 1e-6);
    for (let i = 0; i < blk; i++) v[i] = Math.min(v[i], 0.2);
    normalize(v, 1e-6);
    f.set(v, (by * m + bx) * blk);
  }
  normalize(f, 1e-8);
  return f;
}

// sketchdown.sketch.hog.hog_descriptor: the levels' unit vectors, concatenated, / sqrt(levels)
export function hogDescriptor(ink, spec) {
  const levels = spec.cells.map((c, i) => hogLevel(ink, spec.size, c, spec.bins, spec.blurs[i]));
  const out = new Float32Array(spec.dim), s = Math.sqrt(levels.length);
  let o = 0;
  for (const l of levels) { for (let i = 0; i < l.length; i++) out[o + i] = l[i] / s; o += l.length; }
  return out;
}
