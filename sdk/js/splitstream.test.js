import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";

import { BUCKETS, HASH_VERSION, bucket, createClient, murmur3, variantIndex, variantRanges } from "./splitstream.js";

const vectors = JSON.parse(readFileSync(new URL("../test-vectors.json", import.meta.url), "utf8"));

describe("hashing matches sdk/test-vectors.json", () => {
  test("constants", () => {
    assert.equal(HASH_VERSION, vectors.hash_version);
    assert.equal(BUCKETS, vectors.buckets);
  });

  test("every case: bucket and variant", () => {
    assert.ok(vectors.cases.length > 0);
    for (const c of vectors.cases) {
      const position = bucket(c.salt, c.unit_id);
      assert.equal(position, c.bucket, `bucket(${c.salt}, ${c.unit_id})`);
      assert.equal(variantIndex(c.weights, c.coverage, position), c.variant, JSON.stringify(c));
    }
  });

  test("every edge: variant", () => {
    assert.ok(vectors.edges.length > 0);
    for (const e of vectors.edges) {
      assert.equal(variantIndex(e.weights, e.coverage, e.bucket), e.variant, JSON.stringify(e));
    }
  });
});

describe("murmur3 x86_32, seed 0", () => {
  // Published vectors; each was also checked against Python's mmh3.hash(text, 0, signed=False).
  test("published vectors", () => {
    assert.equal(murmur3(""), 0);
    assert.equal(murmur3("Hello, world!"), 0xc0363e43);
    assert.equal(murmur3("The quick brown fox jumps over the lazy dog"), 0x2e4ff723);
  });

  // Values from Python's mmh3: they cover 1-, 2- and 3-byte tails and 2-, 3- and 4-byte UTF-8 sequences.
  test("non-ASCII and tail lengths, checked against mmh3", () => {
    assert.equal(murmur3("héllo wörld"), 2549609076);
    assert.equal(murmur3("标题实验:某用户"), 178008313);
    assert.equal(murmur3("emoji-🎉"), 1129666732);
    assert.equal(murmur3("ab"), 2613040991);
    assert.equal(murmur3("abc"), 3017643002);
  });
});

describe("variant ranges", () => {
  test("ranges keep their start as coverage ramps", () => {
    assert.deepEqual(variantRanges([0.5, 0.5], 1), [[0, 5000], [5000, 10000]]);
    assert.deepEqual(variantRanges([0.5, 0.5], 0.1), [[0, 500], [5000, 5500]]);
  });

  test("invalid input is refused", () => {
    assert.throws(() => variantRanges([], 1), RangeError);
    assert.throws(() => variantRanges([0.5, 0], 1), RangeError);
    assert.throws(() => variantRanges([1], 1.5), RangeError);
    assert.throws(() => variantIndex([1], 1, BUCKETS), RangeError);
  });
});

const ASSIGN_URL = "https://assign.test";
const COLLECTOR_URL = "https://collect.test/";
const API_KEY = "ingest key/+";
const EXPOSURE = {
  type: "exposure", event_id: "exp-0123", user_id: "u1", experiment: "title-test", variant: "b", phase: 1,
  timestamp: "2026-11-23T15:00:00Z",
};

function assignmentOf(exposure) {
  return {
    experiment: "title-test", variant: "b", payload: { title: "B" }, in_experiment: exposure !== null,
    reason: "hashed", phase: 1, exposure_logged: false, exposure,
  };
}

/** A fetch that records its calls and answers each with the next of `answers` (a status, a body, or an Error). */
function fakeFetch(answers = []) {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, init, body: init.body === undefined ? undefined : JSON.parse(init.body) });
    const answer = answers.shift() ?? { status: 202, body: { accepted: 0, rejected: [] } };
    if (answer instanceof Error) throw answer;
    return new Response(JSON.stringify(answer.body ?? {}), { status: answer.status });
  };
  return { fetch, calls };
}

