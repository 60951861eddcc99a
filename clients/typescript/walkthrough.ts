// What a front end does, against a live server, through the generated
// client: register, log in, read the account, create tasks, list them with a
// filter and a sort and follow the paging headers, read, change (PATCH, PUT),
// toggle and delete a task; then what contract 1.1 added: priority, due date
// and tags, the new filters and sorts and /tags, conditional requests (ETag,
// If-None-Match, If-Match), a retried create with an Idempotency-Key, a sync
// through the change feed, clearing completed tasks; then refresh the tokens
// (a retry with the rotated refresh token inside the grace window is a plain
// 401 and the new pair keeps working), log out, and see the old token
// refused. Statuses and response headers of the 1.1 steps go through
// `declared` and `readHeader`, so the type-check proves the document
// declares them. Any answer other than the expected one stops it with a
// message and exit status 1.
//
//   node build/typescript-client/walkthrough.js http://127.0.0.1:8000
import {
  createTodoClient,
  declared,
  readHeader,
  readLinks,
  readPagination,
  type ErrorBody,
  type Schemas,
  type Task,
  type TodoClient,
} from "./client.js";
import type { operations } from "./schema.js";

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
  if (response.status !== 204 && response.status !== 304) {
    check(type === "application/json", `${step}: Content-Type is ${type}`);
  }
}

/** A status, or an answer the document declares (`declared(...)`): its status. */
type Expected = number | readonly [string, unknown, number];

function statusOf(expected: Expected): number {
  return typeof expected === "number" ? expected : expected[2];
}

