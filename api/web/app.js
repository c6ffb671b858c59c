// The cebm demo page: draw or drop an image, show its posterior, its
// nearest reference images and its out-of-distribution score. Plain
// JavaScript against the JSON API; the API key, if the server wants one,
// lives in this page's memory only.
'use strict';

const $ = (id) => document.getElementById(id);
// window.cebm is what the page's own browser test reads.
const state = window.cebm = { key: '', timings: [], last: null, pending: null, seq: 0, notA: 'not a digit' };

class KeyNeeded extends Error {}

// api calls the service with the API key (if any) and returns the response,
// or throws with the problem's detail.
async function api(path, opts = {}) {
  const headers = Object.assign({}, opts.headers || {});
  if (state.key) headers['Authorization'] = 'Bearer ' + state.key;
  // The model picked (when the server serves several) answers every route of one model.
  if (state.model && path !== '/models') path += (path.includes('?') ? '&' : '?') + 'model=' + encodeURIComponent(state.model);
  const resp = await fetch(path, Object.assign({}, opts, { headers }));
  if (resp.status === 401) {
    $('key-panel').hidden = false;
    $('key').focus();
    throw new KeyNeeded('This server needs an API key.');
  }
  if (!resp.ok) {
    let detail = resp.statusText;
    try { const p = await resp.json(); detail = p.detail || p.title || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return resp;
}

function setStatus(text) { $('status').textContent = text; }

// analyse sends one image and shows everything about it; started is when
// the user finished the stroke or dropped the file.
async function analyse(blob, started) {
  const seq = ++state.seq;
  state.pending = { blob, started };
  setStatus('Working…');
  try {
    const k = Math.min(100, Math.max(1, parseInt($('k').value, 10) || 5));
    const enc = await (await api('/encode', { method: 'POST', headers: { 'Content-Type': blob.type || 'image/png' }, body: blob })).json();
    const post = enc.results[0];
    const cls = await (await api('/classify-knn', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ id: post.id, k }),
    })).json();
    if (seq !== state.seq) return; // a newer image is on its way
    const c = cls.results[0];
    showAnswer(c, post);
    showPosterior(post);
    await Promise.all([showNeighbors(c.neighbors), showMap(post.mean, c.neighbors)]);
    if (seq !== state.seq) return;
    const ms = performance.now() - started;
    state.timings.push(ms);
    state.last = { label: c.label, class: c.class, ood: post.ood, neighbors: c.neighbors.length, shown: $('label').textContent };
    state.pending = null;
    setStatus(`Answered in ${ms.toFixed(0)} ms.`);
  } catch (e) {
    if (seq === state.seq) setStatus(e instanceof KeyNeeded ? 'Enter the API key above, then try again.' : 'Error: ' + e.message);
  }
}

function showAnswer(c, post) {
  // A flagged image gets no label: its nearest neighbours' vote says
  // nothing about an image unlike every reference image.
  const flagged = !!(post.ood && post.ood.out_of_distribution);
  $('label').textContent = flagged ? state.notA : c.class || String(c.label);
  $('label').classList.toggle('flagged', flagged);
  $('votes').textContent = 'Votes: ' + c.votes.map((v) => `${v.class || v.label} × ${v.count}`).join(', ');
  const ood = $('ood');
  if (post.ood) {
    const p = post.ood.energy_percentile.toFixed(1);
    ood.className = post.ood.out_of_distribution ? 'ood-yes' : 'ood-no';
    const o = post.ood;
    const d = o.distance_percentile === undefined ? '' : `, its distance to the nearest one above ${o.distance_percentile.toFixed(1)}% of theirs`;
    const why = { 'energy too high': 'its energy is higher than almost every reference image\'s',
      'energy too low': 'its energy is lower than almost every reference image\'s, as a blank or very simple image\'s is',
      'far from every reference image': 'its posterior mean is farther from every reference image than they are from each other' }[o.reason];
    ood.textContent = o.out_of_distribution
      ? `Out of distribution: ${why || o.reason} (energy above ${p}% of the reference images'${d}). The neighbours' vote is shown but means little.`
      : `In distribution: energy above ${p}% of the reference images'${d}.`;
  } else {
    ood.textContent = '';
  }
}

async function showNeighbors(neighbors) {
  const list = $('neighbors');
  const items = await Promise.all(neighbors.map(async (n) => {
    const li = document.createElement('li');
    const img = document.createElement('img');
    img.alt = `reference item ${n.id}, label ${n.class || n.label}`;
    const blob = await (await api(`/index/items/${n.id}/image`)).blob();
    img.src = URL.createObjectURL(blob);
    await img.decode();
    const cap = document.createElement('span');
    cap.textContent = `${n.class || n.label} · ${Math.sqrt(n.distance).toFixed(2)}`;
    li.append(img, cap);
    return li;
  }));
  for (const old of list.querySelectorAll('img')) URL.revokeObjectURL(old.src);
  list.replaceChildren(...items);
}

