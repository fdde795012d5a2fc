// Shared by the k6 scripts of the fixed-rate benchmarks: an open-model scenario at a fixed
// arrival rate, GraphQL requests as a bearer token's viewer, what counts as a failed one,
// and the end-of-test summary. Every knob comes from -e VAR=value:
//   TARGET    base URL of an `aperture serve` process (http://127.0.0.1:PORT)
//   DATA      JSON file {"tokens": [...], ...}: bearer tokens of the viewers, picked uniformly
//   RATE      requests per second; DURATION seconds
//   PRE_VUS / MAX_VUS  virtual users pre-allocated / at most (an iteration with no free
//             VU is dropped and counted in dropped_iterations)
//   TIMEOUT   per-request timeout ("5s")
//   SUMMARY   where handleSummary writes the end-of-test JSON
import http from 'k6/http';
import { SharedArray } from 'k6/data';
import { Rate, Trend } from 'k6/metrics';

const URL = `${__ENV.TARGET}/graphql`;
const TIMEOUT = __ENV.TIMEOUT || '5s';
const ERRORS = /"errors"\s*:/;
let reported = 0; // per VU

export function fixedRateOptions(scenario) {
  return {
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
    scenarios: {
      [scenario]: {
        executor: 'constant-arrival-rate',
        rate: parseInt(__ENV.RATE || '50', 10),
        timeUnit: '1s',
        duration: `${__ENV.DURATION || '20'}s`,
        preAllocatedVUs: parseInt(__ENV.PRE_VUS || '20', 10),
        maxVUs: parseInt(__ENV.MAX_VUS || '200', 10),
        gracefulStop: '5s',
      },
    },
  };
}

// DATA's viewers' tokens (init context only).
export function viewerTokens() {
  return new SharedArray('tokens', () => JSON.parse(open(__ENV.DATA)).tokens);
}

export function pick(items) {
  return items[Math.floor(Math.random() * items.length)];
}

// One GraphQL request (`body`, its JSON) to TARGET as `token`'s viewer, tagged `name`.
export function post(body, token, name) {
  return http.post(URL, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    timeout: TIMEOUT,
    tags: { name },
  });
}

// Why a request failed, '' if it did not: 'transport' (an error or a timeout: no status),
// 'status' (a status other than 200) or 'graphql' (an empty answer, one with errors,
// which GraphQL sends whenever data is null, or one that does not match `expected`).
export function failure(response, expected) {
  if (response.status === 0) return 'transport';
  if (response.status !== 200) return 'status';
  const text = typeof response.body === 'string' ? response.body : '';
  if (text === '' || ERRORS.test(text) || (expected && !expected.test(text))) return 'graphql';
  return '';
}

// A VU's first three failures on the console (FAILED ...): the benchmark's report quotes them.
export function reportFailure(name, response) {
  if (reported >= 3) return;
  reported += 1;
  const text = typeof response.body === 'string' ? response.body : '';
  console.error(
    `FAILED ${name} status=${response.status} error=${response.error} body=${text.slice(0, 400)}`,
  );
}

// The iteration of a script that reads one document (`body`) as a uniformly random viewer:
// failures in failed_requests, latency in the trend `latency`; an answer that does not
// match `expected` (if given) failed too.
export function documentReads({ body, name, latency = 'latency_all', expected = null }) {
  const tokens = viewerTokens();
  const failed = new Rate('failed_requests');
  const trend = new Trend(latency, true);
  return function () {
    const response = post(body, pick(tokens), name);
    const bad = failure(response, expected) !== '';
    failed.add(bad);
    trend.add(response.timings.duration);
    if (bad) reportFailure(name, response);
  };
}

export function handleSummary(summary) {
  return { [__ENV.SUMMARY]: JSON.stringify(summary) };
}
