// What a front end does, against a live server, through the generated
// client: register, log in, read the account, create tasks, list them with a
// filter and a sort and follow the paging headers, read, change (PATCH, PUT),
// toggle and delete a task, refresh the tokens, log out, and see the old
// token refused. Any answer other than the expected one stops it with a
// message and exit status 1.
//
//   node build/typescript-client/walkthrough.js http://127.0.0.1:8000
import {
  createTodoClient,
  readLinks,
  readPagination,
  type ErrorBody,
  type Schemas,
  type Task,
} from "./client.js";

/** What every openapi-fetch call resolves to. */
interface Answer<Data, Failure> {
  data?: Data;
  error?: Failure;
  response: Response;
}

class UnexpectedAnswer extends Error {}

function fail(message: string): never {
  throw new UnexpectedAnswer(message);
}

function check(condition: boolean, message: string): void {
  if (!condition) {
    fail(message);
  }
}

function describe(answer: Answer<unknown, unknown>): string {
  const { response } = answer;
  const body = answer.error ?? answer.data;
  return `${response.status} ${response.url} ${JSON.stringify(body)}`;
}

/** The request id and, for JSON, the content type: on every answer. */
function checkCommonHeaders(step: string, response: Response): void {
  check(response.headers.get("X-Request-ID") !== null, `${step}: no X-Request-ID header`);
  const type = response.headers.get("Content-Type");
  if (response.status !== 204) {
    check(type === "application/json", `${step}: Content-Type is ${type}`);
  }
}

/** A success with a body: its status must be `status`, and the body is returned. */
function expectData<Data, Failure>(
  step: string,
  answer: Answer<Data, Failure>,
  status: number,
): Data {
  checkCommonHeaders(step, answer.response);
  if (answer.response.status !== status || answer.data === undefined) {
    fail(`${step}: expected ${status}, got ${describe(answer)}`);
  }
  console.log(`ok   ${step} (${status})`);
  return answer.data;
}

function expectNoContent<Failure>(step: string, answer: Answer<unknown, Failure>): void {
  checkCommonHeaders(step, answer.response);
  if (answer.response.status !== 204) {
    fail(`${step}: expected 204, got ${describe(answer)}`);
  }
  console.log(`ok   ${step} (204)`);
}

function isErrorBody(value: unknown): value is ErrorBody {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const body = new Map<string, unknown>(Object.entries(value));
  return (
    typeof body.get("code") === "number" &&
    typeof body.get("status") === "string" &&
    typeof body.get("message") === "string"
  );
}

/** An error answer: `status`, in the service's error shape. */
function expectError<Failure>(
  step: string,
  answer: Answer<unknown, Failure>,
  status: number,
): ErrorBody {
  checkCommonHeaders(step, answer.response);
  const body = answer.error;
  if (answer.response.status !== status || !isErrorBody(body)) {
    fail(`${step}: expected a ${status} error, got ${describe(answer)}`);
  }
  check(body.code === status, `${step}: error body code ${body.code}, status ${status}`);
  check(body.message.length > 0, `${step}: empty error message`);
  console.log(`ok   ${step} (${status}: ${body.message})`);
  return body;
}

/** A timestamp as microseconds since the epoch, so that two instants less
 * than a millisecond apart still compare (Date keeps milliseconds only). */
function microseconds(timestamp: string): bigint {
  const match = /^(.*T\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d:\d\d)$/i.exec(timestamp);
  if (match === null || match[1] === undefined || match[3] === undefined) {
    fail(`not an RFC 3339 timestamp with an offset: ${timestamp}`);
  }
  const seconds = Date.parse(`${match[1]}${match[3]}`);
  check(!Number.isNaN(seconds), `not a valid instant: ${timestamp}`);
  const fraction = (match[2] ?? "").padEnd(6, "0");
  return BigInt(seconds) * 1000n + BigInt(fraction);
}

function checkTask(step: string, task: Task, expected: Partial<Task>): void {
  for (const [key, value] of Object.entries(expected)) {
    const actual: unknown = new Map<string, unknown>(Object.entries(task)).get(key);
    check(
      actual === value,
      `${step}: ${key} is ${JSON.stringify(actual)}, expected ${JSON.stringify(value)}`,
    );
  }
  check(
    task.completed === (task.status === "completed"),
    `${step}: completed and status disagree`,
  );
}

