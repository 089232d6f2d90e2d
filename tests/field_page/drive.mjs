// Drives veil's field page in Debian's Chromium the way a field crew would: a wrong key first,
// then the right one, one real photo uploaded, its result downloaded, the device panel looked at.
// Usage: node drive.mjs BASE_URL API_KEY PHOTO OUT_DIR. Prints one JSON object of what it saw;
// tests/field_page.rs checks it.
import { launch, watchedPage } from './browser.mjs';
import { writeFileSync } from 'node:fs';

const [base, key, photo, out] = process.argv.slice(2);
const browser = await launch();
const seen = { requests: [], console_errors: [], page_errors: [] };
try {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await watchedPage(context, seen);

  await page.goto(base + '/');
  seen.title = await page.title();
  // The key field has focus, so a crew member can type and press Enter.
  seen.focused_on_load = await page.evaluate(() => document.activeElement && document.activeElement.id);

  // A wrong key is refused with the device's words.
  await page.keyboard.type('veil_not-a-real-key');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('signin-error').textContent.length > 0);
  seen.wrong_key_error = await page.textContent('#signin-error');
  seen.app_hidden_after_wrong_key = await page.isHidden('#app');

  // The right key.
  await page.fill('#key', key);
  await page.click('#signin-form button[type=submit]');
  await page.waitForSelector('#app', { state: 'visible' });
  seen.key_storage = await page.evaluate(() => ({ session: sessionStorage.length, local: localStorage.length }));
  seen.defaults_note = await page.textContent('#defaults-note');
  seen.method = await page.inputValue('#method');

  // Upload a real photo through the hidden file input (what the drop zone opens).
  await page.setInputFiles('#files', photo);
  await page.waitForSelector('.result[data-state=done], .result[data-state=error]', { timeout: 120_000 });
  seen.card_state = await page.getAttribute('.result', 'data-state');
  seen.card_text = await page.textContent('.result .state');
  seen.faces = await page.getAttribute('.result .faces', 'data-count');
  seen.faces_text = await page.textContent('.result .faces');
  seen.timing_text = await page.textContent('.result .timing');

  const [download] = await Promise.all([page.waitForEvent('download'), page.click('.result a.download')]);
  seen.download_name = download.suggestedFilename();
  await download.saveAs(`${out}/downloaded-result`);

  const [zip] = await Promise.all([page.waitForEvent('download'), page.click('#download-all')]);
  seen.zip_name = zip.suggestedFilename();
  await zip.saveAs(`${out}/downloaded.zip`);

  // The device panel: telemetry, the live redacted preview, the job in the recent list.
  await page.waitForFunction(() => document.querySelectorAll('#jobs tr').length > 0);
  seen.jobs_rows = await page.$$eval('#jobs tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  seen.status = await page.$$eval('#status dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  await page.waitForFunction(() => (document.getElementById('preview').src || '').startsWith('blob:'), null, { timeout: 60_000 });
  seen.preview_caption = await page.textContent('#preview-state');
  // The preview's own pixels (the frame the device sent, at its size), for the test to judge.
  await page.waitForFunction(() => document.getElementById('preview').complete && document.getElementById('preview').naturalWidth > 0);
  const previewPng = await page.evaluate(() => {
    const img = document.getElementById('preview');
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    return canvas.toDataURL('image/png');
  });
  writeFileSync(`${out}/preview.png`, Buffer.from(previewPng.split(',')[1], 'base64'));

  // README's screenshot shows only what the device sent (redacted); then the local comparison.
  await page.screenshot({ path: `${out}/field-page.png`, fullPage: true });
  await page.check('#compare');
  seen.original_shown = await page.isVisible('.result .original-figure');
  seen.original_src = await page.getAttribute('.result .original', 'src');

  await page.uncheck('#compare');
  // Phone width: nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  seen.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: `${out}/field-page-phone.png`, fullPage: true });

  // Log out: the key is gone from the tab and the sign-in form is back.
  await page.click('#signout');
  await page.waitForSelector('#signin', { state: 'visible' });
  seen.key_storage_after_logout = await page.evaluate(() => sessionStorage.length);
} catch (e) {
  seen.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  writeFileSync(`${out}/seen.json`, JSON.stringify(seen, null, 2));
  console.log(JSON.stringify(seen));
}
