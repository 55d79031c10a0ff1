// A client written only from the seeds' TypeScript interfaces (AssessmentRequest,
// AssessmentState, AssessmentOptions, AssessmentMetrics and the REST layer's answers),
// in plain JavaScript for Node.js 20 (global fetch). It knows nothing of this
// project's own fields: each check below is a field the seeds declare, with the
// seeds' type. An optional field (`?` in the seeds) may be absent, which JSON says
// as null.
//
//   node seed_client.mjs prepare   create, get, list, cancel, stats (no worker needed)
//   node seed_client.mjs wait ID   wait for ID to finish (a worker runs it)
//
// Environment: BASE_URL, TOKEN, SERVER_NAME. Prints a JSON summary; exits 1 listing
// every failed check.

const BASE = process.env.BASE_URL;
const TOKEN = process.env.TOKEN;
const SERVER = process.env.SERVER_NAME;
const failures = [];
let checks = 0;

const STATES = ["pending", "processing", "completed", "failed", "cancelled"];
const TYPES = ["compliance", "health", "security"];
const SOURCES = ["installer", "compliance"];

function check(ok, what) {
  checks += 1;
  if (!ok) failures.push(what);
}

function isString(v) { return typeof v === "string"; }
function isNumber(v) { return typeof v === "number" && Number.isFinite(v); }
function isBoolean(v) { return typeof v === "boolean"; }
function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
function absent(v) { return v === undefined || v === null; }

function field(obj, name, test, where, optional = false) {
  const value = obj?.[name];
  if (optional && absent(value)) { checks += 1; return; }
  check(test(value), `${where}.${name}: ${JSON.stringify(value)} is not the seed's type`);
}

function isoDate(v) { return isString(v) && !Number.isNaN(Date.parse(v)); }

function checkOptions(o, where) {
  check(isObject(o), `${where} is an object`);
  for (const name of ["includeDetails", "generateReport", "saveResults", "checkServerStatus",
                      "validateConfig", "checkCompliance", "deepScan"]) {
    field(o, name, isBoolean, where);
  }
  field(o, "serverFilter", (v) => Array.isArray(v) && v.every(isString), where, true);
  field(o, "timeout", isNumber, where, true);
}

function checkRequest(r, where) {
  check(isObject(r), `${where} is an object`);
  field(r, "id", isString, where);
  field(r, "serverName", isString, where, true);
  field(r, "assessmentType", (v) => TYPES.includes(v), where);
  checkOptions(r?.options, `${where}.options`);
  field(r, "timestamp", isoDate, where);
  field(r, "source", (v) => SOURCES.includes(v), where);
  field(r, "priority", isNumber, where, true);
  field(r, "timeout", isNumber, where, true);
}

function checkState(s, where) {
  check(isObject(s), `${where} is an object`);
  field(s, "assessmentId", isString, where);
  field(s, "state", (v) => STATES.includes(v), where);
  field(s, "version", Number.isInteger, where);
  field(s, "progress", isNumber, where);
  field(s, "message", isString, where, true);
  field(s, "createdAt", isoDate, where);
  field(s, "updatedAt", isoDate, where);
  field(s, "completedAt", isoDate, where, true);
  checkRequest(s?.requestData, `${where}.requestData`);
  field(s, "resultData", isObject, where, true);
  field(s, "errorMessage", isString, where, true);
  field(s, "retryCount", Number.isInteger, where);
  field(s, "nextRetryAt", isoDate, where, true);
}

async function call(method, path, body) {
  const response = await fetch(BASE + path, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

function seedRequest(extra = {}) {
  // Every field the seed's AssessmentRequest and AssessmentOptions declare.
  return {
    id: `seed-${Date.now()}-${Math.random().toString(16).slice(2)}`,
    serverName: SERVER,
    assessmentType: "health",
    options: {
      includeDetails: true, generateReport: false, saveResults: true, checkServerStatus: true,
      validateConfig: false, checkCompliance: false, deepScan: false,
    },
    timestamp: new Date().toISOString(),
    source: "installer",
    priority: 5,
    ...extra,
  };
}

async function create(extra) {
  const created = await call("POST", "/v1/assessments", seedRequest(extra));
  check(created.status === 201 || created.status === 200, `create answered ${created.status}`);
  // The seed's REST answer: {assessmentId, status: 'created', message, estimatedTime}.
  field(created.body, "assessmentId", isString, "create");
  field(created.body, "status", (v) => v === "created", "create");
  field(created.body, "message", isString, "create");
  field(created.body, "estimatedTime", isNumber, "create");
  return created.body.assessmentId;
}

async function prepare() {
  // The seeds' milliseconds are refused with a message that says the unit.
  const millis = await call("POST", "/v1/assessments", seedRequest({ timeout: 30000 }));
  check(millis.status === 422, `timeout 30000 answered ${millis.status}`);
  const said = millis.body?.error?.message ?? "";
  check(said.includes("seconds") && said.includes("milliseconds"), `unit not said: ${said}`);

  const waited = await create();
  const got = await call("GET", `/v1/assessments/${waited}`);
  check(got.status === 200, `get answered ${got.status}`);
  checkState(got.body, "get");

  const cancelled = await create({ priority: 2 });
  const cancel = await call("POST", `/v1/assessments/${cancelled}/cancel`, { reason: "seed client" });
  check(cancel.status === 200, `cancel answered ${cancel.status}`);
  checkState(cancel.body, "cancel");
  check(cancel.body?.state === "cancelled", `cancel left ${cancel.body?.state}`);

  const listed = await call("GET", "/v1/assessments?limit=10");
  check(listed.status === 200 && Array.isArray(listed.body?.items), "list has items");
  const ids = (listed.body?.items ?? []).map((s) => s.assessmentId);
  check(ids.includes(waited) && ids.includes(cancelled), `list holds both: ${ids}`);
  (listed.body?.items ?? []).forEach((s, i) => checkState(s, `list.items[${i}]`));

  const stats = await call("GET", "/v1/stats");
  check(stats.status === 200, `stats answered ${stats.status}`);
  for (const name of ["totalAssessments", "activeAssessments", "completedAssessments",
                      "failedAssessments", "averageProcessingTime", "throughputPerMinute",
                      "errorRate"]) {
    field(stats.body, name, isNumber, "stats");
  }
  check(stats.body?.totalAssessments >= 2, `stats total ${stats.body?.totalAssessments}`);
  return { waitFor: waited, cancelled };
}

async function wait(id) {
  const millis = await call("GET", `/v1/assessments/${id}/wait?timeout=30000`);
  check(millis.status === 422, `wait timeout 30000 answered ${millis.status}`);
  const said = millis.body?.error?.message ?? "";
  check(said.includes("seconds") && said.includes("milliseconds"), `unit not said: ${said}`);
  const done = await call("GET", `/v1/assessments/${id}/wait?timeout=60`);
  check(done.status === 200, `wait answered ${done.status}`);
  // The seed's wait answer: {assessmentId, status, result, error, duration}.
  field(done.body, "assessmentId", (v) => v === id, "wait");
  field(done.body, "status", (v) => ["completed", "failed", "cancelled"].includes(v), "wait");
  field(done.body, "result", isObject, "wait", true);
  field(done.body, "error", isString, "wait", true);
  field(done.body, "duration", isNumber, "wait");
  checkState(done.body, "wait");
  return { status: done.body?.status, result: done.body?.result };
}

const [command, argument] = process.argv.slice(2);
const outcome = command === "wait" ? await wait(argument) : await prepare();
console.log(JSON.stringify({ checks, failures, ...outcome }));
process.exit(failures.length ? 1 : 0);
