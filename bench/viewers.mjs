// Simulated LL-HLS viewers: a load client for the soak (bench/side_by_side.py --soak).
//   node bench/viewers.mjs SECONDS URL...   (media playlists; viewers are spread over them)
//   VIEWERS=N sets how many (200 by default).
// Each viewer does what hls.js does in low-latency mode, without decoding: it reloads
// its media playlist blocking for the part the last one hinted (_HLS_msn, _HLS_part,
// RFC 8216bis §6.2.5.2) and fetches every part the reload lists that it has not
// fetched yet, in order. Its media must be continuous: a part it has fetched must still
// be listed the next time, so that the parts after it can be told (else a gap: parts
// were missed), and every part it asks for must come (else an error). A playlist that
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
const count = Number(process.env.VIEWERS || 200);
const end = Date.now() + Number(seconds) * 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function parse(text) {
  const parts = [];
  let pdt = null;
  let after = 0;
  let hint = null;
  let discontinuities = 0;
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
  return { parts, newestEnd: pdt === null ? null : pdt + after * 1000, hint, ended, discontinuities };
}

const before = (a, b) => a.msn < b.msn || (a.msn === b.msn && a.index < b.index);

function stats(url) {
  return { url, viewers: 0, reloads: 0, parts: 0, bytes: 0, gaps: 0, errors: {}, lags: [],
    discontinuities: 0 };
}

function error(s, kind) {
  s.errors[kind] = (s.errors[kind] || 0) + 1;
}

async function viewer(url, s) {
  const base = new URL(url);
  let next = null;
  let last = null;
  while (Date.now() < end) {
    const u = next ? `${url}?_HLS_msn=${next.msn}&_HLS_part=${next.part}` : url;
    let text;
    try {
      const r = await fetch(u, { signal: AbortSignal.timeout(20000) });
      text = await r.text();
      if (r.status === 404 || r.status === 503) {
        // Not live (yet, or again): wait as a player does.
        next = null;
        await sleep(1000);
        continue;
      }
      if (!r.ok) {
        error(s, `playlist ${r.status}`);
        next = null;
        await sleep(1000);
        continue;
      }
    } catch (e) {
      if (Date.now() < end) error(s, `playlist ${e.name}`);
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
    if (last === null) {
      // A new viewer starts at the newest part, as a player starts near the live edge.
      fresh = p.parts.slice(-1);
    } else if (!p.parts.some((x) => x.msn === last.msn && x.index === last.index)
        && before(last, p.parts[0])) {
      // What it fetched last is no longer listed, and newer parts are: it cannot tell
      // whether parts in between were missed.
      s.gaps += 1;
      fresh = p.parts.slice(-1);
    } else {
      fresh = p.parts.filter((x) => before(last, x));
    }
    for (const part of fresh) {
      try {
        const r = await fetch(new URL(part.uri, base), { signal: AbortSignal.timeout(20000) });
        const b = await r.arrayBuffer();
        if (!r.ok) {
          error(s, `part ${r.status}`);
        } else {
          s.parts += 1;
          s.bytes += b.byteLength;
        }
      } catch (e) {
        if (Date.now() < end) error(s, `part ${e.name}`);
      }
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
  runs.push(viewer(urls[i % urls.length], s));
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
  url: s.url, viewers: s.viewers, reloads: s.reloads, parts: s.parts, bytes: s.bytes,
  gaps: s.gaps, errors: s.errors, discontinuities: s.discontinuities,
  lag_p50_s: q(s.lags, 0.5), lag_p95_s: q(s.lags, 0.95), lag_max_s: q(s.lags, 1),
});
const total = all.reduce((t, s) => {
  t.viewers += s.viewers; t.reloads += s.reloads; t.parts += s.parts; t.bytes += s.bytes;
  t.gaps += s.gaps; t.lags.push(...s.lags);
  for (const [k, v] of Object.entries(s.errors)) t.errors[k] = (t.errors[k] || 0) + v;
  return t;
}, stats('all'));
console.log(JSON.stringify({ streams: all.map(summary), all: summary(total) }));
