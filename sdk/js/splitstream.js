// SplitStream browser snippet: one ES module, no dependencies, no build step (browsers and Node >= 18).
// Bucketing reproduces splitstream/hashing.py (hash version 1) and is pinned by sdk/test-vectors.json.

export const HASH_VERSION = 1;
export const BUCKETS = 10000;

// The collector takes at most 1000 events a request, and a keepalive fetch or beacon body at most 64 KiB in total,
// so batches are sent in chunks of maxBatch and the queue stops growing when the collector stays unreachable.
const MAX_EVENTS_PER_REQUEST = 1000;
const MAX_QUEUED = 1000;
const UTF8 = new TextEncoder();
// Node 18 has no global crypto in ES modules; browsers and Node >= 19 never take the import.
const webCrypto = globalThis.crypto ?? (await import("node:crypto")).webcrypto;

/**
 * murmur3 x86_32 with seed 0 over the UTF-8 bytes of `text`, unsigned.
 * Hand-written on purpose: JavaScript has no standard murmur3, and the snippet must load without a build step.
 * @param {string} text
 * @returns {number} an integer in [0, 2**32)
 */
export function murmur3(text) {
  const data = UTF8.encode(text);
  const tail = data.length & ~3;
  let hash = 0;
  for (let i = 0; i < tail; i += 4) {
    hash ^= scramble(data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    hash = (Math.imul(rotateLeft(hash, 13), 5) + 0xe6546b64) | 0;
  }
  const rest = data.length & 3;
  if (rest > 0) {
    let k = data[tail];
    if (rest > 1) k |= data[tail + 1] << 8;
    if (rest > 2) k |= data[tail + 2] << 16;
    hash ^= scramble(k);
  }
  hash ^= data.length;
  hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b);
  hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35);
  return (hash ^ (hash >>> 16)) >>> 0;
}

const rotateLeft = (x, bits) => (x << bits) | (x >>> (32 - bits));
const scramble = (k) => Math.imul(rotateLeft(Math.imul(k, 0xcc9e2d51), 15), 0x1b873593);

/**
 * The unit's bucket in [0, BUCKETS) for this salt.
 * @param {string} salt
 * @param {string} unitId
 * @returns {number}
 */
export function bucket(salt, unitId) {
  return murmur3(`${salt}:${unitId}`) % BUCKETS;
}

// Math.round rounds half towards +Infinity and Python's round() half to even; floor(x + 0.5) is the same in both.
const roundHalfUp = (value) => Math.floor(value + 0.5);

/**
 * Each variant's half-open bucket range [start, end) at this coverage; start === end takes nobody.
 * @param {number[]} weights positive, in declaration order, summing to 1
 * @param {number} coverage in [0, 1]
 * @returns {Array<[number, number]>}
 */
export function variantRanges(weights, coverage) {
  if (!Array.isArray(weights) || weights.length === 0 || weights.some((w) => !Number.isFinite(w) || w <= 0)) {
    throw new RangeError("weights must be non-empty, finite and positive");
  }
  if (!(coverage >= 0 && coverage <= 1)) throw new RangeError("coverage must lie in [0, 1]");
  const points = [0];
  let cumulative = 0;
  for (const weight of weights.slice(0, -1)) {
    cumulative += weight;
    points.push(Math.min(BUCKETS, roundHalfUp(cumulative * BUCKETS)));
  }
  points.push(BUCKETS);
  return weights.map((_, i) => [points[i], points[i] + roundHalfUp((points[i + 1] - points[i]) * coverage)]);
}

/**
 * The index of the variant whose range holds `position`; null when the position is outside the coverage.
 * @param {number[]} weights
 * @param {number} coverage
 * @param {number} position an integer bucket in [0, BUCKETS)
 * @returns {number | null}
 */
export function variantIndex(weights, coverage, position) {
  if (!Number.isInteger(position) || position < 0 || position >= BUCKETS) {
    throw new RangeError(`position must lie in [0, ${BUCKETS})`);
  }
  const index = variantRanges(weights, coverage).findIndex(([start, end]) => start <= position && position < end);
  return index === -1 ? null : index;
}

