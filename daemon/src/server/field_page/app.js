// veil's field page: sign in with an API key (kept in this tab's sessionStorage), redact photos
// through the device's media API, review and download the results, watch the device. Every
// request goes to the device that served this page, with the key as a bearer token.
import { makeZip } from '/field/zip.js';
import { errorText, failure } from '/field/http.js';

const $ = (id) => document.getElementById(id);
const KEY_SLOT = 'veil.key';
const PARALLEL_UPLOADS = 2;

let key = sessionStorage.getItem(KEY_SLOT);
let device = null; // the last GET /api/v1/device answer
let session = null; // per sign-in: timers and the preview connection
const results = new Map(); // card element -> {name, blob, url}
const queue = [];
let uploading = 0;

// ---- talking to the device -------------------------------------------------------------------

function authHeader(k = key) {
  return { Authorization: `Bearer ${k}` };
}

async function api(path, init = {}) {
  const res = await fetch(path, { cache: 'no-store', ...init, headers: { ...authHeader(), ...(init.headers || {}) } });
  if (res.status === 401) {
    signOut('The device no longer accepts this key; sign in again.');
    throw await failure(res);
  }
  if (!res.ok) throw await failure(res);
  return res;
}

// ---- sign in and out -------------------------------------------------------------------------

async function signIn(candidate) {
  const res = await fetch('/api/v1/device', { cache: 'no-store', headers: authHeader(candidate) });
  if (res.status === 401 || res.status === 403) {
    const why = await failure(res);
    throw new Error(`The device refused this key: ${why.message}`);
  }
  if (!res.ok) throw await failure(res);
  device = await res.json();
  key = candidate;
  sessionStorage.setItem(KEY_SLOT, key);
  startSession();
  // An admin key opens the admin console too.
  if (device.admin_key) document.dispatchEvent(new CustomEvent('veil:key', { detail: { key } }));
}

function signOut(message = '') {
  sessionStorage.removeItem(KEY_SLOT);
  key = null;
  document.dispatchEvent(new CustomEvent('veil:key', { detail: { key: null } }));
  if (session) {
    session.timers.forEach(clearInterval);
    session.preview.abort();
    session = null;
  }
  queue.length = 0;
  for (const [card, r] of results) {
    URL.revokeObjectURL(r.url);
    card.remove();
  }
  results.clear();
  $('grid').replaceChildren();
  $('results-empty').hidden = false;
  $('download-all').disabled = true;
  $('app').hidden = true;
  $('signout').hidden = true;
  $('who').hidden = true;
  $('signin').hidden = false;
  $('key').value = '';
  $('signin-error').textContent = message;
  $('key').focus();
}

function startSession() {
  $('signin').hidden = true;
  $('signin-error').textContent = '';
  $('app').hidden = false;
  $('signout').hidden = false;
  $('who').hidden = false;
  $('who').textContent = `veil ${device.version} · ${device.backend}`;
  fillOptions(device);
  showDevice(device);
  session = { timers: [], preview: new AbortController() };
  session.timers.push(setInterval(refreshDevice, 2000));
  refreshJobs();
  session.timers.push(setInterval(refreshJobs, 5000));
  startPreview(session.preview.signal);
}

// ---- the options form ------------------------------------------------------------------------

const METHOD_NAMES = { gaussian: 'Blur', pixelate: 'Pixelate', solid: 'Solid fill' };
const SHAPE_NAMES = { ellipse: 'Ellipse', rect: 'Rectangle' };
const CATEGORY_NAMES = {
  faces: 'Faces', heads: 'Heads', license_plates: 'Licence plates', licenseplates: 'Licence plates',
  qr_codes: 'QR codes', barcodes: 'Barcodes', writing: 'Text (signs, documents, badges)', people: 'People (whole)',
};
// PiiBlur names that mean the same detector as `writing`: one box for all of them.
const SAME_AS_WRITING = new Set(['street_signs', 'documents', 'name_badges']);

function option(value, label) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  return o;
}

