// The backend's HTTP API, with errors turned into sentences a person can act on.

const KEY_STORAGE = "aleaart-api-key";

export class ApiError extends Error {
  constructor(message, { status = 0, kind = "backend" } = {}) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { ...extra, "X-API-Key": key } : extra;
}

// What a failed answer means, by where it came from and its status.
function explain(status, message, context) {
  if (status === 401) return new ApiError(`This backend needs an API key: ${message}`, { status, kind: "key" });
  if (status === 429) return new ApiError(`The queue is full: ${message}`, { status, kind: "queue" });
  if (context === "chain" && (status === 502 || status === 503)) {
    return new ApiError(`The chain is unreachable or not configured: ${message}`, { status, kind: "chain" });
  }
  if (context === "chain" && status === 409) return new ApiError(message, { status, kind: "not-ready" });
  if (context === "chain" && status === 404) return new ApiError(message, { status, kind: "not-minted" });
  if (status === 503) {
    return new ApiError(`The model is not loaded: ${message}`, { status, kind: "model" });
  }
  return new ApiError(message || `The backend answered ${status}`, { status });
}

export async function request(method, path, { body, context } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(
      `Cannot reach the AleaArt backend at ${location.origin}. Is it running (./start_python_backend.sh)?`,
      { kind: "unreachable" },
    );
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw explain(response.status, data.error, context);
  return data;
}

// Server-Sent Events over fetch (EventSource cannot send the API key header).
export async function* events(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }) });
  } catch {
    throw new ApiError("Lost the connection to the backend while watching the job.", { kind: "unreachable" });
  }
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw explain(response.status, data.error);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = { type: "message", data: "" };
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event.type = line.slice(7);
        else if (line.startsWith("data: ")) event.data += line.slice(6);
      }
      if (event.data) yield { type: event.type, data: JSON.parse(event.data) };
    }
  }
}