// crypto.randomUUID exists only in secure contexts (HTTPS or localhost); getRandomValues exists everywhere.
function newEventId() {
  if (typeof webCrypto.randomUUID === "function") return webCrypto.randomUUID();
  const bytes = webCrypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * @typedef {object} Assignment One entry of POST /v1/assign's `assignments`, plus `use()`.
 * @property {string} experiment
 * @property {string | null} variant
 * @property {unknown} payload
 * @property {boolean} in_experiment
 * @property {string} reason
 * @property {object | null} exposure the exposure event to send when the payload is shown
 * @property {() => unknown} use returns `payload` and queues `exposure` (once per event_id): call it when the
 *   payload is actually shown, not when it is fetched
 */

/**
 * @typedef {object} ClientOptions
 * @property {string} assignUrl base URL of the assignment service
 * @property {string} collectorUrl base URL of the collector
 * @property {string} apiKey an ingest-scope key
 * @property {string} userId
 * @property {Record<string, string | number | boolean>} [attributes]
 * @property {typeof fetch} [fetch] defaults to the global fetch
 * @property {number} [flushIntervalMs] default 2000
 * @property {number} [maxBatch] default 50; the queue is flushed when it reaches this size
 */

/**
 * A client for one user. Events are queued and sent in batches; a network error or 5xx keeps them for the next
 * flush, a 4xx drops them with console.warn (the error body names the bad field).
 * @param {ClientOptions} options
 */
export function createClient(options) {
  const { apiKey, userId, attributes = {}, flushIntervalMs = 2000 } = options;
  const maxBatch = Math.min(Math.max(1, options.maxBatch ?? 50), MAX_EVENTS_PER_REQUEST);
  const assignUrl = options.assignUrl.replace(/\/+$/, "");
  const eventsUrl = `${options.collectorUrl.replace(/\/+$/, "")}/v1/events`;
  const send = options.fetch ?? ((...args) => globalThis.fetch(...args));
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${apiKey}` };
  const post = (url, body, keepalive = false) =>
    send(url, { method: "POST", headers, body: JSON.stringify(body), keepalive });
  /** @type {object[]} */
  let queue = [];
  const exposed = new Set();
  let sending = Promise.resolve();
  let busy = false;
  // While the collector fails, only the timer retries: a flush per tracked event would hammer it.
  let failing = false;

  function enqueue(event) {
    queue.push(event);
    if (queue.length > MAX_QUEUED) {
      console.warn(`SplitStream dropped ${queue.length - MAX_QUEUED} events: the collector is unreachable`);
      queue.splice(0, queue.length - MAX_QUEUED);
    }
    if (queue.length >= maxBatch && !busy && !failing) void flush();
  }

  function expose(assignment) {
    const exposure = assignment.exposure;
    if (exposure && !exposed.has(exposure.event_id)) {
      exposed.add(exposure.event_id);
      enqueue(exposure);
    }
  }

  async function sendQueued() {
    busy = true;
    try {
      await sendBatch(queue.splice(0));
    } finally {
      busy = false;
    }
  }

  async function sendBatch(batch) {
    for (let start = 0; start < batch.length; start += maxBatch) {
      const events = batch.slice(start, start + maxBatch);
      let response;
      try {
        response = await post(eventsUrl, { events }, true);
      } catch {
        response = null;
      }
      if (response === null || response.status >= 500) {
        queue = batch.slice(start).concat(queue); // kept in order for the next flush
        failing = true;
        return;
      }
      failing = false;
      const answer = await response.json().catch(() => null);
      if (!response.ok) {
        console.warn(`SplitStream dropped ${events.length} events: HTTP ${response.status}`, answer);
      } else if (answer?.rejected?.length) {
        console.warn(`SplitStream: the collector rejected ${answer.rejected.length} events`, answer.rejected);
      }
    }
  }

  /** Sends every queued event; resolves when done (never rejects). Calls run one after another. */
  function flush() {
    sending = sending.then(sendQueued, sendQueued);
    return sending;
  }

  // sendBeacon survives the page going away but cannot set headers, hence the key in the query string; a string
  // body goes out as text/plain, which needs no CORS preflight.
  function flushOnHide() {
    if (queue.length === 0) return;
    if (typeof navigator === "undefined" || typeof navigator.sendBeacon !== "function") {
      void flush();
      return;
    }
    const url = `${eventsUrl}?api_key=${encodeURIComponent(apiKey)}`;
    const batch = queue.splice(0);
    for (let start = 0; start < batch.length; start += maxBatch) {
      if (!navigator.sendBeacon(url, JSON.stringify({ events: batch.slice(start, start + maxBatch) }))) {
        queue = batch.slice(start).concat(queue);
        void flush();
        return;
      }
    }
  }

  const onVisibilityChange = () => {
    if (document.visibilityState === "hidden") flushOnHide();
  };
  const inBrowser = typeof window !== "undefined" && typeof document !== "undefined";
  if (inBrowser) {
    window.addEventListener("pagehide", flushOnHide);
    document.addEventListener("visibilitychange", onVisibilityChange);
  }
  const timer = setInterval(() => {
    if (queue.length > 0) void flush();
  }, flushIntervalMs);
  timer.unref?.(); // in Node, a forgotten client must not keep the process alive

  return {
    /**
     * Assignments without logging exposures; call `use()` on one when its payload is shown.
     * Rejects on a network error or a non-2xx answer, so the caller can fall back to its default.
     * @param {string[]} [experiments] default: every running or shipped experiment
     * @returns {Promise<Assignment[]>}
     */
    async assign(experiments) {
      const body = { user_id: userId, attributes, log_exposure: false };
      if (experiments !== undefined) body.experiments = experiments;
      const response = await post(`${assignUrl}/v1/assign`, body);
      if (!response.ok) throw new Error(`SplitStream assign failed: HTTP ${response.status}`);
      const { assignments } = await response.json();
      return assignments.map((assignment) => ({
        ...assignment,
        use() {
          expose(assignment);
          return assignment.payload;
        },
      }));
    },

    /**
     * Queues a conversion or metric event. `properties` are accepted but not sent: the event schema has no field
     * for them yet.
     * @param {string} name
     * @param {number} [value]
     * @param {Record<string, unknown>} [properties]
     */
    track(name, value, properties) {
      const timestamp = new Date().toISOString();
      // JSON.stringify leaves out a value that is undefined.
      enqueue({ type: "event", event_id: newEventId(), user_id: userId, name, value, timestamp });
    },

    flush,

    /** Stops the timer and page listeners, then sends what is left. */
    close() {
      clearInterval(timer);
      if (inBrowser) {
        window.removeEventListener("pagehide", flushOnHide);
        document.removeEventListener("visibilitychange", onVisibilityChange);
      }
      return flush();
    },
  };
}