function fillOptions(d) {
  const defaults = d.defaults;
  $('method').replaceChildren(...d.methods.map((m) => option(m, `${METHOD_NAMES[m] || m}${m === defaults.method ? ' (default)' : ''}`)));
  $('shape').replaceChildren(...d.shapes.map((s) => option(s, `${SHAPE_NAMES[s] || s}${s === defaults.shape ? ' (default)' : ''}`)));
  $('strength').min = String(defaults.min_strength);
  const cats = $('categories');
  cats.querySelectorAll('label').forEach((l) => l.remove());
  for (const c of d.supported_categories.filter((name) => !SAME_AS_WRITING.has(name))) {
    const label = document.createElement('label');
    label.className = 'check';
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.name = 'category';
    box.value = c;
    label.append(box, ` ${CATEGORY_NAMES[c] || c}`);
    cats.append(label);
  }
  const strength = defaults.strength == null ? '' : `, strength ${defaults.strength}`;
  $('defaults-note').textContent =
    `Device defaults: ${METHOD_NAMES[defaults.method] || defaults.method}${strength}, ${SHAPE_NAMES[defaults.shape] || defaults.shape}, ` +
    `padding ${defaults.padding}, categories ${defaults.categories.join(', ')}.`;
  resetOptions();
}

function resetOptions() {
  const d = device.defaults;
  $('method').value = d.method;
  $('shape').value = d.shape;
  $('strength').value = String(d.strength ?? 0.6);
  $('padding').value = String(d.padding);
  document.querySelectorAll('input[name=category]').forEach((b) => {
    b.checked = d.categories.includes(b.value);
  });
  syncOptions();
}

function syncOptions() {
  $('strength-value').textContent = Number($('strength').value).toFixed(2);
  $('padding-value').textContent = Number($('padding').value).toFixed(2);
  $('strength').disabled = $('method').value !== 'gaussian';
}

function chosenOptions() {
  const categories = [...document.querySelectorAll('input[name=category]:checked')].map((b) => b.value);
  return {
    method: $('method').value,
    shape: $('shape').value,
    strength: $('method').value === 'gaussian' ? $('strength').value : null,
    padding: $('padding').value,
    categories,
  };
}

// ---- uploads and results ---------------------------------------------------------------------

function addFiles(files) {
  $('upload-error').textContent = '';
  const options = chosenOptions();
  if (options.categories.length === 0) {
    $('upload-error').textContent = 'Choose at least one thing to hide.';
    return;
  }
  for (const file of files) {
    const card = $('card').content.firstElementChild.cloneNode(true);
    card.querySelector('.name').textContent = file.name;
    card.querySelector('.state').textContent = 'Waiting to upload…';
    const original = card.querySelector('.original');
    original.src = URL.createObjectURL(file); // the user's own file, never sent back by the device
    original.alt = `Your original of ${file.name}`;
    card.querySelector('.original-figure').hidden = !$('compare').checked;
    $('grid').prepend(card);
    $('results-empty').hidden = true;
    queue.push({ file, options, card });
  }
  pump();
}

function pump() {
  while (uploading < PARALLEL_UPLOADS && queue.length > 0) {
    const job = queue.shift();
    uploading++;
    process(job).finally(() => {
      uploading--;
      pump();
    });
  }
}

function setState(card, state, text) {
  card.dataset.state = state;
  card.querySelector('.state').textContent = text;
}

