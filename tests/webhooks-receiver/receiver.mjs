// A Standard Webhooks receiver for Handoff's tests and benchmark. Every delivery to
// POST /hook is verified with the `standardwebhooks` package (an implementation
// independent of Handoff's); a verified one is kept (and appended to $RECEIVER_LOG as a
// JSON line when set), a bad signature is answered 400 and counted.
//
//   node receiver.mjs            prints {"port": N} on its first line, then serves
//   POST /control {"secret", "fail", "delayMs"}  sets the secret, the number of deliveries
//        to answer 503 before recovering, and a delay before each answer
//   GET  /log                    {"verified": [{"id","type","receivedAt","lagMs","body"}], "rejected", "attempts", "failed"}
//   POST /reset                  forgets what was received
import { createServer } from "node:http";
import { appendFileSync } from "node:fs";
import { Webhook } from "standardwebhooks";

let webhook = null;
let fail = 0;
let delayMs = 0;
let verified = [];
let rejected = 0;
let attempts = 0;
let failed = 0;
const log = process.env.RECEIVER_LOG;

const read = (req) =>
  new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });

const answer = (res, status, body) => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(body === undefined ? "" : JSON.stringify(body));
};

const server = createServer(async (req, res) => {
  const body = await read(req);
  if (req.method === "POST" && req.url === "/control") {
    const c = JSON.parse(body || "{}");
    if (c.secret !== undefined) webhook = new Webhook(c.secret);
    if (c.fail !== undefined) fail = c.fail;
    if (c.delayMs !== undefined) delayMs = c.delayMs;
    return answer(res, 200, { ok: true });
  }
  if (req.method === "POST" && req.url === "/reset") {
    verified = [];
    rejected = attempts = failed = 0;
    return answer(res, 200, { ok: true });
  }
  if (req.method === "GET" && req.url === "/log") {
    return answer(res, 200, { verified, rejected, attempts, failed });
  }
  if (req.method === "POST" && req.url === "/hook") {
    attempts += 1;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    if (fail > 0) {
      fail -= 1;
      failed += 1;
      return answer(res, 503, { error: "failing on purpose" });
    }
    let payload;
    try {
      if (!webhook) throw new Error("no secret yet");
      payload = webhook.verify(body, req.headers);
    } catch (e) {
      rejected += 1;
      return answer(res, 400, { error: String(e.message || e) });
    }
    const receivedAt = Date.now();
    const entry = {
      id: req.headers["webhook-id"],
      type: payload.type,
      receivedAt,
      lagMs: receivedAt - Date.parse(payload.timestamp),
      body: payload,
    };
    verified.push(entry);
    if (log) appendFileSync(log, JSON.stringify(entry) + "\n");
    return answer(res, 204);
  }
  answer(res, 404, { error: "not found" });
});

server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT || 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