function clientWith(fetch, extra = {}) {
  return createClient({
    assignUrl: ASSIGN_URL, collectorUrl: COLLECTOR_URL, apiKey: API_KEY, userId: "u1",
    attributes: { country: "CN", is_new: true }, fetch, flushIntervalMs: 1e6, ...extra,
  });
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("client", () => {
  test("assign posts the user, attributes and log_exposure false with the bearer key", async () => {
    const { fetch, calls } = fakeFetch([{ status: 200, body: { user_id: "u1", assignments: [assignmentOf(null)] } }]);
    const client = clientWith(fetch);
    const assignments = await client.assign(["title-test"]);
    assert.equal(calls.length, 1);
    assert.equal(calls[0].url, "https://assign.test/v1/assign");
    assert.equal(calls[0].init.method, "POST");
    assert.equal(calls[0].init.headers.Authorization, `Bearer ${API_KEY}`);
    assert.equal(calls[0].init.headers["Content-Type"], "application/json");
    assert.deepEqual(calls[0].body, {
      user_id: "u1", attributes: { country: "CN", is_new: true }, log_exposure: false, experiments: ["title-test"],
    });
    assert.equal(assignments[0].variant, "b");
    await client.close();
  });

  test("assign without experiments leaves the list to the server; a non-2xx rejects", async () => {
    const { fetch, calls } = fakeFetch([{ status: 200, body: { assignments: [] } }, { status: 401 }]);
    const client = clientWith(fetch);
    assert.deepEqual(await client.assign(), []);
    assert.equal("experiments" in calls[0].body, false);
    await assert.rejects(client.assign(), /HTTP 401/);
    await client.close();
  });

  test("use() returns the payload and queues the exposure once per event_id", async () => {
    const document = { user_id: "u1", assignments: [assignmentOf(EXPOSURE)] };
    const { fetch, calls } = fakeFetch([{ status: 200, body: document }, { status: 200, body: document }]);
    const client = clientWith(fetch);
    const [first] = await client.assign();
    const [again] = await client.assign();
    assert.deepEqual(first.use(), { title: "B" });
    first.use();
    again.use();
    await client.flush();
    assert.equal(calls.length, 3);
    assert.equal(calls[2].url, "https://collect.test/v1/events");
    assert.deepEqual(calls[2].body, { events: [EXPOSURE] });
    await client.flush();
    assert.equal(calls.length, 3, "nothing left to send");
    await client.close();
  });

  test("an assignment without exposure queues nothing", async () => {
    const { fetch, calls } = fakeFetch([{ status: 200, body: { assignments: [assignmentOf(null)] } }]);
    const client = clientWith(fetch);
    const [assignment] = await client.assign();
    assert.deepEqual(assignment.use(), { title: "B" });
    await client.flush();
    assert.equal(calls.length, 1);
    await client.close();
  });

  test("track + flush posts the batch with keepalive and the bearer key; properties are not sent", async () => {
    const { fetch, calls } = fakeFetch();
    const client = clientWith(fetch);
    const before = Date.now();
    client.track("purchase", 12.5, { sku: "x" });
    client.track("signup");
    await client.flush();
    assert.equal(calls.length, 1);
    const { url, init, body } = calls[0];
    assert.equal(url, "https://collect.test/v1/events");
    assert.equal(init.method, "POST");
    assert.equal(init.keepalive, true);
    assert.equal(init.headers.Authorization, `Bearer ${API_KEY}`);
    const [purchase, signup] = body.events;
    assert.deepEqual(Object.keys(purchase).sort(), ["event_id", "name", "timestamp", "type", "user_id", "value"]);
    assert.deepEqual(
      { type: purchase.type, user_id: purchase.user_id, name: purchase.name, value: purchase.value },
      { type: "event", user_id: "u1", name: "purchase", value: 12.5 },
    );
    assert.equal("value" in signup, false);
    assert.equal(signup.name, "signup");
    assert.match(purchase.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(purchase.event_id, signup.event_id);
    assert.ok(Date.parse(purchase.timestamp) >= before - 1000 && purchase.timestamp.endsWith("Z"));
    await client.close();
  });

  test("a 503 or a network error keeps the events for the next flush", async () => {
    const { fetch, calls } = fakeFetch([{ status: 503 }, new TypeError("offline"), { status: 202 }]);
    const client = clientWith(fetch);
    client.track("a");
    client.track("b");
    await client.flush();
    await client.flush();
    await client.flush();
    assert.equal(calls.length, 3);
    assert.deepEqual(calls[1].body, calls[0].body);
    assert.deepEqual(calls[2].body, calls[0].body);
    assert.deepEqual(calls[0].body.events.map((e) => e.name), ["a", "b"]);
    await client.flush();
    assert.equal(calls.length, 3, "sent once accepted");
    await client.close();
  });

  test("a 422 drops the events with a warning", async (t) => {
    const warn = t.mock.method(console, "warn", () => {});
    const { fetch, calls } = fakeFetch([{ status: 422, body: { error: { code: "invalid" } } }]);
    const client = clientWith(fetch);
    client.track("purchase", 1);
    await client.flush();
    await client.flush();
    assert.equal(calls.length, 1);
    assert.equal(warn.mock.callCount(), 1);
    assert.match(warn.mock.calls[0].arguments[0], /dropped 1 events: HTTP 422/);
    await client.close();
  });

  test("the queue is flushed when it reaches maxBatch", async () => {
    const { fetch, calls } = fakeFetch();
    const client = clientWith(fetch, { maxBatch: 3 });
    client.track("a");
    client.track("b");
    await nextTurn();
    assert.equal(calls.length, 0);
    client.track("c");
    await nextTurn();
    assert.equal(calls.length, 1);
    assert.equal(calls[0].body.events.length, 3);
    await client.close();
  });

  test("while the collector fails, a full queue waits for the next flush instead of sending per event", async () => {
    const { fetch, calls } = fakeFetch([{ status: 503 }]);
    const client = clientWith(fetch, { maxBatch: 2 });
    client.track("a");
    client.track("b");
    await nextTurn();
    assert.equal(calls.length, 1);
    client.track("c");
    await nextTurn();
    assert.equal(calls.length, 1);
    await client.flush();
    assert.equal(calls.length, 3, "two chunks of maxBatch");
    assert.deepEqual(calls.slice(1).map((call) => call.body.events.map((e) => e.name)), [["a", "b"], ["c"]]);
    client.track("d");
    client.track("e");
    await nextTurn();
    assert.equal(calls.length, 4, "size-triggered flushes resume once the collector accepts");
    await client.close();
  });

  test("the timer flushes every flushIntervalMs", async () => {
    const { fetch, calls } = fakeFetch();
    const client = clientWith(fetch, { flushIntervalMs: 10 });
    client.track("a");
    for (let waited = 0; calls.length === 0 && waited < 2000; waited += 10) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(calls.length, 1);
    await client.close();
  });
});

test("without crypto.randomUUID (plain-http pages) event ids are still random v4 UUIDs", async (t) => {
  const saved = Object.getOwnPropertyDescriptor(globalThis, "crypto");
  const real = globalThis.crypto;
  Object.defineProperty(globalThis, "crypto", {
    value: { getRandomValues: (bytes) => real.getRandomValues(bytes) }, configurable: true,
  });
  t.after(() => Object.defineProperty(globalThis, "crypto", saved));
  // A distinct URL gives a fresh module instance, which picks up the stubbed crypto.
  const fresh = await import("./splitstream.js?without-random-uuid");
  const { fetch, calls } = fakeFetch();
  const client = fresh.createClient({
    assignUrl: ASSIGN_URL, collectorUrl: COLLECTOR_URL, apiKey: API_KEY, userId: "u1", fetch,
  });
  client.track("a");
  client.track("b");
  await client.close();
  const ids = calls[0].body.events.map((e) => e.event_id);
  for (const id of ids) assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.notEqual(ids[0], ids[1]);
});

describe("client in a page", () => {
  const names = ["window", "document", "navigator"];

  /** Installs fake page globals for one test and removes them afterwards. */
  function fakePage(t, sendBeacon) {
    const saved = names.map((name) => Object.getOwnPropertyDescriptor(globalThis, name));
    const page = { window: new EventTarget(), document: new EventTarget(), navigator: { sendBeacon } };
    page.document.visibilityState = "visible";
    for (const name of names) {
      Object.defineProperty(globalThis, name, { value: page[name], configurable: true, writable: true });
    }
    t.after(() => names.forEach((name, i) => {
      if (saved[i]) Object.defineProperty(globalThis, name, saved[i]);
      else delete globalThis[name];
    }));
    return page;
  }

  test("hiding the page sends the queue by beacon with the key in the query", async (t) => {
    const beacons = [];
    const page = fakePage(t, (url, data) => beacons.push({ url, data }) > 0);
    const { fetch, calls } = fakeFetch();
    const client = clientWith(fetch);
    client.track("a");
    page.document.dispatchEvent(new Event("visibilitychange"));
    assert.equal(beacons.length, 0, "still visible");
    page.document.visibilityState = "hidden";
    page.document.dispatchEvent(new Event("visibilitychange"));
    assert.equal(beacons.length, 1);
    assert.equal(beacons[0].url, `https://collect.test/v1/events?api_key=${encodeURIComponent(API_KEY)}`);
    assert.deepEqual(JSON.parse(beacons[0].data).events.map((e) => e.name), ["a"]);
    client.track("b");
    page.window.dispatchEvent(new Event("pagehide"));
    assert.equal(beacons.length, 2);
    await client.close();
    assert.equal(calls.length, 0);
  });

  test("a refused beacon falls back to fetch", async (t) => {
    const page = fakePage(t, () => false);
    const { fetch, calls } = fakeFetch();
    const client = clientWith(fetch);
    client.track("a");
    page.window.dispatchEvent(new Event("pagehide"));
    await client.flush();
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0].body.events.map((e) => e.name), ["a"]);
    await client.close();
  });
});
