// Drives the setup wizard and the admin pages in a real browser and prints what it saw
// as JSON. Each phase is a new browser (no cookies carried over):
//   node admin.mjs BASE_URL PHASE SHOTS_DIR [STREAM [LINK]]
// PHASE:
//   start   open /admin (sent to /setup), refuse a weak password, create the
//           administrator, name the appliance, pick a time zone; stops at step 3.
//   resume  (after the service restarted) open /admin, sign in to resume at step 3, go
//           through network and storage, create STREAM in step 5, finish.
//   use     sign in (a wrong password first), wait for STREAM live on the dashboard,
//           watch it in the viewer portal, play its recording from a timeline
//           thumbnail, open the audit log, sign out.
//   create  sign in, refuse a bad stream name, create STREAM on the streams page.
//   player  sign in, play STREAM on its page with hls.js then dash.js, make it private
//           and make a viewer link.
//   link    without signing in: the private STREAM's page refuses; LINK (argument 5)
//           plays it.
// A screenshot of every page visited goes to SHOTS_DIR.
import { launch } from './browser.mjs';
import { mkdirSync } from 'node:fs';

const [base, phase, shots, stream] = process.argv.slice(2);
if (!base || !phase || !shots) {
  console.error('usage: node admin.mjs BASE_URL start|resume|use SHOTS_DIR [STREAM]');
  process.exit(2);
}
const PASSWORD = 'correct horse battery staple';
mkdirSync(shots, { recursive: true });
const browser = await launch();
const out = { phase };
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  const alert = async () => {
    const a = page.locator('[role=alert]');
    return (await a.count()) ? (await a.first().textContent()).trim() : null;
  };
  const heading = async () => (await page.locator('h2').first().textContent()).trim();
  const path = () => new URL(page.url()).pathname + new URL(page.url()).search;
  const signIn = async (p) => {
    await p.goto(`${base}/login`);
    await p.fill('input[name=name]', 'admin');
    await p.fill('input[name=password]', PASSWORD);
    await p.click('button[type=submit]');
  };
  // Samples the page's player every half second: media time, picture size, error, and
  // the player's live latency.
  const sample = async (p, n, id = 'player') => {
    const samples = [];
    for (let i = 0; i < n; i++) {
      await p.waitForTimeout(500);
      samples.push(await p.evaluate((id) => {
        const v = document.getElementById(id);
        return {
          t: v.currentTime, width: v.videoWidth, height: v.videoHeight,
          kind: window.player ? window.player.kind : null,
          latency: window.player ? window.player.latency : null,
          error: v.error && v.error.message,
        };
      }, id));
    }
    return samples;
  };

  if (phase === 'start') {
    await page.goto(`${base}/admin`);
    out.redirectedTo = path();
    out.step1 = await heading();
    await shot('setup-1-administrator');
    await page.fill('input[name=name]', 'admin');
    await page.fill('input[name=password]', 'password123');
    await page.fill('input[name=again]', 'password123');
    await page.click('button[type=submit]');
    out.weakPassword = await alert();
    await shot('setup-1-weak-password');
    await page.fill('input[name=password]', PASSWORD);
    await page.fill('input[name=again]', PASSWORD);
    await page.click('button[type=submit]');
    out.step2 = await heading();
    await shot('setup-2-appliance');
    await page.fill('input[name=name]', 'Main hall');
    await page.selectOption('select[name=time_zone]', 'Europe/Berlin');
    await page.click('button[type=submit]');
    out.step3 = await heading();
    out.title = await page.title();
  } else if (phase === 'resume') {
    await page.goto(`${base}/admin`);
    out.redirectedTo = path();
    out.resumeHeading = await heading();
    await shot('setup-resume-sign-in');
    await page.fill('input[name=name]', 'admin');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('button[type=submit]');
    out.resumedAt = await heading();
    out.interfaces = await page.$$eval('#interfaces tr', (rows) => rows.map((r) => r.textContent));
    out.urls = await page.$$eval('#urls code', (els) => els.map((e) => e.textContent));
    await shot('setup-3-network');
    // Back to step 2 and forward again: the stored values are shown.
    await page.click('a[href="/setup?step=2"]');
    out.revisited = { name: await page.inputValue('input[name=name]'), zone: await page.inputValue('select[name=time_zone]') };
    await page.goto(`${base}/setup`);
    // Step 3 also has the name, NTP and interface forms; "Continue" is its own form's.
    await page.click('form[action="/setup/network"] button[type=submit]');
    out.step4 = await heading();
    out.disk = await page.$$eval('#disk tr', (rows) => rows.map((r) => r.textContent));
    await shot('setup-4-storage');
    await page.fill('input[name=keep]', 'banana');
    await page.click('button[type=submit]');
    out.badKeep = await alert();
    await page.fill('input[name=keep]', '3d');
    await page.check('input[name=record]');
    await page.click('button[type=submit]');
    out.step5 = await heading();
    await shot('setup-5-first-stream');
    await page.fill('form[action="/setup/stream"] input[name=name]', stream);
    await page.click('form[action="/setup/stream"] button[type=submit]');
    out.created = await heading();
    out.server = (await page.textContent('#server')).trim();
    out.key = (await page.textContent('#key')).trim();
    out.watch = (await page.textContent('#watch')).trim();
    // copy.js adds the buttons once the page has loaded; count() does not wait.
    await page.waitForLoadState('load');
    out.copyButtons = await page.locator('.copy-button').count();
    await shot('setup-5-stream-created');
    await page.click('form[action="/setup/finish"] button');
    out.finishedAt = path();
    out.notice = (await page.textContent('.notice')).trim();
    out.cards = await page.$$eval('.dash-card', (els) => els.map((e) => e.dataset.stream));
    await shot('dashboard-after-setup');
  } else if (phase === 'use') {
    await page.goto(`${base}/admin`);
    out.redirectedTo = path();
    await page.fill('input[name=name]', 'admin');
    await page.fill('input[name=password]', 'not the password');
    await page.click('button[type=submit]');
    out.wrongPassword = await alert();
    await shot('sign-in-refused');
    await page.fill('input[name=password]', PASSWORD);
    await page.click('button[type=submit]');
    out.signedInAt = path();
    // The dashboard updates itself: wait for the stream to show live with a picture.
    const live = `.dash-card[data-stream="${stream}"] .state.live`;
    await page.waitForSelector(live, { timeout: 30000 });
    await page.waitForFunction((s) => {
      const img = document.querySelector(`.dash-card[data-stream="${s}"] img`);
      return img && img.complete && img.naturalWidth > 0;
    }, stream, { timeout: 20000 });
    out.dashboardCard = await page.$eval(`.dash-card[data-stream="${stream}"]`, (card) => {
      const facts = { state: card.querySelector('.state').textContent };
      card.querySelectorAll('dt').forEach((dt) => { facts[dt.textContent] = dt.nextElementSibling.textContent; });
      return facts;
    });
    await shot('dashboard-live');

    await page.goto(`${base}/watch/${stream}`);
    out.samples = await sample(page, 24);
    await shot('portal-watch');

    // The stream page's recordings: click the first thumbnail on the timeline and play
    // the recording from there in the page's recordings player.
    for (let i = 0; i < 20; i++) {
      await page.goto(`${base}/admin/streams/${stream}`);
      if (await page.locator('#thumbs a').count()) break;
      await page.waitForTimeout(1000);
    }
    out.timelineSpans = await page.locator('#timeline .span').count();
    await page.locator('#thumbs a').first().click();
    out.recording = await sample(page, 12, 'recording');
    await shot('stream-page-recording');

    await page.goto(`${base}/admin/audit`);
    out.audit = await page.$$eval('table.audit tbody tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
    await shot('audit-log');
    await page.goto(`${base}/admin/account`);
    await shot('account');
    await page.goto(`${base}/admin/system`);
    out.version = (await page.textContent('#version')).trim();
    await shot('system');
    await page.click('form.signout button');
    out.signedOutAt = path();
    out.signedOutNotice = (await page.textContent('.notice')).trim();
    await shot('signed-out');
    await page.goto(`${base}/admin`);
    out.afterSignOut = path();
  } else if (phase === 'create') {
    await signIn(page);
    await page.goto(`${base}/admin/streams`);
    await page.fill('input[name=name]', 'Bad Name!');
    await page.click('form[action="/admin/streams"] button');
    out.badName = await alert();
    await page.fill('input[name=name]', stream);
    await page.click('form[action="/admin/streams"] button');
    out.createdAt = path();
    out.notice = (await page.textContent('.notice')).trim();
    out.server = (await page.textContent('#server')).trim();
    out.key = (await page.textContent('#key')).trim();
    await shot('stream-created');
    await page.goto(`${base}/admin/streams`);
    out.listed = await page.$$eval('#streams-table tbody tr', (rows) => rows.map((r) => r.dataset.stream));
    await shot('streams');
  } else if (phase === 'player') {
    await signIn(page);
    await page.goto(`${base}/admin/streams/${stream}`);
    out.hls = await sample(page, 16);
    await shot('stream-page-hls');
    await page.selectOption('#player-kind', 'dash');
    out.dash = await sample(page, 16);
    await shot('stream-page-dash');
    await page.check('input[name=visibility][value=private]');
    await page.click('form[action$="/visibility"] button');
    out.visibilityNotice = (await page.textContent('.notice')).trim();
    await page.fill('input[name=valid]', '2h');
    await page.click('form[action$="/link"] button');
    out.link = (await page.textContent('#link')).trim();
    await shot('stream-page-link');
  } else if (phase === 'link') {
    // No session: the link alone plays the private stream; the plain page does not.
    await page.goto(`${base}/watch/${stream}`);
    out.withoutLink = { status: (await page.locator('h1').textContent()).trim(), alert: await alert() };
    await shot('private-without-link');
    await page.goto(process.argv[6]);
    out.withLink = await sample(page, 16);
    await shot('private-with-link');
  } else {
    throw new Error(`unknown phase ${phase}`);
  }
  out.pageErrors = pageErrors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
