// POSTs a JSON body with Node's own fetch, through an undici Agent with the given headers and
// body timeouts (as a Next.js route's fetch would run), and prints what came back as one JSON line.
import { Agent } from "undici";

const [url, body, timeoutMs] = process.argv.slice(2);
const dispatcher = new Agent({ headersTimeout: Number(timeoutMs), bodyTimeout: Number(timeoutMs) });
try {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
    dispatcher,
  });
  const result = await response.json();
  console.log(JSON.stringify({ ok: response.ok, status: response.status, result }));
} catch (error) {
  console.log(JSON.stringify({ ok: false, error: error.name, cause: error.cause?.code ?? error.cause?.name ?? null }));
}