function showPosterior(post) {
  $('energy').textContent = `Energy E(x) = ${post.energy.toFixed(3)}`;
  const cv = $('chart');
  const g = cv.getContext('2d');
  g.clearRect(0, 0, cv.width, cv.height);
  const mean = post.mean, sd = (post.variance || mean.map(() => 0)).map(Math.sqrt);
  let lo = Infinity, hi = -Infinity;
  mean.forEach((m, i) => { lo = Math.min(lo, m - sd[i]); hi = Math.max(hi, m + sd[i]); });
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = 10, w = cv.width - 2 * pad, h = cv.height - 2 * pad;
  const y = (v) => pad + h * (hi - v) / (hi - lo);
  g.strokeStyle = '#999';
  g.beginPath(); g.moveTo(pad, y(0)); g.lineTo(pad + w, y(0)); g.stroke();
  const step = w / mean.length;
  mean.forEach((m, i) => {
    const x = pad + step * (i + 0.5);
    g.strokeStyle = '#90b4e0';
    g.beginPath(); g.moveTo(x, y(m - sd[i])); g.lineTo(x, y(m + sd[i])); g.stroke();
    g.fillStyle = '#1a4f8b';
    g.fillRect(x - 1.5, y(m) - 1.5, 3, 3);
  });
  const r = post.responsibilities;
  $('mixture').hidden = !(r && r.length > 1);
  if (r && r.length > 1) {
    $('resp').replaceChildren(...r.map((p, k) => {
      const li = document.createElement('li');
      const bar = document.createElement('span');
      bar.className = 'bar';
      bar.style.width = `${(p * 12).toFixed(2)}rem`;
      li.append(`y = ${k}`, bar, `${(100 * p).toFixed(1)}%`);
      return li;
    }));
  }
}

// The reference map (GET /index/map): points drawn once, the query and its
// neighbours on top of them for each answer.
const classColours = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

async function loadMap() {
  try {
    const resp = await api('/index/map');
    if (!resp.ok) return;
    const m = await resp.json();
    const xs = m.points.map((p) => p.x), ys = m.points.map((p) => p.y);
    const pad = 0.05;
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    m.toCanvas = (x, y) => {
      const cv = $('map');
      const cx = (x - x0) / (x1 - x0 || 1), cy = (y - y0) / (y1 - y0 || 1);
      return [cv.width * (pad + (1 - 2 * pad) * Math.min(1.02, Math.max(-0.02, cx))), cv.height * (1 - pad - (1 - 2 * pad) * Math.min(1.02, Math.max(-0.02, cy)))];
    };
    m.byId = new Map(m.points.map((p) => [p.id, p]));
    state.map = m;
    state.mapShown = { points: m.points.length, query: null, neighbors: 0 };
    drawMap(null, []);
    drawKey();
  } catch (e) {
    if (!(e instanceof KeyNeeded)) $('map-legend').textContent = 'Map unavailable: ' + e.message;
  }
}

// The map's key: a swatch per class on the map, named as the model names
// its classes (once /models has answered), then the image's and its
// neighbours' rings as drawMap draws them.
function drawKey() {
  const m = state.map;
  if (!m) return;
  const labels = [...new Set(m.points.map((p) => p.label))].sort((a, b) => a - b);
  const entry = (marker, text) => {
    const li = document.createElement('li');
    li.append(marker, document.createTextNode(text));
    return li;
  };
  const marker = (cls, colour) => {
    const span = document.createElement('span');
    span.className = cls;
    span.setAttribute('aria-hidden', 'true');
    if (colour) span.style.background = colour;
    return span;
  };
  $('map-key').replaceChildren(
    ...labels.map((l) => {
      const li = entry(marker('swatch', classColours[((l % 10) + 10) % 10]), (state.classes && state.classes[l]) || String(l));
      li.dataset.label = String(l);
      return li;
    }),
    entry(marker('ring query'), 'your image'),
    entry(marker('ring neighbour'), 'its nearest reference images'));
}

function drawMap(query, neighbors) {
  const m = state.map;
  const cv = $('map');
  const g = cv.getContext('2d');
  g.fillStyle = '#fff';
  g.fillRect(0, 0, cv.width, cv.height);
  for (const p of m.points) {
    const [x, y] = m.toCanvas(p.x, p.y);
    g.fillStyle = classColours[((p.label % 10) + 10) % 10];
    g.globalAlpha = 0.5;
    g.fillRect(x - 1.5, y - 1.5, 3, 3);
  }
  g.globalAlpha = 1;
  g.lineWidth = 2;
  g.strokeStyle = '#000';
  for (const n of neighbors) {
    const [x, y] = m.toCanvas(n.x, n.y);
    g.beginPath(); g.arc(x, y, 4, 0, 2 * Math.PI); g.stroke();
  }
  if (query) {
    const [x, y] = m.toCanvas(query[0], query[1]);
    g.lineWidth = 3;
    g.beginPath(); g.arc(x, y, 8, 0, 2 * Math.PI); g.stroke();
  }
}

