// Drives the field page's admin console in Debian's Chromium the way an operator would: a wrong
// password, then the right one; stats, the stored job and its redacted result; a key created,
// renamed, disabled, enabled and deleted (checked against the API from outside the browser); the
// test mask; phone width; logout. Usage: node admin.mjs BASE_URL USER PASSWORD PHOTO OUT_DIR.
// Prints one JSON object of what it saw; tests/field_page.rs checks it.
import { launch, watchedPage } from './browser.mjs';
import { writeFileSync } from 'node:fs';

const [base, user, password, photo, out] = process.argv.slice(2);
const browser = await launch();
const seen = { requests: [], console_errors: [], page_errors: [] };
// What the API answers this key from outside the browser (a client on another machine).
const keyStatus = async (key) => (await fetch(`${base}/api/v1/usage`, { headers: { Authorization: `Bearer ${key}` } })).status;

/** An <img>'s pixels as a PNG file, as the browser shows them. */
async function savePixels(page, selector, file) {
  await page.waitForFunction((s) => document.querySelector(s).complete && document.querySelector(s).naturalWidth > 0, selector);
  const png = await page.evaluate((s) => {
    const img = document.querySelector(s);
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    return canvas.toDataURL('image/png');
  }, selector);
  writeFileSync(file, Buffer.from(png.split(',')[1], 'base64'));
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await watchedPage(context, seen);
  await page.goto(base + '/');

  // A wrong password, typed and sent with Enter.
  await page.focus('#admin-user');
  await page.keyboard.type(user);
  await page.keyboard.press('Tab');
  await page.keyboard.type('not the password');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.getElementById('admin-error').textContent.length > 0);
  seen.wrong_password_error = await page.textContent('#admin-error');
  seen.console_hidden_after_wrong_password = await page.isHidden('#console');

  // The right one.
  await page.fill('#admin-password', password);
  await page.press('#admin-password', 'Enter');
  await page.waitForSelector('#console', { state: 'visible' });
  seen.signin_hidden = await page.isHidden('#signin');
  seen.who = await page.textContent('#console-who');
  seen.cookie_visible_to_scripts = await page.evaluate(() => document.cookie);
  await page.waitForFunction(() => document.querySelectorAll('#stats dt').length > 0);
  seen.stats = await page.$$eval('#stats dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));

  // The stored job and its redacted result.
  await page.waitForFunction(() => document.querySelectorAll('#admin-jobs tr').length > 0);
  seen.jobs_rows = await page.$$eval('#admin-jobs tr', (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  await page.click('#admin-jobs tr button');
  await page.waitForFunction(() => (document.getElementById('job-result-img').src || '').startsWith('blob:'));
  seen.job_result_caption = await page.textContent('#job-result-caption');
  await savePixels(page, '#job-result-img', `${out}/admin-job-result.png`);

  // A key: created and shown once, then renamed, disabled, enabled and deleted.
  await page.fill('#new-key-name', 'crew laptop');
  await page.press('#new-key-name', 'Enter');
  await page.waitForSelector('#new-key', { state: 'visible' });
  const key = (await page.textContent('#new-key-value')).trim();
  seen.new_key_shape = /^veil_[0-9a-f]{8}_[0-9a-f]{64}$/.test(key);
  seen.key_status_created = await keyStatus(key);
  const row = '#keys tr:last-child';
  await page.waitForFunction((r) => document.querySelector(r) && document.querySelector(r).querySelector('input').value === 'crew laptop', row);
  seen.key_row_preview = await page.textContent(`${row} td:nth-child(2)`);
  seen.key_listed_in_full = await page.evaluate((k) => document.getElementById('keys').textContent.includes(k.slice(14)), key);
  await page.fill(`${row} input`, 'crew laptop (lost)');
  await page.click(`${row} button:has-text("Rename")`);
  await page.waitForFunction((r) => document.querySelector(r).querySelector('input').value === 'crew laptop (lost)' && document.querySelector(r).dataset.keyId, row);
  await page.click(`${row} button:has-text("Disable")`);
  await page.waitForFunction((r) => document.querySelector(r).cells[2].textContent === 'disabled', row);
  seen.key_status_disabled = await keyStatus(key);
  await page.click(`${row} button:has-text("Enable")`);
  await page.waitForFunction((r) => document.querySelector(r).cells[2].textContent === 'active', row);
  seen.key_status_enabled = await keyStatus(key);
  seen.key_name_after_rename = await page.inputValue(`${row} input`);
  const keysBefore = await page.$$eval('#keys tr', (rows) => rows.length);
  page.once('dialog', (d) => d.accept());
  await page.click(`${row} button:has-text("Delete")`);
  await page.waitForFunction((n) => document.querySelectorAll('#keys tr').length === n - 1, keysBefore);
  seen.key_status_deleted = await keyStatus(key);

  // The test mask with its timings.
  await page.setInputFiles('#test-file', photo);
  await page.selectOption('#test-method', 'gaussian');
  await page.click('#test-form button[type=submit]');
  await page.waitForSelector('#test-result', { state: 'visible', timeout: 120_000 });
  seen.test_facts = await page.$$eval('#test-facts dt', (dts) => Object.fromEntries(dts.map((dt) => [dt.textContent, dt.nextElementSibling.textContent])));
  await savePixels(page, '#test-img', `${out}/admin-test-mask.png`);

  await page.screenshot({ path: `${out}/admin-console.png`, fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  seen.phone_overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await page.screenshot({ path: `${out}/admin-console-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Log out: the session ends on the device, not just in the page.
  await page.click('#admin-signout');
  await page.waitForSelector('#signin', { state: 'visible' });
  seen.console_hidden_after_logout = await page.isHidden('#console');
  seen.session_after_logout = await page.evaluate(async () => (await fetch('/api/v1/admin/auth/session', { cache: 'no-store' })).status);
  await page.reload();
  await page.waitForSelector('#signin', { state: 'visible' });
  seen.console_hidden_after_reload = await page.isHidden('#console');
} catch (e) {
  seen.failure = String(e && e.stack ? e.stack : e);
} finally {
  await browser.close();
  writeFileSync(`${out}/admin-seen.json`, JSON.stringify(seen, null, 2));
  console.log(JSON.stringify(seen));
}