/** POST the file with upload progress; resolves with the queued media id. */
function upload(file, options, card) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    form.append('file', file, file.name);
    for (const c of options.categories) form.append('pii_categories[]', c);
    form.append('method', options.method);
    form.append('shape', options.shape);
    if (options.strength != null) form.append('strength', options.strength);
    form.append('padding', options.padding);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/v1/media/redact');
    xhr.setRequestHeader('Authorization', `Bearer ${key}`);
    xhr.responseType = 'json';
    const bar = card.querySelector('progress');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) bar.value = Math.round((e.loaded / e.total) * 100);
    };
    xhr.onload = () => {
      if (xhr.status === 201 && xhr.response && xhr.response.media_id) {
        bar.value = 100;
        resolve(xhr.response.media_id);
      } else {
        const err = new Error(errorText(xhr.response) || `${xhr.status} ${xhr.statusText}`);
        err.status = xhr.status;
        reject(err);
      }
    };
    xhr.onerror = () => reject(new Error('The device could not be reached'));
    xhr.send(form);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function process({ file, options, card }) {
  try {
    setState(card, 'uploading', 'Uploading…');
    const id = await upload(file, options, card);
    card.dataset.mediaId = id;
    setState(card, 'queued', 'Queued on the device…');
    let media;
    for (let wait = 250; ; wait = Math.min(wait * 1.5, 2000)) {
      if (!key) return;
      media = await (await api(`/api/v1/media/${encodeURIComponent(id)}`)).json();
      if (media.status === 'completed' || media.status === 'failed') break;
      setState(card, media.status, media.status === 'processing' ? 'Redacting…' : 'Queued on the device…');
      await sleep(wait);
    }
    if (media.status === 'failed') throw new Error(media.error || 'The device could not redact this photo');
    const res = await api(`/api/v1/media/${encodeURIComponent(id)}/download`);
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const name = downloadName(res, file.name);
    results.set(card, { name, blob, url });
    const img = card.querySelector('.redacted');
    img.src = url;
    img.alt = `Redacted ${file.name}`;
    const found = media.detections ?? [];
    const faces = found.filter((d) => d.category === 'face').length;
    const plates = found.filter((d) => d.category === 'license_plate').length;
    let summary = `${faces} ${faces === 1 ? 'face' : 'faces'}`;
    if (plates > 0) summary += `, ${plates} ${plates === 1 ? 'plate' : 'plates'}`;
    card.querySelector('.faces').textContent = summary;
    card.querySelector('.faces').dataset.count = String(faces);
    card.querySelector('.faces').dataset.plates = String(plates);
    if (media.processing_ms != null) card.querySelector('.timing').textContent = `· ${Math.round(media.processing_ms)} ms on the device`;
    const link = card.querySelector('.download');
    link.href = url;
    link.download = name;
    link.hidden = false;
    link.textContent = `Download ${name}`;
    setState(card, 'done', 'Redacted');
    $('download-all').disabled = false;
    refreshJobs();
  } catch (err) {
    setState(card, 'error', err.message);
    card.querySelector('progress').hidden = true;
  }
}

function downloadName(res, fallback) {
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="([^"]+)"/.exec(cd);
  return m ? m[1] : `redacted-${fallback}`;
}