async function walkthrough(baseUrl: string): Promise<void> {
  const session: { token?: string } = {};
  const api = createTodoClient(baseUrl, session);

  const health = await api.GET("/healthz");
  check(health.response.status === 200, `healthz: ${health.response.status}`);
  console.log("ok   healthz (200)");

  // An account of its own on every run: the walkthrough can run again
  // against the same server.
  const email = `walkthrough-${Date.now()}-${Math.random().toString(36).slice(2, 8)}@example.com`;
  const password = "correct horse battery staple";
  const registration: Schemas["RegisterIn"] = { email: `  ${email.toUpperCase()} `, password };
  const user = expectData(
    "register",
    await api.POST("/api/auth/register", { body: { ...registration, name: "Ada" } }),
    201,
  );
  check(user.email === email, `register: email stored as ${user.email}`);
  check(user.name === "Ada", `register: name is ${user.name}`);
  expectError(
    "register the same email again",
    await api.POST("/api/auth/register", { body: { email, password } }),
    409,
  );

  const login = expectData(
    "login",
    await api.POST("/api/auth/login", { body: { email, password } }),
    200,
  );
  check(login.token_type === "bearer", `login: token_type ${login.token_type}`);
  check(login.expires_in > 0 && login.expires_in <= 86400, `login: expires_in ${login.expires_in}`);
  session.token = login.access_token;

  const me = expectData("me", await api.GET("/api/auth/me"), 200);
  check(me.id === user.id && me.email === email, `me: ${JSON.stringify(me)}`);
  const owner = { user_id: me.id };

  const created: Task[] = [];
  const newTasks: Schemas["TaskCreate"][] = [
    { title: "Write report", description: "Quarterly numbers" },
    { title: "Call Ada", completed: true },
    { title: "Buy milk", status: "pending" },
  ];
  for (const body of newTasks) {
    const answer = await api.POST("/api/{user_id}/tasks", { params: { path: owner }, body });
    const task = expectData(`create "${body.title}"`, answer, 201);
    checkTask("create", task, {
      title: body.title,
      user_id: me.id,
      description: body.description ?? null,
      completed: body.completed ?? false,
    });
    const location = answer.response.headers.get("Location");
    check(
      location !== null && new URL(location, baseUrl).pathname === `/api/${me.id}/tasks/${task.id}`,
      `create: Location is ${location}`,
    );
    created.push(task);
  }

  // Pending tasks by title, one per page: "Buy milk", then "Write report".
  const query = { status: "pending", sort: "title", page_size: 1 } as const;
  const first = await api.GET("/api/{user_id}/tasks", { params: { path: owner, query } });
  const firstPage = expectData("list pending by title, page 1", first, 200);
  check(
    firstPage.length === 1 && firstPage[0]?.title === "Buy milk",
    `list page 1: ${JSON.stringify(firstPage)}`,
  );
  const paging = readPagination(first.response.headers);
  const expectedPaging = { total: 2, total_pages: 2, first_page: 1, last_page: 2, page: 1 };
  check(
    JSON.stringify(paging) === JSON.stringify({ ...expectedPaging, next_page: 2 }),
    `list page 1: X-Pagination ${JSON.stringify(paging)}`,
  );
  const next = readLinks(first.response.headers).get("next");
  check(next !== undefined, "list page 1: no next link");
  for (const [name, value] of Object.entries({ ...query, page: 2 })) {
    check(
      next?.searchParams.get(name) === String(value),
      `list page 1: next link ${next?.href} lacks ${name}=${value}`,
    );
  }
  check(readLinks(first.response.headers).has("last"), "list page 1: no last link");

  const second = await api.GET("/api/{user_id}/tasks", {
    params: { path: owner, query: { ...query, page: paging.next_page ?? fail("no next_page") } },
  });
  const secondPage = expectData("list pending by title, page 2", second, 200);
  check(
    secondPage.length === 1 && secondPage[0]?.title === "Write report",
    `list page 2: ${JSON.stringify(secondPage)}`,
  );
  const lastPaging = readPagination(second.response.headers);
  check(
    JSON.stringify(lastPaging) ===
      JSON.stringify({ ...expectedPaging, page: 2, previous_page: 1 }),
    `list page 2: X-Pagination ${JSON.stringify(lastPaging)}`,
  );
  check(!readLinks(second.response.headers).has("next"), "list page 2: a next link on the last page");

  const chosen = created[0] ?? fail("no task was created");
  const taskPath = { user_id: me.id, task_id: chosen.id };
  const fetched = expectData(
    "get one",
    await api.GET("/api/{user_id}/tasks/{task_id}", { params: { path: taskPath } }),
    200,
  );
  check(JSON.stringify(fetched) === JSON.stringify(chosen), `get one: ${JSON.stringify(fetched)}`);

  const patch: Schemas["TaskPatch"] = { title: "Write the report" };
  const patched = expectData(
    "patch the title",
    await api.PATCH("/api/{user_id}/tasks/{task_id}", { params: { path: taskPath }, body: patch }),
    200,
  );
  checkTask("patch", patched, {
    title: "Write the report",
    description: "Quarterly numbers",
    created_at: chosen.created_at,
  });
  check(
    microseconds(patched.updated_at) > microseconds(chosen.updated_at),
    `patch: updated_at ${patched.updated_at} is not after ${chosen.updated_at}`,
  );

  // PUT replaces: the description left out goes back to null.
  const replacement: Schemas["TaskReplace"] = { title: "Report, final", completed: false };
  const replaced = expectData(
    "put",
    await api.PUT("/api/{user_id}/tasks/{task_id}", {
      params: { path: taskPath },
      body: replacement,
    }),
    200,
  );
  checkTask("put", replaced, { title: "Report, final", description: null, completed: false });

  const toggled = expectData(
    "toggle (no body)",
    await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", { params: { path: taskPath } }),
    200,
  );
  checkTask("toggle", toggled, { completed: true, status: "completed" });
  const set: Schemas["CompleteIn"] = { completed: false };
  const reset = expectData(
    "set completed: false",
    await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
      params: { path: taskPath },
      body: set,
    }),
    200,
  );
  checkTask("set completed", reset, { completed: false, status: "pending" });

  expectNoContent(
    "delete",
    await api.DELETE("/api/{user_id}/tasks/{task_id}", { params: { path: taskPath } }),
  );
  expectError(
    "get the deleted task",
    await api.GET("/api/{user_id}/tasks/{task_id}", { params: { path: taskPath } }),
    404,
  );

  const refreshed = expectData(
    "refresh",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${login.refresh_token}` },
    }),
    200,
  );
  expectError(
    "refresh again with the rotated refresh token",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${login.refresh_token}` },
    }),
    401,
  );
  session.token = refreshed.access_token;
  expectData("me with the refreshed token", await api.GET("/api/auth/me"), 200);

  const logout: Schemas["LogoutIn"] = { refresh_token: refreshed.refresh_token };
  expectNoContent("logout", await api.POST("/api/auth/logout", { body: logout }));

  const refused = await api.GET("/api/auth/me");
  expectError("me with the logged-out token", refused, 401);
  const challenge = refused.response.headers.get("WWW-Authenticate") ?? "";
  check(/^Bearer\b/.test(challenge), `401 without a Bearer challenge: ${challenge}`);
  expectError(
    "refresh with the logged-out refresh token",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${refreshed.refresh_token}` },
    }),
    401,
  );
}

const baseUrl = process.argv[2] ?? process.env["TODO_API_URL"];
if (baseUrl === undefined) {
  console.error("usage: walkthrough.js BASE_URL (or TODO_API_URL=...)");
  process.exit(2);
}
try {
  await walkthrough(baseUrl);
  console.log("walkthrough: every answer as expected");
} catch (error) {
  const why = error instanceof UnexpectedAnswer ? error.message : String(error);
  console.error(`walkthrough FAILED: ${why}`);
  if (!(error instanceof UnexpectedAnswer) && error instanceof Error && error.stack) {
    console.error(error.stack);
  }
  process.exit(1);
}
