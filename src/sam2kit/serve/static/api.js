// HTTP calls to the sam2kit service: bearer token, JSON errors, server-sent events over fetch.

let token = sessionStorage.getItem("sam2kit-token") || "";

export function setToken(value) {
  token = value;
  sessionStorage.setItem("sam2kit-token", value);
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra = {}) {
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function check(response) {
  if (response.ok) return response;
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) { /* not JSON */ }
  throw new ApiError(response.status, code, message);
}

export async function request(method, path, body) {
  const init = { method, headers: headers() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers = headers({ "Content-Type": "application/json" });
  }
  const response = await check(await fetch(path, init));
  if (response.status === 204) return null;
  return response.json();
}

export async function blob(path) {
  return (await check(await fetch(path, { headers: headers() }))).blob();
}

export async function upload(path, file) {
  const form = new FormData();
  form.append("file", file, file.name);
  return request("POST", path, form);
}

// Reads a text/event-stream; calls onEvent(name, data) for each event until the stream ends.
export async function events(path, onEvent, signal) {
  const response = await check(await fetch(path, { headers: headers(), signal }));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      let data = "";
      for (const line of chunk.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      onEvent(name, data ? JSON.parse(data) : null);
    }
  }
}
