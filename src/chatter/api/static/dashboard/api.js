// The API as the dashboard calls it: a bearer kept in sessionStorage (never in a URL),
// JSON in and out, errors as ApiError with the server's {"error": {code, message}}.

const STORAGE_KEY = "chatter.dashboard.credential";
// The page is served at <root>/dashboard; its modules at <root>/dashboard/*.js.
export const API_ROOT = new URL("../api/v1/", import.meta.url);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function apiUrl(path, params = {}) {
  const url = new URL(path.replace(/^\//, ""), API_ROOT);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  return url;
}

/** {kind: "token" | "key", value, refresh?} or null. */
export function loadCredential() {
  try {
    return JSON.parse(sessionStorage.getItem(STORAGE_KEY) ?? "null");
  } catch {
    return null;
  }
}

export function saveCredential(credential) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credential));
}

export function clearCredential() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function authHeaders() {
  const credential = loadCredential();
  return credential ? { Authorization: `Bearer ${credential.value}` } : {};
}

async function errorOf(response) {
  let code = "http_error";
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, code, message);
}

/** A refresh token gets a new access token once; an API key has nothing to renew. */
async function renew() {
  const credential = loadCredential();
  if (!credential || credential.kind !== "token" || !credential.refresh) return false;
  const response = await fetch(apiUrl("auth/refresh"), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: credential.refresh }),
  });
  if (!response.ok) return false;
  const pair = await response.json();
  saveCredential({ kind: "token", value: pair.access_token, refresh: pair.refresh_token });
  return true;
}

/** fetch with the bearer; one renewal on a 401. Returns the Response (ok) or throws. */
export async function request(path, params = {}, init = {}) {
  for (let attempt = 0; ; attempt += 1) {
    const response = await fetch(apiUrl(path, params), {
      ...init,
      headers: { Accept: "application/json", ...authHeaders(), ...(init.headers ?? {}) },
    });
    if (response.ok) return response;
    if (response.status === 401 && attempt === 0 && (await renew())) continue;
    throw await errorOf(response);
  }
}

export async function getJson(path, params = {}) {
  return (await request(path, params)).json();
}

export async function login(email, password) {
  const response = await fetch(apiUrl("auth/login"), {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  const pair = await response.json();
  saveCredential({ kind: "token", value: pair.access_token, refresh: pair.refresh_token });
}

export { renew };
