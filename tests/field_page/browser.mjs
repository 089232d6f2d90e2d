// What both browser drivers share: Debian's Chromium launched headless with nothing that calls
// home, and a page that records every request, console error and script error it sees.
import { chromium } from 'playwright-core';

export async function launch() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync',
    ],
  });
}

/** A new page of `context` whose requests and errors are pushed into `seen`. */
export async function watchedPage(context, seen) {
  const page = await context.newPage();
  page.on('request', (r) => seen.requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error') seen.console_errors.push(m.text());
  });
  page.on('pageerror', (e) => seen.page_errors.push(String(e)));
  page.setDefaultTimeout(60_000);
  return page;
}
