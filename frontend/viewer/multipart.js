// multipart/related bodies, as WADO-RS sends frames and instances (PS3.18 §8.7.1.3).
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const HEADERS_END = encoder.encode('\r\n\r\n');
const DASH = 45;

/** A media type's parameter ("boundary", "transfer-syntax", ...), or "". */
export function parameter(mediaType, name) {
  const match = new RegExp(`;\\s*${name}="?([^";]+)"?`, 'i').exec(mediaType || '');
  return match ? match[1].trim() : '';
}

function headerValue(headers, name) {
  const match = new RegExp(`^${name}:\\s*(.*)$`, 'im').exec(headers);
  return match ? match[1].trim() : '';
}

/**
 * Where `needle` starts in `bytes` at or after `from`, or -1. Boyer–Moore–Horspool: a part's body
 * is read in strides of up to the delimiter's length rather than byte by byte, which matters for
 * hundreds of megabytes of pixel data.
 */
export function indexOf(bytes, needle, from = 0) {
  const last = needle.length - 1;
  const skip = new Uint8Array(256).fill(needle.length);
  for (let i = 0; i < last; i += 1) skip[needle[i]] = last - i;
  for (let i = Math.max(0, from); i + last < bytes.length; i += skip[bytes[i + last]]) {
    let j = last;
    while (bytes[i + j] === needle[j]) {
      if (j === 0) return i;
      j -= 1;
    }
  }
  return -1;
}

function lastIndexOf(bytes, needle) {
  for (let i = bytes.length - needle.length; i >= 0; i -= 1) {
    let j = 0;
    while (j < needle.length && bytes[i + j] === needle[j]) j += 1;
    if (j === needle.length) return i;
  }
  return -1;
}

/**
 * The one part of a response to a single-frame request: { body (a view, not a copy), contentType }.
 * A lone part ends at the last delimiter in the body, so it is found from the two ends of the
 * body rather than by reading the pixel data in between.
 */
export function onlyPart(buffer, contentType) {
  const bytes = new Uint8Array(buffer);
  const boundary = parameter(contentType, 'boundary');
  if (!/^multipart\//i.test(contentType) || !boundary) {
    return { body: bytes, contentType };
  }
  const headersEnd = indexOf(bytes.subarray(0, 4096), HEADERS_END);
  const close = lastIndexOf(bytes, encoder.encode(`\r\n--${boundary}`));
  if (headersEnd < 0 || close < headersEnd + HEADERS_END.length) {
    throw new Error('The response is not a multipart body with one part.');
  }
  return {
    body: bytes.subarray(headersEnd + HEADERS_END.length, close),
    contentType: headerValue(decoder.decode(bytes.subarray(0, headersEnd)), 'content-type'),
  };
}

/**
 * The parts of a multipart response, as they arrive: yields { body, contentType } where body is a
 * Uint8Array over an ArrayBuffer of its own.
 */
export async function* parts(response) {
  const boundary = parameter(response.headers.get('Content-Type'), 'boundary');
  if (!boundary) throw new Error('The response is not multipart.');
  // A CRLF in front makes the first delimiter look like every other one.
  const delimiter = encoder.encode(`\r\n--${boundary}`);
  const reader = response.body.getReader();
  let buffer = new Uint8Array(1 << 20);
  buffer.set([13, 10]);
  let length = 2;
  let done = false;

  async function more() {
    const chunk = await reader.read();
    if (chunk.done) {
      done = true;
      return;
    }
    if (length + chunk.value.length > buffer.length) {
      const grown = new Uint8Array(Math.max(buffer.length * 2, length + chunk.value.length));
      grown.set(buffer.subarray(0, length));
      buffer = grown;
    }
    buffer.set(chunk.value, length);
    length += chunk.value.length;
  }

  // Returns the index of `needle` at or after `from`, reading more of the body as needed.
  async function find(needle, from) {
    let scanFrom = from;
    for (;;) {
      const at = indexOf(buffer.subarray(0, length), needle, scanFrom);
      if (at >= 0) return at;
      if (done) throw new Error('The multipart body ended early.');
      scanFrom = Math.max(from, length - needle.length + 1);
      await more();
    }
  }

  function drop(count) {
    buffer.copyWithin(0, count, length);
    length -= count;
  }

  try {
    drop((await find(delimiter, 0)) + delimiter.length);
    for (;;) {
      while (length < 2 && !done) await more();
      if (buffer[0] === DASH && buffer[1] === DASH) return; // the close delimiter
      const headersEnd = await find(HEADERS_END, 0);
      const contentType = headerValue(decoder.decode(buffer.subarray(0, headersEnd)), 'content-type');
      const start = headersEnd + HEADERS_END.length;
      const end = await find(delimiter, start);
      yield { body: buffer.slice(start, end), contentType };
      drop(end + delimiter.length);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}