/** A success with a body: its status must be `status`, and the body is returned. */
function expectData<Data, Failure>(
  step: string,
  answer: Answer<Data, Failure>,
  expected: Expected,
): Data {
  const status = statusOf(expected);
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

/** A 304 (a status the document declares for the operation): no body. */
function expectNotModified(
  step: string,
  answer: Answer<unknown, unknown>,
  expected: readonly [string, unknown, 304],
): void {
  checkCommonHeaders(step, answer.response);
  if (answer.response.status !== statusOf(expected)) {
    fail(`${step}: expected 304, got ${describe(answer)}`);
  }
  check(
    answer.data === undefined && (answer.error === undefined || answer.error === ""),
    `${step}: a 304 with a body: ${describe(answer)}`,
  );
  console.log(`ok   ${step} (304)`);
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
  expected: Expected,
): ErrorBody {
  const status = statusOf(expected);
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

/** Equal as JSON values, whatever the order of the keys. */
function sameJson(a: unknown, b: unknown): boolean {
  const canonical = (value: unknown): unknown => {
    if (Array.isArray(value)) {
      return value.map(canonical);
    }
    if (typeof value === "object" && value !== null) {
      return Object.fromEntries(
        Object.entries(value)
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
          .map(([key, item]) => [key, canonical(item)]),
      );
    }
    return value;
  };
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function titles(tasks: readonly Task[]): string {
  return JSON.stringify(tasks.map((task) => task.title));
}

/** A task's ETag is strong: a quoted string, no `W/`. */
function checkStrong(step: string, etag: string): void {
  check(/^"[^"]*"$/.test(etag), `${step}: ETag ${etag} is not a strong entity tag`);
}

type ListQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;

const CREATED = declared("/api/{user_id}/tasks", "post", 201);
const LISTED = declared("/api/{user_id}/tasks", "get", 200);
const LIST_NOT_MODIFIED = declared("/api/{user_id}/tasks", "get", 304);
const FETCHED = declared("/api/{user_id}/tasks/{task_id}", "get", 200);
const NOT_MODIFIED = declared("/api/{user_id}/tasks/{task_id}", "get", 304);
const PATCHED = declared("/api/{user_id}/tasks/{task_id}", "patch", 200);
const PATCH_PRECONDITION_FAILED = declared("/api/{user_id}/tasks/{task_id}", "patch", 412);
const TOGGLED = declared("/api/{user_id}/tasks/{task_id}/complete", "patch", 200);
const DELETED = declared("/api/{user_id}/tasks/{task_id}", "delete", 204);
const IDEMPOTENCY_MISMATCH = declared("/api/{user_id}/tasks", "post", 422);
const TAGS = declared("/api/{user_id}/tags", "get", 200);
const PULLED = declared("/api/{user_id}/tasks/changes", "get", 200);
const CLEARED = declared("/api/{user_id}/tasks", "delete", 200);

/** What contract 1.1 added, as a front end uses it. `kept` are the v1 tasks
 * still there: "Call Ada" (completed) and "Buy milk" (pending). */
async function version11(
  api: TodoClient,
  userId: string,
  kept: { callAda: Task; buyMilk: Task },
): Promise<void> {
  const owner = { user_id: userId };
  const one = (task: Task) => ({ user_id: userId, task_id: task.id });

  // Priority, due date and tags; tags come back trimmed, lower-cased, once each.
  const pastDue = "2020-02-29T12:30:00.123456+02:00";
  const launchBody: Schemas["TaskCreate"] = {
    title: "Plan the launch",
    priority: "high",
    due_at: pastDue,
    tags: ["  Launch ", "WORK", "launch"],
  };
  const launchAnswer = await api.POST("/api/{user_id}/tasks", {
    params: { path: owner },
    body: launchBody,
  });
  const launch = expectData("create with priority, due_at and tags", launchAnswer, CREATED);
  checkTask("create 1.1", launch, { priority: "high", completed: false });
  check(
    JSON.stringify(launch.tags) === JSON.stringify(["launch", "work"]),
    `create 1.1: tags ${JSON.stringify(launch.tags)}, expected ["launch","work"]`,
  );
  check(
    launch.due_at !== null &&
      /(Z|\+00:00)$/i.test(launch.due_at) &&
      microseconds(launch.due_at) === microseconds(pastDue),
    `create 1.1: due_at ${launch.due_at}, expected ${pastDue} in UTC`,
  );
  const launchEtag = readHeader(CREATED, launchAnswer.response, "ETag");
  checkStrong("create 1.1", launchEtag);

  const dueNextWeek = new Date(Date.now() + 7 * 86400_000).toISOString();
  const taxes = expectData(
    "create another (low, due next week)",
    await api.POST("/api/{user_id}/tasks", {
      params: { path: owner },
      body: { title: "File taxes", priority: "low", due_at: dueNextWeek, tags: ["Work", " Home"] },
    }),
    CREATED,
  );
  checkTask("create low", taxes, { priority: "low" });
  check(
    JSON.stringify(taxes.tags) === JSON.stringify(["work", "home"]),
    `create low: tags ${JSON.stringify(taxes.tags)}`,
  );
  check(
    taxes.due_at !== null && microseconds(taxes.due_at) === microseconds(dueNextWeek),
    `create low: due_at ${taxes.due_at}, expected ${dueNextWeek}`,
  );
  check(
    kept.buyMilk.priority === "medium" &&
      kept.buyMilk.due_at === null &&
      kept.buyMilk.tags.length === 0,
    `a v1 create has the 1.1 defaults: ${JSON.stringify(kept.buyMilk)}`,
  );

  // The new filters and sorts.
  const listQuery: ListQuery = { tag: ["work"], sort: "-priority" };
  const byPriority = await api.GET("/api/{user_id}/tasks", {
    params: { path: owner, query: listQuery },
  });
  const workTasks = expectData("list tag=work sort=-priority", byPriority, LISTED);
  check(
    titles(workTasks) === titles([launch, taxes]),
    `list tag=work sort=-priority: ${titles(workTasks)}`,
  );
  const bothTags = expectData(
    "list tag=WORK&tag=home",
    await api.GET("/api/{user_id}/tasks", {
      params: { path: owner, query: { tag: ["WORK", "home"] } },
    }),
    LISTED,
  );
  check(titles(bothTags) === titles([taxes]), `list tag=WORK&tag=home: ${titles(bothTags)}`);
  const overdue = expectData(
    "list tag=work overdue=true",
    await api.GET("/api/{user_id}/tasks", {
      params: { path: owner, query: { tag: ["work"], overdue: "true" } },
    }),
    LISTED,
  );
  check(titles(overdue) === titles([launch]), `list overdue=true: ${titles(overdue)}`);
  const notOverdue = expectData(
    "list overdue=false sort=due_at",
    await api.GET("/api/{user_id}/tasks", {
      params: { path: owner, query: { overdue: "false", sort: "due_at" } },
    }),
    LISTED,
  );
  check(
    notOverdue.length === 3 &&
      notOverdue[0]?.id === taxes.id &&
      !notOverdue.some((task) => task.id === launch.id),
    `list overdue=false sort=due_at (due first, then the undated): ${titles(notOverdue)}`,
  );

  const tags = expectData(
    "tags",
    await api.GET("/api/{user_id}/tags", { params: { path: owner } }),
    TAGS,
  );
  const expectedTags: Schemas["TagCountOut"][] = [
    { tag: "home", count: 1 },
    { tag: "launch", count: 1 },
    { tag: "work", count: 2 },
  ];
  check(sameJson(tags, expectedTags), `tags: ${JSON.stringify(tags)}`);

  // Conditional GET of one task, and of the list.
  const launchPath = { path: one(launch) };
  const got = await api.GET("/api/{user_id}/tasks/{task_id}", { params: launchPath });
  check(
    sameJson(expectData("get one (ETag)", got, FETCHED), launch),
    "get one: not the created task",
  );
  const etag = readHeader(FETCHED, got.response, "ETag");
  check(etag === launchEtag, `get one: ETag ${etag}, the create said ${launchEtag}`);
  const revalidated = await api.GET("/api/{user_id}/tasks/{task_id}", {
    params: { ...launchPath, header: { "If-None-Match": etag } },
  });
  expectNotModified("get one with If-None-Match", revalidated, NOT_MODIFIED);
  const etag304 = readHeader(NOT_MODIFIED, revalidated.response, "ETag");
  check(etag304 === etag, `get one 304: ETag ${etag304}, expected ${etag}`);

  const listEtag = readHeader(LISTED, byPriority.response, "ETag");
  const listAgain = await api.GET("/api/{user_id}/tasks", {
    params: { path: owner, query: listQuery, header: { "If-None-Match": listEtag } },
  });
  expectNotModified("list with If-None-Match", listAgain, LIST_NOT_MODIFIED);
  const listEtag304 = readHeader(LIST_NOT_MODIFIED, listAgain.response, "ETag");
  check(listEtag304 === listEtag, `list 304: ETag ${listEtag304}, expected ${listEtag}`);

  // If-Match: the current ETag changes the task, a stale one changes nothing.
  const patchAnswer = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: { ...launchPath, header: { "If-Match": etag } },
    body: { priority: "medium" },
  });
  const lowered = expectData("patch with the current If-Match", patchAnswer, PATCHED);
  checkTask("patch If-Match", lowered, { priority: "medium", title: launch.title });
  const newEtag = readHeader(PATCHED, patchAnswer.response, "ETag");
  checkStrong("patch If-Match", newEtag);
  check(newEtag !== etag, `patch If-Match: ETag still ${etag}`);
  expectError(
    "patch with a stale If-Match",
    await api.PATCH("/api/{user_id}/tasks/{task_id}", {
      params: { ...launchPath, header: { "If-Match": etag } },
      body: { title: "Overwritten" },
    }),
    PATCH_PRECONDITION_FAILED,
  );
  const afterStale = await api.GET("/api/{user_id}/tasks/{task_id}", { params: launchPath });
  check(
    sameJson(expectData("get after the 412", afterStale, FETCHED), lowered),
    "get after the 412: the task changed",
  );
  check(
    readHeader(FETCHED, afterStale.response, "ETag") === newEtag,
    "get after the 412: the ETag moved",
  );
  const listChanged = await api.GET("/api/{user_id}/tasks", {
    params: { path: owner, query: listQuery, header: { "If-None-Match": listEtag } },
  });
  expectData("list with the old list ETag after a change", listChanged, LISTED);
  check(
    readHeader(LISTED, listChanged.response, "ETag") !== listEtag,
    "list after a change: the list ETag did not move",
  );

  // A create retried with the same Idempotency-Key creates one task.
  const key = `walkthrough-${Date.now()}-${Math.random().toString(36).slice(2, 10)}`;
  const rentBody: Schemas["TaskCreate"] = { title: "Pay rent", tags: ["home"] };
  const idempotent = { params: { path: owner, header: { "Idempotency-Key": key } } };
  const firstTry = await api.POST("/api/{user_id}/tasks", { ...idempotent, body: rentBody });
  const rent = expectData("create with an Idempotency-Key", firstTry, CREATED);
  check(
    firstTry.response.headers.get("Idempotent-Replayed") === null,
    "create with an Idempotency-Key: the first answer says Idempotent-Replayed",
  );
  const rentEtag = readHeader(CREATED, firstTry.response, "ETag");
  const retry = await api.POST("/api/{user_id}/tasks", { ...idempotent, body: rentBody });
  const replayed = expectData("the same create again (replayed)", retry, CREATED);
  check(
    sameJson(replayed, rent),
    `replay: body ${JSON.stringify(replayed)}, first ${JSON.stringify(rent)}`,
  );
  const replayedHeader = readHeader(CREATED, retry.response, "Idempotent-Replayed");
  check(replayedHeader === "true", `replay: Idempotent-Replayed is ${replayedHeader}`);
  check(
    readHeader(CREATED, retry.response, "ETag") === rentEtag,
    "replay: another ETag",
  );
  check(
    readHeader(CREATED, retry.response, "Location") ===
      readHeader(CREATED, firstTry.response, "Location"),
    "replay: another Location",
  );
  expectError(
    "the same Idempotency-Key with another body",
    await api.POST("/api/{user_id}/tasks", { ...idempotent, body: { title: "Pay rent twice" } }),
    IDEMPOTENCY_MISMATCH,
  );
  const rents = await api.GET("/api/{user_id}/tasks", {
    params: { path: owner, query: { q: "Pay rent" } },
  });
  const rentList = expectData("list q=Pay rent", rents, LISTED);
  check(
    rentList.length === 1 &&
      rentList[0]?.id === rent.id &&
      readPagination(rents.response.headers).total === 1,
    `idempotency: ${titles(rentList)} created`,
  );

  // Sync: a full pull, a change and a delete, a pull from the cursor.
  const everything = expectData(
    "list all",
    await api.GET("/api/{user_id}/tasks", { params: { path: owner, query: { page_size: 1000 } } }),
    LISTED,
  );
  const initial = expectData(
    "sync: initial pull (no since)",
    await api.GET("/api/{user_id}/tasks/changes", { params: { path: owner } }),
    PULLED,
  );
  const ids = (tasks: readonly Task[]) => JSON.stringify(tasks.map((task) => task.id).sort());
  check(
    ids(initial.changes) === ids(everything) &&
      everything.length === 5 &&
      initial.deleted.length === 0 &&
      !initial.has_more &&
      initial.cursor.length > 0,
    `sync: initial pull ${JSON.stringify(initial)}`,
  );
  const milkAnswer = await api.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: { path: one(kept.buyMilk) },
    body: { tags: ["Errands"] },
  });
  const milk = expectData("sync: change a task", milkAnswer, PATCHED);
  check(JSON.stringify(milk.tags) === '["errands"]', `sync: tags ${JSON.stringify(milk.tags)}`);
  const deleteAnswer = await api.DELETE("/api/{user_id}/tasks/{task_id}", {
    params: { path: one(rent), header: { "If-Match": rentEtag } },
  });
  expectNoContent("sync: delete a task (with its If-Match)", deleteAnswer);
  check(deleteAnswer.response.status === DELETED[2], "sync: delete: not the declared 204");
  const delta = expectData(
    "sync: pull since the cursor",
    await api.GET("/api/{user_id}/tasks/changes", {
      params: { path: owner, query: { since: initial.cursor } },
    }),
    PULLED,
  );
  check(
    delta.changes.length === 1 &&
      sameJson(delta.changes[0], milk) &&
      JSON.stringify(delta.deleted) === JSON.stringify([rent.id]) &&
      !delta.has_more &&
      delta.cursor.length > 0,
    `sync: pull since the cursor ${JSON.stringify(delta)}`,
  );

  // Clearing completed tasks: "Call Ada", and "File taxes" once toggled.
  const taxesNow = await api.GET("/api/{user_id}/tasks/{task_id}", {
    params: { path: one(taxes) },
  });
  expectData("get before the toggle", taxesNow, FETCHED);
  const toggleAnswer = await api.PATCH("/api/{user_id}/tasks/{task_id}/complete", {
    params: {
      path: one(taxes),
      header: { "If-Match": readHeader(FETCHED, taxesNow.response, "ETag") },
    },
  });
  checkTask("toggle with If-Match", expectData("toggle with If-Match", toggleAnswer, TOGGLED), {
    completed: true,
  });
  checkStrong("toggle", readHeader(TOGGLED, toggleAnswer.response, "ETag"));
  const cleared = expectData(
    "clear completed tasks",
    await api.DELETE("/api/{user_id}/tasks", {
      params: { path: owner, query: { status: "completed" } },
    }),
    CLEARED,
  );
  check(cleared.deleted === 2, `clear completed: deleted ${cleared.deleted}, expected 2`);
  const left = expectData(
    "list after clearing",
    await api.GET("/api/{user_id}/tasks", { params: { path: owner } }),
    LISTED,
  );
  check(
    ids(left) === ids([launch, milk]),
    `after clearing: ${titles(left)}, expected "Plan the launch" and "Buy milk"`,
  );
  const afterClear = expectData(
    "sync: pull after clearing",
    await api.GET("/api/{user_id}/tasks/changes", {
      params: { path: owner, query: { since: delta.cursor } },
    }),
    PULLED,
  );
  check(
    JSON.stringify([...afterClear.deleted].sort()) ===
      JSON.stringify([kept.callAda.id, taxes.id].sort()) &&
      !afterClear.changes.some((task) => task.id === kept.callAda.id || task.id === taxes.id),
    `sync after clearing: ${JSON.stringify(afterClear)}`,
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

  await version11(api, me.id, {
    callAda: created[1] ?? fail("no second task"),
    buyMilk: created[2] ?? fail("no third task"),
  });

  const refreshed = expectData(
    "refresh",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${login.refresh_token}` },
    }),
    200,
  );
  // A client's retry race: the rotated refresh token again, inside the
  // grace window (10 s by default), is a plain 401; the new pair keeps working.
  expectError(
    "refresh retried with the rotated refresh token (inside the grace window)",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${login.refresh_token}` },
    }),
    declared("/api/auth/refresh", "post", 401),
  );
  session.token = refreshed.access_token;
  expectData("me with the refreshed token", await api.GET("/api/auth/me"), 200);
  const rotated = expectData(
    "refresh with the new refresh token",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${refreshed.refresh_token}` },
    }),
    declared("/api/auth/refresh", "post", 200),
  );
  session.token = rotated.access_token;
  expectData("me with the newest token", await api.GET("/api/auth/me"), 200);

  const logout: Schemas["LogoutIn"] = { refresh_token: rotated.refresh_token };
  expectNoContent("logout", await api.POST("/api/auth/logout", { body: logout }));

  const refused = await api.GET("/api/auth/me");
  expectError("me with the logged-out token", refused, 401);
  const challenge = refused.response.headers.get("WWW-Authenticate") ?? "";
  check(/^Bearer\b/.test(challenge), `401 without a Bearer challenge: ${challenge}`);
  expectError(
    "refresh with the logged-out refresh token",
    await api.POST("/api/auth/refresh", {
      headers: { Authorization: `Bearer ${rotated.refresh_token}` },
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
