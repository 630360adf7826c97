// Node's own fetch (undici) posting a body of BYTES bytes, then reporting the answer.
// Usage: node post_big.mjs <url> <bytes> <length|chunked> <content type> <keep-alive|close> [token]
// Prints one JSON line {"status", "body"} (or {"error"}) and exits 0 when an answer came.
const [, , url, bytes, framing, contentType, connection, token] = process.argv;
const payload = Buffer.alloc(Number(bytes), 0x41);
// "close" makes the server end the connection after its answer, as urllib's requests do.
const headers = { "Content-Type": contentType, Connection: connection };
if (token) headers.Authorization = `Bearer ${token}`;
// A stream has no length: fetch sends it with Transfer-Encoding: chunked.
const body =
  framing === "chunked"
    ? new ReadableStream({
        pull(controller) {
          controller.enqueue(payload);
          controller.close();
        },
      })
    : payload;
try {
  const response = await fetch(url, { method: "POST", headers, body, duplex: "half" });
  const text = await response.text();
  process.stdout.write(JSON.stringify({ status: response.status, body: text }) + "\n");
  process.exit(0);
} catch (error) {
  const cause = error.cause ? String(error.cause.code || error.cause) : "";
  process.stdout.write(JSON.stringify({ error: `${error} ${cause}` }) + "\n");
  process.exit(1);
}
