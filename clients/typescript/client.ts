// A typed client for the todo service: openapi-fetch over the types that
// openapi-typescript generates from the served document (schema.d.ts).
// Every call is checked against `paths`: a wrong URL, a missing path
// parameter or a body of the wrong shape does not compile.
import createClient, { type Middleware } from "openapi-fetch";

import type { components, paths } from "./schema.js";

export type Schemas = components["schemas"];
export type Task = Schemas["TaskOut"];
export type User = Schemas["UserOut"];
export type TokenPair = Schemas["TokenPairOut"];
export type ErrorBody = Schemas["ErrorOut"];
export type Pagination = Schemas["PaginationMetadata"];

export type TodoClient = ReturnType<typeof createTodoClient>;

/** A client that sends `session.token` as the bearer token, unless a call
 * sets its own `Authorization` header (refresh sends the refresh token). */
export function createTodoClient(baseUrl: string, session: { token?: string }) {
  const client = createClient<paths>({ baseUrl });
  const bearer: Middleware = {
    onRequest({ request }) {
      if (session.token !== undefined && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${session.token}`);
      }
      return request;
    },
  };
  client.use(bearer);
  return client;
}

/** The `X-Pagination` header of a list response, parsed and checked: the
 * five page numbers always there, `previous_page` and `next_page` where
 * there is such a page, nothing else, all whole numbers. */
export function readPagination(headers: Headers): Pagination {
  const raw = headers.get("X-Pagination");
  if (raw === null) {
    throw new Error("the list response has no X-Pagination header");
  }
  const parsed: unknown = JSON.parse(raw);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error(`X-Pagination is not a JSON object: ${raw}`);
  }
  const entries = new Map<string, unknown>(Object.entries(parsed));
  const known = [...ALWAYS, ...WHERE_THERE_IS_ONE];
  for (const key of entries.keys()) {
    if (!known.includes(key)) {
      throw new Error(`X-Pagination has an unexpected key ${key}: ${raw}`);
    }
  }
  const number = (key: string): number | undefined => {
    const value = entries.get(key);
    if (value === undefined) {
      return undefined;
    }
    if (typeof value !== "number" || !Number.isInteger(value)) {
      throw new Error(`X-Pagination ${key} is not a whole number: ${raw}`);
    }
    return value;
  };
  const required = (key: string): number => {
    const value = number(key);
    if (value === undefined) {
      throw new Error(`X-Pagination has no ${key}: ${raw}`);
    }
    return value;
  };
  const firstPage = required("first_page");
  if (firstPage !== 1) {
    throw new Error(`X-Pagination first_page is not 1: ${raw}`);
  }
  const previous = number("previous_page");
  const next = number("next_page");
  return {
    total: required("total"),
    total_pages: required("total_pages"),
    first_page: firstPage,
    last_page: required("last_page"),
    page: required("page"),
    ...(previous === undefined ? {} : { previous_page: previous }),
    ...(next === undefined ? {} : { next_page: next }),
  };
}

const ALWAYS = ["total", "total_pages", "first_page", "last_page", "page"];
const WHERE_THERE_IS_ONE = ["previous_page", "next_page"];

/** The RFC 8288 `Link` header as a map from relation (next, prev, first,
 * last) to URL. */
export function readLinks(headers: Headers): Map<string, URL> {
  const links = new Map<string, URL>();
  const raw = headers.get("Link");
  if (raw === null) {
    return links;
  }
  for (const part of raw.split(",")) {
    const match = /^\s*<([^>]*)>\s*;\s*rel="?([^";]+)"?/.exec(part);
    if (match === null || match[1] === undefined || match[2] === undefined) {
      throw new Error(`Link header part is not <url>; rel=...: ${part}`);
    }
    links.set(match[2], new URL(match[1], "http://base.invalid"));
  }
  return links;
}

type Responses<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: infer R;
}
  ? R
  : never;

/** The statuses the document declares for an operation (path and method). */
export type DeclaredStatus<P extends keyof paths, M extends keyof paths[P]> = keyof Responses<
  P,
  M
> &
  number;

type HeadersOf<R> = R extends { headers: infer H } ? H : never;

/** The response headers the document names for an operation's status, without
 * the catch-all `[name: string]: unknown` that openapi-typescript adds. */
export type DeclaredHeader<
  P extends keyof paths,
  M extends keyof paths[P],
  S extends DeclaredStatus<P, M>,
> = keyof {
  [K in keyof HeadersOf<Responses<P, M>[S]> as string extends K ? never : K]: unknown;
} &
  string;

/** One answer of one operation, as the document declares it: `[path,
 * method, status]`. Naming a status the document does not declare for that
 * operation does not compile. */
export function declared<
  P extends keyof paths,
  M extends keyof paths[P],
  S extends DeclaredStatus<P, M>,
>(path: P, method: M, status: S): readonly [P, M, S] {
  return [path, method, status];
}

/** A response header that the document declares for this operation and
 * status (a header it does not name does not compile); the response must
 * have that status and carry the header. */
export function readHeader<
  P extends keyof paths,
  M extends keyof paths[P],
  S extends DeclaredStatus<P, M>,
>(answer: readonly [P, M, S], response: Response, name: DeclaredHeader<P, M, S>): string {
  const [path, method, status] = answer;
  if (response.status !== status) {
    throw new Error(`${String(method)} ${path}: status ${response.status}, expected ${status}`);
  }
  const value = response.headers.get(name);
  if (value === null) {
    throw new Error(`${String(method)} ${path} ${status}: no ${name} header`);
  }
  return value;
}
