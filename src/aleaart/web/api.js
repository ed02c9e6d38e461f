// The backend's HTTP API, with errors turned into sentences a person can act on.

const KEY_STORAGE = "aleaart-api-key";

export class ApiError extends Error {
  constructor(message, { status = 0, kind = "backend", code = null } = {}) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.code = code;
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

// What a failed answer means, by its stable error code (the text is for people, not for branching).
const EXPLAIN = {
  unauthorized: { kind: "key", prefix: "This backend needs an API key: " },
  queue_full: { kind: "queue", prefix: "The queue is full: " },
  chain_unreachable: { kind: "chain", prefix: "The chain is unreachable: " },
  wrong_chain: { kind: "chain", prefix: "The chain is not configured right: " },
  token_not_ready: { kind: "not-ready", prefix: "" },
  not_found: { kind: "not-found", prefix: "" },
  model_unavailable: { kind: "model", prefix: "The model is not loaded: " },
  shutting_down: { kind: "restarting", prefix: "The backend is restarting: " },
  disk_full: { kind: "disk", prefix: "The backend's disk is full: " },
  cancelled: { kind: "cancelled", prefix: "" },
};

function explain(status, data) {
  const message = data.error || `The backend answered ${status}`;
  const known = EXPLAIN[data.code];
  if (!known) return new ApiError(message, { status, code: data.code });
  return new ApiError(known.prefix + message, { status, kind: known.kind, code: data.code });
}

export async function request(method, path, { body } = {}) {
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
  if (!response.ok) throw explain(response.status, data);
  return data;
}

// A weights file to POST /models (multipart), with the admin key; its errors are the upload's own, never a
// reason to ask for the API key.
export async function uploadModel(file, kind, adminKey) {
  const form = new FormData();
  form.append("file", file);
  if (kind) form.append("kind", kind);
  let response;
  try {
    response = await fetch("/models", { method: "POST", headers: headers({ "X-Admin-Key": adminKey }), body: form });
  } catch {
    throw new ApiError("The upload did not reach the backend.", { kind: "unreachable" });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(data.error || `The backend answered ${response.status}`,
    { status: response.status, code: data.code });
  return data;
}

// A file to POST as multipart field "file" (POST /verify), with the API key where one is saved.
export async function postFile(path, file) {
  const form = new FormData();
  form.append("file", file);
  let response;
  try {
    response = await fetch(path, { method: "POST", headers: headers(), body: form });
  } catch {
    throw new ApiError("The file did not reach the backend.", { kind: "unreachable" });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw explain(response.status, data);
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
    throw explain(response.status, data);
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
