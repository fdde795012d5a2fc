#!/usr/bin/env node
// Runs the GraphQL-over-HTTP conformance audits of graphql-http (vendored, see
// VENDORED.md) against a live server and prints one JSON document on stdout.
//
//   node tests/http_audit/run_audit.mjs http://127.0.0.1:8000/graphql [--request-timeout-ms N]
//
// Output: {"package", "url", "node", "summary": {total, ok, warn, error, notice},
//          "audits": [{id, name, level, status, reason?, fatal?, response?}]}
// where status is the audit's own verdict: "ok", or on failure "error" for MUST,
// "warn" for SHOULD, "notice" for MAY (graphql-http's mapping). An audit that could
// not complete (network error, request timeout) is reported as "error" with
// fatal: true. "response" is the offending response: status, headers, body (cut
// at 4 KiB). Exits 0 when the report was printed, whatever the verdicts; 2 on bad
// usage.
//
// auditServer(opts) is `Promise.all(serverAudits(opts).map(({ fn }) => fn()))`, and
// rejects as a whole when any one audit throws a non-assertion error. This script
// does the same over serverAudits(opts) but catches such errors per audit, so one
// hung or refused request still leaves the other 60 verdicts in the report.
import { serverAudits } from './vendor/graphql-http/lib/audits/index.mjs';

const PACKAGE = 'graphql-http@1.23.1';
const BODY_LIMIT = 4096;

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node run_audit.mjs URL [--request-timeout-ms N]\n`,
  );
  process.exit(2);
}

function parseArgs(argv) {
  let url;
  let requestTimeoutMs = 10_000;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--request-timeout-ms') {
      requestTimeoutMs = Number(argv[++i]);
      if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) {
        usage('--request-timeout-ms needs a positive integer');
      }
    } else if (url === undefined && !arg.startsWith('--')) {
      url = arg;
    } else {
      usage(`unexpected argument: ${arg}`);
    }
  }
  if (url === undefined) usage('missing URL');
  try {
    new URL(url);
  } catch {
    usage(`not a URL: ${url}`);
  }
  return { url, requestTimeoutMs };
}

function levelOf(name) {
  for (const level of ['MUST', 'SHOULD', 'MAY']) {
    if (name.startsWith(level)) return level;
  }
  return 'UNKNOWN';
}

async function describeResponse(res) {
  if (!res || typeof res.status !== 'number') return undefined;
  let body;
  try {
    body = await res.text();
    if (body.length > BODY_LIMIT) body = `${body.slice(0, BODY_LIMIT)}...`;
  } catch (err) {
    body = `<body not readable: ${err && err.message ? err.message : err}>`;
  }
  return {
    status: res.status,
    statusText: res.statusText,
    headers: Object.fromEntries(res.headers.entries()),
    body,
  };
}

function errorText(err) {
  if (err instanceof Error) {
    const cause = err.cause ? ` (cause: ${errorText(err.cause)})` : '';
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}

async function main() {
  const { url, requestTimeoutMs } = parseArgs(process.argv.slice(2));
  // Same requests as the audits make with the global fetch, each bounded in time.
  const fetchFn = (input, init = {}) =>
    fetch(input, { ...init, signal: AbortSignal.timeout(requestTimeoutMs) });

  const audits = serverAudits({ url, fetchFn });
  const results = await Promise.all(
    audits.map(async ({ id, name, fn }) => {
      const level = levelOf(name);
      let result;
      try {
        result = await fn();
      } catch (err) {
        return {
          id,
          name,
          level,
          status: 'error',
          fatal: true,
          reason: `audit could not complete: ${errorText(err)}`,
        };
      }
      const entry = { id, name, level, status: result.status };
      if (result.status !== 'ok') {
        entry.reason = result.reason;
        entry.response = await describeResponse(result.response);
      }
      return entry;
    }),
  );

  const summary = { total: results.length, ok: 0, warn: 0, error: 0, notice: 0 };
  for (const { status } of results) summary[status] = (summary[status] ?? 0) + 1;

  process.stdout.write(
    `${JSON.stringify({ package: PACKAGE, url, node: process.version, summary, audits: results }, null, 2)}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`run_audit.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
