// Simulated LL-HLS viewers: a load client for the soak (bench/side_by_side.py --soak).
//   node bench/viewers.mjs SECONDS URL...   (media playlists; viewers are spread over them)
//   VIEWERS=N sets how many (200 by default). Viewer k connects from 127.0.0.(20 + k %
//   200), so that each has an address of its own, as viewers on a LAN do (the server
//   caps connections per address); its requests share one keep-alive connection.
// Each viewer does what hls.js does in low-latency mode, without decoding: it reloads
// its media playlist blocking for the part the last one hinted (_HLS_msn, _HLS_part,
// RFC 8216bis §6.2.5.2), as a delta update (_HLS_skip=YES, §6.2.5.1), and fetches
// every part the reload lists that it has not fetched yet, in order. Parts are listed only
// near the live edge, and the edge jumps ahead after a publisher's outage (stream time
// follows the wall clock): when the part it fetched last is no longer listed but its
// segment is, it fetches that segment and the ones after it whole, as a player does,
// then goes on with parts. Its media must be continuous: the segment of the part it
// fetched last must still be listed (else a gap: media was missed), and every part and
// segment it asks for must come (else an error). A playlist that
// ended (EXT-X-ENDLIST) or a stream that is not live yet is waited for, not an error.
// Prints JSON: per URL and in all, reloads, parts and bytes fetched, gaps, errors by
// kind, the newest part's lag behind the wall clock after each reload (its segment's
// PROGRAM-DATE-TIME plus the parts after it; p50/p95/max seconds), and the streams'
// discontinuities seen.
const [seconds, ...urls] = process.argv.slice(2);
if (!seconds || urls.length === 0) {
  console.error('usage: node bench/viewers.mjs SECONDS URL...');
  process.exit(2);
}
import http from 'node:http';

const count = Number(process.env.VIEWERS || 200);
const end = Date.now() + Number(seconds) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// GET `url` through `agent` within 20 s: { status, body } (body a string, or its length
// in bytes with `binary`).
function get(url, agent, binary) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 20000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode, body: binary ? b.length : b.toString() });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function parse(text) {
  const parts = [];
  let pdt = null;
  let after = 0;
  let hint = null;
  let discontinuities = 0;
  const segments = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      pdt = Date.parse(line.slice(25));
      after = 0;
    } else if (line.startsWith('#EXT-X-PART:')) {
      const m = /DURATION=([\d.]+),URI="([^"]*part-(\d+)-(\d+)\.m4s)"/.exec(line);
      if (m) {
        after += Number(m[1]);
        parts.push({ msn: Number(m[3]), index: Number(m[4]), uri: m[2] });
      }
    } else if (/^(video|audio)\/seg-\d+\.m4s$/.test(line)) {
      // A complete segment of the live window (time-shift's recorded ones are elsewhere).
      segments.push({ msn: Number(/seg-(\d+)/.exec(line)[1]), uri: line });
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:TYPE=PART')) {
      const m = /part-(\d+)-(\d+)\.m4s/.exec(line);
      if (m) hint = { msn: Number(m[1]), part: Number(m[2]) };
    } else if (line.startsWith('#EXT-X-DISCONTINUITY-SEQUENCE:')) {
      discontinuities = Number(line.slice(30));
    } else if (line === '#EXT-X-DISCONTINUITY') {
      discontinuities += 1;
    }
  }
  const ended = text.includes('#EXT-X-ENDLIST');
  return { parts, segments, newestEnd: pdt === null ? null : pdt + after * 1000, hint, ended,
    discontinuities };
}

const before = (a, b) => a.msn < b.msn || (a.msn === b.msn && a.index < b.index);

function stats(url) {
  return { url, viewers: 0, reloads: 0, parts: 0, segments: 0, bytes: 0, gaps: 0, errors: {},
    lags: [], discontinuities: 0 };
}

function error(s, kind) {
  s.errors[kind] = (s.errors[kind] || 0) + 1;
}

// The server's answers that mean "not now" rather than a fault: the stream is not live
// (404), has no segment yet, or the hinted part did not come within the blocking bound
// (503, as during a camera's drop).
const notNow = (r) => r.status === 404
  || (r.status === 503 && /no segment yet|did not arrive in time/.test(r.body));