async function showMap(mean, neighbors) {
  const m = state.map;
  if (!m || !mean || mean.length !== m.mean.length) return;
  const project = (v) => m.axes.map((a) => a.reduce((s, w, j) => s + w * (v[j] - m.mean[j]), 0));
  const q = project(mean);
  // Neighbours not among the map's points are placed from their vectors.
  const nb = await Promise.all(neighbors.map(async (n) => {
    const p = m.byId.get(n.id);
    if (p) return p;
    const item = await (await api(`/index/items/${n.id}`)).json();
    const [x, y] = project(item.mean);
    return { x, y };
  }));
  drawMap(q, nb);
  state.mapShown = { points: m.points.length, query: q, neighbors: nb.length };
}

async function loadModel() {
  try {
    const models = (await (await api('/models')).json()).models;
    const m = models.find((x) => x.name === state.model) || models.find((x) => x.default) || models[0];
    pickModel(models, m.name);
    if (Array.isArray(m.classes) && !m.classes.every((c) => /^[0-9]$/.test(c))) state.notA = 'not one of its classes';
    if (Array.isArray(m.classes)) state.classes = m.classes;
    drawKey();
    $('model').replaceChildren(...Object.entries(m).filter(([, v]) => v !== null && typeof v !== 'object').flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k.replaceAll('_', ' ');
      const dd = document.createElement('dd');
      dd.textContent = String(v);
      return [dt, dd];
    }));
  } catch (e) {
    if (!(e instanceof KeyNeeded)) $('model').textContent = 'Model card unavailable: ' + e.message;
  }
}

// pickModel shows a model picker when the server serves several; picking
// one reloads its card and map, and analyses the last image again.
function pickModel(models, current) {
  let pick = $('model-pick');
  if (models.length < 2) { if (pick) pick.remove(); return; }
  if (!pick) {
    pick = document.createElement('select');
    pick.id = 'model-pick';
    pick.setAttribute('aria-label', 'Model');
    pick.addEventListener('change', () => {
      state.model = pick.value;
      loadModel();
      loadMap();
      if (state.pending) analyse(state.pending.blob, performance.now());
    });
    $('model').before(pick);
  }
  pick.replaceChildren(...models.map((x) => new Option(x.name + (x.default ? ' (default)' : ''), x.name, false, x.name === current)));
}

// Drawing: white strokes on black, like the MNIST digits; pointer events
// cover mouse, touch and pen.
function setupPad() {
  const cv = $('pad');
  const g = cv.getContext('2d');
  const clear = () => { g.fillStyle = '#000'; g.fillRect(0, 0, cv.width, cv.height); };
  clear();
  let drawing = false;
  const at = (e) => {
    const r = cv.getBoundingClientRect();
    return [(e.clientX - r.left) * cv.width / r.width, (e.clientY - r.top) * cv.height / r.height];
  };
  cv.addEventListener('pointerdown', (e) => {
    drawing = true;
    cv.setPointerCapture(e.pointerId);
    g.strokeStyle = '#fff'; g.lineWidth = 22; g.lineCap = 'round'; g.lineJoin = 'round';
    g.beginPath(); g.moveTo(...at(e)); g.lineTo(...at(e)); g.stroke();
  });
  cv.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    g.lineTo(...at(e)); g.stroke();
  });
  const end = () => {
    if (!drawing) return;
    drawing = false;
    const started = performance.now();
    cv.toBlob((b) => analyse(b, started), 'image/png');
  };
  cv.addEventListener('pointerup', end);
  cv.addEventListener('pointercancel', end);
  $('clear').addEventListener('click', () => { clear(); setStatus('Cleared. Draw a digit.'); });
}

// showOnPad draws a chosen image on the canvas, fitted, so the page shows
// what it is answering about.
async function showOnPad(file) {
  try {
    const bmp = await createImageBitmap(file);
    const cv = $('pad'), g = cv.getContext('2d');
    const sc = Math.min(cv.width / bmp.width, cv.height / bmp.height);
    const w = bmp.width * sc, h = bmp.height * sc;
    g.fillStyle = '#000'; g.fillRect(0, 0, cv.width, cv.height);
    g.imageSmoothingEnabled = false;
    g.drawImage(bmp, (cv.width - w) / 2, (cv.height - h) / 2, w, h);
  } catch (e) { /* the server says what is wrong with it */ }
}

function setupFiles() {
  const drop = $('drop');
  const take = (file) => {
    if (!file) return;
    if (!/^image\/(png|jpeg)$/.test(file.type)) { setStatus('Choose a PNG or JPEG image.'); return; }
    analyse(file, performance.now());
    showOnPad(file);
  };
  $('file').addEventListener('change', (e) => take(e.target.files[0]));
  for (const el of [drop, $('pad')]) {
    el.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    el.addEventListener('dragleave', () => drop.classList.remove('over'));
    el.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); take(e.dataTransfer.files[0]); });
  }
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault();
  state.key = $('key').value;
  $('key-panel').hidden = true;
  loadModel();
  loadMap();
  if (state.pending) analyse(state.pending.blob, performance.now());
});

setupPad();
setupFiles();
loadModel();
loadMap();
