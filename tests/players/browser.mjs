// Debian's Chromium, headless, as every test script here starts it: no sandbox (the
// tests run as root), no GPU, none of the background traffic this closed network
// refuses, and video allowed to start without a click.
import { chromium } from 'playwright-core';

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--autoplay-policy=no-user-gesture-required'],
  });
}