async function viewer(url, s, k) {
  const base = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: `127.0.0.${20 + (k % 200)}` });
  // Fetches `uri`, counted under `kind` ('part' or 'segment') in `s`.
  const media = async (uri, kind) => {
    try {
      const r = await get(new URL(uri, base).href, agent, true);
      if (r.status !== 200) {
        error(s, `${kind} ${r.status}`);
      } else {
        s[`${kind}s`] += 1;
        s.bytes += r.body;
      }
    } catch (e) {
      if (Date.now() < end) error(s, `${kind} ${e.message}`);
    }
  };
  let next = null;
  let last = null;
  while (Date.now() < end) {
    // Delta updates once it has a playlist, as hls.js asks for them.
    const u = next ? `${url}?_HLS_msn=${next.msn}&_HLS_part=${next.part}&_HLS_skip=YES` : url;
    let text;
    try {
      const r = await get(u, agent);
      text = r.body;
      if (notNow(r)) {
        // Not live (yet, or again): wait as a player does.
        next = null;
        await sleep(1000);
        continue;
      }
      if (r.status !== 200) {
        error(s, `playlist ${r.status}`);
        next = null;
        await sleep(1000);
        continue;
      }
    } catch (e) {
      if (Date.now() < end) error(s, `playlist ${e.message}`);
      next = null;
      continue;
    }
    s.reloads += 1;
    const p = parse(text);
    if (p.newestEnd !== null) s.lags.push((Date.now() - p.newestEnd) / 1000);
    s.discontinuities = Math.max(s.discontinuities, p.discontinuities);
    if (p.parts.length === 0 || p.ended) {
      next = null;
      last = null;
      await sleep(1000);
      continue;
    }
    let fresh;
    let whole = [];
    if (last === null) {
      // A new viewer starts at the newest part, as a player starts near the live edge.
      fresh = p.parts.slice(-1);
    } else if (!p.parts.some((x) => x.msn === last.msn && x.index === last.index)
        && before(last, p.parts[0])) {
      // What it fetched last is no longer listed as a part, and newer parts are.
      if (p.segments.some((x) => x.msn === last.msn)) {
        // Its segment is: the rest comes as whole segments up to the first with parts.
        whole = p.segments.filter((x) => x.msn >= last.msn && x.msn < p.parts[0].msn);
        fresh = p.parts;
      } else {
        // Media in between was missed.
        s.gaps += 1;
        fresh = p.parts.slice(-1);
      }
    } else {
      fresh = p.parts.filter((x) => before(last, x));
    }
    for (const seg of whole) await media(seg.uri, 'segment');
    for (const part of fresh) {
      await media(part.uri, 'part');
      last = part;
    }
    next = p.hint;
  }
}

const all = urls.map(stats);
const runs = [];
for (let i = 0; i < count; i += 1) {
  const s = all[i % all.length];
  s.viewers += 1;
  runs.push(viewer(urls[i % urls.length], s, i));
  // Viewers arrive over the first few seconds, not all in one instant.
  await sleep(Math.min(20, 5000 / count));
}
await Promise.all(runs);

const q = (a, f) => {
  if (a.length === 0) return null;
  const s = [...a].sort((x, y) => x - y);
  return Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))] * 1000) / 1000;
};
const summary = (s) => ({
  url: s.url, viewers: s.viewers, reloads: s.reloads, parts: s.parts, segments: s.segments,
  bytes: s.bytes,
  gaps: s.gaps, errors: s.errors, discontinuities: s.discontinuities,
  lag_p50_s: q(s.lags, 0.5), lag_p95_s: q(s.lags, 0.95), lag_max_s: q(s.lags, 1),
});
const total = all.reduce((t, s) => {
  t.viewers += s.viewers; t.reloads += s.reloads; t.parts += s.parts; t.bytes += s.bytes;
  t.segments += s.segments;
  t.gaps += s.gaps;
  // One at a time: an hour's lags are too many to spread into one call's arguments.
  for (const l of s.lags) t.lags.push(l);
  for (const [k, v] of Object.entries(s.errors)) t.errors[k] = (t.errors[k] || 0) + v;
  return t;
}, stats('all'));
console.log(JSON.stringify({ streams: all.map(summary), all: summary(total) }));
