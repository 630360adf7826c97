// The abusive visitor of issue #21, as a small script with stock parts (Node fetch, `ws`, `yjs`,
// `y-protocols`): each command floods one guardrail and prints one JSON line saying what the
// server answered, from the client's side.
//   node abuse.mjs signins <http base> <count>
//   node abuse.mjs creations <http base> <token> <count>
//   node abuse.mjs grow <ws url with token> <seconds> <characters per insert> <inserts per second>
//   node abuse.mjs crowd <ws url without token> <token,token,...> <sockets per token>
import WebSocket from "ws";
import * as encoding from "lib0/encoding";
import * as syncProtocol from "y-protocols/sync";
import * as Y from "yjs";

const [, , command, ...args] = process.argv;

const tally = (counts, key) => {
  counts[key] = (counts[key] ?? 0) + 1;
};

async function signins(base, count) {
  const statuses = {};
  let retryAfter = null;
  let refusal = null;
  for (let i = 0; i < Number(count); i += 1) {
    const response = await fetch(`${base}/api/auth/anonymous`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: `bot ${i}` }),
    });
    tally(statuses, response.status);
    const body = await response.json();
    if (response.status === 429 && refusal === null) {
      retryAfter = response.headers.get("retry-after");
      refusal = body;
    }
  }
  return { statuses, retryAfter, refusal };
}

async function creations(base, token, count) {
  const statuses = {};
  const errors = {};
  for (let i = 0; i < Number(count); i += 1) {
    const response = await fetch(`${base}/api/rooms/bot-room-${i}/join`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    });
    tally(statuses, response.status);
    if (response.status !== 200) tally(errors, (await response.json()).error);
  }
  return { statuses, errors };
}

// One socket that waits for the server's sync step 1, sends `update`, and reports how it ended:
// the close code, or "open" when the server still had it open after `holdMs`.
function insertOnce(url, update, holdMs) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let sent = false;
    let timer = null;
    ws.binaryType = "nodebuffer";
    ws.on("message", (data) => {
      if (sent || data[0] !== 0 || data[1] !== 0) return;
      sent = true;
      const encoder = encoding.createEncoder();
      encoding.writeVarUint(encoder, 0);
      syncProtocol.writeUpdate(encoder, update);
      ws.send(encoding.toUint8Array(encoder));
      timer = setTimeout(() => {
        resolve({ end: "open", reason: "" });
        ws.close();
      }, holdMs);
    });
    ws.on("error", () => {});
    ws.on("close", (code, reason) => {
      if (timer !== null) clearTimeout(timer);
      resolve({ end: String(code), reason: reason.toString() });
    });
  });
}

async function grow(url, seconds, characters, perSecond) {
  const ends = {};
  const reasons = {};
  const attempts = [];
  const started = Date.now();
  let sentBytes = 0;
  while (Date.now() - started < Number(seconds) * 1000) {
    const doc = new Y.Doc(); // a new client id each time: every update is a new insertion
    doc.getText("t").insert(0, "x".repeat(Number(characters)));
    const update = Y.encodeStateAsUpdate(doc);
    sentBytes += update.length;
    attempts.push(
      insertOnce(url, update, 2000).then(({ end, reason }) => {
        tally(ends, end);
        if (reason) reasons[end] = reason;
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000 / Number(perSecond)));
  }
  await Promise.all(attempts);
  return { attempts: attempts.length, ends, reasons, sentBytes };
}

// Every socket is kept until the server either closes it (a refusal) or greets it (sync step 1:
// it joined); once every socket has its answer, the joined ones are closed.
async function crowd(url, tokenList, perToken) {
  const answers = [];
  const joined = [];
  const ends = {};
  const reasons = {};
  for (const token of tokenList.split(",")) {
    for (let i = 0; i < Number(perToken); i += 1) {
      answers.push(
        new Promise((resolve) => {
          const ws = new WebSocket(`${url}?token=${token}`, { perMessageDeflate: false });
          let answered = false;
          const answer = (end, reason) => {
            if (answered) return;
            answered = true;
            tally(ends, end);
            if (reason) reasons[end] = reason;
            resolve();
          };
          ws.on("error", () => {});
          ws.on("message", () => {
            if (!answered) joined.push(ws);
            answer("joined", "");
          });
          ws.on("close", (code, reason) => answer(String(code), reason.toString()));
        }),
      );
    }
  }
  await Promise.all(answers);
  await Promise.all(
    joined.map((ws) => new Promise((resolve) => {
      ws.on("close", resolve);
      ws.close();
    })),
  );
  return { sockets: answers.length, ends, reasons };
}

const commands = { signins, creations, grow, crowd };
const result = await commands[command](...args);
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