async function downloadAll() {
  const used = new Set();
  const files = [];
  for (const r of results.values()) {
    let name = r.name;
    for (let i = 2; used.has(name); i++) name = r.name.replace(/(\.[^.]*)?$/, `-${i}$1`);
    used.add(name);
    files.push({ name, data: new Uint8Array(await r.blob.arrayBuffer()) });
  }
  const url = URL.createObjectURL(makeZip(files));
  const a = document.createElement('a');
  a.href = url;
  a.download = 'veil-redacted.zip';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

// ---- the device panel ------------------------------------------------------------------------

async function refreshDevice() {
  try {
    device = await (await api('/api/v1/device')).json();
    showDevice(device);
    $('device-error').textContent = '';
  } catch (err) {
    if (key) $('device-error').textContent = `Device status: ${err.message}`;
  }
}

function fixed(v, digits = 1) {
  return v == null ? '—' : Number(v).toFixed(digits);
}

function cameraState(capture, p) {
  if (capture === 'none') return 'none configured';
  if (capture === 'off') return 'held off (privacy switch or remote command)';
  if (p && p.source.finished) return 'source finished';
  return p && !p.source.running ? 'waiting for the camera' : 'capturing';
}

function showDevice(d) {
  const t = d.telemetry;
  const p = d.pipeline;
  const rows = [
    ['Camera', cameraState(t.capture, p)],
    ['Source', p ? `${p.source.description}${p.source.last_error ? ` (${p.source.last_error})` : ''}` : '—'],
    ['Frames per second', p ? `${fixed(p.fps_in)} in · ${fixed(p.fps_out)} redacted` : '—'],
    ['Inference', t.inference_p50_ms == null ? '—' : `${fixed(t.inference_p50_ms)} ms median · ${fixed(t.inference_p95_ms)} ms p95`],
    ['Dropped frames', String(t.dropped_frames)],
    ['Queue', `${t.queue_depth} frames · ${t.jobs_pending} pending ${t.jobs_pending === 1 ? 'job' : 'jobs'}`],
    ['Temperature', t.temperature_c == null ? 'no sensor' : `${fixed(t.temperature_c)} °C`],
    ['CPU', `${fixed(t.cpu_percent, 0)} % · load ${fixed(t.load_1m, 2)}`],
    ['Memory', `${t.memory_used_mb} of ${t.memory_total_mb} MB · veil ${t.process_rss_mb} MB`],
    ['Disk free', t.disk_free_mb == null ? '—' : `${t.disk_free_mb} of ${t.disk_total_mb} MB`],
    ['Backend', d.backend],
    ['Up', `${t.uptime_s} s`],
  ];
  const items = [];
  for (const [k, v] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    items.push(dt, dd);
  }
  $('status').replaceChildren(...items);
}

async function refreshJobs() {
  try {
    const list = await (await api('/api/v1/media?page=1')).json();
    const rows = list.data.slice(0, 10).map((m) => {
      const tr = document.createElement('tr');
      const when = new Date(m.created_at);
      for (const text of [m.file_name || m.media_id, m.status, m.detections_count ?? '—', when.toLocaleTimeString()]) {
        const td = document.createElement('td');
        td.textContent = String(text);
        tr.append(td);
      }
      if (m.error) tr.title = m.error;
      return tr;
    });
    $('jobs').replaceChildren(...rows);
  } catch (err) {
    if (key) $('device-error').textContent = `Recent jobs: ${err.message}`;
  }
}

/** Read the multipart/x-mixed-replace preview stream (it needs the key, so not an <img src>). */
async function startPreview(signal) {
  const img = $('preview');
  const caption = $('preview-state');
  if (!device.preview) {
    caption.textContent = 'No live preview: this device has no camera configured or its preview is off.';
    return;
  }
  while (!signal.aborted) {
    try {
      const res = await fetch('/api/v1/stream.mjpeg', { headers: authHeader(), signal, cache: 'no-store' });
      if (res.status === 404) {
        caption.textContent = (await failure(res)).message;
        return;
      }
      if (!res.ok) throw await failure(res);
      caption.textContent = 'Live, redacted on the device';
      await readParts(res.body.getReader(), (jpeg, frameId) => {
        const previous = img.src;
        img.src = URL.createObjectURL(new Blob([jpeg], { type: 'image/jpeg' }));
        img.dataset.frame = frameId;
        if (previous.startsWith('blob:')) URL.revokeObjectURL(previous);
      });
      caption.textContent = 'The preview stream ended; reconnecting…';
    } catch (err) {
      if (signal.aborted) return;
      caption.textContent = `Preview: ${err.message}; retrying…`;
    }
    await sleep(3000);
  }
}

const CRLF2 = [13, 10, 13, 10];

function indexOf(buf, len, pattern, from) {
  outer: for (let i = from; i + pattern.length <= len; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

async function readParts(reader, onFrame) {
  let buf = new Uint8Array(1 << 16);
  let len = 0;
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    if (len + value.length > buf.length) {
      const bigger = new Uint8Array(Math.max(buf.length * 2, len + value.length));
      bigger.set(buf.subarray(0, len));
      buf = bigger;
    }
    buf.set(value, len);
    len += value.length;
    for (;;) {
      const headEnd = indexOf(buf, len, CRLF2, 0);
      if (headEnd < 0) break;
      const head = decoder.decode(buf.subarray(0, headEnd));
      const size = Number((/content-length:\s*(\d+)/i.exec(head) || [])[1]);
      const frame = (/x-frame-id:\s*(\d+)/i.exec(head) || [])[1] || '';
      if (!Number.isFinite(size)) throw new Error('preview part without a length');
      const start = headEnd + 4;
      if (len < start + size + 2) break;
      onFrame(buf.slice(start, start + size), frame);
      buf.copyWithin(0, start + size + 2, len);
      len -= start + size + 2;
    }
  }
}

// ---- wiring ----------------------------------------------------------------------------------

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const candidate = $('key').value.trim();
  $('signin-error').textContent = '';
  if (!candidate) {
    $('signin-error').textContent = 'Enter an API key.';
    return;
  }
  try {
    await signIn(candidate);
  } catch (err) {
    $('signin-error').textContent = err.message;
    $('key').select();
  }
});
$('signout').addEventListener('click', () => signOut());
$('method').addEventListener('change', syncOptions);
$('strength').addEventListener('input', syncOptions);
$('padding').addEventListener('input', syncOptions);
$('reset').addEventListener('click', resetOptions);
$('download-all').addEventListener('click', downloadAll);
$('compare').addEventListener('change', () => {
  document.querySelectorAll('.result .original-figure').forEach((f) => {
    f.hidden = !$('compare').checked;
  });
});
const drop = $('drop');
drop.addEventListener('click', () => $('files').click());
drop.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    $('files').click();
  }
});
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  addFiles([...e.dataTransfer.files]);
});
$('files').addEventListener('change', () => {
  addFiles([...$('files').files]);
  $('files').value = '';
});

if (key) {
  signIn(key).catch((err) => signOut(err.message));
} else {
  $('key').focus();
}
