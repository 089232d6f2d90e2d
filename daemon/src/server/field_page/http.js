// What the field page's scripts share about talking to the device: the message of an error body
// in any of the API styles veil speaks, and an Error made from a failed response.

/** The message of an error body in any of the API styles veil speaks. */
export function errorText(body) {
  if (!body) return '';
  if (typeof body.error === 'string') return body.error;
  if (typeof body.detail === 'string') return body.detail;
  if (typeof body.message === 'string') return body.message;
  if (Array.isArray(body) && body[0] && typeof body[0].description === 'string') return body[0].description;
  return '';
}

/** An Error carrying the response's own message (or its status line) and status. */
export async function failure(res) {
  let text = '';
  try {
    text = errorText(await res.json());
  } catch {
    // not JSON: keep the status line
  }
  const err = new Error(text || `${res.status} ${res.statusText}`);
  err.status = res.status;
  return err;
}
